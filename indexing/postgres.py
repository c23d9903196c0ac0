"""Old import path of the PostgreSQL backend; it lives in :mod:`indexing.store.postgres` now."""

from indexing.store.postgres import DatabaseError, PgStore, PgWriter, mask_url, scrub

PgIndexStore = PgStore
PgIndexWriter = PgWriter

__all__ = ["DatabaseError", "PgIndexStore", "PgIndexWriter", "mask_url", "scrub"]
