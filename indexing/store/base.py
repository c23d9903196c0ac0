"""The small public base of every store backend: versions, writers, read handles, locks, errors.

A backend (:mod:`indexing.store.files`, :mod:`indexing.store.postgres`) subclasses
:class:`VersionStore`, :class:`Writer` and :class:`PublishedIndex` and implements the abstract
methods declared here. What every backend shares lives here once: how an upsert decides what to
add, revise or skip (fingerprints), how sources attach to articles, what a manifest records.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from indexing.article import Article, article_documents, join_list, passage_id, split_list
from indexing.clock import utcnow
from indexing.errors import UserError
from indexing.models import ModelChoice, locate_model, resolve_embeddings
from indexing.ner import open_tagger
from indexing.settings import Settings
from indexing.store.config import check_dimensionality
from indexing.store.records import Manifest, TrackedQuery, UpsertCounts, tracked_queries

if TYPE_CHECKING:
    from indexing.history import RunReport

log = logging.getLogger(__name__)


class CatalogEntry(NamedTuple):
    """What a version's catalog knows of an article."""

    fingerprint: str  # of the record as indexed (:meth:`Article.fingerprint`)
    passages: int  # passage ids are ``pmid#0`` … ``pmid#{passages - 1}``
    sources: str  # where the record came from, as a joined list (``|xml|query:asthma|``)


Catalog = dict[str, CatalogEntry]
# What a writer stores per article: pmid, fingerprint, passages, sources, edat, mdat, updated_at.
CatalogRow = tuple[str, str, int, str, str, str, str]


class IndexStoreError(UserError, RuntimeError):
    """Base class of index errors."""


class WriterLockLostError(IndexStoreError):
    """The writer lock was lost during a run (its connection dropped); nothing was published."""


class IndexNotFoundError(IndexStoreError):
    """No published index exists yet."""


class IndexLockedError(IndexStoreError):
    """Another writer holds the lock."""

    def __init__(self, message: str, holder: str = "") -> None:
        super().__init__(message)
        self.holder = holder  # who holds it ("pid 123 (update, since …)"), when known


class IndexCorruptError(IndexStoreError):
    """A published version is unreadable."""


def version_name(number: int) -> str:
    """The name of version ``number`` (``v000007``); names sort like their numbers."""
    return f"v{number:06d}"


def version_number(name: str) -> int:
    """The number of a version name, or -1 for anything that is not one."""
    return int(name[1:]) if name.startswith("v") and name[1:].isdigit() else -1


def not_published(where: str) -> IndexNotFoundError:
    """The error (with the hint how to build one) for a store with nothing published."""
    return IndexNotFoundError(
        f"no index has been published in {where} yet; build one with "
        "`python -m indexing ingest --xml PATH` or `--query TERM`"
    )


class StoreLock(abc.ABC):
    """An exclusive lock across processes, released by the system when its holder dies.

    Entering raises :class:`IndexLockedError` (naming the holder) when the lock is still taken
    after ``wait`` seconds.
    """

    @abc.abstractmethod
    def __enter__(self) -> StoreLock: ...

    @abc.abstractmethod
    def __exit__(self, *exc: object) -> None: ...


