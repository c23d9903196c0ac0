"""The keyword side: BM25 over Snowball stems, recorded in the index, on real records."""

from __future__ import annotations

import json
import re
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
