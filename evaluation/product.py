"""The product under evaluation: a temporary index built with its own writer, and what it holds."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from indexing import store as index_store
from indexing.article import Article
from indexing.settings import Settings
from indexing.store import PublishedIndex


def eval_settings(base: Settings, data_dir: Path) -> Settings:
    """The configured settings with the data directory (and PostgreSQL schema) moved to throw-away ones."""
    update: dict[str, Any] = {"data_dir": data_dir}
    if base.database_url is not None:
        update["database_schema"] = f"{base.database_schema[:20]}_eval_{os.getpid()}"
    return base.model_copy(update=update)


@contextlib.contextmanager
def temporary_index(
    articles: Sequence[Article], base: Settings, *, progress: bool = True, desc: str = "indexing"
) -> Iterator[tuple[PublishedIndex, Settings]]:
    """Publish ``articles`` into a fresh temporary data dir with the product's writer.

    Yields the published version and the settings that point at it; everything is removed
    afterwards.
    """
    with tempfile.TemporaryDirectory(prefix="pubmed-rag-eval-") as tmp:
        settings = eval_settings(base, Path(tmp) / "data")
        with (
            tqdm(total=len(articles), unit="doc", desc=desc, disable=not progress) as bar,
            index_store.temporary_index(articles, settings, on_batch=bar.update) as index,
        ):
            bar.close()  # built: the bar is done before the evaluation prints
            yield index, settings


def faiss_layout(config: Mapping[str, Any] | None) -> str | None:
    """The faiss index factory string txtai chose (``IDMap,Flat`` is exact; ``IVF…`` is not)."""
    build = (config or {}).get("build") or {}
    settings = build.get("settings") if isinstance(build, Mapping) else None
    return settings.get("components") if isinstance(settings, Mapping) else None


def folder_bytes(path: Path) -> int:
    """Bytes of the files under ``path``."""
    return sum(entry.stat().st_size for entry in path.rglob("*") if entry.is_file())


def index_description(index: PublishedIndex) -> dict[str, Any]:
    """What was built: model, profile, width, counts, sizes, and the faiss layout txtai chose.

    ``vector_bytes`` is what the dense vectors take as float32 (passages x dimensions x 4);
    ``disk_bytes`` the whole version folder (vectors, BM25 terms, content), embedded store only.
    """
    manifest = index.manifest
    config = manifest.embeddings_config
    folder = getattr(index, "path", None)
    return {
        "embeddings_model": manifest.embeddings_model,
        "profile": manifest.profile,
        "articles": manifest.articles,
        "passages": manifest.passages,
        "dimensions": manifest.dimensions,
        "dimensionality": manifest.dimensionality,
        "vector_bytes": manifest.passages * manifest.dimensions * 4,
        "disk_bytes": folder_bytes(folder) if isinstance(folder, Path) else None,
        "encoder": config.get("encoder"),
        "scoring": config.get("scoring"),
        "faiss": faiss_layout(config),
    }
