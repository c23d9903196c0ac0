"""Study design and population of a record, from its own publication types and MeSH terms.

Pure and table-driven: :data:`LEVELS` lists the designs strongest first, each with the PubMed
publication types and MeSH descriptors that mark it; :func:`evidence_level` picks the first
(strongest) one that applies. The ordering follows the usual evidence pyramid, with reviews,
comments and preprints below primary studies because they report no new design of their own:

    meta-analysis > systematic review > practice guideline > randomized controlled trial
    > clinical trial > cohort / case-control > case report > review > editorial / comment
    > preprint > other (unclassified)

Population comes from MeSH check tags (``Humans``, ``Animals``) and the descriptors of
laboratory work (``In Vitro Techniques``, cultured cells). Nothing is guessed from the text: a
record without these fields is "other" with no population, and an index built before these
columns existed reads as unknown (empty) until an update re-ingests the record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # article.py imports this module to fill its columns
    from indexing.article import Article


@dataclass(frozen=True, slots=True)
class Level:
    """One study design: its id (CLI, filters, columns), label and what marks it."""

    id: str
    label: str
    pubtypes: frozenset[str] = frozenset()
    mesh: frozenset[str] = frozenset()


def _level(id: str, label: str, pubtypes: tuple[str, ...], mesh: tuple[str, ...] = ()) -> Level:
    return Level(
        id, label, frozenset(t.lower() for t in pubtypes), frozenset(m.lower() for m in mesh)
    )


# Strongest first. "... as Topic" descriptors are about a design, not of one, so none is used.
LEVELS: tuple[Level, ...] = (
    _level("meta-analysis", "meta-analysis", ("Meta-Analysis", "Network Meta-Analysis")),
    _level("systematic-review", "systematic review", ("Systematic Review",)),
    _level(
        "guideline",
        "practice guideline",
        (
            "Practice Guideline",
            "Guideline",
            "Consensus Development Conference",
            "Consensus Development Conference, NIH",
        ),
    ),
    _level(
        "rct",
        "randomized controlled trial",
        ("Randomized Controlled Trial", "Randomized Controlled Trial, Veterinary"),
    ),
    _level(
        "clinical-trial",
        "clinical trial",
        (
            "Clinical Trial",
            "Clinical Trial, Phase I",
            "Clinical Trial, Phase II",
            "Clinical Trial, Phase III",
            "Clinical Trial, Phase IV",
            "Controlled Clinical Trial",
            "Pragmatic Clinical Trial",
            "Equivalence Trial",
            "Adaptive Clinical Trial",
            "Clinical Trial, Veterinary",
        ),
    ),
    _level(
        "cohort",
        "cohort / case-control",
        ("Observational Study", "Observational Study, Veterinary"),
        (
            "Cohort Studies",
            "Prospective Studies",
            "Retrospective Studies",
            "Longitudinal Studies",
            "Follow-Up Studies",
            "Case-Control Studies",
        ),
    ),
    _level("case-report", "case report", ("Case Reports",)),
    _level("review", "review", ("Review", "Scoping Review")),
    _level("editorial", "editorial / comment", ("Editorial", "Comment", "Letter", "News")),
    _level("preprint", "preprint", ("Preprint",)),
)
OTHER = Level("other", "other / unclassified")
BY_ID: dict[str, Level] = {level.id: level for level in (*LEVELS, OTHER)}
LEVEL_IDS: tuple[str, ...] = tuple(BY_ID)

# Population, from MeSH check tags and the descriptors of laboratory work.
POPULATIONS: dict[str, frozenset[str]] = {
    "humans": frozenset({"humans"}),
    "animals": frozenset({"animals"}),
    "in-vitro": frozenset(
        {"in vitro techniques", "cells, cultured", "cell line", "cell line, tumor"}
    ),
}
POPULATION_LABELS = {"humans": "humans", "animals": "animals", "in-vitro": "in vitro"}


def evidence_level(publication_types: tuple[str, ...], mesh_terms: tuple[str, ...]) -> Level:
    """The strongest design that the publication types or MeSH descriptors mark; else OTHER."""
    pubtypes = {value.strip().lower() for value in publication_types}
    mesh = {value.strip().lower() for value in mesh_terms}
    for level in LEVELS:
        if level.pubtypes & pubtypes or level.mesh & mesh:
            return level
    return OTHER


def population(mesh_terms: tuple[str, ...]) -> tuple[str, ...]:
    """Populations a record's MeSH says it studied (``humans``, ``animals``, ``in-vitro``)."""
    mesh = {value.strip().lower() for value in mesh_terms}
    return tuple(name for name, marks in POPULATIONS.items() if marks & mesh)


def article_evidence(article: Article) -> tuple[Level, tuple[str, ...]]:
    """Design level and populations of a parsed record."""
    descriptors = tuple(heading.descriptor for heading in article.mesh_terms)
    return evidence_level(article.publication_types, descriptors), population(descriptors)


def strength(level_id: str | None) -> float:
    """1.0 for the strongest design down to 0.0 for other / unknown, evenly spaced."""
    ids = [level.id for level in LEVELS]
    if not level_id or level_id not in ids:
        return 0.0
    return (len(ids) - ids.index(level_id)) / len(ids)


def label(level_id: str | None) -> str:
    """Display label of a level id; ``""`` for rows indexed before levels existed."""
    level = BY_ID.get(level_id or "")
    return level.label if level else ""
