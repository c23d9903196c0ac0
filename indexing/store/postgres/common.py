"""What the PostgreSQL backend's modules share: names, limits, errors, small helpers."""

from __future__ import annotations

import contextlib
import os
import socket
import zlib
from typing import Any

import psycopg

from indexing.clock import utcnow
from indexing.store.base import IndexStoreError

SCHEMA_VERSION = 1
# txtai loads the content store by this name (indexes published before the store package
# name the old path, `indexing.pgcontent.PgContent`, which still imports it).
CONTENT_CLASS = "indexing.store.postgres.content.PgContent"
# txtai's pgvector search, exact where an HNSW scan cannot return enough rows (every version).
VECTORS_CLASS = "indexing.store.postgres.vectors.PgVectors"
# The keyword scoring of new versions: txtai's pgtext ranking through the GIN index
# (:mod:`indexing.store.postgres.keywords`); ``terms`` makes txtai treat it as a keyword index.
KEYWORDS_METHOD = "indexing.store.postgres.keywords.PgKeywords"
# What versions published before it record: txtai's pgtext, which ranks every row.
LEGACY_KEYWORDS_METHOD = "pgtext"
# Dense candidates one HNSW scan can return (pgvector's hnsw.ef_search, at most 1000). txtai
# asks for 10x the candidate pool in hybrid mode; the product's default pool is 100.
EF_SEARCH = 1000
CONNECT_TIMEOUT_S = 10
# libpq TCP keepalives of a lock's connection, which sits idle for a whole run: a peer or
# middlebox that vanished is noticed in about a minute instead of the kernel's two hours.
KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}
# How long cleanup waits for a table lock before leaving an old version for the next run.
DROP_LOCK_TIMEOUT = "5s"


def keyword_scoring(stored: Any = None) -> dict[str, Any]:
    """The ``scoring`` block to load a version with: the one it records, if it is one of ours.

    Only the two method names are honoured (a stored configuration is data, and txtai imports
    what the method names); anything else, or nothing, gets :data:`KEYWORDS_METHOD`.
    """
    if isinstance(stored, dict) and stored.get("method") == LEGACY_KEYWORDS_METHOD:
        return {"method": LEGACY_KEYWORDS_METHOD}
    return {"method": KEYWORDS_METHOD, "terms": True}


class DatabaseError(IndexStoreError):
    """The PostgreSQL server is unreachable, lacks pgvector, or refused an operation."""


def lock_key(schema: str, kind: str) -> int:
    """A signed 32-bit advisory-lock key for one kind of lock of one index."""
    value = zlib.crc32(f"pubmed-rag:{schema}:{kind}".encode())
    return value - 2**32 if value >= 2**31 else value


def holder_text(purpose: str) -> str:
    """Who holds a lock, for the message another process gets."""
    return f"pid {os.getpid()} ({purpose}, since {utcnow()}, host {socket.gethostname()})"


def commit_sessions(embeddings: Any) -> None:
    """Commit txtai's three PostgreSQL sessions (what its ``save`` does, without files)."""
    for part in (embeddings.ann, embeddings.database, embeddings.scoring):
        if part is not None:
            part.save(None)


def fetch_value(conn: psycopg.Connection[Any], query: str, params: Any = None) -> Any:
    """The first column of the first row, or None."""
    row = conn.execute(query, params).fetchone()
    return row[0] if row else None


def close_quietly(*things: Any) -> None:
    """Close each of ``things`` that is not None, ignoring errors."""
    for thing in things:
        if thing is not None:
            with contextlib.suppress(Exception):
                thing.close()
