"""IR metrics of a run against relevance judgments (qrels), as ``trec_eval`` and BEIR compute them.

Per query, then averaged over the queries with at least one relevant judgment: nDCG@10 with
linear gain (``rel / log2(rank + 1)``; graded relevance allowed), recall@10 and recall@100
(relevant = score > 0) and MRR@10. A document repeated in a ranking counts once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

TOP_K = 10
DEEP_K = 100
METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")

Ranking = Sequence[str]
Qrels = Mapping[str, Mapping[str, int]]


def _unique(ranking: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(ranking))


def ndcg_at_k(ranking: Ranking, relevance: Mapping[str, int], k: int) -> float:
    """nDCG@k with linear gain: ``sum(rel_i / log2(i + 1))`` over ranks ``i = 1..k``, normalised.

    Returns 0.0 when nothing is relevant.
    """
    gains = sorted((rel for rel in relevance.values() if rel > 0), reverse=True)[:k]
    ideal = sum(rel / math.log2(rank + 2) for rank, rel in enumerate(gains))
    if ideal <= 0:
        return 0.0
    found = sum(
        max(relevance.get(doc, 0), 0) / math.log2(rank + 2)
        for rank, doc in enumerate(_unique(ranking)[:k])
    )
    return found / ideal


def recall_at_k(ranking: Ranking, relevance: Mapping[str, int], k: int) -> float:
    """Share of the relevant documents (score > 0) found in the first ``k``."""
    relevant = {doc for doc, rel in relevance.items() if rel > 0}
    if not relevant:
        return 0.0
    return len(relevant & set(_unique(ranking)[:k])) / len(relevant)


def mrr_at_k(ranking: Ranking, relevance: Mapping[str, int], k: int) -> float:
    """Reciprocal rank of the first relevant document in the first ``k`` (0.0 if none)."""
    for rank, doc in enumerate(_unique(ranking)[:k], start=1):
        if relevance.get(doc, 0) > 0:
            return 1.0 / rank
    return 0.0


def score_query(top: Ranking, deep: Ranking, relevance: Mapping[str, int]) -> dict[str, float]:
    """The four metrics of one query: @10 from ``top``, recall@100 from ``deep``."""
    return {
        "ndcg@10": ndcg_at_k(top, relevance, TOP_K),
        "recall@10": recall_at_k(top, relevance, TOP_K),
        "recall@100": recall_at_k(deep, relevance, DEEP_K),
        "mrr@10": mrr_at_k(top, relevance, TOP_K),
    }


def score_run(
    top: Mapping[str, Ranking], qrels: Qrels, deep: Mapping[str, Ranking] | None = None
) -> dict[str, float]:
    """Mean metrics over the queries of ``qrels`` that have a relevant document.

    A query missing from the run scores 0. ``deep`` (rankings of 100) defaults to ``top``.
    """
    deep = top if deep is None else deep
    judged = [qid for qid, rels in qrels.items() if any(rel > 0 for rel in rels.values())]
    totals = dict.fromkeys(METRICS, 0.0)
    for qid in judged:
        for name, value in score_query(top.get(qid, ()), deep.get(qid, ()), qrels[qid]).items():
            totals[name] += value
    count = max(len(judged), 1)
    return {name: round(total / count, 4) for name, total in totals.items()}
