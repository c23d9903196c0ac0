"""The update job and its schedule, against the local E-utilities server and real records.

A small index (20 real metapub records, tracked query ``all[sb]``) is built once per module
and copied into each test; new records are served with today's entrez date so that an update
window picks them up. Subprocesses (scheduler, reader loop, killed updates) cost ~10 s of
imports each, so there are few of them.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from indexing import job
from indexing.__main__ import cli
from indexing.article import Article
from indexing.entrez import EntrezClient, EntrezError
from indexing.history import read_history
from indexing.ingest import ingest_query, search_windows
from indexing.job import ChecksumError, update_queries, verify_nlm_md5
from indexing.pubmed import parse_pubmed_xml
from indexing.settings import Settings, get_settings
from indexing.store import IndexReader, open_store
from indexing.store.postgres import PgStore
from testkit.eutils_server import EutilsServer
from tests.conftest import PUBMED_SAMPLES, ROOT
from tests.fixtures_pg import BOTH, Backend

pytestmark = pytest.mark.slow

TERM = "all[sb]"
BASE_SIZE = 20
LONG_PMID = "30849835"  # a base record whose abstract makes three passages
TODAY = date.today()
# Long enough for E-utilities calls in tests to retry once, short enough to fail fast.
FAST_NCBI = {
    "PUBMED_RAG_NCBI_BACKOFF_S": "0.01",
    "PUBMED_RAG_NCBI_MAX_TRIES": "2",
    "PUBMED_RAG_NCBI_BATCH_SIZE": "5",
    "PUBMED_RAG_NCBI_API_KEY": "test-key",  # 10 requests/s instead of 3
    "PUBMED_RAG_NCBI_EMAIL": "tests@example.org",
}


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ordered(metapub_records: dict[str, bytes]) -> list[str]:
    """The metapub PMIDs in a fixed order: the first BASE_SIZE are the base index."""
    return sorted(metapub_records)


@pytest.fixture(scope="module")
def base_indexes(
    tmp_path_factory: pytest.TempPathFactory,
    metapub_records: dict[str, bytes],
    ordered: list[str],
) -> Callable[[Backend], Path]:
    """Builds (once per backend) a data dir whose index holds the base records."""
    built: dict[str, Path] = {}

    def build(backend: Backend) -> Path:
        if backend.name in built:
            return built[backend.name]
        data_dir = tmp_path_factory.mktemp(f"base-{backend.name}") / "data"
        base = {pmid: metapub_records[pmid] for pmid in ordered[:BASE_SIZE]}
        with EutilsServer(base) as server:
            settings = backend.settings(
                data_dir,
                eutils_url=server.url,
                ncbi_backoff_s=0.01,
                ncbi_api_key="test-key",
                ncbi_email="tests@example.org",
            )
            report = ingest_query(TERM, settings, quiet=True)
        assert report.added == BASE_SIZE
        built[backend.name] = data_dir
        return data_dir

    return build


@pytest.fixture
def base_index(base_indexes: Callable[[Backend], Path], backend: Backend) -> Path:
    """The base index on the test's backend (read-only: tests work on copies)."""
    return base_indexes(backend)


@pytest.fixture
def server(metapub_records: dict[str, bytes], ordered: list[str]) -> Iterator[EutilsServer]:
    """A fresh server with the base records."""
    with EutilsServer({pmid: metapub_records[pmid] for pmid in ordered[:BASE_SIZE]}) as running:
        yield running


@pytest.fixture
def settings(
    settings_env: Path,
    base_index: Path,
    server: EutilsServer,
    backend: Backend,
    monkeypatch: pytest.MonkeyPatch,
) -> Settings:
    """Settings (also in the environment, for the CLI and subprocesses) on a copy of the base."""
    backend.copy(base_index, settings_env)
    for key, value in backend.env(settings_env).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PUBMED_RAG_EUTILS_URL", server.url)
    for key, value in FAST_NCBI.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    return get_settings()


# --- helpers --------------------------------------------------------------------------------


def serve_new(server: EutilsServer, records: dict[str, bytes], pmids: list[str]) -> None:
    """Serve records as if they entered PubMed today."""
    for pmid in pmids:
        server.add(records[pmid], edat=TODAY, mdat=TODAY)


def published(settings: Settings) -> tuple[str, Any]:
    """Name and manifest of the published version."""
    store = open_store(settings)
    try:
        version = store.current_version()
        assert version is not None
        return version, store.manifest(version)
    finally:
        store.close()


def _connect(path: Path) -> sqlite3.Connection:
    # Read-only: a test must not change what it checks. (sqlite3's own ``with`` only commits,
    # hence contextlib.closing around it.)
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def catalog(settings: Settings) -> dict[str, tuple[str, int, str]]:
    """``pmid -> (fingerprint, passages, sources)`` of the published version."""
    version, _ = published(settings)
    store = open_store(settings)
    if settings.database_url is not None:
        rows = store.catalog(version)
        store.close()
        return rows
    path = store.version_path(version) / "catalog.sqlite"
    with contextlib.closing(_connect(path)) as db:
        rows = db.execute("SELECT pmid, fingerprint, passages, sources FROM articles")
        return {pmid: (fp, passages, sources) for pmid, fp, passages, sources in rows}


