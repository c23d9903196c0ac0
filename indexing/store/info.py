"""A summary of what is published (``info``, the app's Library page, the update job's logs)."""

from __future__ import annotations

from dataclasses import replace

from indexing.settings import Settings
from indexing.store.factory import open_store
from indexing.store.records import IndexInfo


def index_info(settings: Settings) -> IndexInfo:
    """What is published in the store the settings choose."""
    store = open_store(settings)
    try:
        history = store.read_history()
        empty = IndexInfo(
            data_dir=str(settings.data_dir),
            backend=store.backend,
            location=store.where,
            offline_mode=settings.offline,
            versions_on_disk=tuple(store.published_versions()),
            last_run=history[-1] if history else None,
            runs=len(history),
        )
        if store.current_version() is None:
            return empty
        manifest = store.manifest()
    finally:
        store.close()
    return replace(
        empty,
        index_version=manifest.version,
        published_at=manifest.published_at,
        articles=manifest.articles,
        passages=manifest.passages,
        embeddings_model=manifest.embeddings_model,
        dimensions=manifest.dimensions,
        ner_model=manifest.ner_model or None,
        queries=manifest.tracked_queries(),
        applied_files=len(manifest.applied_files),
    )
