"""What serving a published index costs in memory: a fresh process opens it and searches.

``rag eval beir --serving-memory`` runs this module in a subprocess on the index it has just
built, so that the peak resident set size it reports (Linux ``VmHWM``) is that of a process
serving the index — encoder, vectors, keyword terms, content store — and nothing else; the
evaluation's own peak (it also held the corpus and the baselines) is not inherited::

    python -m evaluation.serving --data-dir DIR --queries queries.json

``queries.json`` is a JSON list of query texts. The child reads every other setting from the
environment, as the evaluation did (model, stored width, precision), and prints one JSON
object: peak RSS after opening the index and after the searches, and the search p50.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from indexing.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB.

    Linux's ``VmHWM`` belongs to this process's own memory map. ``getrusage``'s ``ru_maxrss``
    does not: a process started by ``subprocess`` inherits the peak of the process that
    started it (the kernel carries it across fork and exec).
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / 2**20


def serving_memory(settings: Settings, queries: Sequence[str]) -> dict[str, Any]:
    """Peak RSS of a fresh process serving the index at ``settings.data_dir`` (embedded only).

    On PostgreSQL the vectors and terms live in the server, so a client's RSS says little:
    that case is reported as skipped, not measured.
    """
    if settings.database_url is not None:
        return {"skipped": "PostgreSQL: vectors and terms are held by the server"}
    with tempfile.TemporaryDirectory(prefix="pubmed-rag-serving-") as tmp:
        spec = Path(tmp) / "queries.json"
        spec.write_text(json.dumps(list(queries)), encoding="utf-8")
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PUBMED_RAG_DATA_DIR": str(settings.data_dir)}
        done = subprocess.run(
            [sys.executable, "-m", "evaluation.serving", "--data-dir", str(settings.data_dir),
             "--queries", str(spec)],
            capture_output=True, text=True, env=env, cwd=ROOT, check=False,
        )  # fmt: skip
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    """Open the index, search every query, print peak RSS and latency as JSON."""
    parser = argparse.ArgumentParser(prog="python -m evaluation.serving", description=__doc__)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--queries", type=Path, required=True)
    args = parser.parse_args(argv)

    import numpy as np

    from indexing.settings import get_settings
    from indexing.store import IndexReader
    from rag.search import search
    from rag.settings import RagSettings

    queries: list[str] = json.loads(args.queries.read_text(encoding="utf-8"))
    settings = get_settings().model_copy(update={"data_dir": args.data_dir})
    rag = RagSettings()
    started = time.perf_counter()
    index = IndexReader(settings).get()
    load_s = time.perf_counter() - started
    loaded = peak_rss_mib()
    latencies = []
    for query in queries:
        result = search(
            index, query, None, 10, rag.hybrid_weight, candidates=rag.candidates,
            max_query_chars=rag.max_query_chars,
        )  # fmt: skip
        latencies.append(result.elapsed_ms)
    print(
        json.dumps(
            {
                "queries": len(queries),
                "load_s": round(load_s, 2),
                "peak_rss_loaded_mib": round(loaded, 1),
                "peak_rss_serving_mib": round(peak_rss_mib(), 1),
                "p50_ms": round(float(np.percentile(latencies, 50)), 2) if latencies else None,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