def passages(settings: Settings) -> list[tuple[str, str]]:
    """``(passage id, text)`` of every passage stored by txtai in the published version."""
    version, _ = published(settings)
    store = open_store(settings)
    if settings.database_url is not None:
        import psycopg

        assert isinstance(store, PgStore)
        with psycopg.connect(settings.database_url.get_secret_value()) as db:
            schema = store.version_schema(version)
            return [tuple(row) for row in db.execute(f'SELECT id, text FROM "{schema}".sections')]
    path = store.version_path(version) / "embeddings" / "documents"
    with contextlib.closing(_connect(path)) as db:
        return list(db.execute("SELECT id, text FROM sections"))


def history(settings: Settings) -> list[dict[str, Any]]:
    """The run history, oldest first."""
    if settings.database_url is not None:
        store = open_store(settings)
        try:
            return store.read_history()
        finally:
            store.close()
    return read_history(settings.index_dir)


def staging_copies(settings: Settings) -> list[str]:
    """Unpublished working copies of writers (staging directories or schemas)."""
    if settings.database_url is None:
        return [p.name for p in settings.index_dir.joinpath("versions").glob(".staging-*")]
    import psycopg

    with psycopg.connect(settings.database_url.get_secret_value()) as db:
        rows = db.execute(
            f"SELECT name FROM {settings.database_schema}.versions WHERE state = 'staging'"
        ).fetchall()
    return [name for (name,) in rows]


def lock_holder(settings: Settings) -> str:
    """The text naming the last holder of the writer lock."""
    if settings.database_url is None:
        return (settings.index_dir / ".lock").read_text()
    import psycopg

    with psycopg.connect(settings.database_url.get_secret_value()) as db:
        row = db.execute(
            f"SELECT holder FROM {settings.database_schema}.locks WHERE name = 'write'"
        ).fetchone()
    return str(row[0]) if row else ""


def location(settings: Settings) -> str:
    """Where messages say the index is."""
    store = open_store(settings)
    store.close()
    return store.where


def assert_consistent(settings: Settings) -> None:
    """Catalog, manifest and txtai agree: every passage once, no orphan, no duplicate."""
    _, manifest = published(settings)
    rows = catalog(settings)
    stored = [pid for pid, _ in passages(settings)]
    assert len(stored) == len(set(stored)), "duplicate passages"
    expected = {f"{pmid}#{n}" for pmid, (_, count, _) in rows.items() for n in range(count)}
    assert set(stored) == expected
    assert manifest.articles == len(rows)
    assert manifest.passages == len(stored)


