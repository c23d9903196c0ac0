"""Similar articles over real indexes: neighbours of an article's own passages, nudged by MeSH."""

from __future__ import annotations

import pytest

from indexing.evidence_level import article_evidence
from indexing.store import IndexReader
from rag.search import Filters
from rag.similar import UnknownArticleError, mesh_overlap, similar_articles, topical_mesh
from tests.fixtures_index import (
    BARE_TWIN_PMID,
    MESH_TWIN_PMID,
    NEIGHBOUR_PMID,
    QUERY_PMID,
    RETRACTED_PMID,
    SampleIndex,
    design_index,
    sample_index,
)

__all__ = ["design_index", "sample_index"]


@pytest.fixture(scope="module")
def reader(sample_index: SampleIndex) -> IndexReader:
    return IndexReader(sample_index.settings())


@pytest.fixture(scope="module")
def designs(design_index: SampleIndex) -> IndexReader:
    return IndexReader(design_index.settings())


def test_neighbours_exclude_the_article_are_sorted_and_one_per_article(
    reader: IndexReader, sample_index: SampleIndex
) -> None:
    result = similar_articles(reader, RETRACTED_PMID, limit=15)

    pmids = [hit.pmid for hit in result.hits]
    assert len(pmids) == 15 and RETRACTED_PMID not in pmids
    assert len(set(pmids)) == len(pmids)
    scores = [hit.score for hit in result.hits]
    assert scores == sorted(scores, reverse=True)
    # PPI safety (gastric cancer, fractures, kidneys): H. pylori treatment comes first.
    assert "pylori" in sample_index.articles[pmids[0]].title
    assert result.hits[0].dense_score > result.hits[-1].dense_score > 0
    assert result.query.startswith(f"similar to PMID {RETRACTED_PMID}")


@pytest.mark.parametrize(
    ("filters", "check"),
    [
        (Filters(year_from=2022), lambda a: a.year is not None and a.year >= 2022),
        (Filters(evidence=("review",)), lambda a: article_evidence(a)[0].id == "review"),
        (Filters(humans=True), lambda a: "Humans" in {m.descriptor for m in a.mesh_terms}),
    ],
    ids=["year", "evidence", "humans"],
)
def test_neighbours_respect_the_search_filters(
    reader: IndexReader, sample_index: SampleIndex, filters: Filters, check
) -> None:
    hits = similar_articles(reader, RETRACTED_PMID, filters, limit=10).hits

    assert hits
    assert all(check(sample_index.articles[hit.pmid]) for hit in hits)


def test_an_article_sharing_mesh_ranks_above_an_unrelated_one_of_equal_text(
    designs: IndexReader, design_index: SampleIndex
) -> None:
    # Both twins hold the neighbour's record (the same text, the same cosine); one carries the
    # query article's MeSH, the other none.
    hits = similar_articles(designs, QUERY_PMID, limit=20).hits
    order = [hit.pmid for hit in hits]
    by_pmid = {hit.pmid: hit for hit in hits}

    assert {MESH_TWIN_PMID, BARE_TWIN_PMID, NEIGHBOUR_PMID} <= set(order)
    assert order.index(MESH_TWIN_PMID) < order.index(BARE_TWIN_PMID)
    mesh = by_pmid[MESH_TWIN_PMID]
    bare = by_pmid[BARE_TWIN_PMID]
    assert mesh.dense_score == pytest.approx(bare.dense_score)
    assert bare.score == pytest.approx(bare.dense_score)
    assert mesh.score == pytest.approx(mesh.dense_score + 0.1)  # all topical MeSH shared


def test_mesh_overlap_leaves_check_tags_out(design_index: SampleIndex) -> None:
    humans_only = topical_mesh("|Humans|Male|Aged|")

    assert humans_only == frozenset()
    assert mesh_overlap(humans_only, topical_mesh("|Humans|")) == 0.0
    assert (
        mesh_overlap(topical_mesh("|Lung Neoplasms|Humans|"), topical_mesh("|Lung Neoplasms|"))
        == 1.0
    )


def test_unknown_pmid_is_a_clear_error(reader: IndexReader) -> None:
    with pytest.raises(UnknownArticleError, match="PMID '99999998' is not in the index"):
        similar_articles(reader, "99999998")
