"""The approximate dense layout (indexing.store.ann) on real records, beside the exact index."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from indexing.settings import Settings
from indexing.store import IndexReader, ann
from indexing.store.ann import BACKEND, current_lists, lists_for, needs_layout
from indexing.store.files import FileStore
from rag.search import Filters, search
from tests.fixtures_index import SampleIndex, sample_index

__all__ = ["sample_index"]


def _approximate(exact: SampleIndex, data_dir: Path, storage: str) -> Settings:
    """A copy of ``exact`` published again with a threshold low enough to approximate it,
    its vectors stored as ``storage`` (8-bit lists + fp16 copy, or fp16 lists)."""
    shutil.copytree(exact.data_dir, data_dir)
    settings = Settings(data_dir=data_dir, offline=True, ann="auto", ann_min_passages=1)
    store = FileStore(settings)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ann, "STORAGES", (storage,))
        with store.lock(), store.open_writer() as writer:
            writer.publish("ann")
    return settings


@pytest.fixture(scope="module", params=ann.STORAGES)
def approximate(
    request: pytest.FixtureRequest,
    sample_index: SampleIndex,
    tmp_path_factory: pytest.TempPathFactory,
) -> Settings:
    return _approximate(sample_index, tmp_path_factory.mktemp("ann") / "data", request.param)


def _queries(index: SampleIndex, count: int = 30) -> list[str]:
    """Titles of real records, in a fixed order."""
    articles = sorted(index.articles.values(), key=lambda article: article.pmid)
    return [article.title for article in articles if article.title][:count]


def test_layout_is_exact_below_the_threshold_and_approximate_above_it() -> None:
    exact = {"build": {"settings": {"components": "IDMap,Flat"}}}

    assert not needs_layout(exact, 10_000, "auto", 250_000)
    assert not needs_layout(exact, 10_000_000, "exact", 250_000)
    assert needs_layout(exact, 250_000, "auto", 250_000)
    assert lists_for(1_000_000) == 1000 and lists_for(100) == 2


def test_an_approximate_index_is_laid_out_again_only_when_it_wants_twice_the_lists() -> None:
    ivf = {"build": {"settings": {"components": "IVF500,SQfp16"}}}

    assert current_lists(ivf) == 500
    assert not needs_layout(ivf, 900_000, "auto", 250_000)  # 949 lists: not yet twice
    assert needs_layout(ivf, 1_000_000, "auto", 250_000)
    # never back to exact: the vectors are fp16 now
    assert not needs_layout(ivf, 1_000_000, "exact", 250_000)


def test_the_approximate_layout_and_its_probes_are_recorded_in_the_index(
    approximate: Settings, sample_index: SampleIndex
) -> None:
    exact = IndexReader(sample_index.settings()).get()
    index = IndexReader(approximate).get()
    config = index.manifest.embeddings_config

    assert config["backend"] == BACKEND
    lists = lists_for(index.manifest.passages)
    storage = config["faiss"]["components"].removeprefix(f"IVF{lists},")
    assert storage in ann.STORAGES
    assert 1 <= config["faiss"]["nprobe"] <= config["faiss"]["deep_nprobe"] <= lists
    assert config["faiss"]["deep_depth"] == ann.DEEP
    assert type(index.embeddings.ann).__name__ == "ProbedFaiss"
    # 8-bit lists come with their fp16 copy, mapped from disk rather than loaded
    copy = index.embeddings.ann.exact
    assert (config["faiss"].get("refine") == "fp16") == (storage == "SQ8") == (copy is not None)
    if copy is not None:
        assert isinstance(copy, np.memmap) and len(copy) == index.manifest.passages
    # the exact index (as every index built before) still loads with txtai's own faiss
    assert exact.manifest.embeddings_config.get("backend", "faiss") == "faiss"
    assert type(exact.embeddings.ann).__name__ == "Faiss"
    assert index.manifest.passages == exact.manifest.passages


def test_approximate_dense_search_finds_what_exact_search_finds(
    approximate: Settings, sample_index: SampleIndex
) -> None:
    exact = IndexReader(sample_index.settings()).get()
    index = IndexReader(approximate).get()
    queries = _queries(sample_index)
    vectors = np.asarray(exact.embeddings.batchtransform(queries, "query"), dtype=np.float32)

    truth = exact.embeddings.ann.search(vectors, 10)
    found = index.embeddings.ann.search(vectors, 10)
    recall = np.mean(
        [
            len({i for i, _ in hit} & {i for i, _ in want}) / 10
            for hit, want in zip(found, truth, strict=True)
        ]
    )

    assert recall >= 0.98


def test_filtered_approximate_search_keeps_every_match(
    approximate: Settings, sample_index: SampleIndex
) -> None:
    exact = IndexReader(sample_index.settings()).get()
    index = IndexReader(approximate).get()
    years = sorted(article.year for article in sample_index.articles.values() if article.year)
    narrow = Filters(year_to=years[len(years) // 10])  # the oldest ~10% of the records

    for query in _queries(sample_index, 10):
        want = [hit.pmid for hit in search(exact, query, narrow, 10, 1.0).hits]
        got = [hit.pmid for hit in search(index, query, narrow, 10, 1.0).hits]

        assert want and len(got) == len(want)
        assert len(set(got) & set(want)) >= len(want) - 1


@pytest.mark.parametrize("storage", ann.STORAGES)
def test_an_approximate_index_takes_revisions_like_an_exact_one(
    sample_index: SampleIndex, tmp_path: Path, storage: str
) -> None:
    settings = _approximate(sample_index, tmp_path / "data", storage)
    before = IndexReader(settings).get().manifest
    pmid, article = sorted(sample_index.articles.items())[0]
    revised = replace(article, title="Zebrafish fin regeneration under microgravity")
    store = FileStore(settings)

    with store.lock(), store.open_writer() as writer:
        counts = writer.upsert_articles([revised], source="xml")
        after = writer.publish("revise")

    hits = search(IndexReader(settings).get(), revised.title, limit=3, weight=1.0).hits
    assert counts.revised == 1
    assert hits[0].pmid == pmid and hits[0].title == revised.title
    assert after.passages == before.passages
    assert after.embeddings_config["faiss"] == before.embeddings_config["faiss"]
    assert storage in after.embeddings_config["faiss"]["components"]


def test_deeper_asks_probe_more_lists_up_to_the_deep_nprobe() -> None:
    from indexing.ivf import SHALLOW, ProbedFaiss

    probed = ProbedFaiss({"faiss": {"nprobe": 200, "deep_nprobe": 360, "deep_depth": 800}})

    assert probed.deep(200, 10) == probed.deep(200, SHALLOW) == 200
    assert 200 < probed.deep(200, 300) < probed.deep(200, 600) < 360
    assert probed.deep(200, 800) == probed.deep(200, 20_000) == 360
    # an index laid out before deep_nprobe was tuned keeps its one nprobe
    assert ProbedFaiss({"faiss": {"nprobe": 200}}).deep(200, 5000) == 200
