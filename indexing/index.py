"""The only module that writes the txtai index: versions, upserts, deletions, publishing.

Layout under ``<data_dir>/index``::

    CURRENT                 name of the published version ("v000007"), replaced atomically
    versions/v000007/       a complete txtai index + catalog.sqlite + manifest.json
    versions/.staging-*     a writer's work in progress; never read, removed when stale
    history.jsonl           one report per run (see indexing.history)
    .lock                   writer lock (fcntl.flock: the kernel releases it when a writer dies)

Readers only ever open the version named by CURRENT, and a version directory never changes
once published: a writer copies the current version to a staging directory, changes the copy,
and publishes it with two renames (directory, then CURRENT). A writer killed at any instant
therefore leaves the published index as it was; what it had not published is redone by the
next run, and fingerprints make redoing cheap (unchanged records are not re-embedded).

This file layout is the embedded backend. With ``database_url`` set, :func:`open_store` returns
the PostgreSQL backend (:mod:`indexing.postgres`), which subclasses the classes below and keeps
the same guarantees with the versions, pointer, catalog, history and locks in the database.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from indexing.article import Article, article_documents, join_list, passage_id, split_list
from indexing.encoder import choose_precision, reading_overrides, vectors_args
from indexing.models import ModelChoice, locate_model, resolve_embeddings
from indexing.settings import Settings

if TYPE_CHECKING:
    from indexing.history import RunReport

log = logging.getLogger(__name__)

CURRENT = "CURRENT"
SCHEDULE_LOCK = ".schedule.lock"
VERSIONS = "versions"
MANIFEST = "manifest.json"
CATALOG = "catalog.sqlite"
EMBEDDINGS = "embeddings"
STAGING_PREFIX = ".staging-"
MANIFEST_FORMAT = 1


class IndexStoreError(RuntimeError):
    """Base class of index errors."""


class IndexNotFoundError(IndexStoreError):
    """No published index exists yet."""


class IndexLockedError(IndexStoreError):
    """Another writer holds the lock."""

    def __init__(self, message: str, holder: str = "") -> None:
        super().__init__(message)
        self.holder = holder  # who holds it ("pid 123 (update, since …)"), when known


class IndexCorruptError(IndexStoreError):
    """A published version is unreadable."""


def utcnow() -> str:
    """Current UTC time, ISO 8601 with seconds."""
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a published version contains and how it was built (``manifest.json``)."""

    version: str
    published_at: str
    embeddings_model: str
    dimensions: int
    articles: int
    passages: int
    embeddings_config: dict[str, Any] = field(default_factory=dict)
    queries: dict[str, dict[str, Any]] = field(default_factory=dict)
    applied_files: dict[str, str] = field(default_factory=dict)
    run_id: str = ""
    format: int = MANIFEST_FORMAT

    def to_json(self) -> str:
        """Serialised form written to ``manifest.json``."""
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """Parse ``manifest.json``, ignoring keys a newer release may have added."""
        raw = json.loads(text)
        known = {name: raw[name] for name in cls.__dataclass_fields__ if name in raw}
        return cls(**known)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    for item in sorted(path.rglob("*")):
        if item.is_file():
            with item.open("rb") as handle:
                os.fsync(handle.fileno())
    for folder in sorted({p.parent for p in path.rglob("*")} | {path}):
        _fsync_dir(folder)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)
    _fsync_dir(path.parent)


def _version_name(number: int) -> str:
    return f"v{number:06d}"


def _version_number(name: str) -> int:
    return int(name[1:]) if name.startswith("v") and name[1:].isdigit() else -1


def open_store(settings: Settings) -> IndexStore:
    """The index store the settings choose: files under ``data_dir``, or PostgreSQL.

    The one place where the backend is chosen; everything else goes through the store.
    """
    if settings.database_url is not None:
        from indexing.postgres import PgIndexStore

        return PgIndexStore(settings)
    return IndexStore(settings)


