"""The encoder's precision: bf16 where the CPU has it, recorded in the index, same for queries.

Real MiniLM weights (the offline embedder) and real PubMed abstracts throughout; the only
stand-in is the CPU's flag list in the fallback tests, since no CPU without bf16 is at hand.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from indexing import encoder
from indexing.encoder import choose_precision, native_bf16, reading_overrides, vectors_args
from indexing.settings import Settings, offline_embeddings_path
from indexing.store import PublishedIndex
from indexing.store.files import FileStore
from tests.fixtures_index import SampleIndex, build_index, sample_index

__all__ = ["sample_index"]

EXPECTED = "bf16" if native_bf16() else "fp32"


def encode(texts: list[str], precision: str) -> np.ndarray:
    """Embeddings of ``texts`` through txtai with the product's arguments for ``precision``."""
    from txtai import Embeddings

    config = {
        "path": str(offline_embeddings_path()),
        "method": "sentence-transformers",
        "vectors": vectors_args(precision),
    }
    return np.asarray(Embeddings(config).batchtransform(texts))


def model_dtype(index: PublishedIndex) -> str:
    """The dtype of the weights the index's query encoder runs with."""
    assert index.embeddings is not None
    return str(index.embeddings.model.model.dtype).removeprefix("torch.")


@pytest.fixture
def no_bf16_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend the CPU lacks bf16 instructions (as an AVX2-only laptop does)."""
    monkeypatch.setattr(encoder, "cpu_flags", lambda: frozenset({"sse4_2", "avx2", "fma"}))
    monkeypatch.setattr(encoder, "_warned", set())


def small_index(tmp_path: Path, sample_index: SampleIndex, **settings: str) -> PublishedIndex:
    """Publish six real records with the given settings and open the published version."""
    data_dir = tmp_path / "data"
    articles = dict(list(sample_index.articles.items())[:6])
    build_index(data_dir, articles, Settings(data_dir=data_dir, offline=True, **settings))
    store = FileStore(Settings(data_dir=data_dir, offline=True, **settings))
    version = store.current_version()
    assert version is not None
    return store.open_version(version)


def test_bf16_embeddings_of_real_abstracts_match_fp32(sample_index: SampleIndex) -> None:
    texts = [
        f"{article.title}\n{article.abstract_text}"
        for article in sample_index.articles.values()
        if article.has_abstract
    ][:48]

    fast = encode(texts, "bf16")
    exact = encode(texts, "fp32")

    cosines = (fast * exact).sum(axis=1)  # txtai normalises: dot product = cosine
    assert fast.dtype == np.float32
    assert cosines.mean() >= 0.99
    assert cosines.min() >= 0.98


def test_manifest_records_the_precision_that_built_the_index(sample_index: SampleIndex) -> None:
    store = FileStore(sample_index.settings())

    recorded = store.manifest().embeddings_config["encoder"]

    assert recorded["precision"] == EXPECTED
    assert recorded["requested"] == "auto"
    assert recorded["backend"] == "torch"


def test_queries_are_encoded_with_the_precision_of_the_index(sample_index: SampleIndex) -> None:
    store = FileStore(sample_index.settings())
    version = store.current_version()
    assert version is not None

    index = store.open_version(version)
    try:
        assert model_dtype(index) == {"bf16": "bfloat16", "fp32": "float32"}[EXPECTED]
    finally:
        index.close()


def test_fp32_setting_turns_the_fast_path_off_for_new_indexes(
    tmp_path: Path, sample_index: SampleIndex
) -> None:
    index = small_index(tmp_path, sample_index, encoder_precision="fp32")
    try:
        assert index.manifest.embeddings_config["encoder"]["precision"] == "fp32"
        assert index.manifest.embeddings_config["vectors"]["model_kwargs"]["dtype"] == "float32"
        assert model_dtype(index) == "float32"
    finally:
        index.close()


@pytest.mark.skipif(not native_bf16(), reason="this CPU builds fp32 indexes anyway")
def test_fp32_setting_turns_the_fast_path_off_when_reading_a_bf16_index(
    sample_index: SampleIndex,
) -> None:
    store = FileStore(
        Settings(data_dir=sample_index.data_dir, offline=True, encoder_precision="fp32")
    )
    version = store.current_version()
    assert version is not None

    index = store.open_version(version)
    try:
        assert index.manifest.embeddings_config["encoder"]["precision"] == "bf16"
        assert model_dtype(index) == "float32"
    finally:
        index.close()


def test_cpu_without_bf16_builds_in_fp32_and_says_why(
    no_bf16_cpu: None, caplog: pytest.LogCaptureFixture, tmp_path: Path, sample_index: SampleIndex
) -> None:
    with caplog.at_level(logging.WARNING):
        index = small_index(tmp_path, sample_index, encoder_precision="bf16")
    try:
        recorded = index.manifest.embeddings_config["encoder"]
        assert recorded["precision"] == "fp32"
        assert recorded["requested"] == "bf16"
        assert "no native bf16" in recorded["fallback"]
        assert model_dtype(index) == "float32"
    finally:
        index.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("no native bf16" in message for message in warnings) == 1


def test_auto_on_a_cpu_without_bf16_is_fp32_with_an_info_line_not_a_warning(
    no_bf16_cpu: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="indexing.encoder"):
        choice = choose_precision("auto")

    assert choice.precision == "fp32"
    assert "no native bf16" in choice.reason
    assert [r.levelno for r in caplog.records] == [logging.INFO]
    assert "no native bf16" in caplog.records[0].getMessage()


def test_bf16_index_is_read_in_fp32_on_a_cpu_without_bf16(no_bf16_cpu: None) -> None:
    built_here = {
        "vectors": vectors_args("bf16"),
        "encoder": {"backend": "torch", "precision": "bf16", "requested": "auto"},
    }

    overrides = reading_overrides(built_here, "auto")

    assert overrides["vectors"]["model_kwargs"]["dtype"] == "float32"
    assert overrides["encoder"]["precision"] == "fp32"
    assert reading_overrides({"method": "sentence-transformers"}, "fp32") == {}  # older index
