"""The embedded backend: versions as folders under ``<data_dir>/index`` (see :mod:`.layout`).

Readers only ever open the version named by CURRENT, and a version directory never changes
once published: a writer copies the current version to a staging directory, changes the copy,
and publishes it with two renames (directory, then CURRENT). A writer killed at any instant
therefore leaves the published index as it was; what it had not published is redone by the
next run, and fingerprints make redoing cheap (unchanged records are not re-embedded).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from indexing import history
from indexing.article import join_list
from indexing.models import ModelChoice
from indexing.settings import Settings
from indexing.store.ann import apply_layout
from indexing.store.base import (
    Catalog,
    CatalogEntry,
    CatalogRow,
    IndexCorruptError,
    PublishedIndex,
    VersionStore,
    Writer,
    not_published,
    version_name,
    version_number,
)
from indexing.store.config import embeddings_config, load_embeddings
from indexing.store.layout import (
    CATALOG,
    CURRENT,
    EMBEDDINGS,
    LOCK,
    MANIFEST,
    SCHEDULE_LOCK,
    STAGING_PREFIX,
    VERSIONS,
    fsync_dir,
    fsync_tree,
    write_atomic,
)
from indexing.store.lock import FileLock
from indexing.store.records import Manifest

if TYPE_CHECKING:
    from pathlib import Path

    from indexing.history import RunReport

log = logging.getLogger(__name__)

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


class FileStore(VersionStore):
    """The versioned index on disk: what is published, and the writer lock."""

    backend = "embedded"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.root = settings.index_dir
        self.versions = self.root / VERSIONS

    @property
    def where(self) -> str:
        """Where the index lives, for messages."""
        return str(self.root)

    def close(self) -> None:
        """Nothing to release: files are opened per call."""

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
            IndexCorruptError: the manifest cannot be read.
        """
        version = version or self.current_version()
        if version is None:
            raise not_published(self.where)
        path = self.version_path(version) / MANIFEST
        try:
            return Manifest.from_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, TypeError) as exc:
            raise IndexCorruptError(f"cannot read {path}: {exc}") from exc

    def published_versions(self) -> list[str]:
        """Complete versions on disk, oldest first."""
        if not self.versions.exists():
            return []
        names = [p.name for p in self.versions.iterdir() if version_number(p.name) >= 0]
        return sorted(names, key=version_number)

    @contextlib.contextmanager
    def lock(self, wait: float = 0.0, purpose: str = "write") -> Iterator[None]:
        """Hold the writer lock (across processes); see :class:`FileLock`."""
        with FileLock(self.root / LOCK, wait=wait, purpose=purpose):
            yield

    @contextlib.contextmanager
    def scheduler_lock(self, wait: float = 0.0) -> Iterator[None]:
        """Be the only scheduler of this index (:class:`IndexLockedError` names the holder)."""
        with FileLock(self.root / SCHEDULE_LOCK, wait=wait, purpose="schedule"):
            yield

    def open_version(self, version: str) -> FilePublishedIndex:
        """A read-only handle on a published version."""
        return FilePublishedIndex(self, version)

    def catalog(self, version: str | None = None) -> Catalog:
        """``pmid -> (fingerprint, passages, sources)`` of a version (the published one)."""
        version = version or self.current_version()
        if version is None:
            return {}
        path = self.version_path(version) / CATALOG
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            rows = db.execute("SELECT pmid, fingerprint, passages, sources FROM articles")
            return {pmid: CatalogEntry(fp, n, sources) for pmid, fp, n, sources in rows}

    def append_report(self, report: RunReport) -> None:
        """Record a run in ``history.jsonl``."""
        history.append_report(self.root, report)

    def read_history(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Run reports, oldest first."""
        return history.read_history(self.root, limit)

    def trim_history(self, max_runs: int, max_days: int = 0) -> int:
        """Rewrite ``history.jsonl`` without the runs past the limits (see the history module)."""
        return history.trim_history(self.root, max_runs, max_days)

    def open_writer(self, choice: ModelChoice | None = None) -> FileWriter:
        """A writer on a private copy of the published version; hold :meth:`lock`."""
        return FileWriter(self, choice)

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
            published = version_number(current) if current else None
            for path in self.versions.iterdir():
                unpublished = published is not None and version_number(path.name) > published
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


class FileWriter(Writer):
    """Changes a staging copy of the published version folder and renames it into place."""

    store: FileStore

    # -- staging -----------------------------------------------------------------------------

    def _open_staging(self) -> None:
        from txtai import Embeddings

        store = self.store
        store.versions.mkdir(parents=True, exist_ok=True)
        self.staging = store.versions / f"{STAGING_PREFIX}{os.getpid()}-{time.time_ns()}"
        if self.base_version:
            shutil.copytree(store.version_path(self.base_version), self.staging)
            assert self.base_manifest is not None
            self.embeddings = load_embeddings(self.staging, self.base_manifest, self.settings)
        else:
            config = embeddings_config(self.choice, self.settings)  # may refuse the settings
            self.staging.mkdir()
            self.embeddings = Embeddings(config)
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

    # -- the catalog -----------------------------------------------------------------------------

    def known(self, pmids: Iterable[str]) -> Catalog:
        """``pmid -> (fingerprint, passages, sources)`` for the given PMIDs already indexed."""
        found: Catalog = {}
        pmids = list(pmids)
        for start in range(0, len(pmids), 500):
            chunk = pmids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.catalog.execute(
                f"SELECT pmid, fingerprint, passages, sources FROM articles WHERE pmid IN ({marks})",
                chunk,
            )
            for pmid, fingerprint, passages, sources in rows:
                found[pmid] = CatalogEntry(fingerprint, passages, sources)
        return found

    def pmids_from_source(self, source: str) -> set[str]:
        """PMIDs whose records came (among others) from ``source``."""
        pattern = f"%{join_list([source])}%"
        rows = self.catalog.execute("SELECT pmid FROM articles WHERE sources LIKE ?", (pattern,))
        return {pmid for (pmid,) in rows}

    def article_count(self) -> int:
        """Articles in the working copy."""
        return int(self.catalog.execute("SELECT COUNT(*) FROM articles").fetchone()[0])

    def _set_sources(self, pmid: str, sources: str) -> None:
        self.catalog.execute("UPDATE articles SET sources = ? WHERE pmid = ?", (sources, pmid))

    def _put_catalog(self, rows: list[CatalogRow]) -> None:
        self.catalog.executemany(
            "INSERT OR REPLACE INTO articles VALUES (?, ?, ?, ?, ?, ?, ?)", rows
        )

    def _delete_catalog(self, pmids: list[str]) -> None:
        self.catalog.executemany("DELETE FROM articles WHERE pmid = ?", [(p,) for p in pmids])

    # -- publishing ------------------------------------------------------------------------------

    def publish(self, run_id: str = "", reopen: bool = False) -> Manifest:
        """Publish the working copy as a new version; optionally keep writing on a fresh copy.

        The order makes a kill at any instant harmless: the staging directory is complete and
        synced before it is renamed into place, and CURRENT is switched last, atomically.
        """
        store = self.store
        self.catalog.commit()
        articles = self.article_count()
        passages = int(self.embeddings.count()) if articles else 0
        if articles:
            # The dense layout the passage count asks for (PUBMED_RAG_ANN), before it is saved.
            apply_layout(
                self.embeddings, passages, self.settings.ann, self.settings.ann_min_passages
            )
            self.embeddings.save(str(self.staging / EMBEDDINGS))
        else:
            (self.staging / EMBEDDINGS).mkdir(exist_ok=True)
        existing = [version_number(v) for v in store.published_versions()]
        version = version_name(max(existing, default=0) + 1)
        manifest = self._new_manifest(version, articles, passages, run_id)
        self.catalog.close()
        self.embeddings.close()
        (self.staging / MANIFEST).write_text(manifest.to_json(), encoding="utf-8")
        fsync_tree(self.staging)
        final = store.version_path(version)
        self.staging.rename(final)
        fsync_dir(store.versions)
        write_atomic(store.root / CURRENT, version)
        log.info(
            "published index version %s (%d articles, %d passages)", version, articles, passages
        )
        self.base_version, self.base_manifest, self.dirty = version, manifest, False
        store.cleanup()
        if reopen:
            self._open_staging()
        return manifest


class FilePublishedIndex(PublishedIndex):
    """A read-only handle on one published version folder."""

    def __init__(self, store: FileStore, version: str) -> None:
        self.path = store.version_path(version)
        manifest = store.manifest(version)
        embeddings = (
            load_embeddings(self.path, manifest, store.settings) if manifest.articles else None
        )
        super().__init__(version, manifest, embeddings)

    def _search(
        self, query: str, limit: int, parameters: dict[str, Any] | None, weights: float | None
    ) -> list[dict[str, Any]]:
        from indexing.store import retrieval  # imports txtai: only once something is searched

        return retrieval.search(self.embeddings, query, limit, weights, parameters)

    def _search_sides(
        self,
        query: str,
        limit: int,
        parameters: dict[str, Any],
        dense_parameters: dict[str, Any],
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        from indexing.store import retrieval

        return retrieval.search_sides(self.embeddings, query, limit, parameters, dense_parameters)

    def close(self) -> None:
        """Release the version's files."""
        if self.embeddings is not None:
            with contextlib.suppress(Exception):
                self.embeddings.close()
