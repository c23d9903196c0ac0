"""txtai's configuration of a new index, and loading a saved one with the right encoder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from indexing.encoder import DTYPES, choose_precision, reading_overrides, vectors_args
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
    """Load the txtai index of a version folder with the model named in its manifest.

    Queries (and upserts into a copy) are encoded with the precision the index records, unless
    ``precision`` (the ``encoder_precision`` setting) is ``fp32`` or the CPU lacks bf16.
    """
    from txtai import Embeddings

    model_path = locate_model(manifest.embeddings_model, allow_download=False)
    overrides = reading_overrides(manifest.embeddings_config, precision)
    embeddings = Embeddings()
    embeddings.load(str(path / EMBEDDINGS), config={"path": model_path, **overrides})
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
    encoder = stored.get("encoder")
    dtype = ((stored.get("vectors") or {}).get("model_kwargs") or {}).get("dtype")
    if isinstance(encoder, dict) and dtype in DTYPES.values():
        config["encoder"] = {k: v for k, v in encoder.items() if isinstance(v, str | int | bool)}
        config["vectors"] = {"model_kwargs": {"dtype": dtype}}
    pgvector = stored.get("pgvector")
    if isinstance(pgvector, dict):
        config["pgvector"] = {
            key: value
            for key, value in pgvector.items()
            if key in _PGVECTOR_KEYS and isinstance(value, int | float | str)
        }
    config.update(code)
    return config
