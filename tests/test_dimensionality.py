"""Matryoshka-style truncation: the stored width is recorded, used by readers, never mixed.

Real MiniLM weights (the offline embedder, 384 dimensions) and real PubMed records build
tiny real indexes at 128 and 64 dimensions. MiniLM was not trained for truncation, so only
the mechanics are checked here, not the quality of cut vectors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from indexing.model_profiles import DimensionalityError
from indexing.settings import Settings
from indexing.store import PublishedIndex
from indexing.store.files import FileStore
from tests.fixtures_index import SampleIndex, build_index, sample_index

__all__ = ["sample_index"]


def publish(data_dir: Path, sample_index: SampleIndex, count: int, **settings: object) -> None:
    """Publish (or update with) the first ``count`` sample records under ``settings``."""
    articles = dict(list(sample_index.articles.items())[:count])
    build_index(data_dir, articles, Settings(data_dir=data_dir, offline=True, **settings))


def open_current(data_dir: Path, **settings: object) -> PublishedIndex:
    store = FileStore(Settings(data_dir=data_dir, offline=True, **settings))
    version = store.current_version()
    assert version is not None
    return store.open_version(version)


@pytest.mark.parametrize("width", [128, 64])
def test_index_stores_vectors_of_the_chosen_width_and_searches(
    tmp_path: Path, sample_index: SampleIndex, width: int
) -> None:
    data_dir = tmp_path / "data"
    publish(data_dir, sample_index, 6, dimensionality=width)
    index = open_current(data_dir)
    try:
        assert index.manifest.dimensions == width
        assert index.manifest.dimensionality == width
        assert index.embeddings.ann.backend.d == width  # the faiss index itself
        query = np.asarray(index.embeddings.batchtransform(["proton pump inhibitor safety"]))
        assert query.shape == (1, width)
        assert np.linalg.norm(query[0]) == pytest.approx(1.0, abs=1e-5)  # normalised after cutting
        hits = index.search("proton pump inhibitors", 3)
        assert hits and all(hit["score"] > 0 for hit in hits)
    finally:
        index.close()


def test_reader_uses_the_recorded_width_not_the_setting(
    tmp_path: Path, sample_index: SampleIndex
) -> None:
    data_dir = tmp_path / "data"
    publish(data_dir, sample_index, 4, dimensionality=128)
    index = open_current(data_dir, dimensionality=64)
    try:
        assert np.asarray(index.embeddings.batchtransform(["stent"])).shape == (1, 128)
        assert index.search("stent", 2)
    finally:
        index.close()


@pytest.mark.parametrize("update", [{"dimensionality": 64}, {}])
def test_update_with_another_width_is_refused(
    tmp_path: Path, sample_index: SampleIndex, update: dict[str, object]
) -> None:
    data_dir = tmp_path / "data"
    publish(data_dir, sample_index, 3, dimensionality=128)
    with pytest.raises(DimensionalityError, match="stores 128 dimensions"):
        publish(data_dir, sample_index, 5, **update)
    index = open_current(data_dir)
    try:
        assert index.manifest.articles == 3  # the published index is untouched
    finally:
        index.close()


def test_full_width_index_refuses_a_truncating_update(
    tmp_path: Path, sample_index: SampleIndex
) -> None:
    data_dir = tmp_path / "data"
    publish(data_dir, sample_index, 3)
    with pytest.raises(DimensionalityError, match="all 384 dimensions"):
        publish(data_dir, sample_index, 5, dimensionality=128)
    publish(data_dir, sample_index, 5, dimensionality=384)  # the full width is no truncation
    index = open_current(data_dir)
    try:
        assert index.manifest.articles == 5 and index.manifest.dimensionality is None
    finally:
        index.close()


def test_same_width_update_appends(tmp_path: Path, sample_index: SampleIndex) -> None:
    data_dir = tmp_path / "data"
    publish(data_dir, sample_index, 3, dimensionality=64)
    publish(data_dir, sample_index, 5, dimensionality=64)
    index = open_current(data_dir)
    try:
        assert index.manifest.articles == 5 and index.embeddings.ann.backend.d == 64
    finally:
        index.close()


def test_width_larger_than_the_model_is_refused(tmp_path: Path, sample_index: SampleIndex) -> None:
    data_dir = tmp_path / "data"
    with pytest.raises(DimensionalityError, match="larger than the model's 384"):
        publish(data_dir, sample_index, 2, dimensionality=512)
    assert FileStore(Settings(data_dir=data_dir, offline=True)).current_version() is None