class VersionStore(abc.ABC):
    """The versioned index: what is published, the history, the writer and scheduler locks."""

    backend: ClassVar[str]

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    @abc.abstractmethod
    def where(self) -> str:
        """Where the index lives, for messages (never with credentials)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release what the store holds open (connections)."""

    # -- what is published -------------------------------------------------------------------

    @abc.abstractmethod
    def current_version(self) -> str | None:
        """Name of the published version, or None before the first publish."""

    @abc.abstractmethod
    def manifest(self, version: str | None = None) -> Manifest:
        """Manifest of a version (the published one by default).

        Raises:
            IndexNotFoundError: nothing has been published yet.
            IndexCorruptError: the version cannot be read.
        """

    @abc.abstractmethod
    def published_versions(self) -> list[str]:
        """Published versions, oldest first."""

    @abc.abstractmethod
    def catalog(self, version: str | None = None) -> Catalog:
        """``pmid -> (fingerprint, passages, sources)`` of a version (the published one)."""

    @abc.abstractmethod
    def open_version(self, version: str) -> PublishedIndex:
        """A read-only handle on a published version."""

    # -- history -----------------------------------------------------------------------------

    @abc.abstractmethod
    def append_report(self, report: RunReport) -> None:
        """Record a run in the history (see :mod:`indexing.history`)."""

    @abc.abstractmethod
    def read_history(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Runs, oldest first (see :func:`indexing.history.merge_runs`)."""

    @abc.abstractmethod
    def trim_history(self, max_runs: int, max_days: int = 0) -> int:
        """Keep the newest ``max_runs`` runs, none older than ``max_days`` days; hold the lock.

        Returns the runs dropped.
        """

    # -- writing -----------------------------------------------------------------------------

    @abc.abstractmethod
    def lock(
        self, wait: float = 0.0, purpose: str = "write"
    ) -> contextlib.AbstractContextManager[Any]:
        """Hold the writer lock (a :class:`StoreLock`) for as long as the context lasts."""

    @abc.abstractmethod
    def scheduler_lock(self, wait: float = 0.0) -> contextlib.AbstractContextManager[Any]:
        """Be the only scheduler of this index (:class:`IndexLockedError` names the holder)."""

    @abc.abstractmethod
    def open_writer(self, choice: ModelChoice | None = None) -> Writer:
        """A writer on a private copy of the published version (or on a new index).

        The caller must hold :meth:`lock`.
        """

    @abc.abstractmethod
    def cleanup(self) -> list[str]:
        """Remove killed writers' work and versions beyond ``keep_versions``; hold the lock."""

    @abc.abstractmethod
    def destroy(self) -> None:
        """Remove the whole index: every version, the history, the locks."""


class Writer(abc.ABC):
    """Changes a private copy of the published index and publishes it as a new version.

    Use through :meth:`VersionStore.open_writer` while holding the lock::

        with store.lock(), store.open_writer() as writer:
            writer.upsert_articles(articles)
            writer.publish()

    A backend implements the working copy (:meth:`_open_staging`, :meth:`close`,
    :meth:`publish`) and its catalog (:meth:`known` … :meth:`_delete_catalog`); what to add,
    revise or skip is decided here.
    """

    embeddings: Any  # txtai Embeddings on the working copy

    def __init__(self, store: VersionStore, choice: ModelChoice | None = None) -> None:
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
            check_dimensionality(self.base_manifest, self.choice.path, self.settings)
        else:
            self.choice = choice or resolve_embeddings(self.settings)
        # Before any staging work: a refused or unloadable tagger leaves nothing to clean up.
        self.tagger = open_tagger(self.settings, self.base_manifest)
        # The manifest form of the tracked queries (``term -> state``); see tracked_queries().
        self.queries: dict[str, dict[str, Any]] = dict(
            self.base_manifest.queries if self.base_manifest else {}
        )
        self.applied_files: dict[str, str] = dict(
            self.base_manifest.applied_files if self.base_manifest else {}
        )
        self.dirty = False
        store.cleanup()  # we hold the lock: any staging copy left is a killed writer's
        self._open_staging()

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what a backend implements -------------------------------------------------------------

    @abc.abstractmethod
    def _open_staging(self) -> None:
        """Start a working copy of ``base_version`` (or an empty one) and set ``embeddings``."""

    @abc.abstractmethod
    def close(self) -> None:
        """Drop unpublished work (the working copy)."""

    @abc.abstractmethod
    def publish(self, run_id: str = "", reopen: bool = False) -> Manifest:
        """Publish the working copy as a new version; optionally keep writing on a fresh copy.

        A kill at any instant must leave the published version as it was.
        """

    @abc.abstractmethod
    def known(self, pmids: Iterable[str]) -> Catalog:
        """``pmid -> (fingerprint, passages, sources)`` for the given PMIDs already indexed."""

    @abc.abstractmethod
    def pmids_from_source(self, source: str) -> set[str]:
        """PMIDs whose records came (among others) from ``source``."""

    @abc.abstractmethod
    def article_count(self) -> int:
        """Articles in the working copy."""

    @abc.abstractmethod
    def _put_catalog(self, rows: list[CatalogRow]) -> None:
        """Insert or replace catalog rows."""

    @abc.abstractmethod
    def _set_sources(self, pmid: str, sources: str) -> None:
        """Replace the sources of one catalogued article."""

    @abc.abstractmethod
    def _delete_catalog(self, pmids: list[str]) -> None:
        """Remove articles from the catalog."""

    # -- changes ---------------------------------------------------------------------------------

    def upsert_articles(
        self,
        articles: Iterable[Article],
        source: str = "",
        on_tagged: Callable[[int], None] | None = None,
    ) -> UpsertCounts:
        """Insert new articles, replace revised ones, skip unchanged ones (by fingerprint).

        A revised article loses all of its old passages before the new ones go in, so a
        revision that shortens an abstract leaves no orphan passage behind. With a tagger
        (``PUBMED_RAG_NER_MODEL``) the new and revised articles are tagged first, and
        ``on_tagged(n)`` is called as each step of ``n`` of them is done.
        """
        counts = UpsertCounts()
        batch = {article.pmid: article for article in articles}  # last revision in a batch wins
        if not batch:
            return counts
        known = self.known(batch)
        stale_ids: list[str] = []
        changed: list[tuple[Article, str, list[str]]] = []
        for pmid, article in batch.items():
            fingerprint = article.fingerprint()
            previous = known.get(pmid)
            sources = sorted(
                set(split_list(previous.sources if previous else "")) | {source} - {""}
            )
            if previous and previous.fingerprint == fingerprint:
                counts.unchanged += 1
                if join_list(sources) != previous.sources:
                    self._set_sources(pmid, join_list(sources))
                    self.dirty = True
                continue
            if previous:
                counts.revised += 1
                stale_ids.extend(passage_id(pmid, n) for n in range(previous.passages))
            else:
                counts.added += 1
            changed.append((article, fingerprint, sources))
        # Only what is written is tagged: unchanged records keep the entities they have.
        tags = (
            self.tagger.tag([article for article, _, _ in changed], on_tagged)
            if self.tagger is not None
            else [None] * len(changed)
        )
        documents: list[dict[str, Any]] = []
        rows: list[CatalogRow] = []
        now = utcnow()
        for (article, fingerprint, sources), tagged in zip(changed, tags, strict=True):
            docs = list(article_documents(article, self.settings.passage_tokens, tagged=tagged))
            documents.extend(docs)
            rows.append(
                (
                    article.pmid,
                    fingerprint,
                    len(docs),
                    join_list(sources),
                    article.edat,
                    article.mdat,
                    now,
                )
            )
        if stale_ids:
            self.embeddings.delete(stale_ids)
        if documents:
            self.embeddings.upsert(documents)
            self._put_catalog(rows)
            self.dirty = True
        return counts

    def delete_pmids(self, pmids: Iterable[str]) -> int:
        """Remove articles entirely (all passages). Unknown PMIDs are ignored."""
        known = self.known(set(pmids))
        if not known:
            return 0
        ids = [passage_id(pmid, n) for pmid, entry in known.items() for n in range(entry.passages)]
        self.embeddings.delete(ids)
        self._delete_catalog(list(known))
        self.dirty = True
        return len(known)

    def remove_source(self, pmids: Iterable[str], source: str) -> int:
        """Detach ``source`` from articles; delete those no other source keeps. Returns deletions."""
        orphans = []
        for pmid, entry in self.known(set(pmids)).items():
            remaining = [s for s in split_list(entry.sources) if s != source]
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

    def track_query(self, query: TrackedQuery) -> None:
        """Track a query (typed form of :meth:`set_query`)."""
        self.set_query(query.term, **query.state())

    def tracked_queries(self) -> dict[str, TrackedQuery]:
        """The queries the next published manifest tracks, typed."""
        return tracked_queries(self.queries)

    def mark_file_applied(self, name: str, md5: str) -> None:
        """Remember that an XML file was applied completely."""
        if self.applied_files.get(name) != md5:
            self.applied_files[name] = md5
            self.dirty = True

    def _new_manifest(self, version: str, articles: int, passages: int, run_id: str) -> Manifest:
        """The manifest of the working copy, published as ``version``."""
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
            ner_model=self.tagger.name if self.tagger is not None else "",
            ner_sha256=self.tagger.sha256 if self.tagger is not None else "",
        )


