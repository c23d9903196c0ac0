"""What only the PostgreSQL backend has: credentials, server errors, schema versions, pinning.

The behaviour both backends share (ingestion, updates, deletions, faults, kill -9, readers
during updates, locks) is tested on both in ``test_ingest.py`` and ``test_job.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from indexing import onnx_encoder
from indexing.store import IndexReader, open_store
from indexing.store.postgres import PgStore, mask_url, scrub
from rag.search import Feedback, Filters, search
from tests.conftest import KEPT_SETTINGS, METAPUB_PMIDS, ROOT, needs_shared_data
from tests.fixtures_pg import SCHEMA, TEST_PASSWORD, Backend, PgServer

pytestmark = needs_shared_data()

SUBSET = sorted(METAPUB_PMIDS.glob("*.xml"))[:12] if METAPUB_PMIDS.exists() else []

# The vectors methods this program's code names: torch (bf16/fp32) or the int8 ONNX encoder.
ENCODER_METHODS = ("sentence-transformers", onnx_encoder.METHOD)


def run_cli(data_dir: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m indexing ARGS`` on a database, as a user runs it."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("PUBMED_RAG_") or k in KEPT_SETTINGS
    }
    env.update(
        PUBMED_RAG_DATA_DIR=str(data_dir),
        PUBMED_RAG_OFFLINE="1",
        PUBMED_RAG_DATABASE_URL=url,
        HF_HUB_OFFLINE="1",
        PYTHONPATH=str(ROOT),
    )
    return subprocess.run(
        [sys.executable, "-m", "indexing", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture
def postgres(pg_server: PgServer) -> Backend:
    """The PostgreSQL backend."""
    return Backend("postgres", pg_server)


def test_mask_url_hides_passwords_in_user_part_and_parameters() -> None:
    url = "postgresql://rag:p%40ss:w0rd@db.example.org:5432/pubmed?sslmode=require"
    assert mask_url(url) == "postgresql://rag:***@db.example.org:5432/pubmed?sslmode=require"
    assert "s3" not in mask_url("postgresql://rag@db/pubmed?password=s3cret")
    assert mask_url("postgresql://rag@db/pubmed") == "postgresql://rag@db/pubmed"
    text = f"failed for {url} with p@ss:w0rd and p%40ss:w0rd"
    assert "w0rd" not in scrub(text, url)


def test_unreachable_server_fails_with_one_clear_line_and_no_password(tmp_path: Path) -> None:
    url = f"postgresql://rag:{TEST_PASSWORD}@127.0.0.1:1/pubmed"

    for args in (("ingest", "--xml", str(SUBSET[0])), ("info",)):
        result = run_cli(tmp_path / "data", url, *args)

        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("error: cannot connect to the PostgreSQL server at ")
        assert "postgresql://rag:***@127.0.0.1:1/pubmed" in last
        assert TEST_PASSWORD not in result.stderr + result.stdout


def test_server_without_pgvector_for_this_user_says_how_to_enable_it(
    pg_server: PgServer, tmp_path: Path
) -> None:
    with pg_server.admin() as admin:
        admin.execute("DROP DATABASE IF EXISTS novector")
        admin.execute("DROP ROLE IF EXISTS plain")
        admin.execute("CREATE ROLE plain LOGIN NOSUPERUSER")
        admin.execute("CREATE DATABASE novector OWNER plain")
    url = pg_server.url("novector", user="plain")

    result = run_cli(tmp_path / "data", url, "-q", "ingest", "--xml", str(SUBSET[0]))

    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert "`vector` extension (pgvector)" in last and "CREATE EXTENSION vector" in last
    assert TEST_PASSWORD not in result.stderr


def test_first_ingest_creates_a_versioned_schema_and_never_shows_the_password(
    postgres: Backend, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    url = postgres.url(data_dir)
    folder = tmp_path / "xml"
    folder.mkdir()
    for path in SUBSET[:4]:
        (folder / path.name).write_bytes(path.read_bytes())

    ingest = run_cli(data_dir, url, "ingest", "--xml", str(folder))  # INFO logs on stderr
    info = run_cli(data_dir, url, "info", "--json")

    assert ingest.returncode == 0, ingest.stderr
    assert info.returncode == 0, info.stderr
    data = json.loads(info.stdout)
    assert (data["backend"], data["articles"], data["index_version"]) == (
        "postgresql",
        4,
        "v000001",
    )
    assert data["location"] == f"{mask_url(url)} (schema {SCHEMA})"
    store = open_store(postgres.settings(data_dir))
    assert isinstance(store, PgStore)
    with store.db() as conn:
        meta = dict(conn.execute(f"SELECT key, value FROM {SCHEMA}.meta").fetchall())
        stored = conn.execute(f"SELECT manifest::text FROM {SCHEMA}.versions").fetchall()
        history = conn.execute(f"SELECT report::text FROM {SCHEMA}.history").fetchall()
    assert meta["schema_version"] == "1"
    for text in [ingest.stdout, ingest.stderr, info.stdout, *map(str, stored), *map(str, history)]:
        assert TEST_PASSWORD not in text

    # A later release that migrated the schema further is not run against by this one.
    with store.db() as conn:
        conn.execute(f"UPDATE {SCHEMA}.meta SET value = '99' WHERE key = 'schema_version'")
    store.close()
    newer = run_cli(data_dir, url, "info")
    assert newer.returncode == 2
    assert "schema version 99, newer than this release supports (1)" in newer.stderr


def test_reader_keeps_its_version_while_newer_ones_publish_and_cleanup_runs(
    postgres: Backend, tmp_path: Path
) -> None:
    from indexing.ingest import ingest_files

    settings = postgres.settings(tmp_path / "data", keep_versions=1)
    ingest_files(SUBSET[:6], settings, quiet=True)
    reader = IndexReader(settings)
    old = reader.get()
    assert old.version == "v000001"

    ingest_files(SUBSET[6:9], settings, quiet=True)
    ingest_files(SUBSET[9:], settings, quiet=True)

    store = open_store(settings)
    # v000001 is pinned by the open handle: cleanup kept it, and it still answers.
    assert store.published_versions() == ["v000001", "v000003"]
    assert old.search("select count(*) AS n from txtai", 1)[0]["n"] == old.manifest.passages
    fresh = reader.get()
    assert (fresh.version, fresh.manifest.articles) == ("v000003", len(SUBSET))
    old.close()
    del old
    with store.lock():
        store.cleanup()
    assert store.published_versions() == ["v000003"]

    # The search filters (bound parameters, typed columns, instr()) run as on SQLite.
    first = search(reader, "treatment of patients", limit=5).hits[0]
    assert first.year is not None
    filters = Filters(
        year_from=first.year,
        journal=first.journal[2:9].upper(),
        has_abstract=True,
        exclude_retracted=True,
    )
    result = search(reader, "treatment of patients", filters, limit=5)
    assert first.pmid in [hit.pmid for hit in result.hits]
    assert all(hit.year and hit.year >= first.year for hit in result.hits)
    assert all(first.journal[2:9].lower() in hit.journal.lower() for hit in result.hits)
    assert all(0.0 <= hit.bm25_score <= 1.0 for hit in result.hits)
    # Feedback searches pgvector again with a vector, not a text, under the same filters.
    fed = search(reader, "treatment of patients", filters, limit=5, feedback=Feedback(2, 1.0))
    assert fed.hits
    assert all(hit.year and hit.year >= first.year for hit in fed.hits)
    assert all(first.journal[2:9].lower() in hit.journal.lower() for hit in fed.hits)
    store.close()


def test_hnsw_index_is_built_once_at_publish_not_row_by_row(
    postgres: Backend, tmp_path: Path
) -> None:
    from indexing.article import Article
    from indexing.pubmed import open_xml, parse_pubmed_xml

    def hnsw_indexes(store: PgStore, version: str) -> list[str]:
        with store.db() as conn:
            rows = conn.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = %s "
                "AND indexdef LIKE '%%USING hnsw%%'",
                (store.version_schema(version),),
            ).fetchall()
        return [name for (name,) in rows]

    articles = []
    for path in SUBSET:
        with open_xml(path) as stream:
            articles += [r for r in parse_pubmed_xml(stream) if isinstance(r, Article)]
    settings = postgres.settings(tmp_path / "data")
    store = open_store(settings)
    assert isinstance(store, PgStore)
    for batches in ([articles[:4], articles[4:8]], [articles[8:]]):  # new index, then a copy
        with store.lock(), store.open_writer() as writer:
            for batch in batches:
                writer.upsert_articles(batch, source="xml")
            staging = writer.staging_version
            assert staging is not None
            assert hnsw_indexes(store, staging) == []  # none while rows go in
            assert writer.deferred_indexes
            version = writer.publish().version
        assert len(hnsw_indexes(store, version)) == 1

    reader = IndexReader(settings)
    assert reader.get().manifest.articles == len(articles)
    assert search(reader, "treatment of patients", limit=3).hits
    store.close()


def test_index_recording_the_old_content_class_path_still_loads_and_filters(
    postgres: Backend, tmp_path: Path
) -> None:
    """Indexes published before ``indexing.store`` name ``indexing.pgcontent.PgContent``."""
    from indexing.article import Article
    from indexing.pubmed import open_xml, parse_pubmed_xml
    from indexing.store import build_index
    from indexing.store.postgres.common import CONTENT_CLASS

    articles = []
    for path in SUBSET[:6]:
        with open_xml(path) as stream:
            articles += [r for r in parse_pubmed_xml(stream) if isinstance(r, Article)]
    settings = postgres.settings(tmp_path / "data")
    manifest = build_index(articles, settings, source="xml")
    assert manifest.embeddings_config["content"] == CONTENT_CLASS
    store = open_store(settings)
    assert isinstance(store, PgStore)
    with store.db() as conn:
        conn.execute(
            f"UPDATE {SCHEMA}.versions SET manifest = jsonb_set(manifest, "
            "'{embeddings_config,content}', '\"indexing.pgcontent.PgContent\"')"
        )
    old = store.manifest(manifest.version)
    assert old.embeddings_config["content"] == "indexing.pgcontent.PgContent"

    reader = IndexReader(settings)
    first = search(reader, "treatment of patients", limit=3).hits[0]
    assert first.year is not None
    result = search(reader, "treatment of patients", Filters(year_from=first.year), limit=3)
    assert first.pmid in [hit.pmid for hit in result.hits]
    store.close()


HOSTILE = "tests.hostile_config_module.Hostile"


def test_stored_config_naming_other_modules_is_not_imported_when_loading(
    postgres: Backend, tmp_path: Path
) -> None:
    """The stored txtai configuration is data: the classes txtai imports come from code."""
    import sys

    from indexing.article import Article
    from indexing.pubmed import open_xml, parse_pubmed_xml
    from indexing.store import build_index
    from indexing.store.postgres.common import CONTENT_CLASS, KEYWORDS_METHOD, VECTORS_CLASS

    articles = []
    for path in SUBSET[:4]:
        with open_xml(path) as stream:
            articles += [r for r in parse_pubmed_xml(stream) if isinstance(r, Article)]
    settings = postgres.settings(tmp_path / "data")
    manifest = build_index(articles, settings, source="xml")
    tampered = {
        **manifest.embeddings_config,
        "content": HOSTILE,
        "backend": HOSTILE,
        "method": HOSTILE,
        "scoring": {"method": HOSTILE, "terms": True},
        "graph": {"backend": HOSTILE},
        "sparse": HOSTILE,
        "functions": [HOSTILE],
        "transform": HOSTILE,
        "indexes": {"evil": {"method": HOSTILE, "content": HOSTILE}},
        "vectors": {"model_kwargs": {"dtype": HOSTILE}, "trust_remote_code": True},
    }
    store = open_store(settings)
    assert isinstance(store, PgStore)
    with store.db() as conn:
        conn.execute(
            f"UPDATE {SCHEMA}.versions SET manifest = jsonb_set(manifest, "
            "'{embeddings_config}', %s::jsonb)",
            (json.dumps(tampered),),
        )
    assert store.manifest(manifest.version).embeddings_config["content"] == HOSTILE

    reader = IndexReader(settings)
    assert search(reader, "treatment of patients", limit=3).hits
    loaded = reader.get().embeddings.config
    assert "tests.hostile_config_module" not in sys.modules
    assert loaded["content"] == CONTENT_CLASS and loaded["backend"] == VECTORS_CLASS
    assert loaded["method"] in ENCODER_METHODS  # chosen by code (int8: this machine's export)
    assert loaded["scoring"]["method"] == KEYWORDS_METHOD
    assert not {"graph", "sparse", "functions", "transform", "indexes"} & loaded.keys()
    store.close()


def test_writer_whose_lock_connection_drops_publishes_nothing_and_a_rerun_works(
    postgres: Backend, pg_server: PgServer, tmp_path: Path
) -> None:
    """A dropped lock is free for another writer: the run must notice before it publishes."""
    import time

    from indexing.ingest import ingest_files
    from indexing.store import WriterLockLostError

    settings = postgres.settings(tmp_path / "data")
    terminated: list[int] = []

    def drop_the_lock(state: object) -> None:
        if terminated:
            return
        with pg_server.admin() as admin:
            rows = admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'pubmed-rag write lock'"
            ).fetchall()
            assert len(rows) == 1, rows
            pid = rows[0][0]
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            deadline = time.monotonic() + 30
            while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
                assert time.monotonic() < deadline
                time.sleep(0.05)
        terminated.append(pid)

    with pytest.raises(WriterLockLostError, match="nothing was published"):
        ingest_files(SUBSET[:3], settings, quiet=True, progress=drop_the_lock)

    assert terminated
    store = open_store(settings)
    assert store.current_version() is None  # nothing published
    assert TEST_PASSWORD not in str(store.read_history())
    assert store.read_history()[0]["status"] == "failed"

    report = ingest_files(SUBSET[:3], settings, quiet=True)
    assert report.status == "ok" and store.current_version() is not None
    store.close()


def test_lock_connection_asks_for_tcp_keepalives(postgres: Backend, tmp_path: Path) -> None:
    store = open_store(postgres.settings(tmp_path / "data"))
    assert isinstance(store, PgStore)
    with store.lock(purpose="test"):
        assert store.write_lock is not None and store.write_lock._conn is not None
        params = store.write_lock._conn.info.get_parameters()
        assert params.get("keepalives") == "1" and params.get("keepalives_idle") == "30"
    store.close()


def test_truncated_index_keeps_its_width_and_a_stored_profile_only_picks_a_known_row(
    postgres: Backend, tmp_path: Path
) -> None:
    """PUBMED_RAG_DIMENSIONALITY on PostgreSQL: the width comes from the stored (data) config;
    an unknown profile name in it falls back to plain sentence-transformers, never an import."""
    import numpy as np

    from indexing.article import Article
    from indexing.model_profiles import DimensionalityError
    from indexing.pubmed import open_xml, parse_pubmed_xml
    from indexing.store import build_index

    articles = []
    for path in SUBSET[:4]:
        with open_xml(path) as stream:
            articles += [r for r in parse_pubmed_xml(stream) if isinstance(r, Article)]
    settings = postgres.settings(tmp_path / "data", dimensionality=64)
    manifest = build_index(articles, settings, source="xml")
    assert manifest.dimensions == 64 and manifest.dimensionality == 64
    store = open_store(settings)
    assert isinstance(store, PgStore)
    with store.db() as conn:
        conn.execute(
            f"UPDATE {SCHEMA}.versions SET manifest = jsonb_set(manifest, "
            "'{embeddings_config,profile}', %s::jsonb)",
            (json.dumps("tests.hostile_config_module.Hostile"),),
        )
    store.close()
    unset = postgres.settings(tmp_path / "data")  # the reader's setting differs: not used
    reader = IndexReader(unset)
    assert search(reader, "treatment of patients", limit=3).hits
    embeddings = reader.get().embeddings
    assert embeddings.config["method"] in ENCODER_METHODS
    assert np.asarray(embeddings.batchtransform(["stent"])).shape == (1, 64)
    other = open_store(unset)
    try:
        with (
            pytest.raises(DimensionalityError, match="stores 64 dimensions"),
            other.lock(),
            other.open_writer() as writer,
        ):
            writer.publish("never")
    finally:
        other.close()
