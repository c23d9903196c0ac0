"""Ingestion end to end: real PubMed XML and a real local E-utilities server into real indexes.

The full 163-record index is built once through the real CLI (``python -m indexing``); tests
that change an index work on copies of it or on small subsets so the suite stays quick.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from indexing.settings import Settings
from indexing.store import IndexReader, open_store
from indexing.store.files import FileStore
from indexing.store.layout import CATALOG
from testkit.eutils_server import EutilsServer
from tests.conftest import KEPT_SETTINGS, METAPUB_PMIDS, PUBMED_SAMPLES, ROOT, needs_shared_data
from tests.fixtures_pg import BOTH, Backend

pytestmark = needs_shared_data()

SUBSET = sorted(METAPUB_PMIDS.glob("*.xml"))[:12] if METAPUB_PMIDS.exists() else []


def cli_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for a CLI subprocess: offline models, an isolated data dir."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("PUBMED_RAG_") or k in KEPT_SETTINGS
    }
    env.update(
        PUBMED_RAG_DATA_DIR=str(data_dir),
        PUBMED_RAG_OFFLINE="1",
        HF_HUB_OFFLINE="1",
        PYTHONPATH=str(ROOT),
        **extra,
    )
    return env


def run_cli(data_dir: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """``python -m indexing ARGS`` as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "indexing", *args],
        cwd=ROOT,
        env=cli_env(data_dir, **extra),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def info(data_dir: Path) -> dict:
    result = run_cli(data_dir, "info", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def catalog(data_dir: Path | Settings) -> dict[str, tuple[str, int]]:
    """``pmid -> (fingerprint, passages)`` of the published version."""
    if isinstance(data_dir, Settings):
        store = open_store(data_dir)
        rows = store.catalog()
        store.close()
        return {pmid: (fingerprint, passages) for pmid, (fingerprint, passages, _) in rows.items()}
    store = FileStore(Settings(data_dir=data_dir, offline=True))
    version = store.current_version()
    assert version is not None
    with sqlite3.connect(store.version_path(version) / CATALOG) as db:
        rows = db.execute("SELECT pmid, fingerprint, passages FROM articles").fetchall()
    return {pmid: (fingerprint, passages) for pmid, fingerprint, passages in rows}


def subset_dir(tmp_path: Path, files: list[Path]) -> Path:
    folder = tmp_path / "xml"
    folder.mkdir()
    for file in files:
        shutil.copy(file, folder / file.name)
    return folder


@pytest.fixture(scope="module")
def full_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 163 metapub records ingested through the CLI once; tests copy it before changing it."""
    data_dir = tmp_path_factory.mktemp("full") / "data"
    result = run_cli(data_dir, "-q", "ingest", "--xml", str(METAPUB_PMIDS))
    assert result.returncode == 0, result.stderr
    assert "163 added" in result.stdout
    return data_dir


@pytest.fixture
def settings(
    settings_env: Path, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    from indexing.settings import get_settings

    for key, value in backend.env(settings_env).items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    yield get_settings()


def test_ingest_metapub_folder_reports_all_163_articles(full_index: Path) -> None:
    data = info(full_index)
    assert data["articles"] == 163
    assert data["passages"] >= 163
    assert data["index_version"] == "v000001"
    assert data["embeddings_model"].startswith("offline:")
    assert data["dimensions"] == 384
    assert data["last_run"]["status"] == "ok"
    assert data["last_run"]["added"] == 163


def test_reingesting_the_same_records_changes_nothing(full_index: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(full_index, data_dir)
    before = catalog(data_dir)
    result = run_cli(data_dir, "-q", "ingest", "--xml", str(METAPUB_PMIDS))
    assert result.returncode == 0, result.stderr
    assert "0 added, 0 revised, 163 unchanged" in result.stdout
    assert info(data_dir)["index_version"] == "v000001"  # nothing changed: nothing published
    assert catalog(data_dir) == before


def test_query_ingest_through_faulty_server_matches_xml_ingest(
    full_index: Path, tmp_path: Path, metapub_records: dict[str, bytes]
) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(full_index, data_dir)
    with EutilsServer(metapub_records) as server:
        for kind in ("http", "truncate", "drop", "cut_xml", "html"):
            server.inject(kind, endpoint="efetch", status=500)
        server.inject("http", endpoint="esearch", status=429, retry_after=0)
        result = run_cli(
            data_dir,
            "-q",
            "ingest",
            "--query",
            "all[sb]",
            PUBMED_RAG_EUTILS_URL=server.url,
            PUBMED_RAG_NCBI_BACKOFF_S="0.01",
            PUBMED_RAG_NCBI_BATCH_SIZE="50",
            PUBMED_RAG_NCBI_MAX_TRIES="8",
        )
        assert server.faults_pending == 0
    assert result.returncode == 0, result.stderr
    # Every record fetched over HTTP parsed to exactly what the XML files gave.
    assert "0 added, 0 revised, 163 unchanged" in result.stdout
    assert "all[sb]" in info(data_dir)["queries"]


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_query_ingest_into_empty_index_with_faults(
    settings: Settings, metapub_records: dict[str, bytes]
) -> None:
    from indexing.entrez import EntrezClient
    from indexing.ingest import EMBED_LABEL, IngestProgress, ingest_query

    subset = dict(list(sorted(metapub_records.items()))[:10])
    with EutilsServer(subset) as server:
        server.inject("http", endpoint="efetch", status=503, times=2)
        server.inject("slow", endpoint="efetch", delay_s=1.5)
        client = EntrezClient(server.url, backoff_s=0.01, timeout_s=1.0, batch_size=4)
        seen: list[IngestProgress] = []
        report = ingest_query("all[sb]", settings, quiet=True, client=client, progress=seen.append)
    assert report.added == 10
    assert list(dict.fromkeys(state.records for state in seen)) == list(range(11))
    assert seen[-1].total == 10 and seen[-1].fraction == 1.0
    assert seen[-1].label == EMBED_LABEL  # all read; the last batch is being embedded
    assert open_store(settings).manifest().articles == 10
    assert open_store(settings).manifest().queries["all[sb]"]["last_count"] == 10


def test_xml_ingest_reports_progress_by_record_and_file(settings: Settings, tmp_path: Path) -> None:
    from indexing.ingest import IngestProgress, ingest_files

    folder = subset_dir(tmp_path, SUBSET[:3])
    seen: list[IngestProgress] = []

    report = ingest_files([folder], settings, quiet=True, progress=seen.append)

    assert seen[0] == IngestProgress(0, None, 0, 3, "indexing")
    assert seen[-1].records == report.added == 3
    assert seen[-1].files_done == 3 and seen[-1].fraction == 1.0
    assert [state.label for state in seen][-1] == "embedding the last batch"
    assert {state.label for state in seen} >= {path.name for path in SUBSET[:3]}
    fractions = [state.fraction for state in seen]
    assert fractions == sorted(fractions)  # type: ignore[type-var]


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_revised_record_replaces_all_its_passages(settings: Settings, tmp_path: Path) -> None:
    from indexing.ingest import ingest_files

    folder = subset_dir(tmp_path, SUBSET)
    ingest_files([folder], settings, quiet=True)
    reader = IndexReader(settings)
    target = next(
        row
        for row in reader.get().search("select pmid, passages from txtai", 100)
        if row["passages"] > 1
    )
    pmid = target["pmid"]
    original = (folder / f"{pmid}.xml").read_text(encoding="utf-8")
    start = original.index("<Abstract>")
    end = original.index("</Abstract>") + len("</Abstract>")
    revised = (
        original[:start]
        + "<Abstract><AbstractText>Zebrafish quokka revision marker text.</AbstractText></Abstract>"
        + original[end:]
    )
    (folder / f"{pmid}.xml").write_text(revised, encoding="utf-8")
    report = ingest_files([folder], settings, quiet=True)
    assert (report.added, report.revised, report.unchanged) == (0, 1, len(SUBSET) - 1)

    index = reader.get()
    rows = index.search(
        "select id, text from txtai where pmid = :pmid", 50, parameters={"pmid": pmid}
    )
    assert [row["id"] for row in rows] == [f"{pmid}#0"]
    assert "quokka" in rows[0]["text"]
    assert index.manifest.passages == sum(p for _, p in catalog(settings).values())


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_delete_citation_removes_every_passage(settings: Settings, tmp_path: Path) -> None:
    from indexing.ingest import ingest_files

    folder = subset_dir(tmp_path, SUBSET)
    ingest_files([folder], settings, quiet=True)
    victims = sorted(catalog(settings))[:2]
    update = tmp_path / "pubmed99n0001.xml.gz"
    body = "".join(f'<PMID Version="1">{pmid}</PMID>' for pmid in victims)
    update.write_bytes(
        gzip.compress(
            f"<PubmedArticleSet><DeleteCitation>{body}</DeleteCitation></PubmedArticleSet>".encode()
        )
    )
    report = ingest_files([update], settings, quiet=True)
    assert report.deleted == 2
    remaining = catalog(settings)
    assert not set(victims) & set(remaining)
    index = IndexReader(settings).get()
    for pmid in victims:
        assert not index.search("select id from txtai where pmid = :p", 10, parameters={"p": pmid})
    assert index.manifest.passages == sum(p for _, p in remaining.values())


def test_malformed_file_fails_clearly_and_keeps_published_index(
    full_index: Path, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(full_index, data_dir)
    broken = tmp_path / "broken.xml"
    text = (PUBMED_SAMPLES / "ncbiutils" / "pubmed.xml").read_text(encoding="utf-8")
    broken.write_text(text[: len(text) // 2], encoding="utf-8")
    result = run_cli(data_dir, "-q", "ingest", "--xml", str(broken))
    assert result.returncode == 2
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: ")
    assert "broken.xml" in last_line
    assert "Traceback" not in result.stderr
    data = info(data_dir)
    assert (data["index_version"], data["articles"]) == ("v000001", 163)
    assert data["last_run"]["status"] == "failed"


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_second_writer_is_refused_with_a_clear_message(
    settings: Settings, backend: Backend, tmp_path: Path
) -> None:
    store = open_store(settings)
    with store.lock(purpose="test holder"):
        result = run_cli(
            settings.data_dir,
            "-q",
            "ingest",
            "--xml",
            str(SUBSET[0]),
            **backend.env(settings.data_dir),
        )
    assert result.returncode == 2
    assert "being updated by pid" in result.stderr
    assert "test holder" in result.stderr
    assert store.current_version() is None


def test_missing_path_and_bad_arguments_are_usage_errors(tmp_path: Path) -> None:
    missing = run_cli(tmp_path / "data", "ingest", "--xml", str(tmp_path / "nope"))
    assert missing.returncode == 2
    assert "nope" in missing.stderr
    neither = run_cli(tmp_path / "data", "ingest")
    assert neither.returncode == 2
    assert "either --query" in neither.stderr


@pytest.mark.slow
def test_kill_9_at_random_points_then_rerun_gives_exact_index(
    full_index: Path, tmp_path: Path
) -> None:
    """Checkpoints every 40 records: kills land before, between and after publishes."""
    expected = catalog(full_index)
    data_dir = tmp_path / "data"
    rng = random.Random(20261122)
    env = cli_env(data_dir, PUBMED_RAG_CHECKPOINT_RECORDS="40")
    for _attempt in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-m", "indexing", "-q", "ingest", "--xml", str(METAPUB_PMIDS)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(8, 25))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        store = FileStore(Settings(data_dir=data_dir, offline=True))
        if store.current_version():  # whatever was published is complete and readable
            published = catalog(data_dir)
            assert set(published) <= set(expected)
            assert store.manifest().articles == len(published)
    result = run_cli(data_dir, "-q", "ingest", "--xml", str(METAPUB_PMIDS))
    assert result.returncode == 0, result.stderr
    assert catalog(data_dir) == expected
    manifest = FileStore(Settings(data_dir=data_dir, offline=True)).manifest()
    assert manifest.articles == 163
    assert manifest.passages == sum(p for _, p in expected.values())
    index = IndexReader(Settings(data_dir=data_dir, offline=True)).get()
    ids = [row["id"] for row in index.search("select id from txtai", 10_000)]
    assert len(ids) == len(set(ids)) == manifest.passages
    staging = [p for p in (data_dir / "index" / "versions").iterdir() if p.name.startswith(".")]
    assert staging == []  # the rerun removed the killed runs' leftovers


@pytest.mark.parametrize("command", ["ingest", "update"])
@pytest.mark.parametrize("kind", ["/dev/zero", "fifo"])
def test_device_or_fifo_is_refused_at_once_and_the_lock_stays_free(
    tmp_path: Path, command: str, kind: str
) -> None:
    source = Path("/dev/zero")
    if kind == "fifo":
        source = tmp_path / "feed.xml"
        os.mkfifo(source)  # nobody ever writes to it: opening it would block for good
    data_dir = tmp_path / "data"
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "indexing", "-q", command, "--xml", str(source)],
        cwd=ROOT,
        env=cli_env(data_dir),
        capture_output=True,
        text=True,
        timeout=60,  # today's code reads /dev/zero (or waits on the FIFO) forever
        check=False,
    )
    assert time.monotonic() - started < 30
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "not a regular file" in lines[0] and str(source) in lines[0]
    store = FileStore(Settings(data_dir=data_dir, offline=True))
    with store.lock(wait=0):  # free: nobody took it
        pass


def test_xml_file_larger_than_the_setting_is_refused_before_the_lock(
    tmp_path: Path,
) -> None:
    from indexing.ingest import ingest_files

    data_dir = tmp_path / "data"
    settings = Settings(data_dir=data_dir, offline=True, max_xml_file_bytes=1000)
    store = FileStore(settings)
    with store.lock(purpose="another writer"), pytest.raises(Exception) as raised:
        # The lock is held elsewhere: the size check must fail first, not the lock.
        ingest_files([SUBSET[0]], settings, quiet=True)
    assert "more than the 1000 allowed (PUBMED_RAG_MAX_XML_FILE_BYTES)" in str(raised.value)
    assert store.read_history() == []  # refused before the run started


def test_applier_holds_at_most_one_upsert_batch_of_records(tmp_path: Path) -> None:
    from dataclasses import replace

    from indexing.article import Article
    from indexing.history import RunReport
    from indexing.ingest import UPSERT_BATCH, Applier
    from indexing.pubmed import open_xml, parse_pubmed_xml
    from indexing.store import UpsertCounts

    class CountingWriter:
        """Stands in for the index writer: the applier's own memory is under test."""

        def upsert_articles(
            self, articles: list[Article], source: str = "", on_tagged: object = None
        ) -> UpsertCounts:
            return UpsertCounts(added=len(articles))

    with open_xml(SUBSET[0]) as stream:
        record = next(item for item in parse_pubmed_xml(stream) if isinstance(item, Article))
    fed = 5 * UPSERT_BATCH + 7
    applier = Applier(
        CountingWriter(),  # type: ignore[arg-type]
        RunReport(kind="test"),
        Settings(data_dir=tmp_path, offline=True),
        "xml",
        checkpoints=False,
    )
    applier.feed(replace(record, pmid=str(n)) for n in range(1, fed + 1))
    applier.flush()
    assert applier.report.added == fed
    for name, value in vars(applier).items():
        if isinstance(value, set | list | dict):
            assert len(value) <= UPSERT_BATCH, f"Applier.{name} grows with the run"


def test_version_renamed_but_never_published_is_removed_by_the_next_run(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from indexing.ingest import ingest_files
    from indexing.store import files as files_module

    ingest_files(SUBSET[:2], settings, quiet=True)
    real_write = files_module.write_atomic

    def killed_while_switching(path: Path, text: str) -> None:
        # The version directory is already renamed into place; the process dies while
        # writing the new CURRENT, leaving its temporary file behind.
        path.with_name(f".{path.name}.99999.tmp").write_text(text, encoding="utf-8")
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(files_module, "write_atomic", killed_while_switching)
    with pytest.raises(KeyboardInterrupt):
        ingest_files(SUBSET[2:4], settings, quiet=True)
    monkeypatch.setattr(files_module, "write_atomic", real_write)
    store = open_store(settings)
    assert store.current_version() == "v000001"
    assert store.published_versions() == ["v000001", "v000002"]  # v000002: never published

    report = ingest_files(SUBSET[4:5], settings, quiet=True)

    # The orphan was removed before publishing: its name is free again, and no reader ever
    # opened it (CURRENT never named it).
    assert report.index_version == store.current_version() == "v000002"
    assert store.published_versions() == ["v000001", "v000002"]
    assert store.manifest().run_id == report.run_id
    assert list(settings.index_dir.glob(".CURRENT.*.tmp")) == []
    assert len(catalog(settings)) == 3  # what v000002 held was never published


def test_run_stopped_by_a_streamlit_rerun_is_recorded_not_left_running(
    settings: Settings,
) -> None:
    from streamlit.runtime.scriptrunner_utils.exceptions import StopException

    from indexing.ingest import IngestProgress, ingest_files

    def rerun(state: IngestProgress) -> None:
        if state.records:
            raise StopException()  # what Streamlit raises in a page's thread when it reruns

    with pytest.raises(StopException):
        ingest_files(SUBSET[:3], settings, quiet=True, progress=rerun)

    store = open_store(settings)
    last = store.read_history()[-1]
    assert last["status"] == "interrupted"
    with store.lock(wait=0):
        pass


def test_import_path_inside_the_import_folder_is_its_real_location(tmp_path: Path) -> None:
    from indexing.ingest import check_import_path

    root = tmp_path / "import"
    (root / "baseline").mkdir(parents=True)
    assert check_import_path("baseline", root) == (root / "baseline").resolve()
    assert check_import_path(f"  {root / 'baseline'}  ", root) == (root / "baseline").resolve()
    assert check_import_path("baseline/../baseline", root) == (root / "baseline").resolve()


@pytest.mark.parametrize(
    "given",
    [
        "../outside",
        "{root}/../outside",
        "{outside}",
        "/etc/passwd",
        "link",
        "baseline/../../outside",
    ],
)
def test_import_path_leading_out_of_the_import_folder_is_refused(
    tmp_path: Path, given: str
) -> None:
    from indexing.ingest import ImportPathError, check_import_path

    root = tmp_path / "import"
    (root / "baseline").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ImportPathError, match="outside the import folder"):
        check_import_path(given.format(root=root, outside=outside), root)


def test_missing_or_empty_import_path_is_refused(tmp_path: Path) -> None:
    from indexing.ingest import ImportPathError, check_import_path

    root = tmp_path / "import"
    root.mkdir()
    with pytest.raises(ImportPathError, match="No such file or folder"):
        check_import_path("missing", root)
    with pytest.raises(ImportPathError, match="No file or folder given"):
        check_import_path("  ", root)


def test_symlink_inside_the_import_folder_to_a_file_outside_is_not_read(tmp_path: Path) -> None:
    from indexing.ingest import ImportPathError, ingest_files

    root = tmp_path / "import"
    root.mkdir()
    folder = subset_dir(root, SUBSET[:1])
    (folder / "elsewhere.xml").symlink_to(SUBSET[1])
    settings = Settings(data_dir=tmp_path / "data", offline=True)
    with pytest.raises(ImportPathError, match="outside the import folder"):
        ingest_files([folder], settings, quiet=True, within=root)
    assert FileStore(settings).read_history() == []  # refused before the run started
