"""Hybrid search over a real index of sample records: filters, collapsing, hostile input."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from indexing.article import Article
from indexing.evidence_level import article_evidence, strength
from indexing.settings import Settings
from indexing.store import IndexReader, PublishedIndex
from indexing.store.files import FileStore
from rag.errors import EmptyIndexError, EmptyQueryError, IndexMissingError, SearchError
from rag.search import EVIDENCE_BOOST, Filters, search
from tests.fixtures_index import (
    CASE_TWIN_PMID,
    CITED_PMID,
    CITING_PMIDS,
    RCT_PMID,
    RETRACTED_PMID,
    SampleIndex,
    build_index,
    design_index,
    rag_env,
    sample_index,
)

__all__ = ["design_index", "rag_env", "sample_index"]

ALL = 500  # more than the index holds: "give me every match"
BROAD = "disease treatment outcomes in patients"


@pytest.fixture(scope="module")
def reader(sample_index: SampleIndex) -> IndexReader:
    return IndexReader(sample_index.settings())


def _mesh(article: Article) -> set[str]:
    return {heading.descriptor.lower() for heading in article.mesh_terms}


# (filters, what an article must satisfy to match them)
FILTER_CASES: dict[str, tuple[Filters, Callable[[Article], bool]]] = {
    "year_from": (Filters(year_from=2024), lambda a: a.year is not None and a.year >= 2024),
    "year_to": (Filters(year_to=2014), lambda a: a.year is not None and a.year <= 2014),
    "year_range": (
        Filters(year_from=2020, year_to=2021),
        lambda a: a.year is not None and 2020 <= a.year <= 2021,
    ),
    "journal": (
        Filters(journal="physics in medicine"),
        lambda a: "physics in medicine" in a.journal.lower(),
    ),
    "journal_iso": (
        Filters(journal="Arq Gastroenterol"),
        lambda a: "arq gastroenterol" in a.journal_iso.lower(),
    ),
    "pubtype": (
        Filters(pubtype="review"),
        lambda a: "review" in {t.lower() for t in a.publication_types},
    ),
    "mesh": (Filters(mesh="Mice"), lambda a: "mice" in _mesh(a)),
    "lang": (Filters(lang="ger"), lambda a: "ger" in a.languages),
    "has_abstract": (Filters(has_abstract=True), lambda a: a.has_abstract),
    "exclude_retracted": (Filters(exclude_retracted=True), lambda a: not a.retracted),
    "evidence": (
        Filters(evidence=("meta-analysis", "systematic-review")),
        lambda a: article_evidence(a)[0].id in ("meta-analysis", "systematic-review"),
    ),
    "humans": (Filters(humans=True), lambda a: "humans" in _mesh(a)),
    "combined": (
        Filters(year_from=2022, pubtype="Review", mesh="Humans", has_abstract=True),
        lambda a: (
            a.year is not None
            and a.year >= 2022
            and "Review" in a.publication_types
            and "humans" in _mesh(a)
            and a.has_abstract
        ),
    ),
}


@pytest.mark.parametrize("case", sorted(FILTER_CASES))
def test_each_filter_returns_exactly_the_matching_articles(
    reader: IndexReader, sample_index: SampleIndex, case: str
) -> None:
    filters, matches = FILTER_CASES[case]
    expected = {pmid for pmid, article in sample_index.articles.items() if matches(article)}
    assert 0 < len(expected) < len(sample_index.articles), "the case must actually filter"

    result = search(reader, BROAD, filters, limit=ALL)

    found = {hit.pmid for hit in result.hits}
    assert found, "some article must match"
    for hit in result.hits:
        assert matches(sample_index.articles[hit.pmid]), hit.pmid
    # Nothing that matches is lost: every matching article the unfiltered search finds
    # (txtai drops passages whose scores are <= 0) is found with the filter too.
    unfiltered = {hit.pmid for hit in search(reader, BROAD, limit=ALL).hits}
    assert found == unfiltered & expected


def test_pubtype_and_mesh_match_whole_elements_not_substrings(reader: IndexReader) -> None:
    # "Review" is a substring of "Systematic Review"; "Mice" of "Mice, Inbred C57BL".
    assert search(reader, "review", Filters(pubtype="Revie"), limit=ALL).hits == ()
    assert search(reader, "mice", Filters(mesh="Mic"), limit=ALL).hits == ()


def test_retracted_article_is_found_without_the_filter_and_removed_with_it(
    reader: IndexReader,
) -> None:
    query = "safety of long-term proton pump inhibitors"
    plain = search(reader, query, limit=5)
    assert plain.hits[0].pmid == RETRACTED_PMID
    assert plain.hits[0].retracted

    filtered = search(reader, query, Filters(exclude_retracted=True), limit=ALL)
    assert RETRACTED_PMID not in {hit.pmid for hit in filtered.hits}
    assert filtered.hits


def test_restrictive_filter_finds_its_articles_even_with_few_candidates(
    reader: IndexReader, sample_index: SampleIndex
) -> None:
    expected = {p for p, a in sample_index.articles.items() if "nor" in a.languages}
    assert len(expected) == 1

    result = search(reader, "cancer", Filters(lang="nor"), limit=5, candidates=10)

    assert {hit.pmid for hit in result.hits} == expected


def _counting_searches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every retriever call's candidate pool, in order (txtai's own search still runs)."""
    pools: list[int] = []
    one, both = PublishedIndex.search, PublishedIndex.search_sides

    def counted(self: PublishedIndex, query: str, limit: int, *args: Any, **kwargs: Any) -> Any:
        pools.append(limit)
        return one(self, query, limit, *args, **kwargs)

    def counted_sides(self: PublishedIndex, query: str, limit: int, *args: Any, **kw: Any) -> Any:
        pools.extend((limit, limit))
        return both(self, query, limit, *args, **kw)

    monkeypatch.setattr(PublishedIndex, "search", counted)
    monkeypatch.setattr(PublishedIndex, "search_sides", counted_sides)
    return pools


