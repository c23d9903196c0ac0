"""Pseudo-relevance feedback (Rocchio) on the query vector, over the real sample index.

What is checked: the dense side is searched again with the fed-back vector (each hit's dense
score is its passage's cosine to that vector, computed here from the index's own encoder), the
BM25 side and the filters are untouched, weight 0 changes nothing, and the settings reach it.
"""

from __future__ import annotations

import numpy as np
import pytest

from indexing.store import IndexReader
from rag.search import Feedback, Filters, encode, feedback_vector, search
from rag.service import AnswerService
from rag.settings import RagSettings
from tests.fixtures_index import SampleIndex, sample_index

__all__ = ["sample_index"]

QUERY = "proton pump inhibitors long-term safety"


@pytest.fixture(scope="module")
def reader(sample_index: SampleIndex) -> IndexReader:
    return IndexReader(sample_index.settings())


def test_feedback_searches_the_dense_side_again_with_the_query_moved_towards_its_top_hits(
    reader: IndexReader,
) -> None:
    first = search(reader, QUERY, limit=10)
    fed = search(reader, QUERY, limit=10, feedback=Feedback(depth=3, weight=1.0))

    top = first.hits[:3]
    passages = encode(reader, [f"{hit.title}\n{hit.passage}" for hit in top], "data")
    query = encode(reader, [QUERY], "query")[0]
    expected = query / np.linalg.norm(query) + passages.mean(axis=0)
    expected /= np.linalg.norm(expected)
    vector = feedback_vector(reader.get(), query, top, 1.0)
    assert vector == pytest.approx(expected, abs=1e-5)
    hits = [hit for hit in fed.hits if hit.dense_score > 0]
    assert hits, "the fed-back dense search found nothing"
    for hit in hits:  # each hit's passage, encoded again, against the fed-back vector
        (own,) = encode(reader, [f"{hit.title}\n{hit.passage}"], "data")
        assert hit.dense_score == pytest.approx(float(own @ vector), abs=0.02)
    # the top hits fed back are closer to the moved query than to the original one
    by_pmid = {hit.pmid: hit for hit in fed.hits}
    for hit in top:
        if hit.pmid in by_pmid:
            assert by_pmid[hit.pmid].dense_score > hit.dense_score
    # the BM25 side is the original query's
    bm25 = {hit.pmid: hit.bm25_score for hit in first.hits}
    for hit in fed.hits:
        if hit.pmid in bm25 and hit.bm25_score and bm25[hit.pmid]:
            assert hit.bm25_score == pytest.approx(bm25[hit.pmid])


def test_feedback_with_weight_zero_ranks_as_without_it(reader: IndexReader) -> None:
    plain = search(reader, QUERY, limit=10)
    fed = search(reader, QUERY, limit=10, feedback=Feedback(depth=3, weight=0.0))

    assert [hit.pmid for hit in fed.hits] == [hit.pmid for hit in plain.hits]
    assert [hit.score for hit in fed.hits] == pytest.approx([hit.score for hit in plain.hits])


def test_feedback_keeps_the_filters(reader: IndexReader, sample_index: SampleIndex) -> None:
    years = sorted(a.year for a in sample_index.articles.values() if a.year)
    cut = years[len(years) // 2]
    fed = search(reader, QUERY, Filters(year_from=cut), 10, feedback=Feedback(2, 1.0))

    assert fed.hits
    assert all(hit.year is not None and hit.year >= cut for hit in fed.hits)


def test_feedback_settings_reach_the_service_and_zero_docs_means_off(
    sample_index: SampleIndex,
) -> None:
    assert Feedback.chosen(0, 0.5) is None
    assert Feedback.chosen(2, 0.7) == Feedback(2, 0.7)
    with pytest.raises(ValueError, match="depth >= 1"):
        Feedback(0, 0.5)
    service = AnswerService(
        settings=sample_index.settings(), rag=RagSettings(feedback_docs=2, feedback_weight=1.0)
    )
    direct = search(service.reader, QUERY, limit=10, feedback=Feedback(2, 1.0))
    through = service.search(QUERY)

    assert [hit.pmid for hit in through.hits] == [hit.pmid for hit in direct.hits]
    assert [hit.score for hit in through.hits] == pytest.approx([hit.score for hit in direct.hits])
