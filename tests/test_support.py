"""Support verdicts: ROC arithmetic and thresholds exactly, quotes chosen by a deterministic
encoder, and the real MiniLM telling a PubMedQA conclusion's own abstract from another."""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pytest

from rag.evidence import collect_sentences
from rag.support import (
    FALLBACK,
    SUPPORTED,
    UNSUPPORTED,
    WEAK,
    auc,
    calibrate,
    claim_text,
    label,
    precision_recall,
    support_scores,
    thresholds_for,
    verdicts,
)
from tests.conftest import SHARED_DATA, needs_shared_data
from tests.hashed_encoder import encode

# -- auc, precision / recall, calibration ------------------------------------------------------


@pytest.mark.parametrize(
    ("positives", "negatives", "expected"),
    [
        ([0.9, 0.8, 0.7], [0.1, 0.2], 1.0),  # perfect
        ([0.1, 0.2], [0.9, 0.8, 0.7], 0.0),  # inverse
        ([0.5, 0.5], [0.5, 0.5, 0.5], 0.5),  # all tied
        ([0.4], [0.4, 0.1], 0.75),  # one win, one tie
        ([0.5, 0.3], [0.4], 0.5),  # one win, one loss
        ([0.9, 0.6, 0.2], [0.7, 0.1], 4 / 6),
    ],
)
def test_auc_of_small_lists(positives: list, negatives: list, expected: float) -> None:
    assert auc(positives, negatives) == pytest.approx(expected)


def test_auc_without_positives_or_negatives_is_undefined() -> None:
    assert math.isnan(auc([], [0.1]))
    assert math.isnan(auc([0.1], []))


def test_precision_recall_at_a_threshold() -> None:
    positives, negatives = [0.9, 0.7, 0.4], [0.8, 0.2]

    assert precision_recall(positives, negatives, 0.5) == pytest.approx((2 / 3, 2 / 3))
    assert precision_recall(positives, negatives, 0.7) == pytest.approx((2 / 3, 2 / 3))
    assert precision_recall(positives, negatives, 0.85) == pytest.approx((1.0, 1 / 3))
    # Nothing passes: no false positive, so precision 1; recall 0.
    assert precision_recall(positives, negatives, 0.95) == (1.0, 0.0)
    assert precision_recall([], negatives, 0.5) == (0.0, 0.0)


def test_calibrate_picks_the_lowest_precise_and_the_highest_recalling_threshold() -> None:
    positives, negatives = [0.6, 0.7, 0.8, 0.9], [0.1, 0.2, 0.65]

    # precision: 0.6 → 4/5, 0.65 → 3/4, 0.7 → 1; recall: 1 up to 0.6, 3/4 at 0.65 and 0.7.
    assert calibrate(positives, negatives) == (0.7, 0.6)
    assert calibrate(positives, negatives, min_precision=0.8) == (0.6, 0.6)
    assert calibrate(positives, negatives, min_precision=0.5) == (0.1, 0.1)  # 4/7 at 0.1
    assert calibrate(positives, negatives, min_recall=0.75) == (0.7, 0.7)


def test_calibrate_never_puts_weak_above_supported() -> None:
    # Precise already at 0.1; full recall up to 0.8, yet "weak" stays at "supported".
    assert calibrate([0.8, 0.9], [0.1], min_precision=0.6) == (0.1, 0.1)


def test_calibrate_without_a_precise_threshold_takes_the_highest_score() -> None:
    assert calibrate([0.5, 0.9], [0.95]) == (0.95, 0.5)
    assert calibrate([], []) == (1.0, 1.0)


def test_calibrate_rounds_to_three_places() -> None:
    assert calibrate([0.123456], [0.0123]) == (0.123, 0.123)


def test_label_thresholds_are_inclusive() -> None:
    thresholds = (0.55, 0.45)

    assert label(0.9, thresholds) == SUPPORTED
    assert label(0.55, thresholds) == SUPPORTED
    assert label(0.5499, thresholds) == WEAK
    assert label(0.45, thresholds) == WEAK
    assert label(0.4499, thresholds) == UNSUPPORTED
    assert label(-1.0, thresholds) == UNSUPPORTED


def test_thresholds_are_per_embedder_with_a_fallback() -> None:
    assert thresholds_for("offline:sentence-transformers/all-MiniLM-L6-v2") == (0.55, 0.45)
    assert thresholds_for("NeuML/pubmedbert-base-embeddings") == FALLBACK


def test_claim_text_drops_the_tags() -> None:
    assert claim_text("Statins help [PMID:1][PMID:22] [PMID:333].") == "Statins help."
    assert claim_text("Statins help. [PMID:1]") == "Statins help."


# -- the best quote (deterministic encoder) ----------------------------------------------------

ABSTRACTS = {
    "1": (
        "RESULTS: Statins lowered stroke risk in adults. "
        "The effect was largest after age sixty.\n"
        "CONCLUSIONS: Cholesterol fell in every group."
    ),
    "2": "Warfarin doubled bleeding events in the elderly cohort.",
}


@pytest.fixture(scope="module")
def pool():
    return collect_sentences(ABSTRACTS, encode)


