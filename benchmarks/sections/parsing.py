"""The ``parsing`` section: records/s of the PubMed XML parser over the real samples."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any


def sample_xml_files(samples: Path) -> list[Path]:
    """Every PubMed XML sample file under ``samples`` (``.xml``, ``.xml.gz``), recursively."""
    return sorted(
        path
        for path in samples.rglob("*")
        if path.is_file() and (path.name.endswith(".xml") or path.name.endswith(".xml.gz"))
    )


def bench_parsing(samples: Path, repeats: int) -> dict[str, Any]:
    """Records/s of the streaming parser over every sample XML file (best of ``repeats``).

    Some samples are not PubMed article sets (other XML from parser test suites); a file the
    parser rejects is counted, not timed twice.
    """
    from indexing.pubmed import open_xml, parse_pubmed_xml

    files = sample_xml_files(samples)
    best = float("inf")
    records = 0
    rejected: set[str] = set()
    for _ in range(repeats):
        records = 0
        began = time.perf_counter()
        for path in files:
            try:
                with open_xml(path) as stream:
                    for _record in parse_pubmed_xml(stream):
                        records += 1
            except Exception:
                rejected.add(path.name)
        best = min(best, time.perf_counter() - began)
    return {
        "files": len(files),
        "files_rejected": sorted(rejected),
        "records": records,
        "bytes": sum(path.stat().st_size for path in files),
        "seconds": round(best, 3),
        "records_per_s": round(records / best, 1) if best > 0 else None,
    }
