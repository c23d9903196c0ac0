"""The Article record and how it becomes txtai documents (passages with metadata).

Everything the parser knows about a PubMed record lands in :class:`Article`; everything the
index stores per passage is produced by :func:`article_documents`. Readers (``rag``) rely on the
column names defined here, so they are the contract between the write and the read side.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

from indexing.evidence_level import article_evidence
from indexing.links import pubmed_url

# Separator for list-valued metadata columns. Values are stored as "|a|b|" so that a filter
# can match one whole element with `LIKE '%|a|%'` and never a substring of another element.
LIST_SEP = "|"
# Version of the columns derived from a record (evidence level, population, cites). Part of the
# fingerprint, so raising it makes the next ingest or update re-derive every record it reads.
DERIVED_VERSION = 1


@dataclass(frozen=True, slots=True)
class Author:
    """One entry of the AuthorList (a person or a collective)."""

    last_name: str = ""
    fore_name: str = ""
    initials: str = ""
    collective: str = ""
    orcid: str = ""
    affiliations: tuple[str, ...] = ()

    @property
    def display(self) -> str:
        """``Smith JA`` for a person, the group's name for a collective."""
        if self.collective:
            return self.collective
        return f"{self.last_name} {self.initials}".strip() or self.fore_name


@dataclass(frozen=True, slots=True)
class MeshHeading:
    """A MeSH descriptor with its major-topic flag and qualifiers."""

    descriptor: str
    ui: str = ""
    major: bool = False
    qualifiers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AbstractSection:
    """One ``AbstractText`` element: structured abstracts have several, with labels."""

    text: str
    label: str = ""
    category: str = ""


@dataclass(frozen=True, slots=True)
class Article:
    """A parsed PubMed citation (``PubmedArticle`` or old-style ``MedlineCitation``)."""

    pmid: str
    title: str
    abstract: tuple[AbstractSection, ...] = ()
    authors: tuple[Author, ...] = ()
    journal: str = ""
    journal_iso: str = ""
    pub_date: str = ""  # as printed by PubMed: "2021 Mar 5", "2021 Spring", "1998 Dec-1999 Jan"
    year: int | None = None
    doi: str = ""
    pmc: str = ""
    mesh_terms: tuple[MeshHeading, ...] = ()
    keywords: tuple[str, ...] = ()
    publication_types: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    retraction_in: tuple[str, ...] = ()  # PMIDs of retraction notices (CommentsCorrections)
    erratum_in: tuple[str, ...] = ()  # PMIDs of errata
    # PMIDs this record cites or comments on (CommentsCorrections Cites/CommentOn/UpdateOf,
    # and the PubMed ids of its ReferenceList): a hit citing a retracted one is flagged.
    cites: tuple[str, ...] = ()
    # Entities NLM's indexers attached to the record (facets that need no model): substances
    # of the ChemicalList, symbols of the GeneSymbolList (records of 1991-1995 mostly) and the
    # supplementary concepts of the SupplMeshList (rare diseases, organisms, protocols).
    chemicals: tuple[str, ...] = ()
    genes: tuple[str, ...] = ()
    concepts: tuple[str, ...] = ()
    edat: str = ""  # Entrez date, ISO "YYYY-MM-DD" (PubMedPubDate PubStatus="entrez" / "pubmed")
    mdat: str = ""  # last revision, ISO "YYYY-MM-DD" (DateRevised)
    version: int = 1  # PMID Version attribute
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def has_abstract(self) -> bool:
        """Whether the record carries any abstract text."""
        return any(section.text.strip() for section in self.abstract)

    @property
    def retracted(self) -> bool:
        """Retracted: a "Retracted Publication" type or a ``RetractionIn`` link."""
        return bool(self.retraction_in) or "Retracted Publication" in self.publication_types

    @property
    def abstract_text(self) -> str:
        """The abstract as one text, structured sections prefixed with their labels."""
        parts = []
        for section in self.abstract:
            text = section.text.strip()
            if text:
                parts.append(f"{section.label}: {text}" if section.label else text)
        return "\n".join(parts)

    @property
    def url(self) -> str:
        """The PubMed page of the record."""
        return pubmed_url(self.pmid)

    def fingerprint(self) -> str:
        """A digest of everything indexed: equal fingerprints mean re-indexing changes nothing."""
        payload = asdict(self)
        payload.pop("extra", None)
        # Derived columns count as indexed: a new derivation table re-indexes re-ingested records.
        payload["derived"] = DERIVED_VERSION
        encoded = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(encoded.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class TaggedEntities:
    """What a named-entity tagger found in an article's title and abstract (:mod:`indexing.ner`).

    Derived at ingest, never part of the record or its fingerprint: an index records which
    model tagged it, and an update with another model is refused.
    """

    chemicals: tuple[str, ...] = ()
    diseases: tuple[str, ...] = ()
    genes: tuple[str, ...] = ()


# The metadata column of each kind of tagged entity (the rag side's facets read these).
NER_COLUMNS = {"chemicals": "ner_chemicals", "diseases": "ner_diseases", "genes": "ner_genes"}


@dataclass(frozen=True, slots=True)
class Deletion:
    """A ``<DeleteCitation>`` block: these PMIDs must leave the index, in file order."""

    pmids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Skipped:
    """A record that was not indexed (book record, malformed record) and why."""

    reason: str
    pmid: str = ""


def join_list(values: tuple[str, ...] | list[str]) -> str:
    """``("a", "b")`` → ``"|a|b|"``; empty → ``""``. See :data:`LIST_SEP`."""
    cleaned = [value.replace(LIST_SEP, "/").strip() for value in values if value and value.strip()]
    return f"{LIST_SEP}{LIST_SEP.join(cleaned)}{LIST_SEP}" if cleaned else ""


def split_list(value: str | None) -> list[str]:
    """Inverse of :func:`join_list`."""
    return [item for item in (value or "").split(LIST_SEP) if item]


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[])")
# Word-piece tokens per whitespace word in biomedical English (PubMedBERT vocabulary), measured
# on the sample abstracts; used to stay under the encoder window without loading a tokenizer.
TOKENS_PER_WORD = 1.5


