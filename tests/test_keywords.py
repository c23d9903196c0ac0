"""The keyword side: BM25 over Snowball stems, recorded in the index, on real records."""

from __future__ import annotations

import gc
import json
import re
import weakref
from collections import Counter
from pathlib import Path

import pytest

from indexing.keywords import METHOD, describe, scoring_config
from indexing.settings import Settings, get_settings
from indexing.store import IndexReader
from rag.search import search
from tests.fixtures_index import RETRACTED_PMID, SampleIndex, build_index, sample_index

__all__ = ["sample_index"]

# The title of RETRACTED_PMID: "SAFETY OF LONG-TERM PROTON PUMP INHIBITORS: FACTS AND MYTHS."
QUERY = "inhibitor safety"


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def _config(data_dir: Path) -> dict:
    (config,) = data_dir.glob("index/versions/*/embeddings/config.json")
    return json.loads(config.read_text(encoding="utf-8"))


def test_stemmed_bm25_matches_other_forms_of_a_word_in_real_records(
    sample_index: SampleIndex,
) -> None:
    article = sample_index.articles[RETRACTED_PMID]
    assert "inhibitor" not in _words(
        f"{article.title} {article.abstract_text}"
    )  # only "inhibitors"

    result = search(IndexReader(sample_index.settings()), QUERY, limit=5, weight=0.0)

    assert RETRACTED_PMID in [hit.pmid for hit in result.hits]
    assert all(hit.bm25_score > 0 for hit in result.hits)


def test_the_stemmer_is_recorded_and_exact_words_stay_available(
    sample_index: SampleIndex, tmp_path: Path
) -> None:
    assert describe(_config(sample_index.data_dir)["scoring"]) == "english"

    data_dir = tmp_path / "data"
    exact = Settings(data_dir=data_dir, offline=True, keyword_stemmer="none")
    articles = {pmid: sample_index.articles[pmid] for pmid in list(sample_index.articles)[:20]}
    articles[RETRACTED_PMID] = sample_index.articles[RETRACTED_PMID]
    build_index(data_dir, articles, exact)
    assert describe(_config(data_dir)["scoring"]) == "none"

    # Read back with the stemming default: the index keeps the exact words it was built with.
    reader = IndexReader(Settings(data_dir=data_dir, offline=True))
    hits = search(reader, QUERY, limit=5, weight=0.0).hits
    assert RETRACTED_PMID in [hit.pmid for hit in hits]  # through "safety"
    ranked = {hit.pmid: hit for hit in search(reader, "inhibitor", limit=5, weight=0.0).hits}
    assert RETRACTED_PMID not in ranked  # "inhibitor" alone matches nothing of it exactly


def test_scoring_config_names_the_stemmer() -> None:
    assert scoring_config("english") == {
        "method": METHOD,
        "stemmer": "english",
        "terms": True,
        "normalize": True,
    }
    assert scoring_config("none")["method"] == "bm25"
    assert describe({"method": "bm25", "terms": True}) == "none"
    assert describe(None) == "none"


def test_an_unknown_stemmer_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="keyword_stemmer"):
        Settings(keyword_stemmer="lancaster")  # type: ignore[arg-type]


# -- the terms index's candidate selection against txtai's own ------------------------------


def _scoring(sample_index: SampleIndex):  # -> (indexing.bm25.StemmedBM25, {pmid: stems})
    from txtai.scoring import ScoringFactory

    scoring = ScoringFactory.create(scoring_config("english"))
    texts = {
        pmid: f"{article.title}\n{article.abstract_text}"
        for pmid, article in sample_index.articles.items()
    }
    scoring.index((pmid, text, None) for pmid, text in texts.items())
    return scoring, {pmid: set(scoring.tokenize(text)) for pmid, text in texts.items()}


def _txtai_search(scoring, query: str, limit: int, cutoff: float | None = None):
    """txtai's own terms index; with ``cutoff`` 1.0 no word is common: exact BM25."""
    from txtai.scoring.terms import Terms

    from indexing.bm25 import MergingTerms

    terms, before = scoring.terms, scoring.terms.cutoff
    terms.__class__, terms.cutoff = Terms, before if cutoff is None else cutoff
    try:
        return scoring.search(query, limit)
    finally:
        terms.__class__, terms.cutoff = MergingTerms, before


def _assert_same_ranking(ours: list[tuple[str, float]], theirs: list[tuple[str, float]]) -> None:
    # Equal up to float32 summation order; records whose scores (nearly) tie may swap.
    assert [score for _, score in ours] == pytest.approx([score for _, score in theirs], rel=1e-4)
    scores = [score for _, score in theirs]

    def alone(score: float) -> bool:
        return sum(abs(score - other) <= 1e-4 * abs(score) + 1e-7 for other in scores) == 1

    assert {pmid for pmid, score in ours if alone(score)} == {
        pmid for pmid, score in theirs if alone(score)
    }


