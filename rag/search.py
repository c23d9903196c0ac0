"""Hybrid search over the published index: BM25 + dense, metadata filters, one hit per article.

The user's text only ever travels as a bound parameter (``similar(:query, ...)``); the SQL text
is assembled from the fixed column list and the filter clauses below, never from input.

Ranking. We run txtai twice over the same filtered SQL, once dense-only (``weights=1``) and
once BM25-only (``weights=0``), at the same time where the backend can
(:meth:`PublishedIndex.search_sides`), and fuse per passage::

    score = w * dense_cosine + (1 - w) * bm25_normalised        (w = hybrid_weight)

which is what txtai 9.14 does itself for a hybrid index with normalised BM25 (its ``weights``
argument is ``[dense, sparse]``; a single float ``w`` means ``[w, 1 - w]``, convex fusion).
Doing it ourselves keeps both scores per hit: the dense cosine is an absolute measure of
relevance (used for abstention), while txtai's normalised BM25 is relative to the best match
of the same query and says nothing across queries.

Feedback (optional, :class:`Feedback`). A Rocchio step on the query vector: the best passages of
the top ``depth`` articles of the first ranking are encoded and their mean, times ``weight``, is
added to the query's vector; the dense side is searched again with that vector, the BM25 side
is kept, and the two are fused as above. It widens what the dense side finds (terms the
question did not use but its best answers share) at the cost of encoding ``depth`` passages.
"""

from __future__ import annotations

import time
import weakref
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from indexing import evidence_level
from indexing.article import NER_COLUMNS, join_list, split_list
from indexing.links import doi_url, pubmed_url
from indexing.store import IndexNotFoundError, IndexReader, PublishedIndex
from rag.errors import EmptyIndexError, EmptyQueryError, IndexMissingError, SearchError

if TYPE_CHECKING:
    from rag.rerank import LateInteraction, Reranker

COLUMNS = (
    "id",
    "text",
    "pmid",
    "title",
    "journal",
    "journal_iso",
    "year",
    "authors",
    "pubtypes",
    "mesh",
    "lang",
    "doi",
    "pmc",
    "retracted",
    "has_abstract",
    "evidence",
    "population",
    "cites",
    "chemicals",
    "genes",
    "concepts",
    *NER_COLUMNS.values(),
    "passage",
    "score",
)
# Candidate pools grow by this factor while filters or collapsing leave fewer than `limit` hits.
GROWTH = 8
DEFAULT_CANDIDATES = 100
# The pool stops growing here: a filter that matches nothing would otherwise scan the whole
# index, both retrievers, in ever larger rounds, on every search.
DEFAULT_MAX_CANDIDATES = 20000
DEFAULT_MAX_QUERY_CHARS = 1000
# "Rank stronger designs higher" adds at most this to a hit's fused score: a meta-analysis gets
# all of it, each weaker design (indexing.evidence_level.LEVELS) a tenth less, "other" none.
# Fused scores of the hits shown typically differ by more, so it reorders near-ties only.
EVIDENCE_BOOST = 0.05


@dataclass(frozen=True, slots=True)
class Feedback:
    """Pseudo-relevance feedback on the query vector (Rocchio): see the module docstring."""

    depth: int = 3  # top articles of the first ranking whose best passage feeds back
    weight: float = 0.5  # share of their mean vector added to the query's (unit) vector

    def __post_init__(self) -> None:
        if self.depth < 1 or self.weight < 0:
            raise ValueError(f"feedback needs depth >= 1 and weight >= 0, not {self}")

    @classmethod
    def chosen(cls, depth: int, weight: float) -> Feedback | None:
        """The feedback the settings ask for (``PUBMED_RAG_FEEDBACK_DOCS``; 0 = ``None``, off)."""
        return cls(depth, weight) if depth > 0 else None


class _Searchable(Protocol):
    def get(self) -> PublishedIndex: ...


def _contains(column: str, name: str) -> str:
    """SQL true when ``column`` contains parameter ``name``, ignoring (ASCII) case.

    ``instr`` rather than ``LIKE``: no wildcard in the user's value can widen the match, and
    txtai's SQL parser does not accept ``LIKE … ESCAPE``.
    """
    return f"instr(lower({column}), lower(:{name})) > 0"


