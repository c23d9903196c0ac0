"""Key evidence: sentences and sections of real abstracts, and which of them are selected."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import numpy as np
import pytest

from rag import evidence
from rag.evidence import (
    SECTION_PRIOR,
    abstract_sentences,
    canonical_section,
    collect_sentences,
    select_evidence,
    split_sentences,
    terms,
)
from tests.conftest import PUBMED_SAMPLES, SHARED_DATA, needs_shared_data
from tests.hashed_encoder import encode

PUBMEDQA = SHARED_DATA / "pubmedqa"
pytestmark = needs_shared_data()


@cache
def pubmedqa() -> dict:
    """``{pmid: PubmedqaItem}`` of PQA-L, in file order."""
    from evaluation.pubmedqa import load_pubmedqa

    return load_pubmedqa(PUBMEDQA)[0]


def pubmedqa_abstract(pmid: str) -> str:
    """The abstract as indexed ("Background: ..." lines, no conclusion)."""
    return pubmedqa()[pmid].article().abstract_text


@cache
def xml_articles() -> dict:
    from tests.fixtures_index import parse_samples

    return parse_samples((PUBMED_SAMPLES / "metapub" / "pmid_xml",))


def sections(pmid: str, text: str) -> list[tuple[str, str]]:
    """``(canonical section, label as printed)`` per sentence, runs collapsed."""
    out: list[tuple[str, str]] = []
    for sentence in abstract_sentences(pmid, text):
        if not out or out[-1] != (sentence.section, sentence.label):
            out.append((sentence.section, sentence.label))
    return out


# -- sections ----------------------------------------------------------------------------------


def test_pubmedqa_title_case_labels_become_canonical_sections() -> None:
    # "Purpose" / "Methods" / "Results", as PubmedqaItem.article() writes PQA-L's LABELS.
    assert pubmedqa()["20187289"].labels == ("PURPOSE", "METHODS", "RESULTS")

    assert sections("20187289", pubmedqa_abstract("20187289")) == [
        ("OBJECTIVE", "Purpose"),
        ("METHODS", "Methods"),
        ("RESULTS", "Results"),
    ]


@pytest.mark.parametrize(
    ("pmid", "expected"),
    [
        (
            "36987902",
            [
                ("BACKGROUND", "BACKGROUND"),
                ("METHODS", "MATERIAL AND METHOD"),
                ("RESULTS", "RESULTS"),
                ("CONCLUSIONS", "INTERPRETATION"),
            ],
        ),
        (
            "33967209",
            [
                ("OBJECTIVE", "PURPOSE OF REVIEW"),
                ("RESULTS", "RECENT FINDINGS"),
                ("CONCLUSIONS", "SUMMARY"),
            ],
        ),
        (
            "38747095",
            [
                ("OBJECTIVE", "AIMS"),
                ("METHODS", "METHODS"),
                ("RESULTS", "RESULTS"),
                ("CONCLUSIONS", "CONCLUSION"),
            ],
        ),
    ],
)
def test_pubmed_xml_labels_become_canonical_sections(pmid: str, expected: list) -> None:
    article = xml_articles()[pmid]

    assert sections(pmid, article.abstract_text) == expected
    # The label is taken off the sentence it starts.
    texts = [sentence.text for sentence in abstract_sentences(pmid, article.abstract_text)]
    assert not any(text.startswith(tuple(label for _, label in expected)) for text in texts)


def test_labels_are_found_inside_a_passage_that_joined_the_lines() -> None:
    text = xml_articles()["36987902"].abstract_text
    assert "\n" in text

    joined = abstract_sentences("36987902", text.replace("\n", " "))

    assert joined == abstract_sentences("36987902", text)


def test_unlabelled_abstract_has_no_section_and_marks_only_its_last_sentence() -> None:
    found = abstract_sentences("39382274", xml_articles()["39382274"].abstract_text)

    assert len(found) == 10
    assert {sentence.section for sentence in found} == {""}
    assert [sentence.position for sentence in found] == list(range(10))
    assert [sentence.last for sentence in found] == [False] * 9 + [True]
    assert found[-1].text.startswith("Our findings highlight that cefiderocol")


@pytest.mark.parametrize(
    ("label", "section"),
    [
        ("CONCLUSIONS AND RELEVANCE", "CONCLUSIONS"),
        ("Interpretation", "CONCLUSIONS"),
        ("MAIN OUTCOME MEASURES", "RESULTS"),  # "outcome" is read before "measure"
        ("Study design", "METHODS"),
        ("AIM", "OBJECTIVE"),
        ("Introduction", "BACKGROUND"),
        ("CASE REPORT", ""),
    ],
)
def test_canonical_section_of_printed_labels(label: str, section: str) -> None:
    assert canonical_section(label) == section


# -- sentence boundaries -----------------------------------------------------------------------


def test_et_al_does_not_end_a_sentence() -> None:
    found = [s.text for s in abstract_sentences("20187289", pubmedqa_abstract("20187289"))]

    assert found[0].startswith("Stock et al. (Eur Respir J 25:47-53, 2005) recently estimated")
    assert any(
        text.startswith("We replicated the selection procedure of Stock et al. using data on")
        for text in found
    )
    assert not any(text.endswith("et al.") for text in found)


def test_decimals_do_not_end_a_sentence() -> None:
    found = [s.text for s in abstract_sentences("21164063", pubmedqa_abstract("21164063"))]

    assert (
        "Published trials used fondaparinux sodium 2.5 mg daily for venous thromboembolism "
        "prophylaxis in surgical patients, and the majority avoided its use before surgery in "
        "patients receiving neuraxial anesthesia."
    ) in found
    glucose = [s.text for s in abstract_sentences("22042121", pubmedqa_abstract("22042121"))]
    assert (
        "It was evidenced an initial mean blood glucose = 199.4 mg/dl and the end = 326.1 mg/dl."
        in glucose
    )


def test_vs_and_e_g_and_i_e_do_not_end_a_sentence() -> None:
    athletes = [
        s.text for s in abstract_sentences("38747095", xml_articles()["38747095"].abstract_text)
    ]
    review = [
        s.text for s in abstract_sentences("32437181", xml_articles()["32437181"].abstract_text)
    ]

    assert any("(early vs. late efforts [no.]: 8.5 ± 4.9 vs. 9.5 ± 5.5;" in t for t in athletes)
    assert any(t.endswith("(e.g., crowding, changes to structure, and routine).") for t in review)
    assert any(t.endswith("(i.e., organization, communication, and beliefs).") for t in review)


def test_a_word_ending_like_an_abbreviation_still_ends_its_sentence() -> None:
    # "South Africa." ends with "ca." (circa) but is a sentence end.
    found = [s.text for s in abstract_sentences("16776337", pubmedqa_abstract("16776337"))]

    assert any(text.endswith("University of Cape Town, South Africa.") for text in found)
    assert any(text.startswith("The patients were divided into two groups") for text in found)


def test_stray_fragments_are_dropped() -> None:
    # "(P<0. 001)." in the record: the split leaves a "001)." fragment with no content.
    text = pubmedqa_abstract("10548670")
    assert any(piece == "001)." for line in text.splitlines() for piece in split_sentences(line))

    found = abstract_sentences("10548670", text)

    assert "001)." not in [sentence.text for sentence in found]
    assert all(len(re.findall(r"[A-Za-z][A-Za-z0-9\-]+|\d+", s.text)) >= 3 for s in found)
    assert [sentence.position for sentence in found] == list(range(len(found)))


def test_terms_drop_stopwords_and_stem_lightly() -> None:
    assert terms("Do the mutations of patients treated with 2.5 mg differ?") == {
        "mutation",
        "treat",
        "2.5",
        "differ",
    }


# -- selection (deterministic encoder: exact cases) --------------------------------------------

QUESTION = "Does aspirin prevent stroke?"


def choose(
    abstracts: dict[str, str],
    scores: dict[str, float] | None = None,
    question: str = QUESTION,
    **options: Any,
) -> list[evidence.Evidence]:
    pool = collect_sentences(abstracts, encode)
    return select_evidence(
        question,
        encode([question], "query"),
        pool,
        scores or dict.fromkeys(abstracts, 1.0),
        **options,
    )


def test_score_is_the_documented_sum() -> None:
    # cosine 2/sqrt(2*3) (shared: aspirin, stroke), all question terms present, unlabelled
    # last sentence (+0.04), best article (+0.10).
    (found,) = choose({"1": "Aspirin reduced stroke."}, question="aspirin stroke")

    assert found.cosine == pytest.approx(2 / np.sqrt(6), abs=1e-6)
    assert found.score == pytest.approx(0.7 * 2 / np.sqrt(6) + 0.3 + 0.04 + 0.1, abs=1e-6)
    assert found.to_dict() == {
        "pmid": "1",
        "text": "Aspirin reduced stroke.",
        "section": "",
        "score": round(found.score, 4),
    }


@pytest.mark.parametrize("label", ["CONCLUSIONS", "Conclusions", "RESULTS", "Results"])
def test_conclusion_or_result_beats_background_of_equal_similarity(label: str) -> None:
    # Same words shared with the question, same length: only the section differs, and the
    # background sentence comes first in the abstract.
    text = (
        "BACKGROUND: Aspirin and stroke were studied in rural clinics.\n"
        f"{label}: Aspirin and stroke were linked in older cohorts."
    )

    found = choose({"1": text})

    assert [item.text for item in found] == [
        "Aspirin and stroke were linked in older cohorts.",
        "Aspirin and stroke were studied in rural clinics.",
    ]
    assert found[0].section == label
    assert found[0].cosine == pytest.approx(found[1].cosine, abs=1e-6)
    prior = SECTION_PRIOR[canonical_section(label)] - SECTION_PRIOR["BACKGROUND"]
    assert found[0].score - found[1].score == pytest.approx(prior, abs=1e-6)


_PLACES = iter(
    (
        "urban",
        "rural",
        "coastal",
        "alpine",
        "island",
        "desert",
        "river",
        "valley",
        "harbour",
        "mining",
        "farming",
        "fishing",
        "northern",
        "southern",
        "eastern",
        "western",
        "central",
        "inland",
        "mountain",
        "lowland",
        "border",
        "capital",
        "suburban",
        "village",
        "county",
        "district",
        "province",
    )
)
# Three articles of three sentences, all about the question, no two alike.
ARTICLES = {
    pmid: " ".join(
        f"Aspirin prevented stroke among {next(_PLACES)} {next(_PLACES)} {next(_PLACES)} cohorts."
        for _ in range(3)
    )
    for pmid in ("101", "102", "103")
}


def test_at_most_per_article_sentences_from_one_article() -> None:
    found = choose(ARTICLES, limit=10, per_article=2)

    assert sorted(item.pmid for item in found) == ["101", "101", "102", "102", "103", "103"]


def test_at_most_limit_sentences_best_first() -> None:
    everything = choose(ARTICLES, limit=10, per_article=3)
    assert len(everything) == 9

    found = choose(ARTICLES, limit=4, per_article=3)

    assert found == everything[:4]
    assert [item.score for item in found] == sorted((item.score for item in found), reverse=True)


def test_the_same_sentence_in_two_articles_is_chosen_once() -> None:
    shared = "Aspirin prevented stroke in older women."

    found = choose({"1": f"RESULTS: {shared}", "2": f"RESULTS: {shared}"})

    assert [(item.pmid, item.text) for item in found] == [("1", shared)]


def test_a_sentence_with_the_same_content_words_is_a_duplicate() -> None:
    # Cosine 5/sqrt(6*10) = 0.65 (below 0.92), but the content words are the same.
    first = "Aspirin prevented stroke in older women."
    second = "Aspirin has also prevented a stroke for these older women."
    assert terms(first) == terms(second)
    unrelated = "Aspirin prevented stroke recurrence after carotid surgery."

    found = choose({"1": f"{first} {unrelated} {second}"}, per_article=3)

    # Without the rule: first, second (0.7 * 0.32 + 0.04 as the last sentence), unrelated.
    assert [item.text for item in found] == [first, unrelated]


def test_sentences_far_below_the_best_are_dropped_unless_the_floor_is_lowered() -> None:
    abstracts = {
        "1": "CONCLUSIONS: Aspirin did prevent stroke in high-risk adults.",
        "2": "METHODS: Questionnaires were mailed to general practitioners twice.",
    }

    found = choose(abstracts)

    assert [item.pmid for item in found] == ["1"]
    assert [item.pmid for item in choose(abstracts, floor=evidence.RELATIVE_FLOOR)] == ["1"]
    assert [item.pmid for item in choose(abstracts, floor=0.0)] == ["1", "2"]


def test_a_tie_goes_to_the_article_ranked_higher() -> None:
    shared = "CONCLUSIONS: Aspirin prevented stroke in older women."
    abstracts = {"1": shared, "2": shared}  # "1" is first in the pool

    ranked_second = choose(abstracts, {"1": 0.4, "2": 0.8})
    equal = choose(abstracts, {"1": 0.8, "2": 0.8})

    assert [item.pmid for item in ranked_second] == ["2"]
    assert [item.pmid for item in equal] == ["1"]


def test_nothing_to_choose_from_gives_no_evidence() -> None:
    assert choose({"1": ""}) == []
    assert choose({"1": "Design: Retrospective review."}) == []


# -- the real encoder --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm():
    from sentence_transformers import SentenceTransformer

    from indexing.settings import offline_embeddings_path

    return SentenceTransformer(str(offline_embeddings_path()), device="cpu")


def test_top_evidence_comes_from_the_questions_own_abstract(minilm) -> None:
    def encode_minilm(texts, kind: str = "data") -> np.ndarray:
        return minilm.encode(list(texts), normalize_embeddings=True, batch_size=64)

    items = list(pubmedqa().values())[:40:5]  # 8 questions, spread over the file
    pmids = list(pubmedqa())
    for item in items:
        start = pmids.index(item.pmid)
        others = [pmids[(start + step * 97) % len(pmids)] for step in range(1, 5)]
        # The own abstract last, all with the same retrieval score: nothing but the text decides.
        order = [*others, item.pmid]
        pool = collect_sentences({p: pubmedqa_abstract(p) for p in order}, encode_minilm, order)

        found = select_evidence(
            item.question,
            encode_minilm([item.question], "query"),
            pool,
            dict.fromkeys(order, 1.0),
        )

        assert found[0].pmid == item.pmid, (item.question, found[0].text)
