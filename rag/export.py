"""Reference exports of retrieved articles: RIS, BibTeX, CSV, and an answer as Markdown.

Pure text in, text out: the app offers these as downloads, and anything else (a notebook, a
script) can call them on the hits of :func:`rag.search.search` or an answer's sources.
Reference managers (Zotero, EndNote, Mendeley) import RIS and BibTeX; CSV opens in a
spreadsheet, with cells that would start a formula defused.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from rag.evidence import Evidence
from rag.grounding import AnswerSentence
from rag.search import Hit

# PubMed prints authors as "Smith JA"; initials are at most a few capitals.
_INITIALS = re.compile(r"^[A-Z]{1,4}$")
_CITATION = re.compile(r"\[PMID:([0-9]+)\]")
# Only these become keys and links: a PMID is 1-9 ASCII digits (str.isdigit also takes "١٢").
_PMID = re.compile(r"[0-9]{1,9}")
# Spreadsheets run a cell that starts with one of these as a formula (CSV injection); some
# also read the full-width forms, and tab/CR are what OWASP lists as well.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
# Bidi embeddings, overrides, isolates and marks: they reorder how a title displays
# ("Trojan Source"), so an exported field could read differently from what it holds.
_BIDI = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_BIBTEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}

CSV_COLUMNS = (
    "rank",
    "pmid",
    "title",
    "authors",
    "journal",
    "year",
    "publication_types",
    "mesh_terms",
    "languages",
    "doi",
    "pmc",
    "retracted",
    "cited",
    "score",
    "pubmed_url",
    "doi_url",
    "passage",
)


def split_author(display: str) -> tuple[str, str]:
    """``"van der Berg JA"`` → ``("van der Berg", "J. A.")``; a collective → ``(name, "")``."""
    parts = display.split()
    if len(parts) >= 2 and _INITIALS.match(parts[-1]):
        return " ".join(parts[:-1]), " ".join(f"{letter}." for letter in parts[-1])
    return display.strip(), ""


def author_list(authors: str) -> list[str]:
    """The ``"; "``-joined author field of a hit as a list of display names."""
    return [name.strip() for name in authors.split(";") if name.strip()]


def is_pmid(text: str) -> bool:
    """Whether ``text`` is a PMID (1-9 ASCII digits), fit for a BibTeX key or a link."""
    return _PMID.fullmatch(text) is not None


def _one_line(text: str) -> str:
    # Every field of every export passes here: one line, no bidi controls.
    return " ".join(_BIDI.sub("", str(text)).split())


# Characters that Markdown (CommonMark, GFM) reads as markup mid-line; `<`, `>` and `&` become
# entities, so a record's `<script>` or `<img onerror=…>` is text in any renderer.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]#|~!$])")
_HTML_SPECIAL = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def markdown_escape(text: str) -> str:
    """One line of text that renders as itself in Markdown: no markup, links or HTML."""
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", _one_line(text))
    return "".join(_HTML_SPECIAL.get(char, char) for char in escaped)


def to_ris(hits: Iterable[Hit]) -> str:
    """RIS records (``TY  - JOUR`` … ``ER  -``), one per article, in the given order."""
    lines: list[str] = []
    for hit in hits:
        fields: list[tuple[str, str]] = [("TY", "JOUR"), ("TI", hit.title)]
        for name in author_list(hit.authors):
            last, initials = split_author(name)
            fields.append(("AU", f"{last}, {initials}" if initials else last))
        fields += [("T2", hit.journal), ("PY", str(hit.year or ""))]
        fields += [("DO", hit.doi), ("AN", hit.pmid), ("DB", "PubMed")]
        fields += [("UR", hit.url)] if is_pmid(hit.pmid) else []
        fields += [("M3", "; ".join(hit.pubtypes))]
        fields += [("KW", term) for term in hit.mesh]
        fields += [("LA", lang) for lang in hit.languages]
        if hit.pmc:
            fields.append(("C2", hit.pmc))
        if hit.retracted:
            fields.append(("N1", "Retracted publication"))
        lines += [f"{tag}  - {_one_line(value)}" for tag, value in fields if _one_line(value)]
        lines += ["ER  - ", ""]
    return "\n".join(lines)


def bibtex_escape(text: str) -> str:
    """Text with LaTeX's special characters escaped (Unicode is kept: biber reads UTF-8)."""
    return "".join(_BIBTEX_SPECIAL.get(char, char) for char in _one_line(text))


def _bibtex_author(display: str) -> str:
    last, initials = split_author(display)
    if not initials:
        return "{" + bibtex_escape(last) + "}"  # a collective: keep it one "last name"
    return f"{bibtex_escape(last)}, {initials}"


def to_bibtex(hits: Iterable[Hit]) -> str:
    """``@article{pmid…}`` entries; keys are ``pmid`` + PMID, unique within a PubMed export."""
    entries = []
    for number, hit in enumerate(hits, start=1):
        pmid = hit.pmid if is_pmid(hit.pmid) else ""
        fields: list[tuple[str, str]] = [
            # Double braces keep the title's capitals (gene names, acronyms) as written.
            ("title", "{" + bibtex_escape(hit.title) + "}"),
            ("author", " and ".join(_bibtex_author(name) for name in author_list(hit.authors))),
            ("journal", bibtex_escape(hit.journal)),
            ("year", str(hit.year or "")),
            ("doi", _one_line(hit.doi.replace("{", "").replace("}", ""))),
            ("pmid", pmid),
            ("url", hit.url if pmid else ""),
            ("keywords", bibtex_escape(", ".join(hit.mesh))),
            ("note", "Retracted publication" if hit.retracted else ""),
        ]
        body = ",\n".join(f"  {name} = {{{value}}}" for name, value in fields if value)
        # A key from anything but digits could close the entry and start another.
        key = f"pmid{pmid}" if pmid else f"ref{number}"
        entries.append(f"@article{{{key},\n{body}\n}}\n")
    return "\n".join(entries)


