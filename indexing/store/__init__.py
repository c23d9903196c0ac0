"""The index as published versions: the only code that writes txtai.

:func:`open_store` returns the backend the settings choose — :mod:`indexing.store.files`
(folders under ``data_dir``) or :mod:`indexing.store.postgres` (PostgreSQL + pgvector). Both
subclass the small public base in :mod:`indexing.store.base` and give the same guarantees:
a writer changes a private copy and publishes it atomically, readers only ever see complete
versions, and a writer killed at any instant leaves the published index as it was.

Modules: ``base`` (abstract store / writer / read handle / lock, errors), ``records`` (typed
Manifest, TrackedQuery, IndexInfo), ``layout`` and ``lock`` (the embedded backend's files and
lock), ``config`` (txtai's configuration), ``reader`` (following the published version),
``info`` (what is published), ``build`` (a whole index from articles, for evaluations).
"""

from __future__ import annotations

from indexing.store.base import (
    IndexCorruptError,
    IndexLockedError,
    IndexNotFoundError,
    IndexStoreError,
    PublishedIndex,
    StoreLock,
    VersionStore,
    Writer,
    WriterLockLostError,
)
from indexing.store.build import build_index, temporary_index
from indexing.store.factory import open_store
from indexing.store.info import index_info
from indexing.store.reader import IndexReader
from indexing.store.records import IndexInfo, Manifest, TrackedQuery, UpsertCounts

__all__ = [
    "IndexCorruptError",
    "IndexInfo",
    "IndexLockedError",
    "IndexNotFoundError",
    "IndexReader",
    "IndexStoreError",
    "Manifest",
    "PublishedIndex",
    "StoreLock",
    "TrackedQuery",
    "UpsertCounts",
    "VersionStore",
    "Writer",
    "WriterLockLostError",
    "build_index",
    "index_info",
    "open_store",
    "temporary_index",
]
