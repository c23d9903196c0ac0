"""Support verdicts: ROC arithmetic and thresholds exactly, quotes chosen by a deterministic
encoder, the polarity check on hand-written and real PubMedQA sentences, and the real MiniLM
telling a PubMedQA conclusion's own abstract from another."""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pytest

from rag.evidence import Sentence, collect_sentences, split_sentences
from rag.support import (
    AGREE,
    CONFLICT,
    CONTRADICTED,
    FALLBACK,
    SUPPORTED,
    UNRELATED,
    UNSUPPORTED,
    WEAK,
    auc,
    calibrate,
    claim_text,
    clauses,
    label,
    polarity,
    precision_recall,
    span_scores,
    states_a_finding,
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


# -- polarity ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("claim", "quote"),
    [
        # The defect this check exists for: a close quote that says the opposite.
        ("No, BQT does not work.", "BQT is the preferred regimen for H. pylori eradication."),
        ("Statins did not lower stroke risk in adults.", "Statins lowered stroke risk in adults."),
        ("Statins lowered stroke risk in adults.", "Statins didn't lower stroke risk in adults."),
        ("Statins never lower stroke risk in adults.", "Statins lowered stroke risk in adults."),
        ("Statins fail to lower stroke risk in adults.", "Statins lowered stroke risk in adults."),
        ("Statins are unlikely to lower stroke risk.", "Statins lowered stroke risk in adults."),
        (
            "Stroke risk is not associated with statins.",
            "Statins were associated with lower stroke risk.",
        ),
        (
            "Vitamin D and fractures were associated.",
            "Vitamin D was not associated with fractures.",
        ),
        (
            "Mortality differed between the two arms.",
            "There was no significant difference in mortality between the two arms.",
        ),
        # A leading "No," is the answer the reader reads, whatever the body restates.
        (
            "No, ventricular arrhythmias in athletes subside over time.",
            "Athletes had far fewer ventricular arrhythmias at follow-up.",
        ),
    ],
)
def test_a_claim_and_a_quote_of_opposite_polarity_conflict(claim: str, quote: str) -> None:
    found = polarity(claim, quote)

    assert found.state == CONFLICT
    assert found.explain()


@pytest.mark.parametrize(
    ("claim", "quote"),
    [
        ("Statins lowered stroke risk in adults.", "Statins lowered stroke risk in adults."),
        ("Statins did not lower stroke risk.", "Statins did not lower stroke risk in adults."),
        # "No, X is not Y": the leading "No" and the body's "not" are one denial, not two.
        ("No, statins do not lower stroke risk.", "Statins did not lower stroke risk in adults."),
        # No significant difference on both sides is agreement, however it is worded.
        (
            "There was no significant difference in mortality between groups.",
            "No significant difference in mortality was found between the two groups.",
        ),
        (
            "Mortality was similar between the groups.",
            "No significant difference in mortality was found between the two groups.",
        ),
        (
            "Mortality did not differ between the groups.",
            "Mortality was comparable between the groups.",
        ),
        ("Drug A did not improve survival.", "Survival was similar with drug A and placebo."),
        ("Yes, statins lower stroke risk.", "Statins lowered stroke risk in adults."),
        # A negation about something else of the sentence does not flip the finding.
        (
            "Statins improved quality of life.",
            "Although statins did not reduce mortality, they improved quality of life.",
        ),
        (
            "Statins improved quality of life without increasing bleeding.",
            "Statins improved quality of life.",
        ),
        (
            "Statins improved quality of life.",
            "Statins not only improved quality of life but also reduced strokes.",
        ),
        ("No, but statins improve quality of life.", "Statins improved quality of life."),
    ],
)
def test_a_claim_and_a_quote_of_the_same_polarity_agree(claim: str, quote: str) -> None:
    assert polarity(claim, quote).state == AGREE


@pytest.mark.parametrize(
    ("claim", "quote"),
    [
        # Nothing in common: no polarity to compare.
        ("No, I am sorry for the confusion.", "Statins lowered stroke risk in adults."),
        # The source is silent, not the finding false.
        (
            "The evidence does not provide information about statins and stroke risk.",
            "Statins lowered stroke risk in adults.",
        ),
        (
            "It is unclear whether statins lower stroke risk.",
            "Statins lowered stroke risk in adults.",
        ),
    ],
)
def test_claims_that_state_no_finding_are_not_compared(claim: str, quote: str) -> None:
    assert polarity(claim, quote).state == UNRELATED