def scores(pool, claim: str, rows: list[int]) -> tuple[float, int, int]:
    ((found),) = support_scores(encode([claim]), [claim], pool, rows)
    return found


def test_the_same_sentence_scores_one(pool) -> None:
    assert [s.text for s in pool.sentences] == [
        "Statins lowered stroke risk in adults.",
        "The effect was largest after age sixty.",
        "Cholesterol fell in every group.",
        "Warfarin doubled bleeding events in the elderly cohort.",
    ]

    score, first, last = scores(pool, "Statins lowered stroke risk in adults.", [0, 1, 2, 3])

    assert (first, last) == (0, 0)
    assert score == pytest.approx(1.0, abs=1e-6)


def test_a_claim_joining_two_neighbouring_sentences_quotes_both(pool) -> None:
    claim = "Statins lowered stroke risk in adults; the effect was largest after age sixty."

    score, first, last = scores(pool, claim, [0, 1, 2, 3])

    assert (first, last) == (0, 1)
    single, _, _ = scores(pool, claim, [0])
    assert score > single


def test_sentences_of_two_articles_are_never_one_quote(pool) -> None:
    # Rows 2 and 3 are neighbours in the pool but belong to articles 1 and 2.
    claim = "Cholesterol fell in every group, and warfarin doubled bleeding events."

    _, first, last = scores(pool, claim, [2, 3])

    assert first == last


def test_sentences_not_next_to_each_other_are_never_one_quote(pool) -> None:
    claim = "Statins lowered stroke risk in adults, and cholesterol fell in every group."

    _, first, last = scores(pool, claim, [0, 2])

    assert first == last


def test_the_score_weighs_cosine_and_word_overlap(pool) -> None:
    # Claim words: statins, lowered, risk (3, all content); quote: 6 words, 5 content terms.
    score, first, last = scores(pool, "Statins lowered risk.", [0])

    cosine = 3 / math.sqrt(3 * 6)
    assert (first, last) == (0, 0)
    assert score == pytest.approx(0.75 * cosine + 0.25 * 1.0, abs=1e-6)


def test_without_rows_there_is_no_quote(pool) -> None:
    assert support_scores(encode(["a b c"]), ["a b c"], pool, []) == [(0.0, -1, -1)]
    assert support_scores(encode([]), [], pool, [0]) == []


def test_verdicts_look_only_at_the_cited_articles(pool) -> None:
    claims = ["Statins lowered stroke risk in adults.", "Statins lowered stroke risk in adults."]

    found = verdicts(claims, encode(claims), [("1",), ("2",)], pool, (0.55, 0.45))

    assert found[0].support == SUPPORTED
    assert (found[0].quote, found[0].quote_pmid) == ("Statins lowered stroke risk in adults.", "1")
    assert found[1].support == UNSUPPORTED
    assert found[1].quote_pmid == "2"
    assert found[1].score < 0.45


def test_a_claim_citing_an_article_not_in_the_pool_is_unsupported(pool) -> None:
    claims = ["Statins lowered stroke risk in adults."]

    (found,) = verdicts(claims, encode(claims), [("999",)], pool, (0.55, 0.45))

    assert (found.support, found.score, found.quote, found.quote_pmid) == (
        UNSUPPORTED,
        0.0,
        "",
        "",
    )


# -- PubMedQA with the real encoder ------------------------------------------------------------


@cache
def pubmedqa_items() -> list:
    from evaluation.pubmedqa import load_pubmedqa

    items = load_pubmedqa(SHARED_DATA / "pubmedqa")[0]
    return [item for item in items.values() if item.long_answer][:60]


@needs_shared_data()
def test_a_conclusion_is_supported_by_its_own_abstract_more_than_by_another() -> None:
    from sentence_transformers import SentenceTransformer

    from indexing.settings import offline_embeddings_path

    model = SentenceTransformer(str(offline_embeddings_path()), device="cpu")

    def encode_minilm(texts, kind: str = "data") -> np.ndarray:
        return model.encode(list(texts), normalize_embeddings=True, batch_size=64)

    items = pubmedqa_items()
    assert len(items) == 60
    pool = collect_sentences(
        {item.pmid: item.article().abstract_text for item in items}, encode_minilm
    )
    claims = [item.long_answer for item in items]
    vectors = encode_minilm(claims)
    own, other = [], []
    for number, item in enumerate(items):
        stranger = items[(number + 29) % len(items)].pmid  # a fixed "random" other abstract
        for pmid, scores_of in ((item.pmid, own), (stranger, other)):
            ((score, _, _),) = support_scores(
                vectors[number : number + 1], [claims[number]], pool, pool.of([pmid])
            )
            scores_of.append(score)

    assert auc(own, other) >= 0.95
    assert sum(a > b for a, b in zip(own, other, strict=True)) >= 57
    # The product's thresholds (MiniLM, 2026-12-01: 56 of 60 supported, 58 at least weak, no
    # stranger even weak): most conclusions supported by their own abstract, strangers not.
    supported, weak = thresholds_for("offline:sentence-transformers/all-MiniLM-L6-v2")
    assert sum(score >= supported for score in own) >= 50
    assert sum(score >= weak for score in own) >= 54
    assert sum(score >= weak for score in other) <= 3
