"""Building a whole index from articles in one go (evaluations, benchmarks).

Ingestion has its own runs (:mod:`indexing.ingest`), with reports, sources and resumable work;
this is the short path for code that just needs an index of given articles, written by the
product's writer so that what it measures is what users get.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator

from indexing.article import Article
from indexing.models import ModelChoice
from indexing.settings import Settings
from indexing.store.base import PublishedIndex
from indexing.store.config import UPSERT_BATCH
from indexing.store.factory import open_store
from indexing.store.records import Manifest


def build_index(
    articles: Iterable[Article],
    settings: Settings,
    *,
    choice: ModelChoice | None = None,
    source: str = "build",
    run_id: str = "build",
    on_batch: Callable[[int], None] | None = None,
) -> Manifest:
    """Replace the index the settings choose with one of ``articles``, and publish it.

    Whatever was in that store before is removed first. Articles are upserted in batches of
    :data:`UPSERT_BATCH` (what ingestion does), so ``articles`` may be a stream.

    Args:
        articles: the records to index.
        settings: where the index goes (files under ``data_dir``, or PostgreSQL) and how
            passages are split and embedded.
        choice: the embedder (by default the one the settings name).
        source: the source recorded for every article.
        run_id: recorded in the manifest.
        on_batch: called with the number of articles after each batch (progress bars).

    Returns:
        The published version's manifest.
    """
    store = open_store(settings)
    try:
        store.destroy()  # a killed build's leftovers, if any
        with store.lock(purpose=source), store.open_writer(choice) as writer:
            batch: list[Article] = []
            for article in articles:
                batch.append(article)
                if len(batch) == UPSERT_BATCH:
                    writer.upsert_articles(batch, source=source)
                    if on_batch is not None:
                        on_batch(len(batch))
                    batch = []
            if batch:
                writer.upsert_articles(batch, source=source)
                if on_batch is not None:
                    on_batch(len(batch))
            return writer.publish(run_id)
    finally:
        store.close()


@contextlib.contextmanager
def temporary_index(
    articles: Iterable[Article],
    settings: Settings,
    *,
    source: str = "eval",
    on_batch: Callable[[int], None] | None = None,
) -> Iterator[PublishedIndex]:
    """:func:`build_index`, open the published version, and remove the whole index afterwards.

    ``settings`` must point at a throw-away place (its own ``data_dir`` or database schema):
    that store is destroyed before and after.
    """
    manifest = build_index(articles, settings, source=source, run_id=source, on_batch=on_batch)
    store = open_store(settings)
    try:
        index = store.open_version(manifest.version)
        try:
            yield index
        finally:
            index.close()
    finally:
        store.destroy()
        store.close()