def test_clauses_split_at_contrast_and_without() -> None:
    found = clauses("Although A did not reduce mortality, it improved quality of life; B failed.")

    assert [(c.text, c.cue) for c in found] == [
        ("Although A did not reduce mortality", "not"),
        ("it improved quality of life", ""),
        ("B failed", ""),
    ]
    assert [c.negated for c in clauses("X improved Y without increasing Z")] == [False, True]
    # The leading "No" of an answer negates its first clause; of a quote it is a word.
    assert clauses("No, X helps Y.", answer=True)[0].cue == "No,"
    assert clauses("No patient had X.")[0].cue == "no"


@pytest.mark.parametrize(
    ("claim", "quote"),
    [
        # A sentence that only describes asserts nothing a denial could contradict.
        (
            "p53 alteration is not a useful predictor of response in rectal carcinoma.",
            "p53 alteration was found in 46% of the rectal carcinomas.",
        ),
        # A null finding is contradicted only by a stated difference or association.
        (
            "There was no significant difference in admissions between steroids and cromones.",
            "Of the children with asthma, 23% were receiving cromones and 51% inhaled steroids.",
        ),
        # "who never ate" says who was compared, not what was found.
        (
            "Fast food consumption increases the risk of wheeze.",
            "Compared with children who never ate hamburgers, hamburger consumption increased the risk of wheeze.",
        ),
    ],
)
def test_a_quote_that_asserts_nothing_to_the_contrary_does_not_conflict(
    claim: str, quote: str
) -> None:
    assert polarity(claim, quote).state != CONFLICT


def test_a_stated_effect_does_conflict_with_its_denial() -> None:
    claim = "p53 alteration is not a useful predictor of response in rectal carcinoma."

    assert (
        polarity(claim, "p53 alteration predicted response in rectal carcinoma (p = 0.01).").state
        == CONFLICT
    )
    assert (
        polarity(
            "There was no significant difference in admissions.",
            "Admissions were higher with cromones (p = 0.02).",
        ).state
        == CONFLICT
    )


@pytest.mark.parametrize(
    ("section", "text", "finding"),
    [
        ("RESULTS", "Mortality was lower in the statin group (p = 0.01).", True),
        ("", "Mortality was lower in the statin group.", True),
        ("CONCLUSIONS", "This study found that statins lowered mortality.", True),
        ("BACKGROUND", "Statins are the preferred treatment.", False),
        ("OBJECTIVE", "Statins lowered mortality in earlier trials.", False),
        ("", "To determine whether statins lower mortality in adults.", False),
        ("", "The aim of this study was to compare statins and placebo.", False),
        ("", "We hypothesised that statins lower mortality.", False),
        ("", "It is generally believed that statins lower mortality.", False),
        ("", "Do statins lower mortality?", False),
        ("", "Patients were divided into two groups of 40.", False),
        ("", "Patients were randomized, and mortality was lower with statins.", True),
    ],
)
def test_only_sentences_that_state_a_finding_take_part(
    section: str, text: str, finding: bool
) -> None:
    assert states_a_finding(Sentence("1", text, section, section, 0, False)) is finding


POLARITY_ABSTRACTS = {
    "1": (
        "RESULTS: Bismuth quadruple therapy cured the infection in most patients. "
        "Adverse events were mild.\n"
        "CONCLUSIONS: Bismuth quadruple therapy is the preferred regimen for the infection."
    ),
    "2": (
        "RESULTS: Bismuth quadruple therapy is the preferred regimen for the infection. "
        "Bismuth quadruple therapy does not work for the infection in resistant strains."
    ),
}


@pytest.fixture(scope="module")
def polarity_pool():
    return collect_sentences(POLARITY_ABSTRACTS, encode)


