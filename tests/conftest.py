"""Shared fixtures: real data from ../shared/data, isolated settings, offline models."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["tests.fixtures_eutils", "tests.fixtures_index", "tests.fixtures_pg"]

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("PUBMED_RAG_SHARED_DATA", ROOT.parent / "shared" / "data"))
PUBMED_SAMPLES = SHARED_DATA / "pubmed-xml-samples"
EUTILS_SAMPLES = SHARED_DATA / "ncbi-eutils-biopython"
METAPUB_PMIDS = PUBMED_SAMPLES / "metapub" / "pmid_xml"

# Tests never download: any hub access fails at once instead of hanging on a closed network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session", autouse=True)
def shared_encoder_exports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One int8 ONNX export of each encoder per test session, shared by every data dir.

    Where the encoder runs in int8 (CPUs without native bf16), each test's fresh data dir
    would otherwise export the model again (several seconds each).
    """
    key = "PUBMED_RAG_ENCODER_CACHE_DIR"
    if key in os.environ:
        yield
        return
    os.environ[key] = str(tmp_path_factory.mktemp("encoder-exports"))
    yield
    os.environ.pop(key, None)


# settings_env keeps these: real data, and the session's shared encoder exports.
KEPT_SETTINGS = ("PUBMED_RAG_SHARED_DATA", "PUBMED_RAG_ENCODER_CACHE_DIR")


def clear_settings_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ``PUBMED_RAG_*`` setting back to its default, but :data:`KEPT_SETTINGS`."""
    for key in list(os.environ):
        if key.startswith("PUBMED_RAG_") and key not in KEPT_SETTINGS:
            monkeypatch.delenv(key)


def needs_shared_data(path: Path = SHARED_DATA) -> pytest.MarkDecorator:
    """Skip where the shared real data is absent (it is present in CI)."""
    return pytest.mark.skipif(not path.exists(), reason=f"shared data not found at {path}")


@pytest.fixture
def settings_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point every PUBMED_RAG_* setting at a fresh data dir and the offline models."""
    from indexing.settings import get_settings

    clear_settings_env(monkeypatch)
    data_dir = tmp_path / "data"
    monkeypatch.setenv("PUBMED_RAG_DATA_DIR", str(data_dir))
    monkeypatch.setenv("PUBMED_RAG_OFFLINE", "1")
    get_settings.cache_clear()
    yield data_dir
    get_settings.cache_clear()