def test_filter_matching_nothing_stops_at_the_candidate_bound_with_a_notice(
    reader: IndexReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    pools = _counting_searches(monkeypatch)

    result = search(
        reader, "cancer", Filters(lang="xxx"), limit=5, candidates=10, max_candidates=80
    )

    assert result.hits == ()
    assert pools == [10, 10, 80, 80]  # two rounds of both retrievers, then the bound
    assert any("results may be incomplete" in notice for notice in result.notices)


def test_filter_matching_nothing_under_the_bound_scans_all_and_says_nothing_more(
    reader: IndexReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    pools = _counting_searches(monkeypatch)
    total = reader.get().manifest.passages

    result = search(reader, "cancer", Filters(lang="xxx"), limit=5, candidates=10)

    assert result.hits == () and max(pools) == total
    assert not any("incomplete" in notice for notice in result.notices)


def test_passages_of_one_article_collapse_into_one_hit(
    reader: IndexReader, sample_index: SampleIndex
) -> None:
    result = search(reader, "patients treatment risk", limit=ALL)

    pmids = [hit.pmid for hit in result.hits]
    assert len(pmids) == len(set(pmids))
    assert len(pmids) > 100  # most of the 166 articles, each once
    scores = [hit.score for hit in result.hits]
    assert scores == sorted(scores, reverse=True)
    multi = [hit for hit in result.hits if hit.passage_id != f"{hit.pmid}#0"]
    assert multi, "some best passages must be later passages of long abstracts"
    for hit in result.hits:
        article = sample_index.articles[hit.pmid]
        assert hit.passage_id.startswith(f"{hit.pmid}#")
        assert " ".join(hit.passage.split()[:5]) in " ".join(article.abstract_text.split())


def test_hit_carries_the_articles_metadata(reader: IndexReader, sample_index: SampleIndex) -> None:
    hit = search(reader, "Helicobacter pylori infection treatment guideline", limit=1).hits[0]
    article = sample_index.articles[hit.pmid]

    assert "pylori" in hit.title.lower()
    assert hit.title == article.title
    assert hit.journal == article.journal
    assert hit.year == article.year
    assert hit.pubtypes == article.publication_types
    assert hit.mesh == tuple(heading.descriptor for heading in article.mesh_terms)
    assert hit.authors.split("; ")[0] == article.authors[0].display
    assert hit.doi == article.doi
    assert hit.url == f"https://pubmed.ncbi.nlm.nih.gov/{hit.pmid}/"
    assert hit.doi_url == f"https://doi.org/{article.doi}"
    assert hit.dense_score > 0.3


def test_weight_zero_ranks_by_bm25_and_one_by_dense(reader: IndexReader) -> None:
    bm25 = search(reader, "Helicobacter pylori", limit=5, weight=0.0)
    dense = search(reader, "Helicobacter pylori", limit=5, weight=1.0)

    assert all(hit.score == pytest.approx(hit.bm25_score) for hit in bm25.hits)
    assert all(hit.score == pytest.approx(hit.dense_score) for hit in dense.hits)
    assert all(hit.bm25_score > 0 for hit in bm25.hits[:1])


@pytest.mark.parametrize(
    "query",
    [
        "select * from txtai; --",
        "select pmid from txtai where pmid = '35830032'",
        "'; DROP TABLE documents; --",
        "it's a \"quoted\" question with 'single' quotes",
        "similar('cancer', 5) or 1=1",
        ":query :candidates %_ \\ ) ( ] [",
        "x' UNION SELECT id, data FROM documents --",
    ],
)
def test_sql_like_queries_are_searched_as_text(
    reader: IndexReader, sample_index: SampleIndex, query: str
) -> None:
    before = [hit.pmid for hit in search(reader, "proton pump inhibitors", limit=ALL).hits]

    result = search(reader, query, limit=10)

    assert len(result.hits) == 10  # an executed "where pmid = ..." would give one row
    assert {hit.pmid for hit in result.hits} <= set(sample_index.articles)
    assert result.query == query
    # The index is intact afterwards.
    after = [hit.pmid for hit in search(reader, "proton pump inhibitors", limit=ALL).hits]
    assert after == before


def test_sql_in_filter_values_is_data(reader: IndexReader) -> None:
    for filters in (
        Filters(mesh="Humans' OR 1=1 --"),
        Filters(journal="%"),
        Filters(journal="' OR '1'='1"),
        Filters(pubtype="_%"),
    ):
        assert search(reader, "cancer", filters, limit=ALL).hits == (), filters


@pytest.mark.parametrize("query", ["", "   ", "\n\t  \n"])
def test_empty_query_is_a_named_error(reader: IndexReader, query: str) -> None:
    with pytest.raises(EmptyQueryError, match="empty"):
        search(reader, query)


def test_oversized_query_is_trimmed_and_says_so(reader: IndexReader) -> None:
    query = "proton pump inhibitor safety " * 2000  # 58,000 characters

    result = search(reader, query, limit=3, max_query_chars=1000)

    assert len(result.query) <= 1000
    assert result.query.endswith(("safety", "pump", "proton", "inhibitor"))
    assert result.notices and "first" in result.notices[0]
    assert result.hits[0].pmid == RETRACTED_PMID  # still searched, on the kept words


def test_inverted_year_range_is_a_named_error() -> None:
    with pytest.raises(SearchError, match="year range"):
        Filters(year_from=2024, year_to=2020)


def test_missing_index_is_a_named_error(tmp_path: Path) -> None:
    reader = IndexReader(Settings(data_dir=tmp_path / "nothing", offline=True))

    with pytest.raises(IndexMissingError, match="no index has been published"):
        search(reader, "cancer")


def test_empty_index_is_a_named_error(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", offline=True)
    store = FileStore(settings)
    with store.lock(), store.open_writer() as writer:
        writer.publish("empty")

    with pytest.raises(EmptyIndexError, match="no articles"):
        search(IndexReader(settings), "cancer")


def test_search_follows_the_published_version(reader: IndexReader) -> None:
    result = search(reader, "cancer", limit=1)
    assert result.index_version == FileStore(reader.store.settings).current_version()
    assert result.embeddings_model.startswith("offline:")
    assert result.elapsed_ms > 0


# -- Study designs: badges' data, filters, the optional boost, retracted citations ---------------


@pytest.fixture(scope="module")
def designs(design_index: SampleIndex) -> IndexReader:
    return IndexReader(design_index.settings())


def test_hits_carry_the_level_and_population_derived_at_ingest(
    designs: IndexReader, design_index: SampleIndex
) -> None:
    hits = search(designs, "randomized trial patients outcomes", limit=ALL).hits

    assert hits
    for hit in hits:
        level, population = article_evidence(design_index.articles[hit.pmid])
        assert (hit.evidence, hit.population) == (level.id, population)
        assert hit.evidence_label == level.label
    assert {"rct", "cohort", "review"} <= {hit.evidence for hit in hits}


def test_evidence_filter_keeps_only_the_chosen_designs(designs: IndexReader) -> None:
    result = search(designs, "patients treatment", Filters(evidence=("rct",)), limit=ALL)

    assert {hit.pmid for hit in result.hits} >= {RCT_PMID, "41568766", "41617358"}
    assert {hit.evidence for hit in result.hits} == {"rct"}


def test_unknown_evidence_level_is_a_clear_error() -> None:
    with pytest.raises(SearchError, match=r"unknown evidence level 'rtc'.*meta-analysis"):
        Filters(evidence=("rtc",))


def test_evidence_boost_off_by_default_changes_nothing(
    designs: IndexReader, design_index: SampleIndex
) -> None:
    from rag.service import AnswerService
    from rag.settings import RagSettings

    assert RagSettings.model_fields["evidence_boost"].default is False
    service = AnswerService(settings=design_index.settings(), rag=RagSettings(evidence_boost=False))
    plain = search(designs, "quality of life after treatment", limit=20)
    default = service.search("quality of life after treatment", limit=20)

    assert [(h.pmid, h.score) for h in default.hits] == [(h.pmid, h.score) for h in plain.hits]


def test_evidence_boost_ranks_an_rct_above_a_case_report_of_equal_relevance(
    designs: IndexReader, design_index: SampleIndex
) -> None:
    # The case report is the RCT's record under another PMID: the same text, the same scores.
    query = design_index.articles[RCT_PMID].title

    plain = [hit.pmid for hit in search(designs, query, limit=5).hits]
    boosted = search(designs, query, limit=5, evidence_boost=EVIDENCE_BOOST).hits

    assert plain.index(CASE_TWIN_PMID) < plain.index(RCT_PMID)  # a tie, broken by PMID
    order = [hit.pmid for hit in boosted]
    assert order.index(RCT_PMID) < order.index(CASE_TWIN_PMID)
    twin = {hit.pmid: hit.score for hit in boosted}
    assert twin[RCT_PMID] - twin[CASE_TWIN_PMID] == pytest.approx(
        EVIDENCE_BOOST * (strength("rct") - strength("case-report"))
    )


def test_a_hit_citing_a_retracted_article_of_the_index_is_marked(designs: IndexReader) -> None:
    result = search(designs, "August consultation", limit=ALL)

    marked = {hit.pmid: hit.cites_retracted for hit in result.hits if hit.cites_retracted}
    assert set(marked) == set(CITING_PMIDS)
    assert all(cited == (CITED_PMID,) for cited in marked.values())
    cited = next(hit for hit in result.hits if hit.pmid == CITED_PMID)
    assert cited.retracted and cited.cites_retracted == ()


def test_an_index_without_the_new_columns_reads_as_unknown_until_an_update(
    sample_index: SampleIndex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import indexing.article
    import indexing.store.base

    articles = {pmid: sample_index.articles[pmid] for pmid in list(sample_index.articles)[:12]}
    new_columns = ("evidence", "population", "cites")

    def old_documents(
        article: Article, max_tokens: int, sources: tuple[str, ...] = (), tagged: Any = None
    ):
        for document in indexing.article.article_documents(article, max_tokens, sources, tagged):
            yield {key: value for key, value in document.items() if key not in new_columns}

    # An index written before levels existed: no columns, and an older derivation version.
    with monkeypatch.context() as patch:
        patch.setattr(indexing.store.base, "article_documents", old_documents)
        patch.setattr(indexing.article, "DERIVED_VERSION", 0)
        build_index(tmp_path / "data", articles)
    settings = Settings(data_dir=tmp_path / "data", offline=True)
    reader = IndexReader(settings)
    before = search(reader, BROAD, limit=ALL)

    assert before.hits and all(h.evidence == "" and h.population == () for h in before.hits)
    assert all(h.evidence_label == "" for h in before.hits)
    assert search(reader, BROAD, Filters(humans=True), limit=ALL).hits == ()

    build_index(tmp_path / "data", articles)  # an update re-ingesting the same records
    after = search(reader, BROAD, limit=ALL)

    assert {h.pmid: h.evidence for h in after.hits} == {
        h.pmid: article_evidence(articles[h.pmid])[0].id for h in after.hits
    }
    assert search(reader, BROAD, Filters(humans=True), limit=ALL).hits


def test_a_search_weighting_one_retriever_zero_does_not_run_it(reader: IndexReader) -> None:
    index = reader.get()
    calls: list[str] = []
    ann, scoring = index.embeddings.ann, index.embeddings.scoring
    for name, part in (("dense", ann), ("keyword", scoring)):
        original = part.search

        def counted(*args, _name: str = name, _original=original, **kwargs):
            calls.append(_name)
            return _original(*args, **kwargs)

        part.search = counted
    sql = "SELECT id, score FROM txtai WHERE similar(:q)"
    try:
        dense = index.search(sql, 5, {"q": "treatment of patients"}, weights=1.0)
        keyword = index.search(sql, 5, {"q": "treatment of patients"}, weights=0.0)
        both = index.search(sql, 5, {"q": "treatment of patients"}, weights=0.5)
    finally:
        del ann.search, scoring.search
    assert dense and keyword and both
    # weight 1: dense only; weight 0: keyword only; a hybrid weight: both (txtai ran both always)
    assert calls == ["dense", "keyword", "dense", "keyword"]


def test_both_sides_run_at_once_and_return_what_each_side_returns_alone(
    reader: IndexReader,
) -> None:
    index = reader.get()
    scoring = index.embeddings.scoring
    threads: list[str] = []
    original = scoring.search

    def recorded(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return original(*args, **kwargs)

    sql = "SELECT id, text, score FROM txtai WHERE similar(:query, :candidates) AND year >= 2000"
    bound = {"query": "treatment of patients", "candidates": 20}
    scoring.search = recorded
    try:
        dense, keyword = index.search_sides(sql, 20, bound)
        alone = index.search(sql, 20, bound, weights=1.0), index.search(sql, 20, bound, weights=0.0)
    finally:
        del scoring.search
    assert dense and keyword
    assert (dense, keyword) == alone
    # The keyword side was scored once, in the worker, while this thread ran the dense side.
    assert threads[0].startswith("keyword-side") and threads[1] == threading.current_thread().name
    assert len(threads) == 2


def test_a_failing_keyword_side_fails_the_search_and_leaves_the_index_usable(
    reader: IndexReader,
) -> None:
    index = reader.get()
    scoring = index.embeddings.scoring

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("terms index unreadable")

    sql = "SELECT id, score FROM txtai WHERE similar(:query, :candidates)"
    bound = {"query": "treatment of patients", "candidates": 10}
    scoring.search = broken
    try:
        with pytest.raises(RuntimeError, match="terms index unreadable"):
            index.search_sides(sql, 10, bound)
    finally:
        del scoring.search
    assert not index.lock.locked()
    assert all(index.search_sides(sql, 10, bound))
