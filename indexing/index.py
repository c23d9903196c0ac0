"""Old import path of the store; the code lives in :mod:`indexing.store` now.

Kept so that code written against ``indexing.index`` keeps working; new code imports
:mod:`indexing.store` (or its modules).
"""

from indexing.clock import utcnow
from indexing.store import (
    IndexCorruptError,
    IndexInfo,
    IndexLockedError,
    IndexNotFoundError,
    IndexReader,
    IndexStoreError,
    Manifest,
    PublishedIndex,
    UpsertCounts,
    index_info,
    open_store,
)
from indexing.store import Writer as IndexWriter
from indexing.store.config import SORT_WINDOW, embeddings_config, load_embeddings
from indexing.store.files import FileStore as IndexStore
from indexing.store.layout import CATALOG, CURRENT, MANIFEST, VERSIONS
from indexing.store.lock import FileLock as WriterLock

__all__ = [
    "CATALOG",
    "CURRENT",
    "MANIFEST",
    "SORT_WINDOW",
    "VERSIONS",
    "IndexCorruptError",
    "IndexInfo",
    "IndexLockedError",
    "IndexNotFoundError",
    "IndexReader",
    "IndexStore",
    "IndexStoreError",
    "IndexWriter",
    "Manifest",
    "PublishedIndex",
    "UpsertCounts",
    "WriterLock",
    "embeddings_config",
    "index_info",
    "load_embeddings",
    "open_store",
    "utcnow",
]
