"""A support verdict per answer sentence: does what it says stand in the articles it cites?

Each answer sentence is compared with every sentence of the abstracts it cites (and with each
pair of neighbouring sentences, since a claim often joins two)::

    support = 0.75 * cosine(claim, quote) + 0.25 * share of the claim's words in the quote

with the index's own encoder. The best-matching quote is kept, to be shown beside the claim.
``supported`` / ``weak`` / ``unsupported`` come from two thresholds calibrated per embedder on
PubMedQA (each question's own conclusion, ``LONG_ANSWER``, against its own abstract as
supported and against other abstracts as unsupported; ``make eval`` reports the AUC and the
precision/recall of the thresholds, see :func:`calibrate`).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rag.evidence import ArticleSentences, overlap, terms, unit

W_COSINE, W_OVERLAP = 0.75, 0.25
SUPPORTED, WEAK, UNSUPPORTED = "supported", "weak", "unsupported"

# Calibrated on PubMedQA PQA-L (`make eval`, support section): thresholds chosen on the first
# 500 questions, checked on the other 500. "supported" keeps precision >= 0.95 against hard
# negatives (each conclusion against the most similar *other* abstract), "weak" keeps recall
# >= 0.97. MiniLM, 2026-12-01: AUC 0.9997 against random, 0.975 against hard negatives; on the
# held-out half "supported" has precision 0.95 / recall 0.92 (hard), "weak" recall 0.99.
# PubMedBERT is not calibrated here (no weights): it falls back to the MiniLM values.
CALIBRATED: dict[str, tuple[float, float]] = {
    "offline:sentence-transformers/all-MiniLM-L6-v2": (0.55, 0.45),
}
FALLBACK = (0.55, 0.45)

_TAGS = re.compile(r"\s*\[PMID:\d+\]")


@dataclass(frozen=True, slots=True)
class Verdict:
    """How well one answer sentence is supported, and by which quote."""

    support: str  # supported | weak | unsupported
    score: float
    quote: str  # the best-matching sentence(s) of the cited abstracts ("" if none)
    quote_pmid: str


def claim_text(sentence: str) -> str:
    """An answer sentence without its citation tags."""
    return _TAGS.sub("", sentence).strip()


def thresholds_for(embeddings_model: str) -> tuple[float, float]:
    """``(supported, weak)`` thresholds for an index built with ``embeddings_model``."""
    return CALIBRATED.get(embeddings_model, FALLBACK)


def support_scores(
    claim_vectors: np.ndarray, claims: Sequence[str], pool: ArticleSentences, rows: Sequence[int]
) -> list[tuple[float, int, int]]:
    """Per claim: ``(score, first row, last row)`` of its best quote among ``rows`` of ``pool``.

    A quote is one sentence or two neighbouring sentences of the same article. Without
    ``rows`` the score is 0 and the rows are -1.
    """
    if not rows or not claims:
        return [(0.0, -1, -1) for _ in claims]
    rows = list(rows)
    spans = [(row, row) for row in rows]
    spans += [
        (row, nxt)
        for row, nxt in itertools.pairwise(rows)
        if nxt == row + 1 and pool.sentences[row].pmid == pool.sentences[nxt].pmid
    ]
    span_vectors = unit(np.stack([pool.vectors[a : b + 1].sum(axis=0) for a, b in spans]))
    span_terms = [
        set().union(*(terms(pool.sentences[r].text) for r in range(a, b + 1))) for a, b in spans
    ]
    cosines = unit(claim_vectors) @ span_vectors.T
    out = []
    for number, claim in enumerate(claims):
        words = terms(claim)
        scores = [
            W_COSINE * float(cosines[number, index]) + W_OVERLAP * overlap(words, span_terms[index])
            for index in range(len(spans))
        ]
        best = int(np.argmax(scores))
        out.append((scores[best], spans[best][0], spans[best][1]))
    return out


def label(score: float, thresholds: tuple[float, float]) -> str:
    """``supported`` at or above the first threshold, ``weak`` at or above the second."""
    supported, weak = thresholds
    if score >= supported:
        return SUPPORTED
    return WEAK if score >= weak else UNSUPPORTED


def verdicts(
    claims: Sequence[str],
    claim_vectors: np.ndarray,
    cited: Sequence[Sequence[str]],
    pool: ArticleSentences,
    thresholds: tuple[float, float],
) -> list[Verdict]:
    """One verdict per claim, against the sentences of the articles that claim cites."""
    out = []
    for number, claim in enumerate(claims):
        rows = pool.of(cited[number])
        ((score, first, last),) = support_scores(
            claim_vectors[number : number + 1], [claim], pool, rows
        )
        quote, pmid = "", ""
        if first >= 0:
            quote = " ".join(pool.sentences[row].text for row in range(first, last + 1))
            pmid = pool.sentences[first].pmid
        out.append(Verdict(label(score, thresholds), score, quote, pmid))
    return out


# -- calibration -------------------------------------------------------------------------------


def auc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """Area under the ROC curve: the chance a positive scores above a negative (ties 1/2)."""
    if not positives or not negatives:
        return float("nan")
    negative = np.sort(np.asarray(negatives, dtype=np.float64))
    wins = 0.0
    for score in positives:
        below = np.searchsorted(negative, score, side="left")
        ties = np.searchsorted(negative, score, side="right") - below
        wins += below + ties / 2
    return wins / (len(positives) * len(negatives))


def precision_recall(
    positives: Sequence[float], negatives: Sequence[float], threshold: float
) -> tuple[float, float]:
    """Precision and recall of "score >= threshold" as the test for a positive."""
    true = sum(1 for score in positives if score >= threshold)
    false = sum(1 for score in negatives if score >= threshold)
    precision = true / (true + false) if true + false else 1.0
    return precision, true / len(positives) if positives else 0.0


def calibrate(
    positives: Sequence[float],
    negatives: Sequence[float],
    min_precision: float = 0.95,
    min_recall: float = 0.97,
) -> tuple[float, float]:
    """``(supported, weak)`` thresholds: the lowest score with precision ≥ ``min_precision``,
    and the highest with recall ≥ ``min_recall`` (never above the first)."""
    candidates = sorted(set(positives) | set(negatives))
    supported = next(
        (t for t in candidates if precision_recall(positives, negatives, t)[0] >= min_precision),
        candidates[-1] if candidates else 1.0,
    )
    weak = max(
        (t for t in candidates if precision_recall(positives, negatives, t)[1] >= min_recall),
        default=supported,
    )
    return round(supported, 3), round(min(weak, supported), 3)
