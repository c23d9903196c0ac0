"""The encoder's precision: bf16 where the CPU has it, else int8 through ONNX Runtime, recorded
in the index, the same for queries.

Real MiniLM weights (the offline embedder), a real ONNX export and real PubMed abstracts
throughout; the only stand-in is the CPU's flag list in the fallback tests, so that both
choices run on whichever CPU the suite runs on.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from indexing import encoder, onnx_encoder
from indexing.encoder import (
    BACKENDS,
    choose_precision,
    native_bf16,
    reading_overrides,
    vectors_args,
)
from indexing.model_profiles import LAST_TOKEN_METHOD
from indexing.onnx_encoder import ensure_export, runtime_missing, unavailable
from indexing.onnx_vectors import OnnxVectors
from indexing.settings import Settings, offline_embeddings_path
from indexing.store import PublishedIndex
from indexing.store.files import FileStore
from tests.fixtures_index import SampleIndex, build_index, sample_index

__all__ = ["sample_index"]

EXPECTED = "bf16" if native_bf16() else ("fp32" if runtime_missing() else "int8")
MINILM = str(offline_embeddings_path())


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
    """The dtype of the weights the index's query encoder runs with (``int8``: ONNX Runtime)."""
    assert index.embeddings is not None
    if isinstance(index.embeddings.model, OnnxVectors):
        return "int8"
    return str(index.embeddings.model.model.dtype).removeprefix("torch.")


def real_texts(sample_index: SampleIndex, count: int = 48) -> list[str]:
    return [
        f"{article.title}\n{article.abstract_text}"
        for article in sample_index.articles.values()
        if article.has_abstract
    ][:count]


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
    texts = real_texts(sample_index)

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
    assert recorded["backend"] == BACKENDS[EXPECTED]


def test_queries_are_encoded_with_the_precision_of_the_index(sample_index: SampleIndex) -> None:
    store = FileStore(sample_index.settings())
    version = store.current_version()
    assert version is not None

    index = store.open_version(version)
    try:
        assert model_dtype(index) == {"bf16": "bfloat16", "fp32": "float32"}.get(EXPECTED, EXPECTED)
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


