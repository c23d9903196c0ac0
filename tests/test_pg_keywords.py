"""PostgreSQL keyword search through the GIN index (:mod:`indexing.store.postgres.keywords`).

Real recorded PubMed records in a real PostgreSQL + pgvector server: the GIN path returns what
txtai's full-table ``pgtext`` ranking returns, the plan uses the GIN index, hostile text is only
ever bound, and versions recording ``pgtext`` still load and search.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from indexing.store import IndexReader, open_store
from indexing.store.postgres import PgStore
from rag.search import Filters, search
from tests.conftest import METAPUB_PMIDS, needs_shared_data
from tests.fixtures_pg import SCHEMA, Backend, PgServer

pytestmark = needs_shared_data()

RECORDS = sorted(METAPUB_PMIDS.glob("*.xml"))[:40] if METAPUB_PMIDS.exists() else []
QUERIES = (
    "treatment of patients",
    "cancer",
    "breast cancer risk in women",
    "randomized controlled trial of children with asthma",
    "gene expression protein mutation cells",
    "the effect of",
    "a question about the outcome of surgery in elderly patients with hip fractures and "
    "their mortality after one year compared with younger patients and controls",
)
HOSTILE = (
    "'; DROP TABLE scoring; --",
    "treatment & | ! ( ) : * <-> \\ patients",
    "O'Brien's \"quoted\" cancer",
    "&|!():*",
    "cancer:* | !patients",
    "'cancer' & 'patients'",
    "$1 %s :query :limit {0} cancer",
    "the of and",
    "ß café naïve 癌症 cancer",
)


def _articles(paths: list[Path]) -> list[Any]:
    from indexing.article import Article
    from indexing.pubmed import open_xml, parse_pubmed_xml

    found = []
    for path in paths:
        with open_xml(path) as stream:
            found += [r for r in parse_pubmed_xml(stream) if isinstance(r, Article)]
    return found


@pytest.fixture(scope="module")
def built(pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Settings of one index of 40 real records, built once for the module."""
    from indexing.store import build_index

    settings = Backend("postgres", pg_server).settings(tmp_path_factory.mktemp("kw") / "data")
    build_index(_articles(RECORDS), settings, source="xml")
    yield settings


@pytest.fixture
def reader(built: Any) -> Iterator[IndexReader]:
    reader = IndexReader(built)
    yield reader
    reader.get().close()


def _full_table(scoring: Any) -> Any:
    """txtai's own pgtext on the same table: the ranking of every row."""
    from txtai.scoring.pgtext import PGText

    old = PGText({key: value for key, value in scoring.config.items() if key != "terms"})
    old.load(None)
    return old


def test_new_versions_record_the_gin_scorer_without_the_url(built: Any) -> None:
    from indexing.store.postgres.common import KEYWORDS_METHOD

    manifest = open_store(built).manifest()
    assert manifest.embeddings_config["scoring"] == {"method": KEYWORDS_METHOD, "terms": True}


def test_gin_ranking_returns_what_the_full_table_ranking_returns(reader: IndexReader) -> None:
    from indexing.store.postgres.keywords import PgKeywords

    index = reader.get()
    scoring = index.embeddings.scoring
    assert type(scoring) is PgKeywords
    old = _full_table(scoring)
    everything = index.manifest.passages
    try:
        for query in QUERIES + HOSTILE:
            new_rows, old_rows = scoring.search(query, everything), old.search(query, everything)
            assert dict(new_rows) == pytest.approx(dict(old_rows)), query
            # best first, the same scores in the same order (ties may swap equal-score rows)
            assert [s for _, s in new_rows] == pytest.approx([s for _, s in old_rows]), query
            top = scoring.search(query, 10)
            assert [s for _, s in top] == pytest.approx([s for _, s in old_rows[:10]]), query
        assert scoring.search("cancer", 10), "a common word finds passages"
        assert scoring.search("the of and", 10) == []
    finally:
        old.close()


def test_keyword_statement_is_answered_by_the_gin_index(reader: IndexReader) -> None:
    """With sequential scans priced out, the planner must reach the rows through the GIN
    index; the full-table statement of pgtext cannot (and at this size the planner would
    rightly choose a sequential scan for both)."""
    from sqlalchemy import text

    scoring = reader.get().embeddings.scoring
    session = scoring.database
    session.execute(text("SET enable_seqscan = off"))
    try:
        for query in ("treatment of patients", "cancer", QUERIES[-1]):
            plan = "\n".join(scoring.explain(query, 100))
            assert 'Bitmap Index Scan on "scoring-index"' in plan, plan
        old = session.execute(
            text(
                "EXPLAIN SELECT indexid, ts_rank(vector, plainto_tsquery('english', 'cancer')) "
                "AS rank FROM scoring ORDER BY rank DESC LIMIT 100"
            )
        ).fetchall()
        assert "scoring-index" not in "\n".join(line for (line,) in old)
    finally:
        session.execute(text("RESET enable_seqscan"))
        session.rollback()