def wait_for(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    process: subprocess.Popen[str] | None = None,
) -> None:
    """Poll until ``condition`` holds; a failure says what ``process`` wrote to stderr.

    The watched process is the one expected to bring the condition about: if it exits first,
    or the time runs out, it is killed and the end of its stderr goes into the error.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        exited = process is not None and process.poll() is not None
        if exited or time.monotonic() > deadline:
            problem = "exited" if exited else f"timed out after {timeout:.0f} s"
            if process is None:
                raise AssertionError(f"{problem} waiting for {what}")
            process.kill()
            _, stderr = process.communicate(timeout=30)
            raise AssertionError(
                f"{problem} waiting for {what}; the process (rc {process.returncode}) "
                f"wrote:\n{(stderr or '')[-3000:]}"
            )
        time.sleep(0.05)


def start_cli(
    *args: str, data_dir: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """``python -m indexing ARGS`` in a subprocess with the test's environment."""
    env = {**os.environ, **(env or {})}
    if data_dir is not None:
        env["PUBMED_RAG_DATA_DIR"] = str(data_dir)
    return subprocess.Popen(
        [sys.executable, "-m", "indexing", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def with_abstract(xml: bytes, text: str) -> bytes:
    """The record with its whole abstract replaced by one short text."""
    new, count = re.subn(
        rb"<Abstract>.*?</Abstract>",
        b"<Abstract><AbstractText>" + text.encode() + b"</AbstractText></Abstract>",
        xml,
        count=1,
        flags=re.DOTALL,
    )
    assert count == 1
    return new


def update_file(path: Path, records: list[bytes], deleted: tuple[str, ...] = ()) -> Path:
    """Write a small PubMed update file (gzipped) with NLM's ``.md5`` beside it."""
    body = b"<?xml version='1.0' encoding='utf-8'?>\n<PubmedArticleSet>\n"
    body += b"\n".join(records)
    if deleted:
        body += b"\n<DeleteCitation>"
        body += b"".join(f'<PMID Version="1">{pmid}</PMID>'.encode() for pmid in deleted)
        body += b"</DeleteCitation>"
    body += b"\n</PubmedArticleSet>\n"
    path.write_bytes(gzip.compress(body))
    digest = hashlib.md5(path.read_bytes()).hexdigest()
    path.with_name(path.name + ".md5").write_text(f"MD5({path.name})= {digest}\n")
    return path


# --- the query update -----------------------------------------------------------------------


def test_update_picks_up_records_added_since_last_run(
    settings: Settings,
    server: EutilsServer,
    metapub_records: dict[str, bytes],
    ordered: list[str],
) -> None:
    before, _ = published(settings)
    new = ordered[BASE_SIZE : BASE_SIZE + 6]
    serve_new(server, metapub_records, new)

    report = update_queries(settings)

    assert (report.status, report.added, report.revised, report.deleted) == ("ok", 6, 0, 0)
    version, manifest = published(settings)
    assert version != before and report.index_version == version
    assert set(catalog(settings)) == set(ordered[: BASE_SIZE + 6])
    assert manifest.queries[TERM]["last_success"] == report.started_at
    assert manifest.queries[TERM]["last_count"] == BASE_SIZE + 6
    assert_consistent(settings)
    last = history(settings)[-1]
    assert last["kind"] == "update" and last["added"] == 6 and last["index_version"] == version
    # The window starts at the watermark minus the overlap, and asks for new and revised.
    searches = [r.params for r in server.requests if r.endpoint == "esearch"]
    assert {(p.get("datetype"), p.get("maxdate")) for p in searches if p.get("mindate")} >= {
        ("edat", "3000"),
        ("mdat", "3000"),
    }


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_second_update_in_a_row_adds_nothing_and_publishes_nothing(
    settings: Settings,
    server: EutilsServer,
    metapub_records: dict[str, bytes],
    ordered: list[str],
) -> None:
    serve_new(server, metapub_records, ordered[BASE_SIZE : BASE_SIZE + 3])
    first = update_queries(settings)
    version, manifest = published(settings)

    second = update_queries(settings)

    assert first.added == 3
    # The overlap re-reads the same records; fingerprints recognise them as unchanged.
    assert (second.added, second.revised, second.deleted, second.unchanged) == (0, 0, 0, 3)
    assert published(settings) == (version, manifest)
    assert second.index_version == version


def test_update_replaces_passages_of_revised_record(
    settings: Settings, server: EutilsServer, metapub_records: dict[str, bytes]
) -> None:
    pmid = LONG_PMID
    old_rows = catalog(settings)[pmid]
    xml = b"<PubmedArticleSet>" + metapub_records[pmid] + b"</PubmedArticleSet>"
    article = next(iter(parse_pubmed_xml(io.BytesIO(xml))))
    assert isinstance(article, Article)
    old_text = article.abstract[0].text[:60]
    assert old_rows[1] > 1
    server.replace(
        with_abstract(metapub_records[pmid], "Retraction notice: zyxomab data were fabricated."),
        mdat=TODAY,
    )

    report = update_queries(settings)

    assert (report.added, report.revised, report.deleted) == (0, 1, 0)
    assert catalog(settings)[pmid][1] == 1
    texts = [text for pid, text in passages(settings) if pid.startswith(f"{pmid}#")]
    assert len(texts) == 1 and "zyxomab" in texts[0]
    assert_consistent(settings)
    index = IndexReader(settings).get()
    hits = index.search("zyxomab fabricated", 3)
    assert hits and hits[0]["id"] == f"{pmid}#0"
    rows = index.search(
        "select id, text from txtai where pmid = :pmid", 50, parameters={"pmid": pmid}
    )
    assert [row["id"] for row in rows] == [f"{pmid}#0"]
    assert not any(old_text in row["text"] for row in rows)


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_update_removes_records_the_query_no_longer_returns(
    settings: Settings, server: EutilsServer, ordered: list[str], tmp_path: Path
) -> None:
    gone, shared = ordered[0], ordered[1]
    # `shared` also came from an XML file: it loses the query as a source but stays.
    xml = update_file(tmp_path / "extra.xml.gz", [server.record_xml(shared)])
    job.update_from_xml([xml], settings)
    server.remove(gone)
    server.remove(shared)

    report = update_queries(settings)

    assert report.deleted == 1
    rows = catalog(settings)
    assert gone not in rows
    assert rows[shared][2] == "|xml|"
    assert not any(pid.startswith(f"{gone}#") for pid, _ in passages(settings))
    assert_consistent(settings)
    assert report.details["queries"][TERM]["notes"] == ["1 kept by another source"]


def test_record_entering_pubmed_during_an_update_is_added_not_deleted(
    settings: Settings,
    server: EutilsServer,
    metapub_records: dict[str, bytes],
    ordered: list[str],
) -> None:
    late = ordered[BASE_SIZE]

    class EnteringDuringRun(EntrezClient):
        def fetch_ids(self, *args: Any, **kwargs: Any) -> list[str]:
            ids = super().fetch_ids(*args, **kwargs)
            serve_new(server, metapub_records, [late])  # after the id snapshot of the query
            return ids

    client = EnteringDuringRun(server.url, api_key="test-key", email="tests@example.org")

    report = update_queries(settings, client=client)

    assert (report.added, report.deleted) == (1, 0)
    assert late in catalog(settings)


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_failed_update_leaves_published_version_intact_and_next_run_catches_up(
    settings: Settings,
    server: EutilsServer,
    metapub_records: dict[str, bytes],
    ordered: list[str],
) -> None:
    version, manifest = published(settings)
    rows = catalog(settings)
    new = ordered[BASE_SIZE : BASE_SIZE + 8]
    serve_new(server, metapub_records, new)
    # Let the id listing and the first batch of 5 records through, then fail every attempt
    # (max_tries=2) at the second batch: the staging copy already holds 5 new records.
    server.inject("slow", times=2, endpoint="efetch")
    server.inject("http", status=500, times=2, endpoint="efetch")

    with pytest.raises(EntrezError, match="efetch failed after 2 attempts"):
        update_queries(settings)

    assert published(settings) == (version, manifest)
    assert catalog(settings) == rows
    failed = history(settings)[-1]
    assert (failed["status"], failed["failed"]) == ("failed", 1)
    assert "HTTP 500" in failed["error"]
    assert staging_copies(settings) == []

    report = update_queries(settings)

    assert (report.status, report.added) == ("ok", 8)
    assert set(catalog(settings)) == set(rows) | set(new)
    assert published(settings)[1].queries[TERM]["last_success"] == report.started_at


def test_update_splits_windows_larger_than_pubmed_serves(
    settings: Settings,
    server: EutilsServer,
    metapub_records: dict[str, bytes],
    ordered: list[str],
) -> None:
    client = EntrezClient.from_settings(settings)
    client.retrieval_limit = 4  # PubMed's 9,999, scaled down to the test's 20 records
    serve_new(server, metapub_records, ordered[BASE_SIZE : BASE_SIZE + 2])

    report = update_queries(settings, client=client)

    # The full query (20 + 2 ids, for deletions) was listed in date slices of at most 4.
    assert (report.added, report.deleted) == (2, 0)
    listings = [r.params for r in server.requests if r.params.get("rettype") == "uilist"]
    assert len(listings) >= 6
    assert all(int(p["retmax"]) <= 4 for p in listings)


def test_ingest_query_larger_than_pubmed_serves_is_fetched_in_date_slices(
    settings_env: Path, server: EutilsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUBMED_RAG_EUTILS_URL", server.url)
    get_settings.cache_clear()
    settings = get_settings()
    client = EntrezClient.from_settings(settings)
    client.retrieval_limit = 4
    newest = server.search(TERM)[:7]

    report = ingest_query(TERM, settings, max_records=7, quiet=True, client=client)

    # Newest first, as PubMed orders one search: --max keeps the most recent records.
    assert report.added == 7
    assert set(catalog(settings)) == set(newest)


def test_ingest_whose_windows_expire_before_they_are_fetched_gets_every_record(
    settings_env: Path, server: EutilsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUBMED_RAG_EUTILS_URL", server.url)
    get_settings.cache_clear()
    settings = get_settings()
    client = EntrezClient.from_settings(settings)
    client.retrieval_limit = 4  # several windows, all searched before the first fetch
    server.inject("expire", endpoint="efetch")  # hours pass: every WebEnv is gone
    server.inject("slow", delay_s=0.0, times=3, endpoint="efetch")
    server.inject("expire", endpoint="efetch")  # and again, in a later window

    report = ingest_query(TERM, settings, quiet=True, client=client)

    assert (report.status, report.added, report.unfetched) == ("ok", BASE_SIZE, 0)
    assert set(catalog(settings)) == set(server.pmids)
    assert server.faults_pending == 0


def test_ingest_with_a_record_not_fetched_leaves_the_query_without_a_watermark(
    settings_env: Path, server: EutilsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUBMED_RAG_EUTILS_URL", server.url)
    get_settings.cache_clear()
    settings = get_settings()
    withheld = server.pmids[3]
    server.withhold(withheld)

    report = ingest_query(TERM, settings, quiet=True)

    assert (report.added, report.unfetched) == (BASE_SIZE - 1, 1)
    assert report.details["unfetched"] == {TERM: [withheld]}
    state = published(settings)[1].queries[TERM]
    assert state["last_success"] is None  # the first update re-reads everything


def test_search_windows_cover_a_large_search_in_slices_pubmed_can_serve(
    server: EutilsServer,
) -> None:
    client = EntrezClient(server.url, api_key="test-key", email="tests@example.org", max_tries=1)
    client.retrieval_limit = 4

    windows = list(search_windows(client, TERM))

    assert len(windows) >= 5 and all(0 < w.result.count <= 4 for w in windows)
    listed = [pmid for w in windows for pmid in client.fetch_ids(TERM, w.mindate, w.maxdate)]
    assert sorted(listed, key=int) == server.pmids  # every record exactly once
    assert listed == server.search(TERM)  # newest first, like one unsplit search


def test_search_windows_split_a_day_beyond_the_limit_by_another_date_type(
    server: EutilsServer,
) -> None:
    crowded = server.pmids[:7]
    for n, pmid in enumerate(crowded):
        server.set_dates(pmid, mdat=date(2025, 1, 6), edat=date(2001, 2, 1 + n))
    client = EntrezClient(server.url, api_key="test-key", email="tests@example.org", max_tries=1)
    client.retrieval_limit = 4

    windows = list(search_windows(client, TERM, "2025/01/06", "2025/01/06", "mdat"))

    assert all(0 < w.result.count <= 4 for w in windows)
    assert {w.datetype for w in windows} == {"edat"}
    assert all('"2025/01/06"[mdat]' in w.term for w in windows)
    listed = [
        pmid for w in windows for pmid in client.fetch_ids(w.term, w.mindate, w.maxdate, w.datetype)
    ]
    assert sorted(listed) == sorted(crowded)  # every record of the day exactly once


def test_search_windows_refuses_a_day_beyond_the_limit_on_every_date_type(
    server: EutilsServer,
) -> None:
    day = date(2001, 2, 3)
    for pmid in server.pmids[:5]:
        server.set_dates(pmid, edat=day, mdat=day, pdat=day)
    client = EntrezClient(server.url, api_key="test-key", email="tests@example.org", max_tries=1)
    client.retrieval_limit = 4

    with pytest.raises(EntrezError, match=r"5 records on 2001-02-03 \(\w+\) alone, .* every date"):
        list(search_windows(client, TERM, "2001", "2001"))


def test_a_day_of_revisions_beyond_the_limit_is_fetched_whole(
    settings: Settings, server: EutilsServer, ordered: list[str]
) -> None:
    # NLM's yearly MeSH revision gives one mdat day far more than PubMed serves per search.
    revised = ordered[:6]
    for pmid in revised:
        xml = re.sub(
            rb"<ArticleTitle>.*?</ArticleTitle>",
            f"<ArticleTitle>Revised {pmid}.</ArticleTitle>".encode(),
            server.record_xml(pmid),
            count=1,
            flags=re.DOTALL,
        )
        server.replace(xml, mdat=TODAY)
    client = EntrezClient.from_settings(settings)
    client.retrieval_limit = 4

    report = update_queries(settings, client=client)

    assert (report.status, report.revised, report.added) == ("ok", 6, 0)
    assert published(settings)[1].queries[TERM]["last_success"] == report.started_at
    pinned = [r.params["term"] for r in server.requests if "[mdat]" in r.params.get("term", "")]
    assert pinned  # the day was split by entrez date within the mdat day
    assert_consistent(settings)


def test_a_failing_query_does_not_block_the_others(
    settings: Settings,
    server: EutilsServer,
    metapub_records: dict[str, bytes],
    ordered: list[str],
) -> None:
    other = next(
        word
        for word in ("mice", "children", "cancer", "patients", "cells", "risk")
        if 1 <= len(server.search(word)) <= 3
    )
    ingest_query(other, settings, quiet=True)
    # All of TERM's records on one day of every date type: beyond the (scaled-down) limit.
    for pmid in ordered[:5]:
        server.set_dates(pmid, edat=TODAY, mdat=TODAY, pdat=TODAY)
    extra = next(
        pmid
        for pmid in ordered[BASE_SIZE:]
        if pmid not in server.pmids and other in metapub_records[pmid].decode().lower()
    )
    serve_new(server, metapub_records, [extra])
    before = published(settings)[1].queries
    client = EntrezClient.from_settings(settings)
    client.retrieval_limit = 4

    report = update_queries(settings, client=client)

    assert (report.status, report.failed) == ("partial", 1)
    assert list(report.details["failed_queries"]) == [TERM]
    assert "every date type" in report.error
    queries = published(settings)[1].queries
    assert queries[other]["last_success"] == report.started_at  # the other query moved on
    assert queries[TERM]["last_success"] == before[TERM]["last_success"]  # retried next run
    assert extra in catalog(settings)
    assert history(settings)[-1]["status"] == "partial"

    client.retrieval_limit = 9999
    again = update_queries(settings, client=client)

    assert again.status == "ok"
    assert published(settings)[1].queries[TERM]["last_success"] == again.started_at


def test_update_with_short_batches_ends_with_exactly_the_records_of_a_clean_run(
    settings: Settings,
    server: EutilsServer,
    metapub_records: dict[str, bytes],
    ordered: list[str],
    base_index: Path,
    tmp_path: Path,
) -> None:
    new = ordered[BASE_SIZE : BASE_SIZE + 12]
    serve_new(server, metapub_records, new)
    clean_dir = tmp_path / "clean" / "data"
    shutil.copytree(base_index, clean_dir)
    clean = settings.model_copy(update={"data_dir": clean_dir})
    assert update_queries(clean).added == 12

    server.inject("short", times=4, endpoint="efetch")  # of its 5-record batches: all but 1
    report = update_queries(settings)

    assert (report.status, report.added, report.unfetched) == ("ok", 12, 0)
    assert report.refetched > 0 and server.faults_pending == 0
    assert catalog(settings) == catalog(clean)
    assert published(settings)[1].queries[TERM]["last_success"] == report.started_at
    assert_consistent(settings)


def test_records_not_fetched_are_reported_and_hold_the_watermark(
    settings: Settings,
    server: EutilsServer,
    metapub_records: dict[str, bytes],
    ordered: list[str],
) -> None:
    before = published(settings)[1].queries[TERM]["last_success"]
    new = ordered[BASE_SIZE : BASE_SIZE + 6]
    serve_new(server, metapub_records, new)
    server.withhold(new[2])  # found by esearch, left out by every efetch

    report = update_queries(settings)

    assert (report.added, report.unfetched) == (5, 1)
    assert report.details["unfetched"] == {TERM: [new[2]]}
    assert "1 not fetched" in report.summary()
    assert published(settings)[1].queries[TERM]["last_success"] == before
    assert new[2] not in catalog(settings)

    server.withhold(new[2], withheld=False)
    again = update_queries(settings)

    assert (again.added, again.unfetched) == (1, 0)
    assert published(settings)[1].queries[TERM]["last_success"] == again.started_at


# --- PubMed update files --------------------------------------------------------------------


def test_update_xml_applies_files_in_name_order_each_once(
    settings: Settings, metapub_records: dict[str, bytes], ordered: list[str], tmp_path: Path
) -> None:
    first, second = ordered[BASE_SIZE : BASE_SIZE + 3], ordered[BASE_SIZE + 3 : BASE_SIZE + 5]
    files = tmp_path / "updatefiles"
    files.mkdir()
    older = update_file(files / "pubmed99n0001.xml.gz", [metapub_records[p] for p in first])
    # The newer file deletes a record the older one adds: only name order leaves it deleted.
    newer = update_file(
        files / "pubmed99n0002.xml.gz", [metapub_records[p] for p in second], deleted=(first[0],)
    )
    runner = CliRunner()

    applied = runner.invoke(cli, ["update", "--xml", str(newer), "--xml", str(older)])
    version, manifest = published(settings)
    again = runner.invoke(cli, ["update", "--xml", str(files)])

    assert applied.exit_code == 0, applied.output
    assert "update-xml ok: 5 added" in applied.output and "1 deleted" in applied.output
    rows = catalog(settings)
    assert first[0] not in rows and set(first[1:]) | set(second) <= set(rows)
    assert set(manifest.applied_files) == {older.name, newer.name}
    assert manifest.applied_files[older.name] == job.read_nlm_md5(Path(f"{older}.md5"))[1]
    assert again.exit_code == 0, again.output
    assert "update-xml ok: 0 added" in again.output
    assert published(settings) == (version, manifest)
    assert history(settings)[-1]["details"]["already_applied"] == [older.name, newer.name]


def test_update_xml_refuses_a_checksum_mismatch_and_applies_nothing(
    settings: Settings, metapub_records: dict[str, bytes], ordered: list[str], tmp_path: Path
) -> None:
    good = update_file(tmp_path / "pubmed99n0001.xml.gz", [metapub_records[ordered[BASE_SIZE]]])
    bad = update_file(tmp_path / "pubmed99n0002.xml.gz", [metapub_records[ordered[-1]]])
    bad.write_bytes(bad.read_bytes()[:-8])  # a truncated download
    version, _ = published(settings)

    result = CliRunner().invoke(cli, ["update", "--xml", str(good), "--xml", str(bad)])

    assert result.exit_code == 2
    assert "error:" in result.output and "differs from NLM's" in result.output
    assert "Traceback" not in result.output
    assert published(settings)[0] == version
    assert ordered[BASE_SIZE] not in catalog(settings)
    assert history(settings)[-1]["status"] == "failed"


def test_nlm_md5_files_of_real_update_files_verify(tmp_path: Path) -> None:
    folder = PUBMED_SAMPLES / "pmparser"
    files = sorted(folder.glob("pubmed26n*.xml.gz"))
    if not files:
        pytest.skip(f"no NLM update files in {folder}")

    checked = verify_nlm_md5(files)

    assert set(checked) == {f.name for f in files if Path(f"{f}.md5").exists()}
    copy = tmp_path / files[0].name
    copy.write_bytes(files[0].read_bytes()[:-1])
    shutil.copy(f"{files[0]}.md5", tmp_path)
    with pytest.raises(ChecksumError, match="damaged or incomplete"):
        verify_nlm_md5([copy])


# --- locks ----------------------------------------------------------------------------------


def test_update_without_an_index_says_how_to_build_one(settings_env: Path) -> None:
    result = CliRunner().invoke(cli, ["update"])

    assert result.exit_code == 2
    assert "no index to update" in result.output and "ingest --query" in result.output


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_manual_update_waits_for_another_writer_or_says_who_holds_the_lock(
    settings: Settings,
) -> None:
    store = open_store(settings)
    held = threading.Event()

    def hold(seconds: float) -> None:
        # flock locks belong to an open file, so a second open in this process contends too.
        with store.lock(purpose="test writer"):
            held.set()
            time.sleep(seconds)

    holder = threading.Thread(target=hold, args=(1.0,))
    holder.start()
    held.wait(5)
    refused = CliRunner().invoke(cli, ["update"])
    started = time.monotonic()
    waited = CliRunner().invoke(cli, ["update", "--wait", "30"])
    holder.join()

    assert refused.exit_code == 2
    assert f"being updated by pid {os.getpid()} (test writer" in refused.output
    assert refused.output.count("\n") == 1
    assert waited.exit_code == 0, waited.output
    assert "update ok" in waited.output and time.monotonic() - started > 0.3


# --- the schedule, signals and kills (subprocesses) -----------------------------------------


def test_scheduler_runs_an_update_on_every_tick_and_survives_a_failed_one(
    settings: Settings,
    server: EutilsServer,
    metapub_records: dict[str, bytes],
    ordered: list[str],
    tmp_path: Path,
) -> None:
    first, later, from_file = ordered[BASE_SIZE : BASE_SIZE + 3]
    serve_new(server, metapub_records, [first])
    files = tmp_path / "updatefiles"
    files.mkdir()
    update_file(files / "pubmed99n0001.xml.gz", [metapub_records[from_file]])
    runs = lambda: [r for r in history(settings) if r["kind"] == "update"]  # noqa: E731

    scheduler = start_cli(
        "schedule", "--cron", "* * * * * */2", "--max-runs", "3", "--xml-dir", str(files)
    )
    try:
        wait_for(
            lambda: [r["status"] for r in runs()] == ["ok"],
            90,
            "the first scheduled run",
            scheduler,
        )
        # The next run fails at its first request (every attempt); the one after catches up.
        server.inject("http", status=500, times=2, endpoint="esearch")
        serve_new(server, metapub_records, [later])
        _, stderr = scheduler.communicate(timeout=90)
    finally:
        scheduler.kill()

    assert scheduler.returncode == 0, stderr
    assert [(r["status"], r["added"]) for r in runs()] == [("ok", 1), ("failed", 0), ("ok", 1)]
    # The update file was applied on the first tick only.
    assert [r["status"] for r in history(settings) if r["kind"] == "update-xml"] == ["ok"]
    assert {first, later, from_file} <= set(catalog(settings))
    assert_consistent(settings)
    assert stderr.count("update ok: 1 added") == 2
    assert "update failed: esearch failed after 2 attempts" in stderr
    assert "scheduler finished after 3 run(s)" in stderr


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_sigterm_abandons_a_run_in_progress_and_a_second_writer_is_refused_meanwhile(
    settings: Settings,
    server: EutilsServer,
    metapub_records: dict[str, bytes],
    ordered: list[str],
) -> None:
    version, manifest = published(settings)
    serve_new(server, metapub_records, ordered[BASE_SIZE : BASE_SIZE + 3])
    server.inject("slow", delay_s=20, endpoint="efetch")  # the run hangs on its id listing

    scheduler = start_cli("schedule", "--cron", "* * * * * *", "--max-runs", "5")
    try:
        wait_for(
            lambda: any(r.fault == "slow" for r in server.requests),
            90,
            "a run in progress",
            scheduler,
        )
        assert staging_copies(settings), "the run should be working on its copy"
        runner = CliRunner()
        writer = runner.invoke(cli, ["update"])
        second = runner.invoke(cli, ["schedule", "--cron", "0 3 * * *"])
        scheduler.send_signal(signal.SIGTERM)
        _, stderr = scheduler.communicate(timeout=30)
    finally:
        scheduler.kill()

    assert writer.exit_code == 2
    assert f"being updated by pid {scheduler.pid} (update" in writer.output
    assert second.exit_code == 2
    assert f"another scheduler already runs on {location(settings)} (pid {scheduler.pid}" in (
        second.output
    )
    assert scheduler.returncode == 0, stderr
    assert "SIGTERM received" in stderr and "Traceback" not in stderr
    assert published(settings) == (version, manifest)
    assert staging_copies(settings) == []
    assert history(settings)[-1]["status"] == "interrupted"


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_update_killed_at_random_moments_then_rerun_gives_exactly_the_right_index(
    settings: Settings,
    server: EutilsServer,
    metapub_records: dict[str, bytes],
    ordered: list[str],
    base_index: Path,
    backend: Backend,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    serve_new(server, metapub_records, ordered[BASE_SIZE : BASE_SIZE + 12])
    server.replace(with_abstract(server.record_xml(LONG_PMID), "A revised abstract."), mdat=TODAY)
    server.remove(ordered[3])
    monkeypatch.setenv("PUBMED_RAG_NCBI_BATCH_SIZE", "2")  # more requests: more moments to die
    settings = settings.model_copy(update={"ncbi_batch_size": 2})
    clean = update_queries(settings)
    expected = catalog(settings)
    expected_passages = sorted(passages(settings))
    seed = time.time_ns()
    rng = random.Random(seed)
    # One kill in each third of a clean run's time (fetching, embedding, publishing), the
    # last possibly after the end; the subprocess's clock starts at its first request.
    span = clean.duration_s
    delays = [rng.uniform(span * n / 3, span * (n + 1.2) / 3) for n in range(3)]
    stale_locks = 0
    for number, delay in enumerate(delays):
        data_dir = tmp_path / f"killed{number}"
        backend.copy(base_index, data_dir)
        killed = settings.model_copy(
            update={
                "data_dir": data_dir,
                **backend.settings(data_dir).model_dump(include={"database_url"}),
            }
        )
        server.clear_requests()
        process = start_cli("-q", "update", data_dir=data_dir, env=backend.env(data_dir))
        try:
            wait_for(lambda: bool(server.requests), 90, "the update to start fetching", process)
            time.sleep(delay)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
        finally:
            process.kill()
        context = f"seed {seed}, kill after {delay:.2f} s"
        stale_locks += f"pid {process.pid} (update" in lock_holder(killed)

        # The kernel released the dead writer's flock: the rerun takes it without waiting.
        update_queries(killed)

        assert catalog(killed) == expected, context
        assert sorted(passages(killed)) == expected_passages, context
        assert_consistent(killed)
        _, manifest = published(killed)
        assert manifest.queries[TERM]["last_count"] == BASE_SIZE + 11, context
    assert stale_locks, f"no kill landed while the lock was held (seed {seed})"


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_reader_in_another_process_never_fails_while_updates_publish(
    settings: Settings,
    server: EutilsServer,
    metapub_records: dict[str, bytes],
    ordered: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PUBMED_RAG_KEEP_VERSIONS", "2")  # old versions go while read
    settings = settings.model_copy(update={"keep_versions": 2})
    rounds = [ordered[BASE_SIZE + 2 * n : BASE_SIZE + 2 * n + 2] for n in range(3)]
    new = [pmid for batch in rounds for pmid in batch]
    status_path, stop = tmp_path / "reader.json", tmp_path / "stop"
    status = lambda: json.loads(status_path.read_text()) if status_path.exists() else {}  # noqa: E731
    reader = subprocess.Popen(
        [sys.executable, "-m", "tests.reader_loop", str(status_path), str(stop), *new],
        cwd=ROOT,
        env=dict(os.environ),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: status().get("searches", 0) > 0, 90, "the reader's first search", reader)
        for batch in rounds:
            serve_new(server, metapub_records, batch)
            assert update_queries(settings).added == 2
            time.sleep(0.3)
        final, _ = published(settings)
        wait_for(
            lambda: final in status().get("versions", []) and len(status()["seen"]) == 6,
            30,
            "the reader to see the last version and every new record",
        )
        stop.touch()
        _, stderr = reader.communicate(timeout=30)
    finally:
        reader.kill()

    seen = status()
    assert reader.returncode == 0, stderr
    assert seen["errors"] == 0, seen["messages"]
    assert seen["max_articles"] == BASE_SIZE + 6
    assert sorted(seen["seen"]) == sorted(new)
    assert len(seen["versions"]) >= 2 and seen["searches"] > 10
    # Cleanup kept the configured number of versions, the published one among them.
    versions = open_store(settings).published_versions()
    assert len(versions) == 2 and versions[-1] == final


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_scheduler_left_running_survives_faults_and_kill_9_while_two_readers_search(
    settings: Settings,
    server: EutilsServer,
    metapub_records: dict[str, bytes],
    ordered: list[str],
    tmp_path: Path,
) -> None:
    first, during_kill = ordered[BASE_SIZE : BASE_SIZE + 2], ordered[BASE_SIZE + 2 : BASE_SIZE + 4]
    stop = tmp_path / "stop"
    status_paths = [tmp_path / f"reader{number}.json" for number in (1, 2)]
    statuses = lambda: [  # noqa: E731
        json.loads(path.read_text()) if path.exists() else {} for path in status_paths
    ]
    updates = lambda: [r for r in history(settings) if r["kind"] == "update"]  # noqa: E731
    # Two reader processes, as two app servers would be (settings from the environment).
    readers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.reader_loop", str(path), str(stop), *first, *during_kill],
            cwd=ROOT,
            env=dict(os.environ),
            stderr=subprocess.PIPE,
            text=True,
        )
        for path in status_paths
    ]
    scheduler = start_cli("schedule", "--cron", "* * * * * */2")
    restarted: subprocess.Popen[str] | None = None
    try:
        serve_new(server, metapub_records, first)
        wait_for(
            lambda: any(r["added"] == 2 for r in updates()), 120, "records to appear", scheduler
        )
        server.inject("http", status=500, times=2, endpoint="esearch")  # both tries fail
        wait_for(
            lambda: any(r["status"] == "failed" for r in updates()), 60, "a failed run", scheduler
        )
        # The next run hangs fetching; it is killed -9 in the middle, lock held.
        server.clear_requests()
        server.inject("slow", delay_s=30, endpoint="efetch")
        serve_new(server, metapub_records, during_kill)
        wait_for(
            lambda: any(r.fault == "slow" for r in server.requests), 60, "a run to hang", scheduler
        )
        scheduler.send_signal(signal.SIGKILL)
        scheduler.wait(timeout=30)

        restarted = start_cli("schedule", "--cron", "* * * * * */2", "--max-runs", "1")
        _, stderr = restarted.communicate(timeout=120)
        wait_for(
            lambda: all(len(status.get("seen", [])) == 4 for status in statuses()),
            30,
            "both readers to see the records",
        )
        stop.touch()
        for reader in readers:
            reader.communicate(timeout=30)
    finally:
        for process in (*readers, scheduler, restarted):
            if process is not None:
                process.kill()

    assert restarted.returncode == 0, stderr
    assert set(first + during_kill) <= set(catalog(settings))
    assert_consistent(settings)
    for status in statuses():
        assert status["errors"] == 0, status["messages"]
        assert sorted(status["seen"]) == sorted(first + during_kill)
        assert status["searches"] > 5
    # Every run is in the history: the failed one, the one killed -9 (which published
    # nothing), and the one after it that caught up.
    runs = updates()
    outcomes = [r["status"] for r in runs]
    assert "running" not in outcomes
    assert outcomes.index("failed") < outcomes.index("died") == len(outcomes) - 2
    assert outcomes[-1] == "ok" and runs[-1]["added"] == 2
