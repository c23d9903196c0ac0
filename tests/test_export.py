"""Reference exports (RIS, BibTeX, CSV, Markdown) from search hits."""

from __future__ import annotations

import csv
import io
from dataclasses import replace

import pytest

from rag.export import (
    CSV_COLUMNS,
    FORMATS,
    answer_markdown,
    file_stem,
    reference,
    split_author,
    to_bibtex,
    to_csv,
    to_ris,
)
from rag.search import Hit

HIT = Hit(
    pmid="35830032",
    title="SAFETY OF LONG-TERM PROTON PUMP INHIBITORS:\nFACTS AND MYTHS.",
    journal="Arquivos de gastroenterologia",
    year=2022,
    authors="Chinzon D; Domingues G; van der Berg JA; Writing Committee of the PPI Group",
    pubtypes=("Journal Article", "Review"),
    mesh=("Humans", "Proton Pump Inhibitors"),
    doi="10.1590/S0004-2803.202202000-40",
    pmc="",
    retracted=True,
    has_abstract=True,
    score=0.7412,
    passage="PPIs are among the most prescribed drugs.",
    passage_id="35830032#1",
    languages=("eng",),
)
OTHER = replace(
    HIT,
    pmid="31588070",
    title="50% of H_2 & {braces} cost $5 #1 ~ ^",
    authors="WHO",
    retracted=False,
    doi="",
    pmc="PMC123",
    year=None,
)


def ris_records(text: str) -> list[list[tuple[str, str]]]:
    """Parse RIS the way reference managers do: ``TAG  - value`` lines up to ``ER``."""
    records: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        tag, separator, value = line[:2], line[2:6], line[6:]
        assert separator == "  - ", line
        if tag == "ER":
            records.append(current)
            current = []
        else:
            current.append((tag, value))
    assert not current, "record without ER"
    return records


@pytest.mark.parametrize(
    ("display", "expected"),
    [
        ("Smith JA", ("Smith", "J. A.")),
        ("van der Berg JA", ("van der Berg", "J. A.")),
        ("WHO", ("WHO", "")),
        ("Writing Committee of the PPI Group", ("Writing Committee of the PPI Group", "")),
    ],
)
def test_author_names_split_into_last_name_and_initials(display: str, expected: tuple) -> None:
    assert split_author(display) == expected


def test_ris_has_one_complete_record_per_article() -> None:
    first, second = ris_records(to_ris([HIT, OTHER]))

    assert first[0] == ("TY", "JOUR")
    fields = dict(first)
    assert fields["TI"] == "SAFETY OF LONG-TERM PROTON PUMP INHIBITORS: FACTS AND MYTHS."
    assert [value for tag, value in first if tag == "AU"] == [
        "Chinzon, D.",
        "Domingues, G.",
        "van der Berg, J. A.",
        "Writing Committee of the PPI Group",
    ]
    assert fields["PY"] == "2022" and fields["T2"] == "Arquivos de gastroenterologia"
    assert fields["DO"] == HIT.doi and fields["AN"] == HIT.pmid
    assert fields["UR"] == "https://pubmed.ncbi.nlm.nih.gov/35830032/"
    assert [value for tag, value in first if tag == "KW"] == list(HIT.mesh)
    assert fields["N1"] == "Retracted publication"
    other = dict(second)
    assert "PY" not in other and "DO" not in other and "N1" not in other
    assert other["C2"] == "PMC123"