# The list columns of entities, the facets of a result set: those NLM indexed the record with,
# then those a tagger found in its text at ingest (PUBMED_RAG_NER_MODEL; empty without one).
ENTITY_COLUMNS = ("chemicals", "genes", "concepts", *NER_COLUMNS.values())


@dataclass(frozen=True, slots=True)
class Filters:
    """Metadata filters; ``None``/``False`` means "no constraint".

    Text filters are case-insensitive (ASCII). ``journal`` matches a part of the journal's
    title or ISO abbreviation; ``pubtype``, ``mesh`` and ``lang`` match one whole element of
    the article's publication types, MeSH descriptors and languages (``eng``, ``fre``…).
    ``entity`` matches one whole substance, gene symbol or supplementary concept that NLM
    indexed the record with (ChemicalList, GeneSymbolList, SupplMeshList), or one whole
    chemical, disease or gene a tagger found in its text at ingest.
    """

    year_from: int | None = None
    year_to: int | None = None
    journal: str | None = None
    pubtype: str | None = None
    mesh: str | None = None
    lang: str | None = None
    has_abstract: bool = False
    exclude_retracted: bool = False
    evidence: tuple[str, ...] = ()
    humans: bool = False
    entity: str | None = None

    def __post_init__(self) -> None:
        unknown = [level for level in self.evidence if level not in evidence_level.LEVEL_IDS]
        if unknown:
            raise SearchError(
                f"unknown evidence level {', '.join(map(repr, unknown))}: choose from "
                + ", ".join(evidence_level.LEVEL_IDS)
            )
        if (
            self.year_from is not None
            and self.year_to is not None
            and self.year_from > self.year_to
        ):
            raise SearchError(
                f"year range is empty: from {self.year_from} is after to {self.year_to}"
            )

    @property
    def active(self) -> bool:
        """Whether any constraint is set."""
        return any(value not in (None, False, "", ()) for value in asdict(self).values())

    def to_sql(self) -> tuple[str, dict[str, Any]]:
        """The ``AND …`` clauses and their bound parameters (values never enter the SQL)."""
        clauses: list[str] = []
        params: dict[str, Any] = {}
        if self.year_from is not None:
            clauses.append("year >= :year_from")
            params["year_from"] = int(self.year_from)
        if self.year_to is not None:
            clauses.append("year <= :year_to")
            params["year_to"] = int(self.year_to)
        if self.journal and self.journal.strip():
            clauses.append(
                f"({_contains('journal', 'journal')} OR {_contains('journal_iso', 'journal')})"
            )
            params["journal"] = self.journal.strip()
        for name in ("pubtype", "mesh", "lang"):
            value = getattr(self, name)
            if value and value.strip():
                column = "pubtypes" if name == "pubtype" else name
                # "|a|b|" columns: "|value|" matches one whole element, never a substring
                clauses.append(_contains(column, name))
                params[name] = join_list([value.strip()])
        if self.has_abstract:
            clauses.append("has_abstract = 1")
        if self.exclude_retracted:
            clauses.append("retracted = 0")
        if self.evidence:
            names = [f"evidence{number}" for number in range(len(self.evidence))]
            clauses.append("(" + " OR ".join(f"evidence = :{name}" for name in names) + ")")
            params.update(zip(names, self.evidence, strict=True))
        if self.humans:
            clauses.append(_contains("population", "population"))
            params["population"] = join_list(["humans"])
        if self.entity and self.entity.strip():
            columns = [_contains(column, "entity") for column in ENTITY_COLUMNS]
            clauses.append("(" + " OR ".join(columns) + ")")
            params["entity"] = join_list([self.entity.strip()])
        return "".join(f" AND {clause}" for clause in clauses), params


