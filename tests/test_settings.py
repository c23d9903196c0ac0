"""Settings: typed, validated, documented in the README, and honest about model fallbacks."""

from __future__ import annotations

import logging
import re

import pytest
from pydantic import ValidationError

from indexing.models import OFFLINE_EMBEDDINGS, resolve_embeddings
from indexing.settings import DEFAULT_EMBEDDINGS, DEFAULT_EUTILS_URL, Settings
from rag.settings import RagSettings
from tests.conftest import ROOT


def env_names() -> set[str]:
    names = set()
    for model in (Settings, RagSettings):
        prefix = model.model_config.get("env_prefix", "")
        names |= {f"{prefix}{name}".upper() for name in model.model_fields}
    return names


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`(PUBMED_RAG_[A-Z0-9_]+)`", readme))
    missing = env_names() - documented
    assert not missing, f"settings missing from the README table: {sorted(missing)}"
    stale = documented - env_names() - {"PUBMED_RAG_SHARED_DATA"}
    assert not stale, f"README documents settings that do not exist: {sorted(stale)}"


def test_every_setting_has_a_description() -> None:
    for model in (Settings, RagSettings):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"


def test_defaults_are_the_real_services(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("PUBMED_RAG_EUTILS_URL", "PUBMED_RAG_EMBEDDINGS", "PUBMED_RAG_OFFLINE"):
        monkeypatch.delenv(key, raising=False)
    settings = Settings()
    assert settings.eutils_url == DEFAULT_EUTILS_URL
    assert settings.embeddings == DEFAULT_EMBEDDINGS == "neuml/pubmedbert-base-embeddings"
    assert settings.offline is False


def test_settings_read_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUBMED_RAG_EUTILS_URL", "http://127.0.0.1:9/eutils")
    monkeypatch.setenv("PUBMED_RAG_OFFLINE", "1")
    monkeypatch.setenv("PUBMED_RAG_NCBI_BATCH_SIZE", "50")
    settings = Settings()
    assert settings.eutils_url == "http://127.0.0.1:9/eutils/"  # slash added: a base URL
    assert settings.offline is True
    assert settings.ncbi_batch_size == 50


def test_invalid_values_are_rejected_with_the_setting_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUBMED_RAG_NCBI_BATCH_SIZE", "0")
    with pytest.raises(ValidationError, match="ncbi_batch_size"):
        Settings()


def test_offline_mode_uses_the_bundled_embedder() -> None:
    choice = resolve_embeddings(Settings(offline=True))
    assert choice.name == OFFLINE_EMBEDDINGS
    assert choice.fallback_reason == ""
    assert (ROOT / choice.path).exists() or choice.path.endswith("model")


def test_unreachable_model_falls_back_loudly(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with caplog.at_level(logging.WARNING):
        choice = resolve_embeddings(Settings(offline=False, embeddings="no-such-org/no-such-model"))
    assert choice.name == OFFLINE_EMBEDDINGS
    assert "no-such-org/no-such-model" in choice.fallback_reason
    assert any("WARNING" in r.getMessage() and "offline" in r.getMessage() for r in caplog.records)