def test_bibtex_escapes_latex_and_keeps_names_and_capitals() -> None:
    text = to_bibtex([HIT, OTHER])

    assert text.count("@article{") == 2
    assert "@article{pmid35830032," in text and "@article{pmid31588070," in text
    assert text.count("{") == text.count("}") + text.count(r"\}") - text.count(r"\{")
    assert "title = {{SAFETY OF LONG-TERM PROTON PUMP INHIBITORS: FACTS AND MYTHS.}}" in text
    assert (
        "author = {Chinzon, D. and Domingues, G. and van der Berg, J. A. and "
        "{Writing Committee of the PPI Group}}"
    ) in text
    assert r"50\% of H\_2 \& \{braces\} cost \$5 \#1 \textasciitilde{} \textasciicircum{}" in text
    assert "author = {{WHO}}" in text
    assert "note = {Retracted publication}" in text
    assert "doi = {10.1590/S0004-2803.202202000-40}" in text
    second = text.split("@article{pmid31588070,")[1]
    assert "year" not in second and "doi" not in second


def test_csv_round_trips_and_defuses_formulas() -> None:
    hostile = replace(OTHER, title='=HYPERLINK("http://x")', journal="+1", authors="@SUM(A1)")

    rows = list(csv.reader(io.StringIO(to_csv([HIT, hostile], cited=[HIT.pmid]))))

    assert rows[0] == list(CSV_COLUMNS)
    first = dict(zip(CSV_COLUMNS, rows[1], strict=True))
    assert first["title"] == "SAFETY OF LONG-TERM PROTON PUMP INHIBITORS: FACTS AND MYTHS."
    assert first["authors"] == HIT.authors and first["year"] == "2022"
    assert first["retracted"] == "yes" and first["cited"] == "yes"
    assert first["publication_types"] == "Journal Article; Review"
    assert first["doi_url"] == "https://doi.org/10.1590/S0004-2803.202202000-40"
    second = dict(zip(CSV_COLUMNS, rows[2], strict=True))
    assert second["title"] == '\'=HYPERLINK("http://x")'
    assert second["journal"] == "'+1" and second["authors"] == "'@SUM(A1)"
    assert second["cited"] == "no" and second["year"] == ""


def test_csv_doi_url_is_percent_encoded_like_the_app_link() -> None:
    odd = replace(HIT, doi="10.1000/a b#c?d")

    rows = list(csv.reader(io.StringIO(to_csv([odd], cited=[]))))

    assert dict(zip(CSV_COLUMNS, rows[1], strict=True))["doi_url"] == (
        "https://doi.org/10.1000/a%20b%23c%3Fd"
    )


def test_answer_markdown_numbers_cited_articles_first() -> None:
    text = answer_markdown(
        "Are PPIs safe?",
        f"Mostly [PMID:{OTHER.pmid}], with caveats [PMID:{HIT.pmid}][PMID:{OTHER.pmid}].",
        [HIT, OTHER, replace(HIT, pmid="1")],
        note="model scripted",
    )

    assert text.startswith("# Are PPIs safe?\n\nMostly [1], with caveats [2][1].\n")
    references = text.split("## References\n\n")[1].splitlines()
    assert references[0].startswith("1. WHO. 50% of H_2")
    assert references[1].startswith("2. Chinzon D, Domingues G, van der Berg JA, et al. SAFETY")
    assert references[1].endswith("RETRACTED. <https://pubmed.ncbi.nlm.nih.gov/35830032/>")
    assert references[2].startswith("3. ") and references[2].endswith("(not cited)")
    assert text.rstrip().endswith("_model scripted_")


def test_answer_markdown_shows_a_contradicted_sentence_with_its_cues_and_quote() -> None:
    from rag.grounding import AnswerSentence

    sentence = AnswerSentence(
        f"No, it does not work [PMID:{HIT.pmid}].",
        (HIT.pmid,),
        "contradicted",
        "It is the preferred regimen.",
        HIT.pmid,
        0.7,
        conflict="claim “not”; quote affirms",
    )

    text = answer_markdown("Does it work?", sentence.text, [HIT], sentences=[sentence])

    assert "- No, it does not work [1]. — _contradicted_ (claim “not”; quote affirms)\n" in text
    assert "  > It is the preferred regimen." in text


