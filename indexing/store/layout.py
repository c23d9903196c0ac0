"""Where the embedded backend keeps things under ``<data_dir>/index``, and durable writes.

::

    CURRENT                 name of the published version ("v000007"), replaced atomically
    versions/v000007/       a complete txtai index + catalog.sqlite + manifest.json
    versions/.staging-*     a writer's work in progress; never read, removed when stale
    history.jsonl           one report per run (see indexing.history)
    .lock                   writer lock (fcntl.flock: the kernel releases it when a writer dies)
    .schedule.lock          scheduler lock
"""

from __future__ import annotations

import os
from pathlib import Path

CURRENT = "CURRENT"
LOCK = ".lock"
SCHEDULE_LOCK = ".schedule.lock"
VERSIONS = "versions"
MANIFEST = "manifest.json"
CATALOG = "catalog.sqlite"
EMBEDDINGS = "embeddings"
STAGING_PREFIX = ".staging-"


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (renames, new files) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: Path) -> None:
    """Make every file and directory under ``path`` durable."""
    for item in sorted(path.rglob("*")):
        if item.is_file():
            with item.open("rb") as handle:
                os.fsync(handle.fileno())
    for folder in sorted({p.parent for p in path.rglob("*")} | {path}):
        fsync_dir(folder)


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so that a reader sees the old or the new text, never half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)
    fsync_dir(path.parent)
