"""Safe HTML fragments for the app: text from abstracts and models is escaped, always.

Streamlit's ``st.markdown`` renders Markdown, LaTeX (``$…$``), emoji shortcodes and colour
directives in any text, and raw HTML with ``unsafe_allow_html``. Titles, abstracts and model
output must show exactly as written and never run, so :func:`escape` turns every character
that is not a letter, a digit or a space into a numeric character reference: no tag,
attribute, Markdown or LaTeX survives it. Every fragment here is escaped text inside fixed
markup; URLs are built from PMIDs (digits) and percent-encoded DOIs only.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence

from indexing.links import doi_url, pmc_url, pubmed_url
from rag.evidence import Evidence
from rag.export import short_authors
from rag.grounding import AnswerSentence
from rag.search import Hit
from rag.support import CONTRADICTED
from rag.verdicts import VerdictTally

_UNSAFE = re.compile(r"[^\w ]|_")
_SPACES = re.compile(r"\s+")
_CITATION = re.compile(r"\[PMID:(\d+)\]")
_BOLD = re.compile(r"&#42;&#42;(.+?)&#42;&#42;")
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-]*")
_STOPWORDS = """a an and are as at be been being between by can could did do does during for
from had has have how if in into is it its may might more most no not of on or than that the
their them there these they this those to was were what when where which while who why will
with would should use used using vs versus"""
STOPWORDS = frozenset(_STOPWORDS.split())

# Inline styles: Streamlit has a light and a dark theme, so colours are translucent.
_MARK = '<mark style="background:rgba(255,200,0,0.45);color:inherit;padding:0 1px">'
_ENTITY = (
    '<span class="pubmed-rag-entity" style="text-decoration:underline dotted;'
    'text-underline-offset:2px">'
)
_BADGE = (
    '<span style="display:inline-block;font-size:0.75em;padding:0 6px;margin:0 4px 2px 0;'
    'border-radius:8px;background:{bg}">{text}</span>'
)
_LINK = '<a href="{href}" target="_blank" rel="noopener noreferrer"{title}>{text}</a>'


def escape(text: str) -> str:
    """Text as inert HTML: every non-alphanumeric character becomes ``&#n;``, lines ``<br>``.

    Runs of spaces become one space (never dropped: fragments are concatenated).
    """
    lines = [_SPACES.sub(" ", line) for line in str(text).split("\n")]
    return "<br>".join(_UNSAFE.sub(lambda m: f"&#{ord(m.group())};", line) for line in lines)


def link(href: str, text: str, title: str = "") -> str:
    """An anchor opening in a new tab; ``text`` and ``title`` are escaped, ``href`` must be ours."""
    attribute = f' title="{escape(" ".join(title.split()))}"' if title else ""  # no <br>
    return _LINK.format(href=html.escape(href, quote=True), title=attribute, text=escape(text))


def badge(text: str, background: str = "rgba(128,128,128,0.2)") -> str:
    """A small rounded label."""
    return _BADGE.format(bg=background, text=escape(text))


RETRACTED_BADGE = badge("RETRACTED", "rgba(220,38,38,0.85);color:white;font-weight:600")
CITED_BADGE = badge("cited", "rgba(37,99,235,0.25)")
_EVIDENCE_BG = "rgba(22,163,74,0.25)"
_UNKNOWN_BG = "rgba(128,128,128,0.12)"


def evidence_badges(hit: Hit) -> str:
    """The study design and population badges; the cites-retracted warning first."""
    parts = []
    if hit.cites_retracted:
        pmids = ", ".join(hit.cites_retracted)
        parts.append(badge(f"CITES RETRACTED PMID {pmids}", "rgba(234,88,12,0.85);color:white"))
    design = hit.evidence_label
    parts.append(
        f'<span class="pubmed-rag-evidence-level" data-level="{escape(hit.evidence)}">'
        + badge(design or "design unknown", _EVIDENCE_BG if design else _UNKNOWN_BG)
        + "</span>"
    )
    parts.extend(badge(name.replace("-", " ")) for name in hit.population)
    return "".join(parts)


def query_terms(query: str) -> tuple[str, ...]:
    """Words of a query worth highlighting: no stopwords, plurals reduced, longest first."""
    terms: dict[str, None] = {}
    for word in _WORD.findall(query):
        lower = word.lower()
        if lower in STOPWORDS or (len(lower) < 3 and not word.isupper()):
            continue
        if lower.endswith("ies") and len(lower) > 4:
            lower = lower[:-3]
        elif lower.endswith("s") and not lower.endswith("ss") and len(lower) > 3:
            lower = lower[:-1]
        terms[lower] = None
    return tuple(sorted(terms, key=lambda term: (-len(term), term)))


def highlight(text: str, terms: Sequence[str], entities: Sequence[str] = ()) -> str:
    """Escaped ``text``: words starting with one of ``terms`` marked, ``entities`` underlined.

    Both case-insensitive; an entity (a whole name such as "Proton Pump Inhibitors") is
    matched as a phrase and wins over a query term inside it.
    """
    names = sorted({name for name in entities if name.strip()}, key=len, reverse=True)
    if not terms and not names:
        return escape(text)
    alternatives = []
    if names:
        alternatives.append(
            r"(?P<entity>\b(?:" + "|".join(re.escape(name) for name in names) + r")\b)"
        )
    if terms:
        alternatives.append(
            r"(?P<term>\b(?:" + "|".join(re.escape(term) for term in terms) + r")[\w\-]*)"
        )
    pattern = re.compile("|".join(alternatives), re.IGNORECASE)
    parts: list[str] = []
    last = 0
    for match in pattern.finditer(text):
        parts.append(escape(text[last : match.start()]))
        if match.lastgroup == "entity":
            parts.append(f"{_ENTITY}{escape(match.group(0))}</span>")
        else:
            parts.append(f"{_MARK}{escape(match.group(0))}</mark>")
        last = match.end()
    parts.append(escape(text[last:]))
    return "".join(parts)


def verdicts_html(tally: VerdictTally) -> str:
    """A verdict tally: the summary, then each article's label, score and PubMed link."""
    items = "".join(
        f'<li class="pubmed-rag-verdict" data-pmid="{escape(article.pmid)}" '
        f'data-label="{escape(article.label)}"><b>{escape(article.label)}</b> '
        f"{escape(f'{article.score:.2f}')} · "
        f"{link(pubmed_url(article.pmid), article.title or f'PMID {article.pmid}')}</li>"
        for article in tally.articles
    )
    return (
        f'<div class="pubmed-rag-verdicts"><b>What the top articles say</b> '
        f"({escape(tally.model)}): {escape(tally.summary())}<ul>{items}</ul>"
        "<small>Each article read on its own for a yes / no / maybe answer to the question; "
        "a tally of readings, not a meta-analysis.</small></div>"
    )


