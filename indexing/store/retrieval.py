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

Both sides of one hybrid query run at once (:func:`search_sides`): the keyword side's terms
index scores its candidates in a worker thread while this thread encodes the query, searches
faiss and reads the content database for the dense side; the keyword side's rows are then
read as usual, from the scores the worker found. faiss, SQLite and numpy's large array
operations release the GIL, so on two cores the keyword side mostly costs no wall time of its
own. The two threads touch different objects (the terms index has its own SQLite connection),
and the index's lock is held until both are done (:meth:`PublishedIndex.search_sides`).
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
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
        results = self.keywords(queries[0], limit)
        return list(self.resolve([[(uid, score) for uid, score in results if score > 0]]))

    def keywords(self, query: str, limit: int) -> list[Any]:
        """The terms index's ``(id, score)`` candidates of one query."""
        # One query: txtai's batchsearch would start a thread pool for it (milliseconds).
        return list(self.scoring.search(query, limit) or [])


class PrefetchedSearch(OneSidedSearch):
    """:class:`OneSidedSearch` whose keyword candidates of one ``(query, limit)`` were already
    asked for (:func:`search_sides`); any other keyword search runs as usual."""

    def __init__(self, embeddings: Any, key: tuple[str, int], found: Future[list[Any]]) -> None:
        super().__init__(embeddings)
        self.key, self.found = key, found
        self.used = False

    def keywords(self, query: str, limit: int) -> list[Any]:
        if (query, limit) == self.key and not self.used:
            self.used = True
            return self.found.result()
        return super().keywords(query, limit)


# The keyword side's worker threads; more than one so that two indexes (two versions while the
# app moves to a new one) never wait on each other's keyword search.
_KEYWORD_SIDE = ThreadPoolExecutor(max_workers=4, thread_name_prefix="keyword-side")


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


def search_sides(
    embeddings: Any,
    query: str,
    limit: int,
    parameters: dict[str, Any],
    dense_parameters: dict[str, Any],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(dense rows, keyword rows)`` of one SQL ``query`` whose ``similar(:query,
    :candidates)`` is bound by ``parameters`` (keyword side: text) and ``dense_parameters``
    (dense side: text or vector), the keyword candidates scored in a worker meanwhile.

    The same rows as :func:`search` with ``weights=1`` and then ``weights=0``."""
    text, candidates = parameters.get("query"), parameters.get("candidates")
    if not (
        embeddings.ann
        and embeddings.issparse()
        and isinstance(text, str)
        and isinstance(candidates, int)
        and candidates > 0
    ):
        return (
            search(embeddings, query, limit, 1.0, dense_parameters),
            search(embeddings, query, limit, 0.0, parameters),
        )
    # What OneSidedSearch asks the terms index for, for the pool of similar(:query, :candidates).
    key = (text, candidates * 10)
    found = _KEYWORD_SIDE.submit(OneSidedSearch(embeddings).keywords, *key)
    try:
        dense = search(embeddings, query, limit, 1.0, dense_parameters)
    finally:
        wait = found.exception()  # never leave the worker running once the index lock is freed
    if wait is not None:
        raise wait
    keyword = PrefetchedSearch(embeddings, key, found)([query], limit, 0.0, None, [parameters])
    return dense, list(keyword[0]) if keyword else []
