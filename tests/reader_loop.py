"""A reader in its own process: searches the published index until told to stop.

Used by ``tests/test_job.py`` to show that updates publishing new versions never disturb a
reader. Settings come from the ``PUBMED_RAG_*`` environment, as in the app.

Usage: ``python -m tests.reader_loop STATUS.json STOP_FILE [PMID...]``. The status file is
rewritten after every round: searches run, errors (with the first messages), the highest
article count seen, the versions seen and which of the watched PMIDs were found.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from indexing.settings import get_settings
from indexing.store import IndexReader


def _write(path: Path, status: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(status), encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str]) -> None:
    """Search until the stop file exists; keep the status file current."""
    status_path, stop_path, watched = Path(argv[0]), Path(argv[1]), argv[2:]
    reader = IndexReader(get_settings())
    status: dict[str, Any] = {
        "searches": 0,
        "errors": 0,
        "messages": [],
        "max_articles": 0,
        "versions": [],
        "seen": [],
    }
    while not stop_path.exists():
        try:
            index = reader.get()
            hits = index.search("patients treatment outcome", 5)
            if index.manifest.articles and not hits:
                raise RuntimeError(f"no hits in {index.version} with {index.manifest.articles}")
            for pmid in sorted(set(watched) - set(status["seen"])):
                rows = index.search(
                    "select id, pmid from txtai where pmid = :pmid", 1, parameters={"pmid": pmid}
                )
                if rows:
                    status["seen"].append(pmid)
            status["searches"] += 1
            status["max_articles"] = max(status["max_articles"], index.manifest.articles)
            if index.version not in status["versions"]:
                status["versions"].append(index.version)
        except Exception as exc:
            status["errors"] += 1
            if len(status["messages"]) < 5:
                status["messages"].append(f"{type(exc).__name__}: {exc}")
        _write(status_path, status)
        time.sleep(0.02)
    _write(status_path, status)


if __name__ == "__main__":
    main(sys.argv[1:])