FACET_LABELS = {
    "chemicals": "Substances",
    "genes": "Genes",
    "concepts": "Concepts",
    # Found in the text by the ingest's tagger, not indexed by NLM: labelled apart.
    "ner_chemicals": "Chemicals (NER)",
    "ner_diseases": "Diseases (NER)",
    "ner_genes": "Genes (NER)",
}


def facets_html(counts: dict[str, list[tuple[str, int]]]) -> str:
    """The entities of a result set with how many articles carry each, escaped; "" if none."""
    rows = [
        f"{FACET_LABELS.get(kind, kind)}: "
        + ", ".join(f"{escape(name)} ({count})" for name, count in entries)
        for kind, entries in counts.items()
        if entries
    ]
    if not rows:
        return ""
    return (
        '<div class="pubmed-rag-facets" style="font-size:0.85em;margin:2px 0 6px">'
        "<b>In these results</b> · " + " · ".join(rows) + "</div>"
    )


def entities_html(hit: Hit) -> str:
    """The substances, gene symbols and concepts NLM indexed the article with, and the
    chemicals, diseases and genes a tagger found in it, escaped."""
    rows = [
        (label, getattr(hit, kind)) for kind, label in FACET_LABELS.items() if getattr(hit, kind)
    ]
    if not rows:
        return ""
    text = " · ".join(f"{label}: {escape(', '.join(names))}" for label, names in rows)
    return f'<div class="pubmed-rag-entities" style="font-size:0.85em;opacity:0.85">{text}</div>'


def answer_html(text: str, sources: Sequence[Hit]) -> str:
    """An answer as HTML: escaped text, ``**bold**`` kept, ``[PMID:n]`` as numbered links.

    A citation becomes ``[k]``, ``k`` being the source's number in the list shown under the
    answer, linked to the article on PubMed (its title in the tooltip).
    """
    numbers = {hit.pmid: (index, hit) for index, hit in enumerate(sources, start=1)}
    parts: list[str] = []
    last = 0
    for match in _CITATION.finditer(text):
        parts.append(escape(text[last : match.start()]))
        pmid = match.group(1)
        number, hit = numbers.get(pmid, (None, None))
        label = f"[{number}]" if number else f"[PMID:{pmid}]"
        title = f"PMID {pmid}: {hit.title}" if hit else f"PMID {pmid}"
        parts.append(link(pubmed_url(pmid), label, title))
        last = match.end()
    parts.append(escape(text[last:]))
    return _BOLD.sub(r"<strong>\1</strong>", "".join(parts))