def test_reference_is_one_line() -> None:
    assert reference(HIT) == (
        "Chinzon D, Domingues G, van der Berg JA, et al. SAFETY OF LONG-TERM PROTON PUMP "
        "INHIBITORS: FACTS AND MYTHS. Arquivos de gastroenterologia. 2022. PMID: 35830032. "
        "doi:10.1590/S0004-2803.202202000-40. RETRACTED."
    )


def test_every_format_writes_every_article() -> None:
    for fmt in FORMATS:
        text = fmt.write([HIT, OTHER], [HIT.pmid])
        assert HIT.pmid in text and OTHER.pmid in text, fmt.label
    assert [fmt.extension for fmt in FORMATS] == ["ris", "bib", "csv"]


@pytest.mark.parametrize(
    ("text", "stem"),
    [
        ("Is long-term PPI use safe?", "pubmed-rag-is-long-term-ppi-use-safe"),
        ("  ", "pubmed-rag"),
        ("<script>/../../etc", "pubmed-rag-script-etc"),
    ],
)
def test_file_stem_is_safe_for_any_query(text: str, stem: str) -> None:
    assert file_stem(text) == stem


# A PMID that an old index or a tampered record might hold: it would close a BibTeX entry, a
# Markdown link and start a line of its own.
HOSTILE_PMID = "1},\n@misc{evil, note={x}} <javascript:alert(1)>"
BIDI = "\u202e\u2066\u200f"


def test_bibtex_key_and_fields_come_from_digit_pmids_only() -> None:
    hostile = replace(OTHER, pmid=HOSTILE_PMID)

    text = to_bibtex([HIT, hostile])

    assert text.count("@") == 2 and "@misc" not in text and "evil" not in text
    assert "@article{pmid35830032," in text and "@article{ref2," in text
    second = text.split("@article{ref2,")[1]
    assert "pmid =" not in second and "url =" not in second and "javascript" not in second
    # Unicode digits are digits to str.isdigit, not to PubMed.
    assert "@article{ref1," in to_bibtex([replace(HIT, pmid="\u0661\u0662")])


def test_markdown_links_only_digit_pmids() -> None:
    hostile = replace(OTHER, pmid=HOSTILE_PMID)

    text = answer_markdown("Q?", "An answer.", [HIT, hostile])

    references = text.split("## References\n\n")[1].splitlines()
    assert len(references) == 2
    assert references[0].endswith("<https://pubmed.ncbi.nlm.nih.gov/35830032/> (not cited)")
    assert "<https://" not in references[1] and "\n@misc" not in text


@pytest.mark.parametrize(
    "start", ["\uff1d", "\uff0b", "\uff0d", "\uff20", "\t=", "\r=", BIDI + "=", "\u3000+"]
)
def test_csv_defuses_full_width_and_hidden_formula_starts(start: str) -> None:
    hostile = replace(OTHER, title=f'{start}HYPERLINK("http://x")', pmid=HOSTILE_PMID)

    row = dict(zip(CSV_COLUMNS, list(csv.reader(io.StringIO(to_csv([hostile]))))[1], strict=True))

    assert row["title"].startswith("'"), row["title"]
    assert row["pubmed_url"] == ""


def test_bidi_controls_are_removed_from_every_export() -> None:
    hostile = replace(
        HIT,
        title=f"Safe{BIDI} drug\u202a\u202b\u202c\u202d\u2067\u2068\u2069\u200e",
        authors=f"Smith{BIDI} JA",
        journal=f"J{BIDI} Med",
        mesh=(f"Humans{BIDI}",),
        passage=f"text{BIDI}",
    )
    outputs = {fmt.label: fmt.write([hostile], [hostile.pmid]) for fmt in FORMATS}
    outputs["Markdown"] = answer_markdown(
        f"Q{BIDI}?", f"A{BIDI} [PMID:{HIT.pmid}].", [hostile], note="n"
    )
    outputs["reference"] = reference(hostile)

    for label, text in outputs.items():
        assert not any(char in text for char in BIDI + "\u202a\u2068\u200e"), label
        assert "Safe drug" in text, label
