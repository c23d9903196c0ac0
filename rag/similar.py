"""Similar articles: the nearest neighbours of one indexed article, nudged by shared MeSH.

For the article's first :data:`MAX_PASSAGES` passages, as stored in the index (title and
passage, the very text that was embedded), a dense search runs through the same SQL and
filters as :func:`rag.search.search`; txtai encodes that text with the index's own encoder, so
the query vector is the stored one (same model, same text) on either backend, without reading
faiss or pgvector internals. Each candidate passage scores::

    score = dense_cosine + MESH_WEIGHT * jaccard(topical MeSH of the two articles)

(check tags such as Humans, Male or Adult are left out of the overlap: nearly every record
has them). The article itself is dropped, the best passage of each other article is kept, and
hits come best first; the retracted-citation mark is set as in a search.
"""

from __future__ import annotations

import time
from typing import Any

from indexing.article import split_list
from indexing.store import IndexReader, PublishedIndex
from rag.errors import EmptyIndexError, SearchError
from rag.search import (
    COLUMNS,
    DEFAULT_CANDIDATES,
    DEFAULT_MAX_CANDIDATES,
    GROWTH,
    Filters,
    SearchResult,
    collapse,
    mark_cited_retractions,
    published_index,
)

# Shared topical MeSH can add at most this much to a cosine (all descriptors shared).
MESH_WEIGHT = 0.1
MAX_PASSAGES = 3
# MeSH check tags: describe who was studied, not what; they say nothing about similarity.
CHECK_TAGS = frozenset(
    name.lower()
    for name in (
        "Humans",
        "Animals",
        "Male",
        "Female",
        "Adult",
        "Aged",
        "Aged, 80 and over",
        "Middle Aged",
        "Young Adult",
        "Adolescent",
        "Child",
        "Child, Preschool",
        "Infant",
        "Infant, Newborn",
        "Pregnancy",
        "Mice",
        "Rats",
    )
)


class UnknownArticleError(SearchError):
    """The PMID asked about is not in the index."""


def topical_mesh(mesh: str | None) -> frozenset[str]:
    """The MeSH descriptors of a ``|a|b|`` column, lower-cased, check tags left out."""
    return frozenset(term.lower() for term in split_list(mesh)) - CHECK_TAGS


def mesh_overlap(first: frozenset[str], second: frozenset[str]) -> float:
    """Jaccard overlap of two descriptor sets (0 when either is empty)."""
    if not first or not second:
        return 0.0
    return len(first & second) / len(first | second)


def similar_articles(
    source: IndexReader | PublishedIndex,
    pmid: str,
    filters: Filters | None = None,
    limit: int = 10,
    *,
    mesh_weight: float = MESH_WEIGHT,
    candidates: int = DEFAULT_CANDIDATES,
    max_candidates: int = DEFAULT_MAX_CANDIDATES,
) -> SearchResult:
    """The articles most like ``pmid``, best first, one hit per article, the article excluded.

    Raises:
        UnknownArticleError: ``pmid`` is not in the index.
        IndexMissingError / EmptyIndexError: nothing searchable is published.
    """
    started = time.perf_counter()
    filters = filters or Filters()
    pmid = (pmid or "").strip()
    index = published_index(source)
    if index.embeddings is None or not index.manifest.articles:
        raise EmptyIndexError(f"the index (version {index.version}) holds no articles yet")
    own = _own_passages(index, pmid)
    if not own:
        raise UnknownArticleError(f"PMID {pmid!r} is not in the index (version {index.version})")
    mesh = topical_mesh(own[0].get("mesh"))
    where, params = filters.to_sql()
    total = max(int(index.manifest.passages), 1)
    cap = min(max(max_candidates, candidates, limit), total)
    pool = min(max(candidates, limit + len(own)), cap)
    while True:
        rows = _neighbours(index, own, where, params, pool, pmid, mesh, mesh_weight)
        hits = collapse(rows)
        if len(hits) >= limit or pool >= cap:
            break
        pool = min(pool * GROWTH, cap)
    title = str(own[0].get("title") or "")
    return SearchResult(
        hits=mark_cited_retractions(index, hits[:limit]),
        elapsed_ms=(time.perf_counter() - started) * 1000,
        index_version=index.version,
        query=f"similar to PMID {pmid}: {title}".strip(),
        filters=filters,
        embeddings_model=index.manifest.embeddings_model,
    )


def _own_passages(index: PublishedIndex, pmid: str) -> list[dict[str, Any]]:
    """The article's first passages, in order (empty when the PMID is not indexed)."""
    if not pmid:
        return []
    sql = "SELECT id, text, title, pmid, passage, mesh FROM txtai WHERE pmid = :pmid"
    rows = index.search(sql, 1000, {"pmid": pmid})
    rows.sort(key=lambda row: int(row.get("passage") or 0))
    return rows[:MAX_PASSAGES]


def _neighbours(
    index: PublishedIndex,
    own: list[dict[str, Any]],
    where: str,
    params: dict[str, Any],
    pool: int,
    pmid: str,
    mesh: frozenset[str],
    mesh_weight: float,
) -> list[tuple[float, float, float, dict[str, Any]]]:
    """``(score, dense, 0, row)`` of every other article's passage near one of ``own``."""
    sql = f"SELECT {', '.join(COLUMNS)} FROM txtai WHERE similar(:query, :candidates){where}"
    best: dict[str, tuple[float, dict[str, Any]]] = {}
    for passage in own:
        bound = {**params, "query": str(passage.get("text") or ""), "candidates": pool}
        for row in index.search(sql, pool, bound, weights=1.0):
            if str(row["pmid"]) == pmid:
                continue
            cosine = float(row["score"])
            if row["id"] not in best or cosine > best[row["id"]][0]:
                best[row["id"]] = (cosine, row)
    scored = []
    for cosine, row in best.values():
        boost = mesh_weight * mesh_overlap(mesh, topical_mesh(row.get("mesh")))
        scored.append((cosine + boost, cosine, 0.0, row))
    return scored
