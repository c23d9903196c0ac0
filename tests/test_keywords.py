"""The keyword side: BM25 over Snowball stems, recorded in the index, on real records."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from indexing.keywords import METHOD, describe, scoring_config
from indexing.settings import Settings
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


def _txtai_search(scoring, query: str, limit: int) -> list[tuple[str, float]]:
    from txtai.scoring.terms import Terms

    from indexing.bm25 import MergingTerms

    scoring.terms.__class__ = Terms
    try:
        return scoring.search(query, limit)
    finally:
        scoring.terms.__class__ = MergingTerms


def _rounded(results: list[tuple[str, float]]) -> list[tuple[str, float]]:
    return [(pmid, round(score, 5)) for pmid, score in results]


def test_keyword_search_ranks_as_txtais_terms_index_on_real_records(
    sample_index: SampleIndex,
) -> None:
    scoring, docs = _scoring(sample_index)
    frequency = Counter(stem for words in docs.values() for stem in words)
    common = {stem for stem, n in frequency.items() if n > 0.1 * len(docs)}
    # Queries from the records' own titles, alone and with a common word ("patients").
    titles = [article.title for article in sample_index.articles.values()][:40]
    queries = [" ".join(title.split()[:4]) for title in titles]
    queries += [f"patients {' '.join(title.split()[-3:])}" for title in titles]
    compared = 0
    for query in queries:
        ours, theirs = (
            _rounded(scoring.search(query, 10)),
            _rounded(_txtai_search(scoring, query, 10)),
        )
        rare = set(scoring.tokenize(query)) - common
        if rare:  # txtai pads its candidates with records no rarer word matched; drop them
            theirs = [(pmid, score) for pmid, score in theirs if docs[pmid] & rare]
        head = ours[: len(theirs)]
        assert [score for _, score in head] == [score for _, score in theirs]
        ties = Counter(score for _, score in theirs)
        assert {item for item in head if ties[item[1]] == 1} == {
            item for item in theirs if ties[item[1]] == 1
        }
        compared += bool(theirs)
    assert compared >= 60


def test_documents_matching_only_a_common_word_are_not_padded_in(
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
    found = scoring.search(f"patients {rare}", 10)

    # Only the records with the rarer word, best first; txtai would fill its 50 candidates
    # with arbitrary records that then score on "patients" alone.
    assert {pmid for pmid, _ in found} == {pmid for pmid, words in docs.items() if rare in words}
    assert [score for _, score in found] == sorted((score for _, score in found), reverse=True)