@dataclass(frozen=True, slots=True)
class Hit:
    """One article found by a search, with its best-matching passage."""

    pmid: str
    title: str
    journal: str
    year: int | None
    authors: str
    pubtypes: tuple[str, ...]
    mesh: tuple[str, ...]
    doi: str
    pmc: str
    retracted: bool
    has_abstract: bool
    score: float  # fused hybrid score, what hits are ranked by
    passage: str  # the best passage's text (without the title)
    passage_id: str  # "pmid#n"
    dense_score: float = 0.0  # cosine similarity of that passage to the query
    bm25_score: float = 0.0  # txtai's normalised BM25 (0..1, relative to the query's best)
    languages: tuple[str, ...] = ()
    evidence: str = ""  # design level id (indexing.evidence_level); "" = indexed before levels
    population: tuple[str, ...] = ()  # "humans", "animals", "in-vitro" (MeSH)
    cites: tuple[str, ...] = ()  # PMIDs the record cites (CommentsCorrections, references)
    cites_retracted: tuple[str, ...] = ()  # those of them retracted in this index
    chemicals: tuple[str, ...] = ()  # ChemicalList substances
    genes: tuple[str, ...] = ()  # GeneSymbolList symbols
    concepts: tuple[str, ...] = ()  # SupplMeshList concepts
    # Found in the title and abstract by the ingest's tagger (indexing.ner), if it had one.
    ner_chemicals: tuple[str, ...] = ()
    ner_diseases: tuple[str, ...] = ()
    ner_genes: tuple[str, ...] = ()
    rerank_score: float | None = None  # the cross-encoder's score (rag.rerank); None = not rescored

    @property
    def entities(self) -> tuple[str, ...]:
        """Every entity name of the article, from the record and from the tagger."""
        return tuple(name for column in ENTITY_COLUMNS for name in getattr(self, column))

    @property
    def evidence_label(self) -> str:
        """The design level as shown ("randomized controlled trial"); ``""`` when unknown."""
        return evidence_level.label(self.evidence)

    @property
    def url(self) -> str:
        """The PubMed page of the article."""
        return pubmed_url(self.pmid)

    @property
    def doi_url(self) -> str:
        """The DOI link, or ``""`` without a DOI."""
        return doi_url(self.doi)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``--json`` output, the app's tables)."""
        data = asdict(self)
        data.update(
            pubtypes=list(self.pubtypes),
            mesh=list(self.mesh),
            languages=list(self.languages),
            population=list(self.population),
            cites_retracted=list(self.cites_retracted),
            chemicals=list(self.chemicals),
            genes=list(self.genes),
            concepts=list(self.concepts),
            **{column: list(getattr(self, column)) for column in NER_COLUMNS.values()},
            evidence_label=self.evidence_label,
            score=round(self.score, 4),
            dense_score=round(self.dense_score, 4),
            bm25_score=round(self.bm25_score, 4),
            url=self.url,
        )
        del data["cites"]  # long reference lists; what matters is cites_retracted
        return data


@dataclass(frozen=True, slots=True)
class SearchResult:
    """Hits best first, and how the search went."""

    hits: tuple[Hit, ...]
    elapsed_ms: float
    index_version: str
    query: str  # the text actually searched (trimmed when too long)
    filters: Filters = field(default_factory=Filters)
    notices: tuple[str, ...] = ()  # things the user should know (query trimmed, …)
    embeddings_model: str = ""

    @property
    def best_dense(self) -> float:
        """Highest dense cosine among the hits (``-1.0`` without hits)."""
        return max((hit.dense_score for hit in self.hits), default=-1.0)


