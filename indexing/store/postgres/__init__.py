"""The PostgreSQL + pgvector backend: the same versioned index, held by a database server.

Chosen by ``PUBMED_RAG_DATABASE_URL`` (see :func:`indexing.store.open_store`). txtai keeps the
passages and metadata (``PgContent``, its SQLAlchemy content store), the vectors (``pgvector``,
HNSW index, searched by ``PgVectors``: exact past ``hnsw.ef_search``) and the keyword index
(a GIN-indexed tsvector, searched by ``PgKeywords`` through that index; versions published
before it record txtai's ``pgtext``, which ranks every row) in PostgreSQL; this package adds
what the embedded backend keeps in files. With ``S`` the
``database_schema`` setting (``pubmed_rag`` by default)::

    S.meta           schema_version (migrations), set when the schema is created on first use
    S.versions       one row per version: number, state (staging | published), manifest
    S.current        one row: the name of the published version — the pointer readers follow
    S.history        one run report per row (failed runs publish nothing but are reported)
    S.locks          who holds the writer / scheduler lock (the lock itself is advisory)
    S.instr()        SQLite's instr(), so that the search filters run unchanged
    S_v000007        one version: txtai's tables and the catalog (``articles``)

The guarantees are the embedded ones, across hosts:

* A version schema never changes once published. A writer copies the published version into
  a staging schema inside the server (``INSERT … SELECT``, indexes rebuilt in bulk), changes
  the copy, commits it, and publishes by switching ``S.current`` in one transaction. Readers
  only follow the pointer, so they never see a half-applied update; a writer killed at any
  instant leaves a staging schema that the next writer drops.
* The writer and scheduler locks are session-level advisory locks held on a dedicated
  connection: the server releases them when the holder's connection dies (``kill -9``,
  a lost host), with no stale lock to clear.
* A reader pins the version it has open with a shared advisory lock; cleanup drops an old
  version only if it can take that lock exclusively, so a version is never dropped under a
  reader (the embedded backend gets this from open files surviving their unlinking).

Credentials: the URL's password reaches only the drivers. Manifests store txtai's configuration
without URLs, messages and ``info`` show :func:`mask_url`, and errors are scrubbed.

Modules: ``store`` (the control schema, what is published, cleanup), ``writer`` (staging
schemas), ``reader`` (pinned read handles), ``lock`` (advisory locks), ``urls`` (credentials),
``content`` (txtai's content store with typed columns), ``keywords`` and ``vectors`` (txtai's
keyword and vector search, as txtai loads them by name), ``common`` (shared names and helpers).
"""

from __future__ import annotations

from indexing.store.postgres.common import DatabaseError
from indexing.store.postgres.lock import AdvisoryLock
from indexing.store.postgres.reader import PgPublishedIndex
from indexing.store.postgres.store import PgStore
from indexing.store.postgres.urls import mask_url, scrub
from indexing.store.postgres.writer import PgWriter

__all__ = [
    "AdvisoryLock",
    "DatabaseError",
    "PgPublishedIndex",
    "PgStore",
    "PgWriter",
    "mask_url",
    "scrub",
]
