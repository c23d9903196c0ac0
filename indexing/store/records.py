"""Typed records of the store: manifests, tracked queries, index summaries, upsert counts."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

MANIFEST_FORMAT = 1


@dataclass(frozen=True, slots=True)
class TrackedQuery:
    """A PubMed query kept up to date by ``update``, with its watermark.

    Stored in the manifest as ``{term: state}``; :meth:`state` is that form, and keys a newer
    release may add survive a round trip in ``extra``.
    """

    term: str
    mindate: str | None = None
    maxdate: str | None = None
    max_records: int | None = None
    added_at: str | None = None
    last_success: str | None = None  # the watermark: the next update's window starts here
    last_count: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    _KEYS = ("mindate", "maxdate", "max", "added_at", "last_success", "last_count")

    @classmethod
    def from_state(cls, term: str, state: Mapping[str, Any]) -> TrackedQuery:
        """The query from its manifest form."""
        return cls(
            term=term,
            mindate=state.get("mindate"),
            maxdate=state.get("maxdate"),
            max_records=state.get("max"),
            added_at=state.get("added_at"),
            last_success=state.get("last_success"),
            last_count=state.get("last_count"),
            extra={k: v for k, v in state.items() if k not in cls._KEYS},
        )

    def state(self) -> dict[str, Any]:
        """The manifest form (the keys ingest and update write)."""
        return {
            **self.extra,
            "mindate": self.mindate,
            "maxdate": self.maxdate,
            "max": self.max_records,
            "added_at": self.added_at,
            "last_success": self.last_success,
            "last_count": self.last_count,
        }


def tracked_queries(queries: Mapping[str, Mapping[str, Any]]) -> dict[str, TrackedQuery]:
    """``term -> TrackedQuery`` from the manifest form."""
    return {term: TrackedQuery.from_state(term, state) for term, state in queries.items()}


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
    # The manifest (JSON) form of the tracked queries; typed by :meth:`tracked_queries`.
    queries: dict[str, dict[str, Any]] = field(default_factory=dict)
    applied_files: dict[str, str] = field(default_factory=dict)
    run_id: str = ""
    # The entity tagging models (PUBMED_RAG_NER_MODEL, comma-separated) and the sha256 of
    # their files; "" for an index built without (:func:`indexing.ner.open_tagger`).
    ner_model: str = ""
    ner_sha256: str = ""
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

    def tracked_queries(self) -> dict[str, TrackedQuery]:
        """The tracked queries, typed."""
        return tracked_queries(self.queries)

    @property
    def dimensionality(self) -> int | None:
        """The width vectors were cut to (``PUBMED_RAG_DIMENSIONALITY``), None when not cut."""
        value = self.embeddings_config.get("dimensionality")
        return value if isinstance(value, int) else None

    @property
    def profile(self) -> str:
        """The model profile that built the index (:mod:`indexing.model_profiles`)."""
        return str(self.embeddings_config.get("profile") or "sentence-transformers")


@dataclass(frozen=True, slots=True)
class IndexInfo:
    """What is published, for ``info``, the app's Library page and the update job's logs."""

    data_dir: str
    backend: str
    location: str
    offline_mode: bool
    index_version: str | None = None
    published_at: str | None = None
    articles: int = 0
    passages: int = 0
    embeddings_model: str | None = None
    dimensions: int | None = None
    ner_model: str | None = None  # the entity tagging models, None when the index has none
    queries: dict[str, TrackedQuery] = field(default_factory=dict)
    applied_files: int = 0
    versions_on_disk: tuple[str, ...] = ()
    last_run: dict[str, Any] | None = None
    runs: int = 0

    @property
    def has_index(self) -> bool:
        """Whether a published version holds articles."""
        return bool(self.index_version) and bool(self.articles)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``python -m indexing info --json``; the keys are a contract)."""
        return {
            "data_dir": self.data_dir,
            "backend": self.backend,
            "location": self.location,
            "index_version": self.index_version,
            "published_at": self.published_at,
            "articles": self.articles,
            "passages": self.passages,
            "embeddings_model": self.embeddings_model,
            "dimensions": self.dimensions,
            "ner_model": self.ner_model,
            "offline_mode": self.offline_mode,
            "queries": {term: query.state() for term, query in self.queries.items()},
            "applied_files": self.applied_files,
            "versions_on_disk": list(self.versions_on_disk),
            "last_run": self.last_run,
            "runs": self.runs,
        }


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