def test_hostile_query_text_is_searched_as_text(reader: IndexReader, built: Any) -> None:
    index = reader.get()
    before = index.embeddings.scoring.count()
    for query in HOSTILE:
        result = search(reader, query, Filters(year_from=1900), limit=5)
        assert all(hit.pmid for hit in result.hits)
    assert index.embeddings.scoring.count() == before
    assert index.embeddings.scoring.search("'; DROP TABLE scoring; --", 5) == []
    assert index.embeddings.scoring.search("treatment & | ! ( ) : * <-> \\ patients", 5)


def test_version_recording_pgtext_loads_with_it_and_an_update_moves_to_the_gin_scorer(
    pg_server: PgServer, tmp_path: Path
) -> None:
    from txtai.scoring.pgtext import PGText

    from indexing.ingest import ingest_files
    from indexing.store import build_index
    from indexing.store.postgres.common import KEYWORDS_METHOD
    from indexing.store.postgres.keywords import PgKeywords

    settings = Backend("postgres", pg_server).settings(tmp_path / "data")
    manifest = build_index(_articles(RECORDS[:8]), settings, source="xml")
    store = open_store(settings)
    assert isinstance(store, PgStore)
    with store.db() as conn:  # what a version published before the GIN scorer records
        conn.execute(
            f"UPDATE {SCHEMA}.versions SET manifest = jsonb_set(manifest, "
            "'{embeddings_config,scoring}', %s::jsonb)",
            (json.dumps({"method": "pgtext"}),),
        )
    reader = IndexReader(settings)
    old = reader.get()
    assert type(old.embeddings.scoring) is PGText
    assert old.embeddings.config["scoring"]["method"] == "pgtext"
    hits = search(reader, "treatment of patients", limit=5).hits
    assert hits
    assert old.search("select id from txtai where similar(:q)", 3, {"q": "cancer"}, weights=0.0)

    ingest_files(RECORDS[8:10], settings, quiet=True)
    fresh = reader.get()
    assert fresh.version != manifest.version
    assert type(fresh.embeddings.scoring) is PgKeywords
    assert fresh.manifest.embeddings_config["scoring"]["method"] == KEYWORDS_METHOD
    again = search(reader, "treatment of patients", limit=5).hits
    assert {hit.pmid for hit in hits} & {hit.pmid for hit in again}
    old.close()
    fresh.close()
    store.close()


