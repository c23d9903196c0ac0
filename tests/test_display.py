"""The app's HTML fragments: escaping, highlighting, citation links, source cards."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from indexing.links import doi_url, pmc_url, pubmed_url
from rag.display import (
    answer_html,
    escape,
    highlight,
    query_terms,
    sentences_html,
    source_html,
    support_badge,
    year_counts,
)
from rag.grounding import AnswerSentence
from tests.test_export import HIT, OTHER

HOSTILE = (
    '<script>alert(1)</script> <img src=x onerror="alert(2)"> [x](javascript:alert(3)) '
    "**bold** $E=mc^2$ :red[red] _under_ `code` & &amp; \\ 1. list"
)


def tags(fragment: str) -> list[str]:
    """Names of the HTML tags in a fragment."""
    return re.findall(r"<\s*([a-zA-Z][a-zA-Z0-9]*)", fragment)


def test_escape_leaves_no_markup_markdown_or_latex() -> None:
    text = escape(HOSTILE)

    assert tags(text) == []
    for char in "<>\"'[]()*$:_`&\\=":
        assert char not in text.replace("&#", "").replace(";", ""), char
    assert "script" in text and "alert" in text  # shown, not dropped


def test_escape_keeps_letters_digits_spaces_and_breaks_lines() -> None:
    assert escape("β-blockers in   the élderly\nsecond line") == (
        "β&#45;blockers in the élderly<br>second line"
    )


def test_query_terms_drop_stopwords_and_reduce_plurals() -> None:
    assert query_terms("What are the risks of long-term proton pump inhibitors in therapies?") == (
        "inhibitor",
        "long-term",
        "proton",
        "therap",
        "pump",
        "risk",
    )
    assert query_terms("is it") == ()
    assert query_terms("UC or MI") == ("mi", "uc")  # short acronyms count when capitalised


def test_highlight_marks_whole_words_case_insensitively() -> None:
    text = "Proton pump inhibitor risks; pumpkin <b>risk</b>"

    marked = highlight(text, query_terms("proton pump risk"))

    assert re.findall(r"<mark[^>]*>(.*?)</mark>", marked) == [
        "Proton",
        "pump",
        "risks",
        "pumpkin",  # a word starting with a term: prefixes match, like PubMed's truncation
        "risk",
    ]
    assert "<b>" not in marked and "&#60;b&#62;" in marked
    assert highlight(text, ()) == escape(text)


def test_answer_links_citations_to_numbered_sources() -> None:
    html = answer_html(f"Risky [PMID:{HIT.pmid}] and **rare** [PMID:42].", [OTHER, HIT])

    links = re.findall(r'<a href="([^"]+)"[^>]*title="([^"]*)"[^>]*>(.*?)</a>', html)
    assert links == [
        (
            f"https://pubmed.ncbi.nlm.nih.gov/{HIT.pmid}/",
            escape(f"PMID {HIT.pmid}: {' '.join(HIT.title.split())}"),  # one line: no <br>
            "&#91;2&#93;",
        ),
        ("https://pubmed.ncbi.nlm.nih.gov/42/", "PMID 42", "&#91;PMID&#58;42&#93;"),
    ]
    assert "<strong>rare</strong>" in html
    assert 'target="_blank"' in html


def test_hostile_model_output_stays_text() -> None:
    html = answer_html(f"{HOSTILE} [PMID:{HIT.pmid}]", [HIT])

    assert sorted(set(tags(html))) == ["a", "strong"]  # **bold** is the one markup kept
    assert "onerror=" not in html and "javascript:" not in html


def test_source_card_shows_everything_and_runs_nothing() -> None:
    hostile = replace(
        HIT,
        title=f"Title {HOSTILE}",
        journal="<i>J</i>",
        authors='Smith "JA"; <b>Bold</b> X',
        pubtypes=("<script>x</script>",),
        passage=f"Passage about proton pumps {HOSTILE}",
        doi='10.1/x"><script>alert(5)</script>',
        pmc='PMC1"><img src=x>',
    )

    card = source_html(3, hostile, query_terms("proton pump"), cited=True)

    assert set(tags(card)) <= {"div", "b", "a", "span", "i", "mark"}
    assert "onerror=" not in card and "javascript:" not in card
    hrefs = re.findall(r'href="([^"]*)"', card)
    assert hrefs[0] == f"https://pubmed.ncbi.nlm.nih.gov/{HIT.pmid}/"
    assert "https://doi.org/10.1/x%22%3E%3Cscript%3Ealert(5)%3C/script%3E" in hrefs
    assert all('"' not in href and "<" not in href for href in hrefs)
    assert "RETRACTED" in card and "cited" in card
    assert "<b>3.</b>" in card
    assert re.findall(r"<mark[^>]*>(.*?)</mark>", card) == ["proton", "pumps"]


def test_source_card_shortens_long_passages_and_names_missing_ones() -> None:
    long = replace(HIT, passage="word " * 400, title="", retracted=False)

    card = source_html(1, long, passage_chars=100)

    assert "word " * 10 in card and "&#8230;" in card and len(card) < 3000
    assert escape("(no title)") in card and "RETRACTED" not in card
    assert "(no abstract)" in source_html(1, replace(HIT, passage=" "))


@pytest.mark.parametrize(
    ("doi", "url"),
    [
        ("10.1000/abc(1)", "https://doi.org/10.1000/abc(1)"),
        ("10.1000/a b#c?d", "https://doi.org/10.1000/a%20b%23c%3Fd"),
        ("  ", ""),
    ],
)
def test_doi_links_are_percent_encoded(doi: str, url: str) -> None:
    assert doi_url(doi) == url


def test_pubmed_and_pmc_links_take_only_their_identifiers() -> None:
    assert pubmed_url("42") == "https://pubmed.ncbi.nlm.nih.gov/42/"
    assert pubmed_url("42/../x") == ""
    assert pmc_url("PMC123") == "https://pmc.ncbi.nlm.nih.gov/articles/PMC123/"
    assert pmc_url(" ") == ""


def test_year_counts_fill_the_gaps() -> None:
    hits = [replace(HIT, year=2019), replace(HIT, year=2022), replace(HIT, year=2022), OTHER]

    assert year_counts(hits) == {2019: 1, 2020: 0, 2021: 0, 2022: 2}
    assert year_counts([OTHER]) == {}


def test_source_card_shows_design_population_and_a_retracted_citation() -> None:
    hit = replace(
        HIT, evidence="rct", population=("humans", "in-vitro"), cites_retracted=("26432142",)
    )

    card = source_html(1, hit)

    assert 'data-level="rct"' in card
    assert "randomized controlled trial" in card and "in vitro" in card
    assert "CITES RETRACTED PMID 26432142" in card
    assert set(tags(card)) <= {"div", "b", "br", "a", "i", "mark", "span"}


def test_source_card_of_an_older_index_says_design_unknown() -> None:
    card = source_html(1, replace(HIT, evidence="", population=()))

    assert "design unknown" in card and "CITES RETRACTED" not in card


def test_a_contradicted_sentence_gets_its_own_red_badge_and_the_quote_that_says_otherwise() -> None:
    sentence = AnswerSentence(
        f"No, it does not work [PMID:{HIT.pmid}].",
        (HIT.pmid,),
        "contradicted",
        "It is the preferred regimen.",
        HIT.pmid,
        0.7,
        conflict="claim “not”; quote affirms",
    )

    html = sentences_html([sentence], [HIT])

    assert 'data-support="contradicted"' in html and "contradicted" in html
    assert escape(f"PMID {HIT.pmid} says otherwise (claim “not”; quote affirms)") in html
    assert escape("It is the preferred regimen.") in html
    # Louder than "unsupported": solid red, white text.
    assert "color:white" in support_badge("contradicted")
    assert "color:white" not in support_badge("unsupported")