class PublishedIndex(abc.ABC):
    """A read-only handle on one published version; safe to share between threads."""

    def __init__(self, version: str, manifest: Manifest, embeddings: Any) -> None:
        self.version = version
        self.manifest = manifest
        self.embeddings = embeddings  # txtai Embeddings, None for an empty version
        self.broken = False  # set when the backend lost its connection: readers then reopen it
        self.lock = threading.Lock()  # txtai objects are not safe for concurrent queries

    def search(
        self,
        query: str,
        limit: int,
        parameters: dict[str, Any] | None = None,
        weights: float | None = None,
    ) -> list[dict[str, Any]]:
        """Run a txtai query (natural text or SQL with bound ``parameters``).

        Scores of a keyword-only query (``weights=0``) are on txtai's normalised 0..1 scale.
        """
        if self.embeddings is None:
            return []
        with self.lock:
            return self._search(query, limit, parameters, weights)

    def search_sides(
        self, query: str, limit: int, parameters: dict[str, Any], dense_query: Any = None
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """``(dense rows, keyword rows)``: :meth:`search` with ``weights=1`` and ``weights=0``.

        ``parameters["query"]`` is the keyword side's text; ``dense_query``, when given, is
        bound to ``:query`` on the dense side instead (a query vector). One lock for both, so
        a backend may run the two retrievers at once (:meth:`_search_sides`).
        """
        if self.embeddings is None:
            return [], []
        dense = parameters if dense_query is None else {**parameters, "query": dense_query}
        with self.lock:
            return self._search_sides(query, limit, parameters, dense)

    @abc.abstractmethod
    def _search(
        self, query: str, limit: int, parameters: dict[str, Any] | None, weights: float | None
    ) -> list[dict[str, Any]]:
        """:meth:`search` on a loaded index, under :attr:`lock`."""

    def _search_sides(
        self,
        query: str,
        limit: int,
        parameters: dict[str, Any],
        dense_parameters: dict[str, Any],
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """:meth:`search_sides` under :attr:`lock`: one retriever after the other."""
        return (
            self._search(query, limit, dense_parameters, 1.0),
            self._search(query, limit, parameters, 0.0),
        )

    @abc.abstractmethod
    def close(self) -> None:
        """Release the version."""