def _title_queries(sample_index: SampleIndex) -> list[str]:
    """Queries from the records' own titles, alone and with a common word ("patients")."""
    titles = [article.title for article in sample_index.articles.values()][:40]
    return [" ".join(title.split()[:4]) for title in titles] + [
        f"patients {' '.join(title.split()[-3:])}" for title in titles
    ]


def test_keyword_search_ranks_as_txtais_terms_index_on_real_records(
    sample_index: SampleIndex,
) -> None:
    scoring, docs = _scoring(sample_index)
    frequency = Counter(stem for words in docs.values() for stem in words)
    common = {stem for stem, n in frequency.items() if n > 0.1 * len(docs)}
    queries = _title_queries(sample_index)
    paths: Counter[str] = Counter()
    for query, limit in ((query, limit) for query in queries for limit in (2, 10)):
        rare = set(scoring.tokenize(query)) - common
        matched = sum(bool(words & rare) for words in docs.values())
        ours = scoring.search(query, limit)
        if not rare or matched >= 5 * limit:
            # The rarer words filled the candidate pool: txtai's own approximation, exactly.
            _assert_same_ranking(ours, _txtai_search(scoring, query, limit))
            paths["txtai"] += 1
        else:
            # txtai would pad its pool with the first records found; the pool fills by BM25.
            _assert_same_ranking(ours, _txtai_search(scoring, query, limit, 1.0))
            paths["exact"] += 1
    assert paths["txtai"] >= 10 and paths["exact"] >= 10, paths


def test_a_rare_word_beside_a_common_one_ranks_by_exact_bm25(
    sample_index: SampleIndex,
) -> None:
    scoring, docs = _scoring(sample_index)
    (common,) = scoring.tokenize("patients")
    assert sum(common in words for words in docs.values()) > 0.1 * len(docs)  # a common term
    rare = next(
        stem
        for words in docs.values()
        for stem in sorted(words)
        if 2 <= sum(stem in other for other in docs.values()) <= 4
    )
    with_rare = {pmid for pmid, words in docs.items() if rare in words}

    found = scoring.search(f"patients {rare}", 10)

    # The records with the rarer word first, then the best of those with "patients" alone,
    # as full BM25 ranks them — not whichever records txtai's padding happened to pick.
    assert len(found) == 10
    assert {pmid for pmid, _ in found[: len(with_rare)]} == with_rare
    assert all(common in docs[pmid] for pmid, _ in found[len(with_rare) :])
    _assert_same_ranking(found, _txtai_search(scoring, f"patients {rare}", 10, 1.0))


# -- the terms index's cache of term weights ----------------------------------------------


def test_term_weights_are_cached_within_their_byte_budget_and_give_the_same_results(
    sample_index: SampleIndex,
) -> None:
    from indexing.bm25 import TermWeights

    scoring, _ = _scoring(sample_index)
    terms = scoring.terms
    queries = _title_queries(sample_index)
    terms.weights = uncached = TermWeights(terms, budget=0)
    expected = [scoring.search(query, 10) for query in queries]
    assert len(uncached) == 0 and uncached.size == 0

    budget = 20_000  # bytes: a few dozen of the sample's terms, not all of them
    terms.weights = cache = TermWeights(terms, budget)
    for _ in range(2):  # the second round finds some terms cached, recomputes the rest
        assert [scoring.search(query, 10) for query in queries] == expected
        assert 0 < cache.size <= budget
    distinct = {term for query in queries for term in scoring.tokenize(query)}
    assert 0 < len(cache) < len(distinct)  # it evicted, and kept
    # Least recently used out first: the last query's terms are all still cached.
    assert all(term in cache for term in scoring.tokenize(queries[-1]))
    # Indexing more documents forgets every cached weight (they would be stale).
    scoring.index([("new", "patients with proton pump inhibitors", None)])
    assert len(cache) == 0 and cache.size == 0


def test_the_cache_budget_comes_from_the_setting(
    sample_index: SampleIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUBMED_RAG_KEYWORD_CACHE_MB", "3")
    get_settings.cache_clear()
    try:
        scoring, _ = _scoring(sample_index)
        assert scoring.terms.weights.budget == 3 * 2**20
    finally:
        get_settings.cache_clear()
    with pytest.raises(ValueError, match="keyword_cache_mb"):
        Settings(keyword_cache_mb=-1)


def test_an_index_the_reader_has_let_go_is_freed_with_its_cached_weights(
    sample_index: SampleIndex,
) -> None:
    # txtai's cache is one for the whole process, keyed by the index object: every index
    # version a long-running app searched stayed in memory until 500 newer terms pushed it out.
    scoring, _ = _scoring(sample_index)
    assert scoring.search("patients proton pump inhibitors", 10)
    terms = weakref.ref(scoring.terms)
    del scoring
    gc.collect()
    assert terms() is None