def test_a_negated_claim_against_an_affirmative_quote_is_contradicted(polarity_pool) -> None:
    claims = ["No, bismuth quadruple therapy does not work for the infection."]

    (found,) = verdicts(claims, encode(claims), [("1",)], polarity_pool, (0.3, 0.2))

    assert found.support == CONTRADICTED
    assert found.quote_pmid == "1" and "preferred regimen" in found.quote
    assert found.conflict == "claim “not”; quote affirms"
    # Without the negation the same claim stands on the same quote.
    affirmed = ["Bismuth quadruple therapy is the preferred regimen for the infection."]
    (plain,) = verdicts(affirmed, encode(affirmed), [("1",)], polarity_pool, (0.3, 0.2))
    assert (plain.support, plain.conflict) == (SUPPORTED, "")


def test_a_quote_that_agrees_is_taken_over_a_better_one_that_contradicts(polarity_pool) -> None:
    claims = ["Bismuth quadruple therapy does not work for the infection."]

    (found,) = verdicts(claims, encode(claims), [("2",)], polarity_pool, (0.3, 0.2))

    assert found.support in (SUPPORTED, WEAK)
    assert "does not work" in found.quote and found.conflict == ""


def test_a_contradicting_finding_beneath_an_aim_is_found(polarity_pool) -> None:
    abstracts = {
        "3": (
            "OBJECTIVE: To determine whether bismuth quadruple therapy does not work "
            "for the infection.\n"
            "RESULTS: Bismuth quadruple therapy cured the infection in most patients."
        )
    }
    pool = collect_sentences(abstracts, encode)
    claims = ["Bismuth quadruple therapy does not work for the infection."]

    (found,) = verdicts(claims, encode(claims), [("3",)], pool, (0.3, 0.2))

    # The aim scores best but asks, it does not find: the result below it decides.
    spans, scores = span_scores(encode(claims), claims, pool, [0, 1])
    assert spans[int(np.argmax(scores[0]))] == (0, 0)
    assert found.support == CONTRADICTED
    assert "cured the infection" in found.quote and found.conflict == "claim “not”; quote affirms"


def test_an_unsupported_claim_stays_unsupported_whatever_its_polarity(polarity_pool) -> None:
    claims = ["Warfarin did not double bleeding events in the elderly cohort."]

    (found,) = verdicts(claims, encode(claims), [("1",)], polarity_pool, (0.55, 0.45))

    assert found.support == UNSUPPORTED


# -- PubMedQA with the real encoder ------------------------------------------------------------


@cache
def pubmedqa_items() -> list:
    from evaluation.pubmedqa import load_pubmedqa

    items = load_pubmedqa(SHARED_DATA / "pubmedqa")[0]
    return [item for item in items.values() if item.long_answer][:60]


@cache
def minilm():
    from sentence_transformers import SentenceTransformer

    from indexing.settings import offline_embeddings_path

    model = SentenceTransformer(str(offline_embeddings_path()), device="cpu")

    def encode_minilm(texts, kind: str = "data") -> np.ndarray:
        return model.encode(list(texts), normalize_embeddings=True, batch_size=64)

    return encode_minilm


@needs_shared_data()
def test_a_conclusion_is_supported_by_its_own_abstract_more_than_by_another() -> None:
    encode_minilm = minilm()
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


# Real abstracts of PubMedQA, hand-written claims: each finding said the other way round.
REAL_CLAIMS = {
    # "serum chloride level was one of the strongest predictors of ... CVD ... mortalities"
    "10201555": (
        "Serum chloride level is not associated with cardiovascular mortality.",
        "A low serum chloride level is associated with higher cardiovascular mortality.",
    ),
    # "The services demonstrated that it was feasible to embed the Model into their ..."
    "22117569": (
        "The services could not embed the advance care planning model into their "
        "organizational structures.",
        "It was feasible to embed the advance care planning model into the organizational "
        "structures of the services.",
    ),
    # "The age-related WM deficit was not greatly affected, however, ..."
    "24577079": (
        "Strategy training reduced the age-related deficit in working memory.",
        "Strategy training did not greatly affect the age-related deficit in working memory.",
    ),
    # "A marked difference in CA72-4 values was observed between women with ovarian cancer ..."
    "24191126": (
        "CA72-4 values did not differ between women with ovarian cancer and patients with "
        "endometriosis.",
        "CA72-4 values differed markedly between women with ovarian cancer and patients with "
        "endometriosis.",
    ),
    # "... there was no significant difference between the two bioprostheses."
    "15222284": (
        "Indexed EOA differed significantly between the two bioprostheses.",
        "There was no significant difference in indexed EOA between the two bioprostheses.",
    ),
}