def test_auto_on_a_cpu_without_bf16_and_without_onnx_runtime_is_fp32_with_an_info_line(
    no_bf16_cpu: None, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(onnx_encoder, "runtime_missing", lambda: "onnxruntime not installed")
    with caplog.at_level(logging.INFO, logger="indexing.encoder"):
        choice = choose_precision("auto", MINILM)

    assert choice.precision == "fp32"
    assert "no native bf16" in choice.reason
    assert "onnxruntime not installed" in choice.reason
    assert [r.levelno for r in caplog.records] == [logging.INFO]


def test_bf16_index_is_read_in_fp32_on_a_cpu_without_bf16(
    no_bf16_cpu: None, tmp_path: Path
) -> None:
    built_here = {
        "vectors": vectors_args("bf16"),
        "encoder": {"backend": "torch", "precision": "bf16", "requested": "auto"},
    }

    overrides = reading_overrides(built_here, "auto", MINILM, tmp_path)

    assert overrides["vectors"]["model_kwargs"]["dtype"] == "float32"
    assert overrides["encoder"]["precision"] == "fp32"
    older = {"method": "sentence-transformers"}
    assert reading_overrides(older, "fp32", MINILM, tmp_path) == {}  # older index


needs_onnx = pytest.mark.skipif(bool(runtime_missing()), reason="ONNX Runtime not installed")


@needs_onnx
def test_auto_on_a_cpu_without_bf16_builds_in_int8_and_searches_with_it(
    no_bf16_cpu: None, tmp_path: Path, sample_index: SampleIndex
) -> None:
    index = small_index(tmp_path, sample_index)
    try:
        recorded = index.manifest.embeddings_config["encoder"]
        assert recorded == {"backend": "onnxruntime", "precision": "int8", "requested": "auto"}
        assert model_dtype(index) == "int8"
        assert index.embeddings is not None
        article = next(a for a in list(sample_index.articles.values())[:6] if a.has_abstract)
        hits = index.embeddings.search(article.abstract_text[:300], 1)
        assert hits[0]["id"].split("#")[0] == article.pmid
        from rag.rerank import token_vectors  # late interaction reads the ONNX hidden states

        query, passage = token_vectors(index, ["stent thrombosis", hits[0]["text"]], "query")
        assert query.shape == (len(query), 384) and 2 <= len(query) < len(passage)
        assert np.allclose(np.linalg.norm(passage, axis=1), 1, atol=1e-5)
    finally:
        index.close()


@needs_onnx
def test_int8_embeddings_of_real_abstracts_match_fp32(
    tmp_path: Path, sample_index: SampleIndex
) -> None:
    from txtai import Embeddings

    texts = real_texts(sample_index)
    config = onnx_encoder.txtai_config(MINILM, tmp_path)

    fast = np.asarray(Embeddings(config).batchtransform(texts))
    exact = encode(texts, "fp32")

    cosines = (fast * exact).sum(axis=1)
    assert cosines.mean() >= 0.99
    assert cosines.min() >= 0.97


@needs_onnx
def test_the_export_is_made_once_and_a_killed_one_leaves_nothing_to_load(
    tmp_path: Path,
) -> None:
    leftover = tmp_path / ".model-int8-killed"  # what a killed export leaves behind
    leftover.mkdir()
    (leftover / "model.onnx").write_bytes(b"half a model")

    first = ensure_export(MINILM, tmp_path)
    written = (first / "model.onnx").stat().st_mtime_ns
    again = ensure_export(MINILM, tmp_path)

    assert again == first
    assert (again / "model.onnx").stat().st_mtime_ns == written
    assert sorted(p.name for p in first.iterdir()) == [
        "export.json",
        "model.onnx",
        "tokenizer.json",
    ]
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".")] == [leftover]


@needs_onnx
def test_int8_index_is_read_with_the_torch_encoder_when_the_setting_says_fp32(
    tmp_path: Path,
) -> None:
    built = {
        "method": onnx_encoder.METHOD,
        "path": "/elsewhere/model.onnx",
        "tokenizer": "/elsewhere/tokenizer.json",
        "encoder": {"backend": "onnxruntime", "precision": "int8", "requested": "auto"},
    }

    overrides = reading_overrides(built, "fp32", MINILM, tmp_path)
    here = reading_overrides(built, "auto", MINILM, tmp_path)

    assert overrides["method"] == "sentence-transformers"
    assert overrides["path"] == MINILM and overrides["tokenizer"] is None
    assert overrides["vectors"]["model_kwargs"]["dtype"] == "float32"
    assert here["method"] == onnx_encoder.METHOD  # this machine's export, not the recorded path
    assert here["path"].startswith(str(tmp_path))


@needs_onnx
def test_models_the_export_does_not_cover_are_named_with_the_reason(tmp_path: Path) -> None:
    import json

    decoder = tmp_path / "decoder"
    decoder.mkdir()
    (decoder / "config.json").write_text(json.dumps({"model_type": "gpt_neox"}))
    cls = tmp_path / "cls"
    (cls / "1_Pooling").mkdir(parents=True)
    (cls / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (cls / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    modules = [
        {"idx": 0, "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    (cls / "modules.json").write_text(json.dumps(modules))

    assert unavailable(MINILM, "sentence-transformers") == ""
    assert "profile" in unavailable(MINILM, LAST_TOKEN_METHOD)
    assert "gpt_neox" in unavailable(str(decoder), "sentence-transformers")
    assert "mean pooling" in unavailable(str(cls), "sentence-transformers")
    assert choose_precision("int8", str(cls)).precision == "fp32"