def test_selective_filter_returns_every_hit_beyond_what_one_hnsw_scan_yields(
    built: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An HNSW scan yields at most ``hnsw.ef_search`` rows (here 5; 1000 in the product): a
    filter that few of them pass must not cut the hits short while the pool grows."""
    from sqlalchemy import text
    from txtai.ann.dense.pgvector import PGVector

    from indexing.store.postgres import urls
    from indexing.store.postgres.vectors import PgVectors

    monkeypatch.setattr(urls, "EF_SEARCH", 5)
    reader = IndexReader(built)
    index = reader.get()
    assert type(index.embeddings.ann) is PgVectors and index.embeddings.ann.ef_search() == 5
    rows = index.search("SELECT pmid, year FROM txtai", index.manifest.passages)
    years = sorted({int(row["pmid"]): int(row["year"]) for row in rows}.values(), reverse=True)
    year_from = years[7]  # eight or more articles pass, most of the index does not
    passing = {str(row["pmid"]) for row in rows if int(row["year"]) >= year_from}
    assert 8 <= len(passing) < len(years) / 2

    # As on a large table, where the planner takes the HNSW index: one scan yields 5 rows.
    index.embeddings.ann.database.execute(text("SET enable_seqscan = off"))
    vector = index.embeddings.batchtransform(["treatment of patients"], "query")
    assert len(PGVector.search(index.embeddings.ann, vector, 1000)[0]) <= 5

    result = search(reader, "treatment of patients", Filters(year_from=year_from), 5, 1.0)
    assert len(result.hits) == 5 and not result.notices
    assert {hit.pmid for hit in result.hits} <= passing
    # Every passing article txtai can score (dense scores must be positive) is found.
    scored = index.search(
        "SELECT pmid FROM txtai WHERE similar(:q, 1000) AND year >= :y",
        1000,
        {"q": "treatment of patients", "y": year_from},
        weights=1.0,
    )
    everything = search(reader, "treatment of patients", Filters(year_from=year_from), 50, 1.0)
    assert {hit.pmid for hit in everything.hits} == {str(row["pmid"]) for row in scored}
    assert len(everything.hits) > 5

    # What it was: every request answered by the HNSW scan, cut at 5 rows.
    monkeypatch.setattr(index.embeddings.ann, "ef_search", lambda: 1_000_000)
    cut = search(reader, "treatment of patients", Filters(year_from=year_from), 5, 1.0)
    assert len(cut.hits) < 5
    index.close()


def test_a_search_weighting_one_retriever_zero_does_not_run_it(reader: IndexReader) -> None:
    index = reader.get()
    calls: list[str] = []
    ann, scoring = index.embeddings.ann, index.embeddings.scoring
    for name, part in (("dense", ann), ("keyword", scoring)):
        original = part.search

        def counted(*args: Any, _name: str = name, _original: Any = original) -> Any:
            calls.append(_name)
            return _original(*args)

        part.search = counted
    sql = "SELECT id, score FROM txtai WHERE similar(:q)"
    dense = index.search(sql, 5, {"q": "treatment of patients"}, weights=1.0)
    keyword = index.search(sql, 5, {"q": "treatment of patients"}, weights=0.0)
    both = index.search(sql, 5, {"q": "treatment of patients"}, weights=0.5)
    assert dense and keyword and both
    # weight 1: dense only; weight 0: keyword only; a hybrid weight: both
    assert calls == ["dense", "keyword", "dense", "keyword"]
    del ann.search, scoring.search


def test_pairs_of_the_commonest_lexemes_are_dropped_only_past_the_row_budget() -> None:
    from indexing.store.postgres.keywords import RANKED_ROWS, match_query, pairs_within

    found = ["'patient'", "'studi'", "'stent'"]
    shares = {"patient": 0.5, "studi": 0.4, "stent": 0.001}
    assert len(pairs_within(found, shares, RANKED_ROWS / 0.5)) == 3  # 0.2 + … of the rows: fits
    assert pairs_within(found, shares, 1_000_000) == [
        ("'patient'", "'stent'"),
        ("'studi'", "'stent'"),
    ]
    assert len(pairs_within(found, {}, 1_000_000)) == 3  # no statistics: every pair
    # unlisted lexemes count as the rarest listed; the rarest always keeps its pairs
    assert pairs_within(found, {"patient": 0.9, "studi": 0.9}, 10**9) == [
        ("'patient'", "'stent'"),
        ("'studi'", "'stent'"),
    ]
    long = " & ".join(f"'w{n}'" for n in range(30))
    assert match_query(long) == " | ".join(f"'w{n}'" for n in range(30))
    narrowed = match_query(long, {f"w{n}": 0.5 for n in range(20)} | {"w29": 0.0001}, 10**6)
    # the 16 rarest are paired (w20-w29 unlisted count as rare as w29, then w0-w5), and the
    # common ones among them only with the rare ones
    assert narrowed is not None and "'w29'" in narrowed and "'w6'" not in narrowed
    assert "( 'w0' & 'w29' )" not in narrowed and "( 'w29' & 'w0' )" in narrowed
    assert "( 'w0' & 'w1' )" not in narrowed


def test_past_the_row_budget_fewer_passages_are_ranked_with_the_same_scores(
    reader: IndexReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cost of the budget: passages holding only the commonest lexemes drop out; those
    ranked keep pgtext's scores."""
    from indexing.store.postgres import keywords

    index = reader.get()
    scoring = index.embeddings.scoring
    frequency, rows = scoring.statistics()
    assert frequency and rows == index.manifest.passages  # the writer's ANALYZE
    old = _full_table(scoring)
    monkeypatch.setattr(keywords, "RANKED_ROWS", 0)
    try:
        ranked = fewer = 0
        for query in QUERIES[:-1]:
            narrowed = dict(scoring.search(query, 1000))
            full = dict(old.search(query, 1000))
            ranked += bool(narrowed)
            assert set(narrowed) <= set(full)
            assert {uid: full[uid] for uid in narrowed} == pytest.approx(narrowed)  # same rank
            fewer += len(narrowed) < len(full)
        assert ranked >= 2 and fewer >= 1  # two-lexeme queries match their one pair anyway
    finally:
        old.close()
