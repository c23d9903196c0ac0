"""txtai's pgvector search that returns as many nearest passages as it is asked for.

A pgvector HNSW scan yields at most ``hnsw.ef_search`` rows (1000 here, pgvector's maximum);
pgvector before 0.8 has no iterative scan to go further, and the servers this program is tested
with (PyPI ``pgserver``) ship 0.6.2. txtai asks the index for ten times the candidate pool, and
:func:`rag.search.search` grows the pool when filters leave too few hits; past ``ef_search``
the HNSW scan silently stopped at 1000, so a selective filter could return fewer hits than
exist. :class:`PgVectors` answers a request larger than ``ef_search`` with an exact scan (all
vectors, top-N sort; PostgreSQL may run it in parallel) and smaller ones with the HNSW index,
as before.

txtai imports this class by the name in the configuration (``"backend":
"indexing.store.postgres.vectors.PgVectors"``); its settings stay under ``"pgvector"``, and it
reads and writes txtai's ``vectors`` table unchanged, so every version loads with it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from txtai.ann.dense.pgvector import PGVector


class PgVectors(PGVector):
    """pgvector's HNSW search, exact when asked for more rows than an HNSW scan can give."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self._ef_search: int | None = None

    def setting(self, name: str, default: Any = None) -> Any:
        """The setting under ``"pgvector"`` (txtai looks under the backend's name)."""
        settings = self.config.get("pgvector") or {}
        value = settings.get(name)
        return value if value or name in settings else default

    def search(self, queries: Any, limit: int) -> list[list[tuple[int, float]]]:
        """``(indexid, score)`` of the ``limit`` nearest vectors of each query."""
        if limit <= self.ef_search():
            return list(super().search(queries, limit))
        results = []
        for query in queries:
            score = self.query(query)
            # ``+ 0`` is not the indexed operator: the planner sorts every row (exact)
            rows = (
                self.database.query(self.table.c["indexid"], score)
                .order_by(score.element + 0)
                .limit(limit)
            )
            results.append([(int(uid), float(self.score(value))) for uid, value in rows])
        return results

    def ef_search(self) -> int:
        """The session's ``hnsw.ef_search`` (pgvector's default 40 if it is not set)."""
        if self._ef_search is None:
            value = self.database.execute(
                text("SELECT current_setting('hnsw.ef_search', true)")
            ).scalar()
            self._ef_search = int(value) if value else 40
        return self._ef_search