@needs_shared_data(SHARED_DATA / "pubmedqa")
@pytest.mark.parametrize("pmid", sorted(REAL_CLAIMS))
def test_a_real_finding_said_the_other_way_round_is_contradicted(pmid: str) -> None:
    from evaluation.pubmedqa import load_pubmedqa

    encode_minilm = minilm()
    item = load_pubmedqa(SHARED_DATA / "pubmedqa")[0][pmid]
    pool = collect_sentences({pmid: item.article().abstract_text}, encode_minilm)
    opposite, same = REAL_CLAIMS[pmid]
    thresholds = thresholds_for("offline:sentence-transformers/all-MiniLM-L6-v2")

    flipped, kept = verdicts(
        [opposite, same], encode_minilm([opposite, same]), [(pmid,), (pmid,)], pool, thresholds
    )

    assert flipped.support == CONTRADICTED, flipped
    assert flipped.quote and flipped.conflict
    assert kept.support == SUPPORTED, kept  # the same finding, said as the abstract says it


@needs_shared_data(SHARED_DATA / "pubmed-xml-samples" / "metapub" / "pmid_xml" / "39626064.xml")
def test_a_negated_answer_is_contradicted_by_a_recommendation_with_a_condition() -> None:
    # The ACG guideline's "BQT ... is the preferred regimen when antibiotic susceptibility is
    # unknown": the condition's "unknown" must not hide the recommendation it qualifies.
    from indexing.pubmed import open_xml, parse_pubmed_xml

    path = SHARED_DATA / "pubmed-xml-samples" / "metapub" / "pmid_xml" / "39626064.xml"
    with open_xml(path) as stream:
        (record,) = list(parse_pubmed_xml(stream))
    encode_minilm = minilm()
    pool = collect_sentences({"39626064": record.abstract_text}, encode_minilm)
    claims = [
        "No, Helicobacter pylori eradication therapy with bismuth does not work.",
        "Bismuth quadruple therapy for 14 days is the preferred regimen for treatment-naive "
        "patients.",
    ]
    thresholds = thresholds_for("offline:sentence-transformers/all-MiniLM-L6-v2")

    negated, affirmed = verdicts(
        claims, encode_minilm(claims), [("39626064",), ("39626064",)], pool, thresholds
    )

    assert negated.support == CONTRADICTED, negated
    assert "preferred regimen" in negated.quote
    assert affirmed.support == SUPPORTED, affirmed
    assert [c.text for c in clauses("X is preferred when testing is not available.")] == [
        "X is preferred"
    ]


@needs_shared_data(SHARED_DATA / "pubmedqa")
def test_conclusions_are_seldom_contradicted_by_their_own_abstract() -> None:
    # A conclusion agrees with its own abstract: "contradicted" there is a false alarm.
    encode_minilm = minilm()
    items = pubmedqa_items()
    pool = collect_sentences(
        {item.pmid: item.article().abstract_text for item in items}, encode_minilm
    )
    claims = [
        (item.pmid, text)
        for item in items
        for text in split_sentences(item.long_answer)
        if len(text.split()) >= 4
    ]
    vectors = encode_minilm([text for _, text in claims])
    thresholds = thresholds_for("offline:sentence-transformers/all-MiniLM-L6-v2")

    labels = [
        verdicts([text], vectors[n : n + 1], [(pmid,)], pool, thresholds)[0].support
        for n, (pmid, text) in enumerate(claims)
    ]

    assert len(claims) >= 100
    # MiniLM (fp32), 2026-12-02: 6 of the 117 sentences of these 60 conclusions (5.1%)
    # contradicted, 74 supported.
    assert labels.count(CONTRADICTED) <= 0.07 * len(claims)
    assert labels.count(SUPPORTED) >= 0.55 * len(claims)