class IndexStore:
    """The versioned index on disk: what is published, and the writer lock."""

    backend = "embedded"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.index_dir
        self.versions = self.root / VERSIONS

    @property
    def where(self) -> str:
        """Where the index lives, for messages (never with credentials)."""
        return str(self.root)

    def close(self) -> None:
        """Release what the store holds open (nothing for files)."""

    def current_version(self) -> str | None:
        """Name of the published version, or None before the first publish."""
        try:
            name = (self.root / CURRENT).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return name or None

    def version_path(self, version: str) -> Path:
        """Directory of a version."""
        return self.versions / version

    def manifest(self, version: str | None = None) -> Manifest:
        """Manifest of a version (the published one by default).

        Raises:
            IndexNotFoundError: nothing has been published yet.
        """
        version = version or self.current_version()
        if version is None:
            raise IndexNotFoundError(
                f"no index has been published in {self.where} yet; build one with "
                "`python -m indexing ingest --xml PATH` or `--query TERM`"
            )
        path = self.version_path(version) / MANIFEST
        try:
            return Manifest.from_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, TypeError) as exc:
            raise IndexCorruptError(f"cannot read {path}: {exc}") from exc

    def published_versions(self) -> list[str]:
        """Complete versions on disk, oldest first."""
        if not self.versions.exists():
            return []
        names = [p.name for p in self.versions.iterdir() if _version_number(p.name) >= 0]
        return sorted(names, key=_version_number)

    @contextlib.contextmanager
    def lock(self, wait: float = 0.0, purpose: str = "write") -> Iterator[None]:
        """Hold the writer lock (across processes); see :class:`WriterLock`."""
        with WriterLock(self.root / ".lock", wait=wait, purpose=purpose):
            yield

    @contextlib.contextmanager
    def scheduler_lock(self, wait: float = 0.0) -> Iterator[None]:
        """Be the only scheduler of this index (:class:`IndexLockedError` names the holder)."""
        with WriterLock(self.root / SCHEDULE_LOCK, wait=wait, purpose="schedule"):
            yield

    def open_version(self, version: str) -> PublishedIndex:
        """A read-only handle on a published version."""
        return PublishedIndex(self, version)

    def catalog(self, version: str | None = None) -> dict[str, tuple[str, int, str]]:
        """``pmid -> (fingerprint, passages, sources)`` of a version (the published one)."""
        version = version or self.current_version()
        if version is None:
            return {}
        path = self.version_path(version) / CATALOG
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            rows = db.execute("SELECT pmid, fingerprint, passages, sources FROM articles")
            return {pmid: (fp, passages, sources) for pmid, fp, passages, sources in rows}

    def append_report(self, report: RunReport) -> None:
        """Record a run in the history (see :mod:`indexing.history`)."""
        from indexing.history import append_report

        append_report(self.root, report)

    def read_history(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Run reports, oldest first."""
        from indexing.history import read_history

        return read_history(self.root, limit)

    def open_writer(self, choice: ModelChoice | None = None) -> IndexWriter:
        """A writer on a private copy of the published version (or on a new index).

        The caller must hold :meth:`lock`.
        """
        return IndexWriter(self, choice)

    def destroy(self) -> None:
        """Remove the whole index: every version, the history, the locks."""
        shutil.rmtree(self.root, ignore_errors=True)

    def cleanup(self) -> list[str]:
        """Remove stale staging directories and versions beyond ``keep_versions``.

        Call only while holding the lock. Readers that still have an old version open keep
        working (open files survive unlinking), and reload the current version on their next
        search.
        """
        removed = []
        current = self.current_version()
        for tmp in self.root.glob(f".{CURRENT}.*.tmp"):  # a writer killed while switching
            tmp.unlink(missing_ok=True)
            removed.append(tmp.name)
        if self.versions.exists():
            # A version newer than CURRENT was renamed into place by a writer killed before it
            # switched CURRENT: never published, so not one of the kept. (Without CURRENT at
            # all nothing is judged: that may be damage, and versions are the only copies.)
            published = _version_number(current) if current else None
            for path in self.versions.iterdir():
                unpublished = published is not None and _version_number(path.name) > published
                if path.name.startswith(STAGING_PREFIX) or unpublished:
                    shutil.rmtree(path, ignore_errors=True)
                    removed.append(path.name)
        keep = self.settings.keep_versions
        versions = self.published_versions()
        for name in versions[:-keep] if len(versions) > keep else []:
            if name != current:
                shutil.rmtree(self.version_path(name), ignore_errors=True)
                removed.append(name)
        return removed


class WriterLock:
    """An exclusive, cross-process writer lock on a file, with a clear message when taken.

    ``fcntl.flock`` is released by the kernel when the holder dies, so a lock left by a killed
    process (``kill -9``) is recovered automatically; the file's text only says who held it.
    """

    def __init__(self, path: Path, wait: float = 0.0, purpose: str = "write") -> None:
        self.path = path
        self.wait = wait
        self.purpose = purpose
        self._handle: IO[str] | None = None

    def __enter__(self) -> WriterLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="utf-8")
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.seek(0)
                    holder = handle.read().strip() or "another process"
                    handle.close()
                    raise IndexLockedError(
                        f"the index at {self.path.parent} is being updated by {holder}; "
                        "wait for it to finish (or pass --wait SECONDS)",
                        holder,
                    ) from None
                time.sleep(min(0.2, max(0.01, deadline - time.monotonic())))
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} ({self.purpose}, since {utcnow()})")
        handle.flush()
        self._handle = handle
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.seek(0)
            self._handle.truncate()
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


@dataclass(slots=True)
class UpsertCounts:
    """What an upsert did."""

    added: int = 0
    revised: int = 0
    unchanged: int = 0
    deleted: int = 0

    def merge(self, other: UpsertCounts) -> None:
        """Add another count into this one."""
        self.added += other.added
        self.revised += other.revised
        self.unchanged += other.unchanged
        self.deleted += other.deleted


_CATALOG_SCHEMA = """
CREATE TABLE IF NOT EXISTS articles (
    pmid TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    passages INTEGER NOT NULL,
    sources TEXT NOT NULL DEFAULT '',
    edat TEXT NOT NULL DEFAULT '',
    mdat TEXT NOT NULL DEFAULT '',
    updated_at TEXT NOT NULL
)
"""


# Documents per txtai vectorize call. sentence-transformers sorts the texts of one call by
# length before cutting them into encoder batches, so a wide window leaves little padding
# (1024 is txtai's own default; one upsert of UPSERT_BATCH articles fits in it).
SORT_WINDOW = 1024


def embeddings_config(choice: ModelChoice, settings: Settings) -> dict[str, Any]:
    """txtai configuration of a new index: content storage, hybrid BM25 + dense, our model.

    The encoder runs in the precision :func:`indexing.encoder.choose_precision` picks (bf16 on
    CPUs with native bf16); ``encoder`` records it for readers and ``manifest.json``.
    """
    encoder = choose_precision(settings.encoder_precision)
    return {
        "path": choice.path,
        "method": "sentence-transformers",
        "vectors": vectors_args(encoder.precision),
        "encoder": encoder.describe(),
        "content": True,
        "hybrid": True,
        "scoring": {"method": "bm25", "terms": True, "normalize": True},
        "batch": max(SORT_WINDOW, settings.encode_batch),
        "encodebatch": settings.encode_batch,
    }


def load_embeddings(path: Path, manifest: Manifest, precision: str = "auto") -> Any:
    """Load the txtai index of a version with the model named in its manifest.

    Queries (and upserts into a copy) are encoded with the precision the index records, unless
    ``precision`` (the ``encoder_precision`` setting) is ``fp32`` or the CPU lacks bf16.
    """
    from txtai import Embeddings

    model_path = locate_model(manifest.embeddings_model, allow_download=False)
    overrides = reading_overrides(manifest.embeddings_config, precision)
    embeddings = Embeddings()
    embeddings.load(str(path / EMBEDDINGS), config={"path": model_path, **overrides})
    return embeddings


class IndexWriter:
    """Changes a private copy of the published index and publishes it as a new version.

    Use through :meth:`IndexStore.open_writer` while holding the lock::

        with store.lock():
            writer = store.open_writer()
            writer.upsert_articles(articles, source="query:cancer")
            writer.publish()
    """

    def __init__(self, store: IndexStore, choice: ModelChoice | None = None) -> None:
        self.store = store
        self.settings = store.settings
        self.base_version = store.current_version()
        self.base_manifest = store.manifest(self.base_version) if self.base_version else None
        if self.base_manifest is not None:
            model = self.base_manifest.embeddings_model
            self.choice = ModelChoice(model, locate_model(model, allow_download=False))
            if choice is not None and choice.name != model:
                log.warning(
                    "the index was built with %s; keeping it for consistency (configured: %s). "
                    "Build a new index in another PUBMED_RAG_DATA_DIR to switch models.",
                    model,
                    choice.name,
                )
        else:
            self.choice = choice or resolve_embeddings(self.settings)
        self.queries: dict[str, dict[str, Any]] = dict(
            self.base_manifest.queries if self.base_manifest else {}
        )
        self.applied_files: dict[str, str] = dict(
            self.base_manifest.applied_files if self.base_manifest else {}
        )
        self.dirty = False
        store.cleanup()  # we hold the lock: any staging directory left is a killed writer's
        self._open_staging()

    # -- staging -----------------------------------------------------------------------------

    def _open_staging(self) -> None:
        from txtai import Embeddings

        self.store.versions.mkdir(parents=True, exist_ok=True)
        self.staging = self.store.versions / f"{STAGING_PREFIX}{os.getpid()}-{time.time_ns()}"
        if self.base_version:
            shutil.copytree(self.store.version_path(self.base_version), self.staging)
            assert self.base_manifest is not None
            self.embeddings = load_embeddings(
                self.staging, self.base_manifest, self.settings.encoder_precision
            )
        else:
            self.staging.mkdir()
            self.embeddings = Embeddings(embeddings_config(self.choice, self.settings))
        self.catalog = sqlite3.connect(self.staging / CATALOG)
        self.catalog.execute(_CATALOG_SCHEMA)
        self.catalog.commit()

    def close(self) -> None:
        """Drop unpublished work (the staging copy)."""
        with contextlib.suppress(Exception):
            self.catalog.close()
        with contextlib.suppress(Exception):
            self.embeddings.close()
        shutil.rmtree(self.staging, ignore_errors=True)

    def __enter__(self) -> IndexWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reads of the working copy -------------------------------------------------------------

    def known(self, pmids: Iterable[str]) -> dict[str, tuple[str, int, str]]:
        """``pmid -> (fingerprint, passages, sources)`` for the given PMIDs already indexed."""
        found: dict[str, tuple[str, int, str]] = {}
        pmids = list(pmids)
        for start in range(0, len(pmids), 500):
            chunk = pmids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.catalog.execute(
                f"SELECT pmid, fingerprint, passages, sources FROM articles WHERE pmid IN ({marks})",
                chunk,
            )
            for pmid, fingerprint, passages, sources in rows:
                found[pmid] = (fingerprint, passages, sources)
        return found

    def pmids_from_source(self, source: str) -> set[str]:
        """PMIDs whose records came (among others) from ``source``."""
        pattern = f"%{join_list([source])}%"
        rows = self.catalog.execute("SELECT pmid FROM articles WHERE sources LIKE ?", (pattern,))
        return {pmid for (pmid,) in rows}

    def article_count(self) -> int:
        """Articles in the working copy."""
        return int(self.catalog.execute("SELECT COUNT(*) FROM articles").fetchone()[0])

    # -- catalog writes (the PostgreSQL writer overrides these) ------------------------------

    def _set_sources(self, pmid: str, sources: str) -> None:
        self.catalog.execute("UPDATE articles SET sources = ? WHERE pmid = ?", (sources, pmid))

    def _put_articles(self, rows: list[tuple[str, str, int, str, str, str, str]]) -> None:
        self.catalog.executemany(
            "INSERT OR REPLACE INTO articles VALUES (?, ?, ?, ?, ?, ?, ?)", rows
        )

    def _delete_articles(self, pmids: list[str]) -> None:
        self.catalog.executemany("DELETE FROM articles WHERE pmid = ?", [(p,) for p in pmids])

    # -- changes ---------------------------------------------------------------------------------

    def upsert_articles(self, articles: Iterable[Article], source: str = "") -> UpsertCounts:
        """Insert new articles, replace revised ones, skip unchanged ones (by fingerprint).

        A revised article loses all of its old passages before the new ones go in, so a
        revision that shortens an abstract leaves no orphan passage behind.
        """
        counts = UpsertCounts()
        batch = {article.pmid: article for article in articles}  # last revision in a batch wins
        if not batch:
            return counts
        known = self.known(batch)
        documents: list[dict[str, Any]] = []
        stale_ids: list[str] = []
        rows = []
        now = utcnow()
        for pmid, article in batch.items():
            fingerprint = article.fingerprint()
            previous = known.get(pmid)
            sources = sorted(set(split_list(previous[2] if previous else "")) | {source} - {""})
            if previous and previous[0] == fingerprint:
                counts.unchanged += 1
                if join_list(sources) != previous[2]:
                    self._set_sources(pmid, join_list(sources))
                    self.dirty = True
                continue
            if previous:
                counts.revised += 1
                stale_ids.extend(passage_id(pmid, n) for n in range(previous[1]))
            else:
                counts.added += 1
            docs = list(article_documents(article, self.settings.passage_tokens))
            documents.extend(docs)
            rows.append(
                (pmid, fingerprint, len(docs), join_list(sources), article.edat, article.mdat, now)
            )
        if stale_ids:
            self.embeddings.delete(stale_ids)
        if documents:
            self.embeddings.upsert(documents)
            self._put_articles(rows)
            self.dirty = True
        return counts

    def delete_pmids(self, pmids: Iterable[str]) -> int:
        """Remove articles entirely (all passages). Unknown PMIDs are ignored."""
        known = self.known(set(pmids))
        if not known:
            return 0
        ids = [
            passage_id(pmid, n) for pmid, (_, passages, _) in known.items() for n in range(passages)
        ]
        self.embeddings.delete(ids)
        self._delete_articles(list(known))
        self.dirty = True
        return len(known)

    def remove_source(self, pmids: Iterable[str], source: str) -> int:
        """Detach ``source`` from articles; delete those no other source keeps. Returns deletions."""
        orphans = []
        for pmid, (_, _, sources) in self.known(set(pmids)).items():
            remaining = [s for s in split_list(sources) if s != source]
            if remaining:
                self._set_sources(pmid, join_list(remaining))
                self.dirty = True
            else:
                orphans.append(pmid)
        return self.delete_pmids(orphans)

    def set_query(self, term: str, **state: Any) -> None:
        """Track a query (and its watermark state) in the next published manifest."""
        self.queries[term] = {**self.queries.get(term, {}), **state}
        self.dirty = True

    def mark_file_applied(self, name: str, md5: str) -> None:
        """Remember that an XML file was applied completely."""
        if self.applied_files.get(name) != md5:
            self.applied_files[name] = md5
            self.dirty = True

    # -- publishing ------------------------------------------------------------------------------

    def _manifest(self, version: str, articles: int, passages: int, run_id: str) -> Manifest:
        config = dict(self.embeddings.config or {})
        return Manifest(
            version=version,
            published_at=utcnow(),
            embeddings_model=self.choice.name,
            dimensions=int(config.get("dimensions") or 0),
            articles=articles,
            passages=passages,
            embeddings_config={k: v for k, v in config.items() if k != "path"},
            queries=self.queries,
            applied_files=self.applied_files,
            run_id=run_id,
        )

    def publish(self, run_id: str = "", reopen: bool = False) -> Manifest:
        """Publish the working copy as a new version; optionally keep writing on a fresh copy.

        The order makes a kill at any instant harmless: the staging directory is complete and
        synced before it is renamed into place, and CURRENT is switched last, atomically.
        """
        self.catalog.commit()
        articles = self.article_count()
        passages = int(self.embeddings.count()) if articles else 0
        if articles:
            self.embeddings.save(str(self.staging / EMBEDDINGS))
        else:
            (self.staging / EMBEDDINGS).mkdir(exist_ok=True)
        existing = [_version_number(v) for v in self.store.published_versions()]
        version = _version_name(max(existing, default=0) + 1)
        manifest = self._manifest(version, articles, passages, run_id)
        self.catalog.close()
        self.embeddings.close()
        (self.staging / MANIFEST).write_text(manifest.to_json(), encoding="utf-8")
        _fsync_tree(self.staging)
        final = self.store.version_path(version)
        self.staging.rename(final)
        _fsync_dir(self.store.versions)
        _write_atomic(self.store.root / CURRENT, version)
        log.info(
            "published index version %s (%d articles, %d passages)", version, articles, passages
        )
        self.base_version, self.base_manifest, self.dirty = version, manifest, False
        self.store.cleanup()
        if reopen:
            self._open_staging()
        return manifest


class PublishedIndex:
    """A read-only handle on one published version."""

    broken = False  # set by a backend whose connection was lost: readers then reopen it

    def __init__(self, store: IndexStore, version: str) -> None:
        self.version = version
        self.path = store.version_path(version)
        self.manifest = store.manifest(version)
        self.embeddings = (
            load_embeddings(self.path, self.manifest, store.settings.encoder_precision)
            if self.manifest.articles
            else None
        )
        self.lock = threading.Lock()  # txtai objects are not safe for concurrent queries

    def search(
        self,
        query: str,
        limit: int,
        parameters: dict[str, Any] | None = None,
        weights: float | None = None,
    ) -> list[dict[str, Any]]:
        """Run a txtai query (natural text or SQL with bound ``parameters``)."""
        if self.embeddings is None:
            return []
        with self.lock:
            return list(
                self.embeddings.search(query, limit, weights=weights, parameters=parameters)
            )

    def close(self) -> None:
        """Release the version's files."""
        if self.embeddings is not None:
            with contextlib.suppress(Exception):
                self.embeddings.close()


class IndexReader:
    """Serves the published version and switches to a newer one as soon as it is published.

    Cheap to call on every request: it reads the small CURRENT file and reloads only when the
    name changed. A version removed between reading CURRENT and loading it (a cleanup racing a
    slow reader) is retried with the newer name.
    """

    def __init__(self, settings: Settings) -> None:
        self.store = open_store(settings)
        self._current: PublishedIndex | None = None
        self._lock = threading.Lock()

    def get(self) -> PublishedIndex:
        """The published version, reloaded if a newer one exists.

        Raises:
            IndexNotFoundError: nothing has been published yet.
        """
        for attempt in range(5):
            version = self.store.current_version()
            if version is None:
                raise IndexNotFoundError(
                    f"no index has been published in {self.store.where} yet; build one with "
                    "`python -m indexing ingest --xml PATH` or `--query TERM`"
                )
            current = self._current
            if current is not None and current.version == version and not current.broken:
                return current
            with self._lock:
                current = self._current
                if current is not None and current.version == version and not current.broken:
                    return current
                try:
                    fresh = self.store.open_version(version)
                except (FileNotFoundError, IndexCorruptError):
                    if attempt == 4:
                        raise
                    time.sleep(0.05 * (attempt + 1))
                    continue
                self._current = fresh  # the old handle stays valid for searches in flight
                return fresh
        raise IndexCorruptError(f"could not open the published index in {self.store.where}")


def index_info(settings: Settings) -> dict[str, Any]:
    """What is published, for ``info``, the app's Library page and the update job's logs."""
    store = open_store(settings)
    try:
        history = store.read_history()
        info: dict[str, Any] = {
            "data_dir": str(settings.data_dir),
            "backend": store.backend,
            "location": store.where,
            "index_version": None,
            "published_at": None,
            "articles": 0,
            "passages": 0,
            "embeddings_model": None,
            "dimensions": None,
            "offline_mode": settings.offline,
            "queries": {},
            "applied_files": 0,
            "versions_on_disk": store.published_versions(),
            "last_run": history[-1] if history else None,
            "runs": len(history),
        }
        if store.current_version() is None:
            return info
        manifest = store.manifest()
    finally:
        store.close()
    info.update(
        index_version=manifest.version,
        published_at=manifest.published_at,
        articles=manifest.articles,
        passages=manifest.passages,
        embeddings_model=manifest.embeddings_model,
        dimensions=manifest.dimensions,
        queries=manifest.queries,
        applied_files=len(manifest.applied_files),
    )
    return info
