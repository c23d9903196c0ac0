"""The store's public shape: the factory, typed records, the summary of an empty index."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from indexing.settings import Settings
from indexing.store import (
    IndexInfo,
    IndexNotFoundError,
    Manifest,
    PublishedIndex,
    TrackedQuery,
    VersionStore,
    Writer,
    index_info,
    open_store,
)
from indexing.store.files import FilePublishedIndex, FileStore, FileWriter

STATE = {
    "mindate": "2020/01/01",
    "maxdate": None,
    "max": 500,
    "added_at": "2026-11-20T10:00:00+00:00",
    "last_success": "2026-11-22T10:00:00+00:00",
    "last_count": 42,
}


def test_the_settings_choose_the_files_backend_without_a_database_url(tmp_path: Path) -> None:
    store = open_store(Settings(data_dir=tmp_path, offline=True))

    assert isinstance(store, FileStore) and isinstance(store, VersionStore)
    assert (store.backend, store.where) == ("embedded", str(tmp_path / "index"))


def test_backends_subclass_the_public_base() -> None:
    assert issubclass(FileWriter, Writer) and issubclass(FilePublishedIndex, PublishedIndex)
    with pytest.raises(TypeError):
        Writer(FileStore(Settings(offline=True)))  # type: ignore[abstract]


def test_tracked_query_round_trips_its_manifest_form_and_keeps_unknown_keys() -> None:
    query = TrackedQuery.from_state("asthma[mh]", {**STATE, "future": 1})

    assert (query.term, query.max_records, query.last_count) == ("asthma[mh]", 500, 42)
    assert query.last_success == "2026-11-22T10:00:00+00:00"
    assert query.state() == {**STATE, "future": 1}


def test_manifest_json_keeps_the_queries_in_their_manifest_form() -> None:
    manifest = Manifest("v000001", "now", "model", 768, 2, 3, queries={"asthma[mh]": STATE})

    text = manifest.to_json()

    assert json.loads(text)["queries"] == {"asthma[mh]": STATE}
    assert Manifest.from_json(text) == manifest
    assert manifest.tracked_queries()["asthma[mh]"].mindate == "2020/01/01"


def test_index_info_of_an_empty_data_dir_says_nothing_is_published(tmp_path: Path) -> None:
    info = index_info(Settings(data_dir=tmp_path, offline=True))

    assert isinstance(info, IndexInfo) and not info.has_index
    assert info.to_dict() == {
        "data_dir": str(tmp_path),
        "backend": "embedded",
        "location": str(tmp_path / "index"),
        "index_version": None,
        "published_at": None,
        "articles": 0,
        "passages": 0,
        "embeddings_model": None,
        "dimensions": None,
        "ner_model": None,
        "offline_mode": True,
        "queries": {},
        "applied_files": 0,
        "versions_on_disk": [],
        "last_run": None,
        "runs": 0,
    }
    with pytest.raises(IndexNotFoundError, match="python -m indexing ingest"):
        FileStore(Settings(data_dir=tmp_path, offline=True)).manifest()


def test_trusted_config_keeps_data_keys_and_takes_class_keys_from_code() -> None:
    from indexing.store.config import trusted_config

    code = {"content": "ours.Content", "backend": "pgvector", "method": "sentence-transformers"}
    stored = {
        "content": "evil.Module",
        "backend": "evil.Ann",
        "method": "evil.Vectors",
        "graph": {"backend": "evil.Graph"},
        "functions": ["evil.run"],
        "indexes": {"x": {"content": "evil.Module"}},
        "dimensions": 384,
        "offset": 7,
        "build": {"txtai": "9.14.0"},
        "encoder": {"precision": "bf16", "backend": "torch", "hook": {"evil": 1}},
        "vectors": {"model_kwargs": {"dtype": "bfloat16"}, "trust_remote_code": True},
        "pgvector": {"m": 16, "url": "postgresql://elsewhere", "schema": "other"},
    }

    config = trusted_config(stored, code)

    assert config == {
        **code,
        "dimensions": 384,
        "offset": 7,
        "build": {"txtai": "9.14.0"},
        "hybrid": True,
        "encoder": {"precision": "bf16", "backend": "torch"},
        "vectors": {"model_kwargs": {"dtype": "bfloat16"}},
        "pgvector": {"m": 16},
    }
    # An encoder dtype this program never writes is not passed on: txtai's defaults load.
    odd = trusted_config({**stored, "vectors": {"model_kwargs": {"dtype": "evil"}}}, code)
    assert "vectors" not in odd and "encoder" not in odd
