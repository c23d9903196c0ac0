"""Read handles on PostgreSQL versions, pinned against cleanup while open."""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

import psycopg

from indexing.models import ModelChoice
from indexing.store.base import IndexCorruptError, PublishedIndex, version_number
from indexing.store.postgres.common import DatabaseError, close_quietly, commit_sessions, lock_key

if TYPE_CHECKING:
    from indexing.store.postgres.store import PgStore


class PgPublishedIndex(PublishedIndex):
    """A read-only handle on one published version in PostgreSQL.

    Holds a shared advisory lock on the version for as long as it is open, so cleanup never
    drops it under a search; it is released when the handle is closed or garbage-collected.
    """

    def __init__(self, store: PgStore, version: str) -> None:
        self.store = store
        embeddings = None
        pin = store.connect(autocommit=True, purpose="reader")
        try:
            with store.translated("opening the index"):
                held = pin.execute(
                    "SELECT pg_try_advisory_lock_shared(%s, %s)",
                    (lock_key(store.schema, "pin"), version_number(version)),
                ).fetchone()
            if not (held and held[0]):
                raise IndexCorruptError(f"version {version} is being removed from {store.where}")
            manifest = store.manifest(version)  # after pinning: it cannot vanish now
            if manifest.articles:
                embeddings = store.load_embeddings(
                    version, manifest, ModelChoice(manifest.embeddings_model, "")
                )
        except BaseException:
            close_quietly(embeddings, pin)
            raise
        super().__init__(version, manifest, embeddings)
        self._finalizer = weakref.finalize(self, close_quietly, embeddings, pin)

    def _search(
        self, query: str, limit: int, parameters: dict[str, Any] | None, weights: float | None
    ) -> list[dict[str, Any]]:
        """txtai's query; keyword-only scores (``weights=0``) come back relative to the best.

        txtai's ``pgtext`` scores are raw ``ts_rank`` values (typically below 0.1), where its
        BM25 scores are normalised; dividing by the query's best keeps the fused score
        ``w·cosine + (1−w)·keyword`` of :mod:`rag.search` on the same 0..1 scale.

        A retriever weighted 0 is not run (:mod:`indexing.store.retrieval`, as on the embedded
        backend).
        """
        from sqlalchemy.exc import OperationalError
        from txtai.database.sql.error import SQLError

        from indexing.store import retrieval

        try:
            rows = retrieval.search(self.embeddings, query, limit, weights, parameters)
            commit_sessions(self.embeddings)  # end the read transactions: no lock or snapshot held
        except (SQLError, OperationalError, psycopg.Error) as exc:
            cause = exc.args[0] if isinstance(exc, SQLError) and exc.args else exc
            self.broken = isinstance(cause, (OperationalError, psycopg.OperationalError))
            raise DatabaseError(
                f"search failed in {self.store.where}: "
                f"{self.store.scrub(str(cause).strip().splitlines()[0])}"
            ) from None
        if weights == 0.0:
            best = max((float(row.get("score") or 0.0) for row in rows), default=0.0)
            if best > 0:
                for row in rows:
                    if row.get("score") is not None:
                        row["score"] = float(row["score"]) / best
        return rows

    def close(self) -> None:
        """Close txtai's connections and release the pin."""
        self._finalizer()