def source_html(
    number: int, hit: Hit, terms: Sequence[str] = (), cited: bool = False, passage_chars: int = 0
) -> str:
    """One source: number, linked title, badges, authors, journal, year, passage, links.

    ``passage_chars`` > 0 shortens the passage to about that many characters.
    """
    title = link(pubmed_url(hit.pmid), hit.title or "(no title)", f"PMID {hit.pmid} on PubMed")
    flags = (CITED_BADGE if cited else "") + (RETRACTED_BADGE if hit.retracted else "")
    details = " · ".join(
        part
        for part in (
            escape(short_authors(hit.authors)),
            f"<i>{escape(hit.journal)}</i>" if hit.journal else "",
            escape(str(hit.year)) if hit.year else "",
        )
        if part
    )
    kinds = evidence_badges(hit) + "".join(badge(kind) for kind in hit.pubtypes)
    passage = hit.passage
    if passage_chars and len(passage) > passage_chars:
        passage = passage[:passage_chars].rsplit(" ", 1)[0] + " …"
    body = highlight(passage, terms, hit.entities) if passage.strip() else "<i>(no abstract)</i>"
    links = [link(pubmed_url(hit.pmid), "PubMed"), escape(f"PMID {hit.pmid}")]
    if hit.doi:
        links.append(link(doi_url(hit.doi), "DOI"))
    if hit.pmc:
        links.append(link(pmc_url(hit.pmc), "PMC"))
    links.append(escape(f"relevance {hit.score:.2f}"))
    return (
        f'<div class="pubmed-rag-source" data-pmid="{escape(hit.pmid)}" '
        f'data-year="{hit.year or ""}" style="margin-bottom:0.2rem">'
        f"<div><b>{number}.</b> {title} {flags}</div>"
        f'<div style="font-size:0.9em;opacity:0.85">{details}</div>'
        f'<div style="margin:2px 0">{kinds}</div>'
        f'<div style="font-size:0.92em;margin:4px 0">{body}</div>'
        f"{entities_html(hit)}"
        f'<div style="font-size:0.85em">{" · ".join(links)}</div>'
        "</div>"
    )


def year_counts(hits: Iterable[Hit]) -> dict[int, int]:
    """Articles per publication year, every year between the first and the last included."""
    counts: dict[int, int] = {}
    for hit in hits:
        if hit.year:
            counts[hit.year] = counts.get(hit.year, 0) + 1
    if not counts:
        return {}
    return {year: counts.get(year, 0) for year in range(min(counts), max(counts) + 1)}


_SUPPORT_STYLE = {
    "supported": ("supported", "rgba(22,163,74,0.30)"),
    "weak": ("weak support", "rgba(234,179,8,0.40)"),
    "unsupported": ("unsupported", "rgba(220,38,38,0.35)"),
    # Louder than "unsupported": the cited abstract says the opposite (rag.support).
    CONTRADICTED: ("contradicted", "rgba(220,38,38,0.85);color:white;font-weight:600"),
}


def support_badge(support: str) -> str:
    """The label of a support verdict as a coloured badge."""
    text, background = _SUPPORT_STYLE.get(support, (support, "rgba(128,128,128,0.2)"))
    return f'<span class="pubmed-rag-support" data-support="{escape(support)}">' + (
        badge(text, background) + "</span>"
    )


def evidence_html(evidence: Sequence[Evidence], sources: Sequence[Hit]) -> str:
    """Key evidence: each quote in quotation marks, its section, and its numbered PMID link."""
    numbers = {hit.pmid: index for index, hit in enumerate(sources, start=1)}
    items = []
    for item in evidence:
        number = numbers.get(item.pmid)
        label = f"[{number}]" if number else f"[PMID:{item.pmid}]"
        section = f"{badge(item.section.title())} " if item.section else ""
        items.append(
            f'<li class="pubmed-rag-evidence" data-pmid="{escape(item.pmid)}" '
            'style="margin-bottom:0.35rem">'
            f"{section}“{escape(item.text)}” "
            f"{link(pubmed_url(item.pmid), label, f'PMID {item.pmid}')}</li>"
        )
    return f'<ul style="padding-left:1.2rem;margin:0">{"".join(items)}</ul>'


def sentences_html(sentences: Sequence[AnswerSentence], sources: Sequence[Hit]) -> str:
    """A checked answer: each sentence with its citations, support badge and the quote."""
    parts = []
    for sentence in sentences:
        quote = ""
        if sentence.quote:
            where = f"PMID {sentence.quote_pmid}"
            if sentence.support == CONTRADICTED:
                why = f" ({sentence.conflict})" if sentence.conflict else ""
                where = f"PMID {sentence.quote_pmid} says otherwise{why}"
            quote = (
                '<div style="font-size:0.85em;opacity:0.8;margin:2px 0 0 1rem">'
                f"{escape(where)}: “{escape(sentence.quote)}”</div>"
            )
        added = badge("citation added by the check") if sentence.attributed else ""
        parts.append(
            '<div class="pubmed-rag-sentence" style="margin-bottom:0.5rem">'
            f"{answer_html(sentence.text, sources)} {support_badge(sentence.support)}{added}"
            f"{quote}</div>"
        )
    return "".join(parts)