def _cell(value: object) -> str:
    text = _one_line(str(value)) if value is not None else ""
    return f"'{text}" if text.startswith(_FORMULA_START) else text


def to_csv(hits: Iterable[Hit], cited: Iterable[str] = ()) -> str:
    """One row per article with :data:`CSV_COLUMNS`; ``cited`` marks the cited PMIDs."""
    cited_set = set(cited)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for rank, hit in enumerate(hits, start=1):
        row = (
            rank,
            hit.pmid,
            hit.title,
            hit.authors,
            hit.journal,
            hit.year or "",
            "; ".join(hit.pubtypes),
            "; ".join(hit.mesh),
            "; ".join(hit.languages),
            hit.doi,
            hit.pmc,
            "yes" if hit.retracted else "no",
            "yes" if hit.pmid in cited_set else "no",
            f"{hit.score:.4f}",
            hit.url if is_pmid(hit.pmid) else "",
            hit.doi_url,
            hit.passage,
        )
        writer.writerow([_cell(value) for value in row])
    return buffer.getvalue()


def short_authors(authors: str, most: int = 3) -> str:
    """``"Smith JA, Doe J, Roe R, et al."``: the first ``most`` authors of a hit."""
    names = author_list(authors)
    shown = ", ".join(names[:most])
    return f"{shown}, et al." if len(names) > most else shown


def reference(hit: Hit) -> str:
    """One plain-text reference: authors. Title. Journal. Year. PMID, DOI, retraction."""
    parts = [
        short_authors(hit.authors),
        hit.title.rstrip("."),
        hit.journal,
        str(hit.year or ""),
        f"PMID: {hit.pmid}",
    ]
    if hit.doi:
        parts.append(f"doi:{hit.doi}")
    if hit.retracted:
        parts.append("RETRACTED")
    return ". ".join(_one_line(part).rstrip(".") for part in parts if part) + "."


def answer_markdown(
    question: str,
    answer: str,
    sources: Sequence[Hit],
    note: str = "",
    evidence: Sequence[Evidence] = (),
    sentences: Sequence[AnswerSentence] = (),
) -> str:
    """An answer as a Markdown document: question, key evidence, answer, references.

    ``[PMID:n]`` tags become numbers into the reference list, which holds the cited articles
    first (in order of citation) and then the other sources. With ``sentences``, each answer
    sentence is a list item with its support label and the quote it rests on; a contradicted
    sentence also shows the cues that disagree, and its quote is the one that says otherwise.
    """
    cited = list(dict.fromkeys(_CITATION.findall(answer)))
    by_pmid = {hit.pmid: hit for hit in sources}
    order = [pmid for pmid in cited if pmid in by_pmid]
    order += [hit.pmid for hit in sources if hit.pmid not in order]
    number = {pmid: index for index, pmid in enumerate(order, start=1)}

    def numbered(text: str) -> str:
        return _CITATION.sub(
            lambda match: f"[{number[match.group(1)]}]" if match.group(1) in number else "",
            text,
        )

    lines = [f"# {_one_line(question)}", ""]
    if evidence:
        lines += ["## Key evidence", ""]
        for item in evidence:
            ref = (
                f"[{number[item.pmid]}]" if item.pmid in number else f"PMID {_one_line(item.pmid)}"
            )
            section = f"({item.section.title()}) " if item.section else ""
            lines.append(f"- {section}“{_one_line(item.text)}” {ref}")
        lines.append("")
    lines += ["## Answer", ""] if evidence else []
    if sentences:
        for sentence in sentences:
            lines.append(
                f"- {numbered(_one_line(sentence.text))} — _{sentence.support}_"
                + (f" ({_one_line(sentence.conflict)})" if sentence.conflict else "")
            )
            if sentence.quote:
                lines.append(f"  > {_one_line(sentence.quote)}")
    else:
        lines.append(_BIDI.sub("", numbered(answer)).strip())  # its line breaks are kept
    lines += ["", "## References", ""]
    for pmid in order:
        hit = by_pmid[pmid]
        mark = "" if pmid in cited else " (not cited)"
        link = f" <{hit.url}>" if is_pmid(pmid) else ""
        lines.append(f"{number[pmid]}. {reference(hit)}{link}{mark}")
    if note:
        lines += ["", f"_{_one_line(note)}_"]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class ExportFormat:
    """A download the app offers: how to write it and how to name it."""

    label: str
    extension: str
    mime: str
    write: Callable[[Sequence[Hit], Sequence[str]], str]


FORMATS: tuple[ExportFormat, ...] = (
    ExportFormat("RIS", "ris", "application/x-research-info-systems", lambda h, c: to_ris(h)),
    ExportFormat("BibTeX", "bib", "application/x-bibtex", lambda h, c: to_bibtex(h)),
    ExportFormat("CSV", "csv", "text/csv", to_csv),
)


def file_stem(text: str, most: int = 40) -> str:
    """A file-name-safe slug of a query: ``"pubmed-rag-ppi-safety"``."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:most].strip("-")
    return f"pubmed-rag-{slug}" if slug else "pubmed-rag"
