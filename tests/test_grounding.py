"""Grounded answers: every sentence kept is cited and labelled; the rest is dropped, with why."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from rag.evidence import collect_sentences
from rag.grounding import AnswerSentence, Grounded, ground_answer
from rag.prompts import demonstrations
from rag.support import CONTRADICTED, SUPPORTED, UNSUPPORTED, WEAK
from tests.hashed_encoder import encode, encode_claims

THRESHOLDS = (0.55, 0.45)
STATINS = "Statins lowered stroke risk in adults over sixty."
ADVICE = "Statins are advised for stroke prevention."
WARFARIN = "Warfarin doubled bleeding events in the elderly cohort."
ABSTRACTS = {"11": f"RESULTS: {STATINS}\nCONCLUSIONS: {ADVICE}", "22": WARFARIN}
COPIED = "copied from the prompt's worked example"
NO_SOURCE = "cites no source and no source supports it"


@pytest.fixture(scope="module")
def pool():
    return collect_sentences(ABSTRACTS, encode)


def ground(pool, text: str, context: Sequence[str] = ("11", "22"), **options) -> Grounded:
    return ground_answer(text, list(context), pool, encode_claims, THRESHOLDS, **options)


def test_a_cited_sentence_keeps_its_citation_and_gets_a_verdict_and_quote(pool) -> None:
    text = "Statins lowered stroke risk in adults over sixty [PMID:11]."

    grounded = ground(pool, text)

    (sentence,) = grounded.sentences
    assert sentence.text == text
    assert sentence.citations == ("11",)
    assert sentence.support == SUPPORTED
    assert (sentence.quote, sentence.quote_pmid) == (STATINS, "11")
    assert sentence.score == pytest.approx(1.0, abs=1e-6)
    assert sentence.attributed is False
    assert grounded.dropped == ()


@pytest.mark.parametrize(
    "written",
    [
        "Warfarin doubled bleeding events in the elderly cohort [PMID:11].",
        "Warfarin doubled bleeding events in the elderly cohort. [PMID:11]",
        "Warfarin doubled bleeding events in the elderly cohort [PMID:11][PMID:11].",
    ],
)
def test_a_sentence_cited_where_it_does_not_stand_is_recited_to_where_it_does(
    pool, written: str
) -> None:
    # It cites 11, but it is what article 22 says, word for word.
    (sentence,) = ground(pool, written).sentences

    assert sentence.text == "Warfarin doubled bleeding events in the elderly cohort [PMID:22]."
    assert sentence.citations == ("22",)
    assert sentence.attributed is True
    assert sentence.support == SUPPORTED
    assert (sentence.quote, sentence.quote_pmid) == (WARFARIN, "22")


def test_a_cited_sentence_no_article_supports_keeps_its_citation_as_unsupported(pool) -> None:
    text = "Hospital parking fees rose sharply last winter [PMID:11]."

    grounded = ground(pool, text)

    (sentence,) = grounded.sentences
    assert (sentence.text, sentence.citations) == (text, ("11",))
    assert sentence.support == UNSUPPORTED
    assert sentence.attributed is False
    assert sentence.quote_pmid == "11"
    assert grounded.dropped == ()


def test_a_citation_is_moved_only_to_an_article_that_supports_the_claim(pool) -> None:
    # With "supported" out of reach, article 22 is at best weak: the citation stays.
    text = "Warfarin doubled bleeding events in the elderly cohort [PMID:11]."

    (sentence,) = ground_answer(text, ["11", "22"], pool, encode_claims, (1.01, 0.45)).sentences

    assert (sentence.text, sentence.citations, sentence.attributed) == (text, ("11",), False)
    assert sentence.support == UNSUPPORTED


def test_an_uncited_sentence_is_attributed_to_the_article_that_supports_it(pool) -> None:
    grounded = ground(pool, WARFARIN)

    (sentence,) = grounded.sentences
    assert sentence.text == "Warfarin doubled bleeding events in the elderly cohort [PMID:22]."
    assert sentence.citations == ("22",)
    assert sentence.attributed is True
    assert sentence.support == SUPPORTED
    assert (sentence.quote, sentence.quote_pmid) == (WARFARIN, "22")
    assert grounded.dropped == ()


@pytest.mark.parametrize(
    ("written", "shown"),
    [
        (WARFARIN, "Warfarin doubled bleeding events in the elderly cohort [PMID:22]."),
        (
            "Warfarin doubled bleeding events in the elderly cohort!",
            "Warfarin doubled bleeding events in the elderly cohort [PMID:22]!",
        ),
        (
            "Warfarin doubled bleeding events in the elderly cohort",
            "Warfarin doubled bleeding events in the elderly cohort [PMID:22]",
        ),
    ],
)
def test_the_attributed_tag_goes_before_the_sentence_end(pool, written: str, shown: str) -> None:
    (sentence,) = ground(pool, written).sentences

    assert sentence.text == shown


def test_an_attribution_weaker_than_supported_is_labelled_weak(pool) -> None:
    grounded = ground_answer(WARFARIN, ["11", "22"], pool, encode_claims, (1.01, 0.45))

    (sentence,) = grounded.sentences
    assert (sentence.support, sentence.attributed, sentence.citations) == (WEAK, True, ("22",))


def test_an_uncited_sentence_that_matches_nothing_is_dropped_with_a_reason(pool) -> None:
    text = f"{STATINS[:-1]} [PMID:11]. Hospital parking fees rose sharply last winter."

    grounded = ground(pool, text)

    assert [s.citations for s in grounded.sentences] == [("11",)]
    assert grounded.dropped == (("Hospital parking fees rose sharply last winter.", NO_SOURCE),)


def test_only_articles_in_the_prompt_are_attributed(pool) -> None:
    # Article 22 is in the pool but not in the prompt: nothing else supports the sentence.
    grounded = ground(pool, WARFARIN, context=("11",))

    assert grounded.sentences == ()
    assert grounded.dropped == ((WARFARIN, NO_SOURCE),)


def test_a_sentence_copied_from_the_worked_example_is_dropped(pool) -> None:
    copied = (
        "In a randomized trial of older women, daily vitamin D did not reduce fractures [PMID:11]."
    )
    text = f"{copied} {STATINS[:-1]} [PMID:11]."

    grounded = ground(pool, text, demonstrations=demonstrations(True))

    assert [s.text for s in grounded.sentences] == [f"{STATINS[:-1]} [PMID:11]."]
    assert grounded.dropped == ((copied, COPIED),)
    # Without the demonstrations it is an ordinary (unsupported) cited sentence.
    assert len(ground(pool, text).sentences) == 2


def test_a_phrase_the_abstracts_share_with_the_example_is_not_a_copy() -> None:
    real = "In a randomized trial of 300 adults, statins lowered stroke risk."
    pool = collect_sentences({"11": real}, encode)
    text = "In a randomized trial of adults, statins lowered stroke risk [PMID:11]."

    grounded = ground_answer(
        text, ["11"], pool, encode_claims, THRESHOLDS, demonstrations=demonstrations(True)
    )

    assert [s.text for s in grounded.sentences] == [text]
    assert grounded.dropped == ()


def test_a_bare_yes_joins_the_next_sentence(pool) -> None:
    text = f"Yes. {STATINS[:-1]} [PMID:11]."

    grounded = ground(pool, text)

    (sentence,) = grounded.sentences
    assert sentence.text == text
    assert sentence.citations == ("11",)
    assert sentence.support == SUPPORTED
    assert sentence.quote == STATINS


def test_a_trailing_short_fragment_joins_the_sentence_before(pool) -> None:
    text = f"{STATINS[:-1]} [PMID:11]. So yes."

    (sentence,) = ground(pool, text).sentences

    assert sentence.text == text
    assert sentence.citations == ("11",)


def test_a_bare_answer_alone_is_dropped(pool) -> None:
    grounded = ground(pool, "No.")

    assert grounded.sentences == ()
    assert grounded.dropped == (("No.", NO_SOURCE),)
    assert grounded.text == ""
    assert grounded.citations == ()


def test_text_and_citations_of_the_whole_answer(pool) -> None:
    text = (
        f"{ADVICE[:-1]} [PMID:11][PMID:22]. {WARFARIN} "
        f"{STATINS[:-1]} [PMID:11]. Hospital parking fees rose sharply last winter."
    )

    grounded = ground(pool, text)

    assert grounded.text == (
        f"{ADVICE[:-1]} [PMID:11][PMID:22]. "
        "Warfarin doubled bleeding events in the elderly cohort [PMID:22]. "
        f"{STATINS[:-1]} [PMID:11]."
    )
    assert grounded.citations == ("11", "22")
    assert [s.attributed for s in grounded.sentences] == [False, True, False]
    assert grounded.sentences[0].citations == ("11", "22")
    assert grounded.sentences[0].quote == ADVICE
    assert [reason for _, reason in grounded.dropped] == [NO_SOURCE]


def test_a_citation_outside_the_prompt_does_not_count(pool) -> None:
    # The tag names an article that was not in the prompt: the sentence is checked as uncited.
    (sentence,) = ground(pool, f"{STATINS[:-1]} [PMID:22].", context=("11",)).sentences

    assert sentence.citations == ("11",)
    assert sentence.attributed is True


def test_nothing_left_to_check_encodes_nothing(pool) -> None:
    def refuse(texts: Sequence[str]) -> np.ndarray:
        raise AssertionError("nothing should be encoded")

    copied = "Daily vitamin D did not reduce fractures compared with placebo [PMID:11]."

    grounded = ground_answer(copied, ["11"], pool, refuse, THRESHOLDS, demonstrations(True))

    assert grounded == Grounded((), ((copied, COPIED),))
    assert ground_answer("", ["11"], pool, refuse, THRESHOLDS) == Grounded((), ())


def test_answer_sentence_json_shape() -> None:
    sentence = AnswerSentence("A b c [PMID:1].", ("1",), SUPPORTED, "A b c.", "1", 0.876543, True)

    assert sentence.to_dict() == {
        "text": "A b c [PMID:1].",
        "citations": ["1"],
        "support": SUPPORTED,
        "quote": "A b c.",
        "quote_pmid": "1",
        "score": 0.8765,
        "attributed": True,
        "conflict": "",
    }


CURED = "Bismuth quadruple therapy cured the infection in most patients."
FAILED = "Bismuth quadruple therapy did not cure the infection in most patients."


@pytest.fixture(scope="module")
def opposed_pool():
    return collect_sentences({"31": f"RESULTS: {CURED}", "32": f"RESULTS: {FAILED}"}, encode)


def test_a_sentence_its_citation_contradicts_keeps_the_citation_and_is_flagged(
    opposed_pool,
) -> None:
    # Article 32 would support the claim; the reader must still see that 31 says otherwise.
    text = f"{FAILED[:-1]} [PMID:31]."

    (sentence,) = ground(opposed_pool, text, context=("31", "32")).sentences

    assert (sentence.support, sentence.citations, sentence.attributed) == (
        CONTRADICTED,
        ("31",),
        False,
    )
    assert sentence.quote == CURED and sentence.conflict == "claim “not”; quote affirms"
    assert sentence.to_dict()["conflict"] == sentence.conflict


def test_an_uncited_sentence_its_closest_source_contradicts_is_dropped(opposed_pool) -> None:
    grounded = ground(opposed_pool, FAILED, context=("31",))

    assert grounded.sentences == ()
    assert grounded.dropped == (
        (FAILED, "cites no source and the closest source says the opposite"),
    )