def prepare_query(query: str, max_chars: int = DEFAULT_MAX_QUERY_CHARS) -> tuple[str, list[str]]:
    """Normalise whitespace and trim an over-long query on a word bound.

    Raises:
        EmptyQueryError: nothing but whitespace.
    """
    text = " ".join((query or "").replace("\x00", " ").split())
    if not text:
        raise EmptyQueryError("the query is empty: type a question or some search terms")
    notices = []
    if len(text) > max_chars:
        cut = text[:max_chars]
        cut = cut.rsplit(" ", 1)[0] if " " in cut[max_chars // 2 :] else cut
        notices.append(
            f"the query was {len(text)} characters long; only the first {len(cut)} were searched"
        )
        text = cut
    return text, notices


def search(
    source: IndexReader | PublishedIndex | _Searchable,
    query: str,
    filters: Filters | None = None,
    limit: int = 10,
    weight: float = 0.5,
    *,
    candidates: int = DEFAULT_CANDIDATES,
    max_query_chars: int = DEFAULT_MAX_QUERY_CHARS,
    max_candidates: int = DEFAULT_MAX_CANDIDATES,
    evidence_boost: float = 0.0,
    reranker: Reranker | LateInteraction | None = None,
    feedback: Feedback | None = None,
) -> SearchResult:
    """Hybrid BM25 + dense search with filters; one hit per article, best passage wins.

    Args:
        source: the reader (the current published version is taken) or one version.
        query: the user's text; it is searched as text, never run as SQL.
        filters: metadata constraints.
        limit: most articles returned.
        weight: dense weight in the fused score (0 = BM25 only, 1 = dense only).
        candidates: passages first pulled from each retriever; grown while too few remain.
        max_query_chars: longer queries are trimmed (a notice says so).
        max_candidates: the pool grows no further; a search it stops with fewer than
            ``limit`` hits says that results may be incomplete (a notice).
        evidence_boost: added to the fused score times the design's strength (0 = off; the
            app's "rank stronger designs higher" uses :data:`EVIDENCE_BOOST`).
        reranker: a second stage (:class:`rag.rerank.Reranker`, a cross-encoder, or
            :class:`rag.rerank.LateInteraction`) that reorders the first stage's top
            ``reranker.depth`` articles; ``None`` = off.
        feedback: a Rocchio step on the query vector before the final fusion; ``None`` = off.

    Raises:
        EmptyQueryError: the query is blank.
        IndexMissingError: nothing has been published yet.
        EmptyIndexError: the published index holds no articles.
    """
    started = time.perf_counter()
    filters = filters or Filters()
    text, notices = prepare_query(query, max_query_chars)
    index = published_index(source)
    if index.embeddings is None or not index.manifest.articles:
        raise EmptyIndexError(
            f"the index (version {index.version}) holds no articles yet; add some with "
            "`python -m indexing ingest`"
        )
    where, params = filters.to_sql()
    total = max(int(index.manifest.passages), 1)
    cap = min(max(max_candidates, candidates, limit), total)
    wanted = max(limit, reranker.depth) if reranker is not None else limit
    pool = min(max(candidates, wanted), cap)
    while True:
        hits = collapse(_fused(index, text, where, params, pool, weight, feedback), evidence_boost)
        if len(hits) >= wanted or pool >= cap:
            break
        pool = min(pool * GROWTH, cap)
    if reranker is not None:
        hits, _ = reranker.rerank(text, hits, index)
    if len(hits) < limit and pool < total:
        notices.append(
            f"Only the {pool:,} best-matching of {total:,} passages were searched "
            f"({'with these filters' if filters.active else 'for this query'}); results may be "
            "incomplete. Narrow the query or loosen the filters (PUBMED_RAG_MAX_CANDIDATES)."
        )
    elapsed = (time.perf_counter() - started) * 1000
    return SearchResult(
        hits=mark_cited_retractions(index, hits[:limit]),
        elapsed_ms=elapsed,
        index_version=index.version,
        query=text,
        filters=filters,
        notices=tuple(notices),
        embeddings_model=index.manifest.embeddings_model,
    )


def published_index(source: IndexReader | PublishedIndex | _Searchable) -> PublishedIndex:
    """The version a search reads: ``source`` itself, or the reader's current one.

    Raises:
        IndexMissingError: nothing has been published yet.
    """
    if isinstance(source, PublishedIndex):
        return source
    try:
        return source.get()
    except IndexNotFoundError as exc:
        raise IndexMissingError(str(exc)) from exc


def _fused(
    index: PublishedIndex,
    text: str,
    where: str,
    params: dict[str, Any],
    pool: int,
    weight: float,
    feedback: Feedback | None = None,
) -> list[tuple[float, float, float, dict[str, Any]]]:
    """``(score, dense, bm25, row)`` per passage found by either retriever."""
    sql = f"SELECT {', '.join(COLUMNS)} FROM txtai WHERE similar(:query, :candidates){where}"
    bound = {**params, "query": text, "candidates": pool}
    # With feedback the query is encoded here once: its vector searches and is fed back.
    vector = unit(encode(index, [text], "query")[0]) if feedback is not None else None
    if weight < 1.0:  # both sides, at once where the backend can; weight 0 keeps the cosines
        dense_rows, sparse_rows = index.search_sides(sql, pool, bound, dense_query=vector)
    else:
        query = text if vector is None else vector
        dense_rows, sparse_rows = index.search(sql, pool, {**bound, "query": query}, 1.0), []
    dense = {row["id"]: row for row in dense_rows}
    sparse = {row["id"]: row for row in sparse_rows}
    fused = _fuse(dense, sparse, weight)
    if feedback is None or vector is None or not fused:
        return fused
    vector = feedback_vector(index, vector, collapse(fused)[: feedback.depth], feedback.weight)
    dense = {
        row["id"]: row for row in index.search(sql, pool, {**bound, "query": vector}, weights=1.0)
    }
    return _fuse(dense, sparse, weight)


def _fuse(
    dense: dict[str, dict[str, Any]], sparse: dict[str, dict[str, Any]], weight: float
) -> list[tuple[float, float, float, dict[str, Any]]]:
    fused = []
    for uid in dense.keys() | sparse.keys():
        row = dense.get(uid) or sparse[uid]
        cosine = float(dense[uid]["score"]) if uid in dense else 0.0
        bm25 = float(sparse[uid]["score"]) if uid in sparse else 0.0
        fused.append((weight * cosine + (1.0 - weight) * bm25, cosine, bm25, row))
    return fused


def feedback_vector(
    index: PublishedIndex, query: np.ndarray, top: Sequence[Hit], weight: float
) -> np.ndarray:
    """The query's unit vector plus ``weight`` times the mean vector of ``top``'s best
    passages, scaled to unit length again (Rocchio with the original query kept whole)."""
    passages = [f"{hit.title}\n{hit.passage}".strip() for hit in top]
    moved = unit(query)
    if passages and weight > 0:
        moved = moved + weight * encode(index, passages, "data").mean(axis=0)
    return unit(moved)


def unit(vector: np.ndarray) -> np.ndarray:
    """``vector`` scaled to unit length, as float32 (a zero vector stays zero)."""
    norm = float(np.linalg.norm(vector))
    return (vector / norm if norm > 0 else vector).astype(np.float32)


def collapse(
    rows: Iterable[tuple[float, float, float, dict[str, Any]]], evidence_boost: float = 0.0
) -> list[Hit]:
    """``(score, dense, bm25, row)`` per passage → one hit per article (best passage), best first.

    ``evidence_boost`` > 0 adds that much times the design's strength to each score.
    """
    best: dict[str, Hit] = {}
    for fused, cosine, bm25, row in rows:
        score = fused + evidence_boost * evidence_level.strength(row.get("evidence"))
        pmid = str(row["pmid"])
        current = best.get(pmid)
        if current is None or score > current.score:
            best[pmid] = _hit(row, score, cosine, bm25)
        elif current is not None and cosine > current.dense_score:
            # Keep the article's best cosine too: abstention must not depend on which
            # passage won the fused ranking.
            best[pmid] = _replace_dense(current, cosine)
    return sorted(best.values(), key=lambda hit: (-hit.score, hit.pmid))


def _replace_dense(hit: Hit, cosine: float) -> Hit:
    data = {name: getattr(hit, name) for name in hit.__dataclass_fields__}
    data["dense_score"] = cosine
    return Hit(**data)


def _hit(row: dict[str, Any], score: float, cosine: float, bm25: float) -> Hit:
    title = str(row.get("title") or "")
    text = str(row.get("text") or "")
    passage = text[len(title) :].lstrip("\n") if title and text.startswith(title) else text
    year = row.get("year")
    return Hit(
        pmid=str(row["pmid"]),
        title=title,
        journal=str(row.get("journal") or ""),
        year=int(year) if year not in (None, "") else None,
        authors=str(row.get("authors") or ""),
        pubtypes=tuple(split_list(row.get("pubtypes"))),
        mesh=tuple(split_list(row.get("mesh"))),
        doi=str(row.get("doi") or ""),
        pmc=str(row.get("pmc") or ""),
        retracted=bool(int(row.get("retracted") or 0)),
        has_abstract=bool(int(row.get("has_abstract") or 0)),
        score=score,
        passage=passage,
        passage_id=str(row["id"]),
        dense_score=cosine,
        bm25_score=bm25,
        languages=tuple(split_list(row.get("lang"))),
        evidence=str(row.get("evidence") or ""),
        population=tuple(split_list(row.get("population"))),
        cites=tuple(split_list(row.get("cites"))),
        chemicals=tuple(split_list(row.get("chemicals"))),
        genes=tuple(split_list(row.get("genes"))),
        concepts=tuple(split_list(row.get("concepts"))),
        ner_chemicals=tuple(split_list(row.get(NER_COLUMNS["chemicals"]))),
        ner_diseases=tuple(split_list(row.get(NER_COLUMNS["diseases"]))),
        ner_genes=tuple(split_list(row.get(NER_COLUMNS["genes"]))),
    )


def entity_counts(hits: Sequence[Hit], top: int = 10) -> dict[str, list[tuple[str, int]]]:
    """Per entity kind, the ``top`` entities of a result set and how many hits carry each.

    Names that differ in case only count as one (a tagger keeps each article's spelling:
    "Glucose" opening a sentence, "glucose" in the next article), shown as most hits spell it.
    """
    counts: dict[str, list[tuple[str, int]]] = {}
    for kind in ENTITY_COLUMNS:
        spellings: dict[str, Counter[str]] = {}
        for hit in hits:
            names = {name.casefold(): name for name in reversed(getattr(hit, kind))}
            for key, name in names.items():
                spellings.setdefault(key, Counter())[name] += 1
        tally = [(spelled.most_common(1)[0][0], spelled.total()) for spelled in spellings.values()]
        counts[kind] = sorted(tally, key=lambda item: (-item[1], item[0].lower()))[:top]
    return counts


def mark_cited_retractions(index: PublishedIndex, hits: Sequence[Hit]) -> tuple[Hit, ...]:
    """``hits`` with ``cites_retracted`` set: the PMIDs each cites that this index has retracted.

    Checked at read time against the version being read, so a cited article retracted (and
    re-ingested) after the citing one was indexed is caught without re-indexing the citer.
    """
    if not any(hit.cites for hit in hits):
        return tuple(hits)
    retracted = retracted_pmids(index)
    marked = []
    for hit in hits:
        found = tuple(pmid for pmid in hit.cites if pmid in retracted)
        data = {name: getattr(hit, name) for name in hit.__dataclass_fields__}
        marked.append(Hit(**{**data, "cites_retracted": found}) if found else hit)
    return tuple(marked)


# PMIDs of retracted articles per published version (versions are immutable, so it never goes
# stale); weak keys let a closed version's set go with it.
_RETRACTED: weakref.WeakKeyDictionary[PublishedIndex, frozenset[str]] = weakref.WeakKeyDictionary()


def retracted_pmids(index: PublishedIndex) -> frozenset[str]:
    """The PMIDs of the retracted articles in one version, read once per version."""
    cached = _RETRACTED.get(index)
    if cached is None:
        limit = max(int(index.manifest.passages), 1)
        rows = index.search("SELECT pmid FROM txtai WHERE retracted = 1", limit)
        cached = frozenset(str(row["pmid"]) for row in rows)
        _RETRACTED[index] = cached
    return cached


def article_texts(
    source: IndexReader | PublishedIndex | _Searchable, pmids: Iterable[str], limit: int = 400
) -> dict[str, str]:
    """The indexed abstract of each PMID (its passages in order, without the title).

    PMIDs go into bound parameters; at most ``limit`` passages are read in all.
    """
    wanted = [pmid for pmid in dict.fromkeys(pmids) if pmid]
    if not wanted:
        return {}
    index = published_index(source)
    names = [f"p{number}" for number in range(len(wanted))]
    where = " OR ".join(f"pmid = :{name}" for name in names)
    sql = f"SELECT id, text, title, pmid, passage FROM txtai WHERE {where}"
    rows = index.search(sql, limit, dict(zip(names, wanted, strict=True)))
    parts: dict[str, list[tuple[int, str]]] = {}
    for row in rows:
        title = str(row.get("title") or "")
        text = str(row.get("text") or "")
        body = text[len(title) :].lstrip("\n") if title and text.startswith(title) else text
        parts.setdefault(str(row["pmid"]), []).append((int(row.get("passage") or 0), body))
    return {
        pmid: "\n".join(body for _, body in sorted(parts[pmid])) for pmid in wanted if pmid in parts
    }


def encode(
    source: IndexReader | PublishedIndex | _Searchable, texts: Sequence[str], category: str
) -> np.ndarray:
    """Vectors of ``texts`` by the index's own encoder (``category``: ``query`` or ``data``)."""
    index = published_index(source)
    if index.embeddings is None or not texts:
        return np.zeros((0, int(index.manifest.dimensions or 1)), dtype=np.float32)
    with index.lock:
        return np.asarray(index.embeddings.batchtransform(list(texts), category), np.float32)