def split_passages(text: str, max_tokens: int) -> list[str]:
    """Split text into passages of at most about ``max_tokens`` tokens, on sentence bounds.

    Pure and deterministic, so passage ids stay stable for an unchanged abstract. A single
    sentence longer than the budget is cut on word bounds.
    """
    budget = max(8, int(max_tokens / TOKENS_PER_WORD))
    passages: list[str] = []
    current: list[str] = []
    size = 0
    for line in text.split("\n"):
        for sentence in _SENTENCE_END.split(line.strip()):
            words = sentence.split()
            while len(words) > budget:  # a run-on "sentence" (tables, lists): cut on words
                if current:
                    passages.append(" ".join(current))
                    current, size = [], 0
                passages.append(" ".join(words[:budget]))
                words = words[budget:]
            if not words:
                continue
            if size + len(words) > budget and current:
                passages.append(" ".join(current))
                current, size = [], 0
            current.extend(words)
            size += len(words)
    if current:
        passages.append(" ".join(current))
    return passages


def passage_id(pmid: str, number: int) -> str:
    """Stable id of passage ``number`` of a PMID: ``"12345#0"``."""
    return f"{pmid}#{number}"


def article_documents(
    article: Article,
    max_tokens: int,
    sources: tuple[str, ...] = (),
    tagged: TaggedEntities | None = None,
) -> Iterator[dict]:
    """The txtai documents (one per passage) that index an article.

    ``text`` is what is embedded and BM25-scored (title + passage); the other keys are metadata
    columns for filters and display. ``sources`` names where the record came from (tracked
    queries, files) so that an update can tell which records a query no longer returns.
    ``tagged`` fills the :data:`NER_COLUMNS` (empty without a tagger).
    """
    tagged = tagged or TaggedEntities()
    body = article.abstract_text
    level, populations = article_evidence(article)
    passages = split_passages(body, max_tokens) if body else [""]
    meta = {
        "pmid": article.pmid,
        "title": article.title,
        "journal": article.journal,
        "journal_iso": article.journal_iso,
        "year": article.year,
        "pub_date": article.pub_date,
        "authors": "; ".join(author.display for author in article.authors if author.display),
        "pubtypes": join_list(article.publication_types),
        "mesh": join_list([heading.descriptor for heading in article.mesh_terms]),
        "mesh_major": join_list([h.descriptor for h in article.mesh_terms if h.major]),
        "keywords": join_list(article.keywords),
        "lang": join_list(article.languages),
        "doi": article.doi,
        "pmc": article.pmc,
        "retracted": int(article.retracted),
        "evidence": level.id,
        "population": join_list(list(populations)),
        "cites": join_list(list(article.cites)),
        "chemicals": join_list(article.chemicals),
        "genes": join_list(article.genes),
        "concepts": join_list(article.concepts),
        **{column: join_list(getattr(tagged, kind)) for kind, column in NER_COLUMNS.items()},
        "has_abstract": int(article.has_abstract),
        "edat": article.edat,
        "mdat": article.mdat,
        "fingerprint": article.fingerprint(),
        "sources": join_list(list(sources)),
        "passages": len(passages),
    }
    for number, passage in enumerate(passages):
        text = f"{article.title}\n{passage}".strip()
        yield {"id": passage_id(article.pmid, number), "text": text, "passage": number, **meta}
