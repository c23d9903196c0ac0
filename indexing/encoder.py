"""How the sentence encoder runs: bf16 where the CPU computes bf16 natively, fp32 otherwise.

txtai loads the encoder itself (``method: sentence-transformers``); we only choose the weights'
dtype, passed through txtai's ``vectors`` model arguments to ``SentenceTransformer(...,
model_kwargs={"dtype": ...})``. The choice is saved in the index's txtai configuration (and so in
``manifest.json``), which is how a reader encodes queries with the precision the passages were
encoded with.

Why bf16 and not int8, ONNX Runtime or OpenVINO: see the README's design notes (measured on
the same machine; bf16 was within a few percent of the fastest candidate, keeps cosine
similarity to fp32 above 0.9999 and needs no dependency or exported model).

``PUBMED_RAG_ENCODER_PRECISION``:

* ``auto`` (default): bf16 where the CPU has native bf16 instructions (x86 AVX512-BF16 or
  AMX-BF16, ARM BF16), fp32 elsewhere. Without them PyTorch emulates bf16, which is slower
  than fp32.
* ``bf16``: bf16 where supported; elsewhere fp32 with a warning that says why.
* ``fp32``: the fast path off, for new indexes and for reading existing ones.
"""

from __future__ import annotations

import contextlib
import logging
import platform
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger(__name__)

Precision = Literal["bf16", "fp32"]
Requested = Literal["auto", "bf16", "fp32"]
BACKEND = "torch"
# torch dtype names as transformers' from_pretrained accepts them (JSON-serialisable).
DTYPES: dict[str, str] = {"bf16": "bfloat16", "fp32": "float32"}
# CPU flags (Linux /proc/cpuinfo) that mean native bf16 arithmetic.
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


@dataclass(frozen=True, slots=True)
class EncoderChoice:
    """The precision the encoder runs in, what was asked for, and why they differ."""

    precision: Precision
    requested: str
    reason: str = ""  # non-empty when fp32 runs although bf16 was asked for

    def describe(self) -> dict[str, str]:
        """What ``manifest.json`` records under ``embeddings_config["encoder"]``."""
        described = {"backend": BACKEND, "precision": self.precision, "requested": self.requested}
        if self.reason:
            described["fallback"] = self.reason
        return described


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """Instruction-set flags of this CPU (``flags`` on x86, ``Features`` on ARM; Linux only)."""
    with contextlib.suppress(OSError):
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("flags", "Features"):
                return frozenset(value.split())
    return frozenset()


def native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (else PyTorch emulates it, slower than fp32)."""
    return bool(BF16_FLAGS & cpu_flags())


_warned: set[str] = set()


def choose_precision(requested: str) -> EncoderChoice:
    """The precision to run for a requested one (``auto``, ``bf16`` or ``fp32``).

    Falls back to fp32 on a CPU without native bf16, saying so once per process: a warning
    when bf16 was asked for explicitly (or recorded by the index being read), else an info
    line; the reason is also recorded in the manifest.
    """
    if requested == "fp32":
        return EncoderChoice("fp32", requested)
    if requested not in ("auto", "bf16"):
        raise ValueError(f"unknown encoder precision {requested!r}: use auto, bf16 or fp32")
    if native_bf16():
        return EncoderChoice("bf16", requested)
    reason = (
        f"this CPU ({platform.machine()}) has no native bf16 instructions "
        "(AVX512-BF16, AMX-BF16 or ARM BF16), so the encoder runs in fp32"
    )
    if reason not in _warned:
        _warned.add(reason)
        if requested == "bf16":
            log.warning("%s; set PUBMED_RAG_ENCODER_PRECISION=fp32 to silence this", reason)
        else:
            log.info("%s (the index records it)", reason)
    return EncoderChoice("fp32", requested, reason)


def vectors_args(precision: str) -> dict[str, Any]:
    """txtai ``vectors`` arguments (``SentenceTransformer`` kwargs) for a precision."""
    return {"model_kwargs": {"dtype": DTYPES[precision]}}


def recorded_precision(config: dict[str, Any] | None) -> Precision:
    """The precision an index was built with, from its txtai configuration.

    Indexes built before the precision was recorded were built in fp32.
    """
    encoder = (config or {}).get("encoder") or {}
    return "bf16" if encoder.get("precision") == "bf16" else "fp32"


def reading_overrides(config: dict[str, Any] | None, setting: str) -> dict[str, Any]:
    """txtai configuration overrides to open an index with: ``{}`` to run as recorded.

    An index is read (queries encoded, upserts added) with the precision it was built with,
    unless ``setting`` is ``fp32`` (the fast path off) or this CPU lacks bf16; then fp32, and
    the next published version records fp32.
    """
    config = config or {}
    if "encoder" not in config:
        return {}  # built before this module: txtai's own fp32 defaults, left as they are
    recorded = recorded_precision(config)
    choice = choose_precision("fp32" if setting == "fp32" else recorded)
    if choice.precision == recorded:
        return {}
    vectors = {**(config.get("vectors") or {}), **vectors_args(choice.precision)}
    return {"vectors": vectors, "encoder": choice.describe()}
