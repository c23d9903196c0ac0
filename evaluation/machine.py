"""Where a figure was measured: CPU, cores, memory, library versions, time."""

from __future__ import annotations

import contextlib
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    """The CPU's model name (Linux ``/proc/cpuinfo``; ``platform`` elsewhere)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


# The instruction sets that decide which kernels run (encoder, llama.cpp, faiss).
SIMD_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx_vnni",
    "amx_bf16",
    "amx_int8",
    "asimd",
    "sve",
)


def instruction_sets() -> list[str]:
    """Which of :data:`SIMD_FLAGS` this CPU has (``/proc/cpuinfo``; empty elsewhere)."""
    flags: set[str] = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("flags", "Features"):
                flags = set(value.split())
                break
    return [flag for flag in SIMD_FLAGS if flag in flags]


def machine_info() -> dict[str, Any]:
    """Where a figure was measured: CPU, cores, memory, library versions, time."""
    from importlib import metadata

    versions = {}
    for package in ("txtai", "torch", "sentence-transformers", "faiss-cpu", "llama_cpp_python"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[package] = metadata.version(package)
    memory = None
    with contextlib.suppress(OSError, ValueError):
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory = round(pages / 2**30, 1)
    return {
        "cpu": cpu_model(),
        "instruction_sets": instruction_sets(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": memory,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "versions": versions,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
