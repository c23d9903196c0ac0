"""txtai's configuration of a new index, and loading a saved one with the right encoder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from indexing.encoder import DTYPES, choose_precision, encoder_config, reading_overrides
from indexing.keywords import scoring_config
from indexing.model_profiles import (
    DimensionalityError,
    choose_profile,
    recorded_profile,
    stored_dimensionality,
)
from indexing.models import ModelChoice, locate_model
from indexing.settings import Settings
from indexing.store.layout import EMBEDDINGS
from indexing.store.records import Manifest

# Articles per upsert when building an index (:func:`indexing.store.build_index`): the batch
# size of real ingestion, which also decides the faiss layout txtai picks (a first batch of
# <= 5000 vectors: exact).
UPSERT_BATCH = 256

# Documents per txtai vectorize call. sentence-transformers sorts the texts of one call by
# length before cutting them into encoder batches, so a wide window leaves little padding
# (1024 is txtai's own default; one upsert of UPSERT_BATCH articles fits in it).
SORT_WINDOW = 1024

# Keys of a saved txtai configuration that are plain data (sizes, timestamps, what built it)
# and may be taken from a stored copy. Everything else is dropped or comes from code: txtai
# imports whatever class or module "content", "backend", "method", "scoring.method", "graph",
# "sparse", "functions", "transform", "indexes" and others name, so a stored configuration that
# another database user can edit must not choose them.
_DATA_KEYS = ("dimensions", "offset", "batch", "encodebatch", "build", "update")
# pgvector's index parameters (numbers, or its storage precision): data, not code.
_PGVECTOR_KEYS = ("m", "efconstruction", "efsearch", "precision")


def embeddings_config(choice: ModelChoice, settings: Settings) -> dict[str, Any]:
    """txtai configuration of a new index: content storage, hybrid BM25 + dense, our model.

    The model's profile (:mod:`indexing.model_profiles`) sets how it pools and what it prefixes;
    ``dimensionality`` (the setting) cuts every vector to its first N dimensions. The encoder
    runs in the precision :func:`indexing.encoder.choose_precision` picks (bf16 on CPUs with
    native bf16, else int8 through ONNX Runtime); ``encoder`` records it for readers and
    ``manifest.json``.

    Raises:
        DimensionalityError: the setting is larger than the model's vectors.
    """
    profile = choose_profile(choice.name, settings.embeddings_profile)
    encoder = choose_precision(settings.encoder_precision, choice.path, profile.method)
    config: dict[str, Any] = {
        "path": choice.path,
        **profile.txtai_config(),
        **encoder_config(encoder, choice.path, settings.encoder_cache),
        "content": True,
        "hybrid": True,
        "scoring": scoring_config(settings.keyword_stemmer),
        "batch": max(SORT_WINDOW, settings.encode_batch),
        "encodebatch": settings.encode_batch,
    }
    dimensionality = stored_dimensionality(choice.path, profile, settings.dimensionality)
    if dimensionality is not None:
        config["dimensionality"] = dimensionality
    return config


def check_dimensionality(manifest: Manifest, model_path: str, settings: Settings) -> None:
    """Refuse to change an index whose stored width is not the one the settings ask for.

    Vectors of two widths cannot share one index, and a reader encodes queries with the
    index's recorded width; so an update must ask for the same one (unset = full width).

    Raises:
        DimensionalityError: the index records another dimensionality.
    """

    config = manifest.embeddings_config
    recorded = config.get("dimensionality")
    profile = recorded_profile(config)
    wanted = stored_dimensionality(model_path, profile, settings.dimensionality)
    if manifest.dimensions and wanted != recorded:
        have = f"{recorded}" if recorded else f"all {manifest.dimensions}"
        asked = f"PUBMED_RAG_DIMENSIONALITY={wanted}" if wanted else "full-width vectors (unset)"
        fix = (
            f"set PUBMED_RAG_DIMENSIONALITY={recorded}"
            if recorded
            else ("unset PUBMED_RAG_DIMENSIONALITY")
        )
        raise DimensionalityError(
            f"the index stores {have} dimensions per vector, but the settings ask for {asked}: "
            f"vectors of two widths cannot share an index. {fix} to update it, or build a new "
            "index in another PUBMED_RAG_DATA_DIR"
        )


def reading_config(manifest: Manifest) -> dict[str, Any]:
    """txtai keys a reader takes from the manifest, whatever the settings say now.

    The stored width (queries must be cut like the passages were) and the profile's pooling
    and instructions.
    """
    config = manifest.embeddings_config
    reading = recorded_profile(config).txtai_config() if "profile" in config else {}
    if isinstance(config.get("dimensionality"), int):
        reading["dimensionality"] = config["dimensionality"]
    return reading


def encoder_overrides(manifest: Manifest, settings: Settings) -> dict[str, Any]:
    """txtai keys that open an index with its model and the encoder it records.

    Queries (and upserts into a copy) are encoded with the precision the index records, unless
    the ``encoder_precision`` setting is ``fp32`` or that precision cannot run on this machine;
    with the width and profile the manifest records.
    """
    model_path = locate_model(manifest.embeddings_model, allow_download=False)
    return {
        "path": model_path,
        **reading_config(manifest),
        **reading_overrides(
            manifest.embeddings_config,
            settings.encoder_precision,
            model_path,
            settings.encoder_cache,
        ),
    }


def load_embeddings(path: Path, manifest: Manifest, settings: Settings) -> Any:
    """Load the txtai index of a version folder with the model named in its manifest."""
    from txtai import Embeddings

    embeddings = Embeddings()
    embeddings.load(str(path / EMBEDDINGS), config=encoder_overrides(manifest, settings))
    return embeddings


def trusted_config(stored: dict[str, Any], code: dict[str, Any]) -> dict[str, Any]:
    """A saved txtai configuration to load with: ``code``'s keys, plus the stored data keys.

    ``code`` holds every key that names a class or module (content store, ANN backend, scoring
    and vectors methods) as this program's backend uses them; from ``stored`` only sizes,
    timestamps and build details are kept, and the encoder's recorded precision if it is one
    this program writes. Anything else the stored copy holds is ignored.
    """
    config = {key: stored[key] for key in _DATA_KEYS if key in stored}
    config["hybrid"] = stored.get("hybrid") is not False
    width = stored.get("dimensionality")
    if isinstance(width, int) and not isinstance(width, bool) and width > 0:
        config["dimensionality"] = width  # the stored vectors' width (PUBMED_RAG_DIMENSIONALITY)
    encoder = stored.get("encoder")
    dtype = ((stored.get("vectors") or {}).get("model_kwargs") or {}).get("dtype")
    if isinstance(encoder, dict) and dtype in DTYPES.values():
        config["encoder"] = {k: v for k, v in encoder.items() if isinstance(v, str | int | bool)}
        config["vectors"] = {"model_kwargs": {"dtype": dtype}}
    elif isinstance(encoder, dict) and encoder.get("precision") == "int8":
        # the export is found (or made) on this machine by encoder_overrides, never named here
        config["encoder"] = {k: v for k, v in encoder.items() if isinstance(v, str | int | bool)}
    pgvector = stored.get("pgvector")
    if isinstance(pgvector, dict):
        config["pgvector"] = {
            key: value
            for key, value in pgvector.items()
            if key in _PGVECTOR_KEYS and isinstance(value, int | float | str)
        }
    config.update(code)
    return config
