"""The ``cold_start`` section: wall time of a one-shot ``python -m rag search``.

Baseline: the command searching in its own process (it imports txtai and loads the index and
the encoder). Against it: the same command answered by a running ``python -m rag serve``, and
the service's start-up (until it answers). Both over the index the ``ingest`` section built.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.sections.common import ROOT

QUERY = "proton pump inhibitor safety"


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUBMED_RAG_")}
    env.update(PUBMED_RAG_DATA_DIR=str(data_dir), PUBMED_RAG_OFFLINE="1", PYTHONPATH=str(ROOT))
    return env


def _search_wall_s(data_dir: Path, *flags: str) -> float:
    began = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "rag", "search", QUERY, "--json", *flags],
        cwd=ROOT,
        env=_env(data_dir),
        check=True,
        capture_output=True,
        timeout=600,
    )
    return time.perf_counter() - began


def bench_cold_start(data_dir: Path, rounds: int) -> dict[str, Any]:
    """Median wall seconds of ``rag search`` in-process and through ``rag serve``."""
    from indexing.settings import Settings
    from rag.resident import health

    in_process = [_search_wall_s(data_dir, "--no-resident") for _ in range(rounds)]
    began = time.perf_counter()
    service = subprocess.Popen(
        [sys.executable, "-m", "rag", "serve"],
        cwd=ROOT,
        env=_env(data_dir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        settings = Settings(data_dir=data_dir, offline=True)
        while health(settings) is None:
            if service.poll() is not None or time.perf_counter() - began > 600:
                raise RuntimeError("rag serve did not start")
            time.sleep(0.05)
        ready_s = time.perf_counter() - began
        served = [_search_wall_s(data_dir) for _ in range(rounds)]
    finally:
        service.terminate()
        service.wait(timeout=60)
    return {
        "query": QUERY,
        "rounds": rounds,
        "in_process_wall_s_median": round(statistics.median(in_process), 2),
        "served_wall_s_median": round(statistics.median(served), 2),
        "service_ready_s": round(ready_s, 2),
        "in_process_wall_s": [round(s, 2) for s in in_process],
        "served_wall_s": [round(s, 2) for s in served],
    }
