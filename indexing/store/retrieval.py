"""txtai's search of one retriever: what a dense-only or keyword-only query of a hybrid index runs.

:func:`rag.search.search` asks the index twice, once with ``weights=1`` (dense only) and once
with ``weights=0`` (keyword only). txtai 9.14 runs *both* retrievers for every query of a
hybrid index, each for ten times the limit, and then throws the side weighted 0 away: half of
each search was work nobody used (the profile at 100k passages: two exact faiss scans and two
BM25 scans per search). :class:`OneSidedSearch` runs only the side that counts, for the number
of candidates txtai's own hybrid would have taken from it, so every score and every ranking is
the one txtai returns. Both backends search through it (the embedded one and PostgreSQL);
imported when an index is first searched (it imports txtai).

faiss runs one query in the calling thread (:func:`single_threaded_faiss`): a flat search of a
single query otherwise splits the vectors over OpenMP threads, and on a busy 2-core machine
(load 6) every split waits for a core — 60 ms instead of 0.3 ms at 10k passages, 48-80 ms
instead of 11-14 ms at 100k (the bench's machine, 2026-12-02). An IVF search of one query does
not split; many queries at once (evaluations) are not searched through here.
"""

from __future__ import annotations

from typing import Any

import faiss
from txtai.embeddings.search import Search


class OneSidedSearch(Search):
    """txtai's :class:`~txtai.embeddings.search.Search`, one retriever when weights are 0 or 1."""

    def search(self, queries: list[Any], limit: int, weights: Any, index: Any) -> list[Any]:
        if index or not (self.ann and self.scoring) or weights not in (0, 1):
            return list(super().search(queries, limit, weights, index))
        if weights == 1:
            return list(self.dense(queries, limit))
        # txtai's hybrid asks BM25 for 10x the limit and keeps the best `limit` of them; the
        # terms index ranks more candidates for a larger limit, so ask for the same number.
        return [results[:limit] for results in self.sparse(queries, limit * 10)]

    def sparse(self, queries: list[Any], limit: int) -> list[Any]:
        if len(queries) != 1:
            return list(super().sparse(queries, limit))
        # One query: txtai's batchsearch would start a thread pool for it (milliseconds).
        results = self.scoring.search(queries[0], limit) or []
        return list(self.resolve([[(uid, score) for uid, score in results if score > 0]]))


def single_threaded_faiss() -> None:
    """faiss's OpenMP searches started from this thread run in it (OpenMP keeps the count per
    thread, so writers and evaluations elsewhere keep theirs)."""
    faiss.omp_set_num_threads(1)


def search(
    embeddings: Any,
    query: str,
    limit: int,
    weights: float | None,
    parameters: dict[str, Any] | None,
) -> list[dict[str, Any]]:
    """``embeddings.search(query, limit, weights=weights, parameters=parameters)``, one-sided."""
    single_threaded_faiss()
    results = OneSidedSearch(embeddings)([query], limit, weights, None, [parameters])
    return list(results[0]) if results else []
