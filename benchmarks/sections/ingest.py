"""The ``ingest`` section: records/s end to end from the local E-utilities server."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any


def bench_ingest(samples: list[Path], data_dir: Path) -> dict[str, Any]:
    """Records/s from the local E-utilities server to a published index (offline embedder)."""
    from indexing.ingest import ingest_query
    from indexing.settings import Settings
    from testkit.eutils_server import EutilsServer, load_records

    records = load_records([path for path in samples if path.exists()])
    with EutilsServer(records) as server:
        settings = Settings(
            data_dir=data_dir, offline=True, eutils_url=server.url, ncbi_email="bench@example.org"
        )
        began = time.perf_counter()
        report = ingest_query("all[sb]", settings, quiet=True)
        elapsed = time.perf_counter() - began
    return {
        "records_served": len(records),
        "added": report.added,
        "seconds": round(elapsed, 2),
        "records_per_s": round(report.added / elapsed, 2) if elapsed > 0 else None,
        "note": "includes the client's NCBI rate limit (3 requests/s without an API key)",
    }
