"""The txtai configuration each known embedding model needs: how it pools, what it prefixes.

One row per model. A hub id picks its row by name; a local folder picks one with the
``embeddings_profile`` setting, or by its folder name when that is a known model's name (a
snapshot saved as ``…/BMRetriever-410M``). Anything else is a plain sentence-transformers
model, which brings its own pooling (``modules.json``). The chosen row's name is recorded in
the index's txtai configuration (``profile``), so readers and updates use the row that built
the index, whatever the settings say now.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from indexing.errors import UserError

log = logging.getLogger(__name__)

# txtai resolves a ``method`` it does not know as a class path: ours appends EOS, then pools
# the last token (see indexing/lastpool.py).
LAST_TOKEN_METHOD = "indexing.lastpool.LastTokenVectors"  # noqa: S105 (a class path)
SENTENCE_TRANSFORMERS = "sentence-transformers"


class DimensionalityError(UserError, ValueError):
    """A stored dimensionality the model cannot give, or one that differs from the index's."""


@dataclass(frozen=True, slots=True)
class ModelProfile:
    """How txtai runs one embedding model."""

    name: str
    models: tuple[str, ...] = ()  # hub ids (and manifest names) that choose this row
    method: str = SENTENCE_TRANSFORMERS
    query_instruction: str = ""  # prefixed to every query
    passage_instruction: str = ""  # prefixed to every passage when indexing
    maxlength: int | None = None  # tokens per text (None: the model's own limit)
    matryoshka: tuple[int, ...] = ()  # widths the model was trained to be cut to

    def txtai_config(self) -> dict[str, Any]:
        """The txtai keys this row sets (``method``, ``instructions``, ``maxlength``)."""
        config: dict[str, Any] = {"method": self.method, "profile": self.name}
        if self.query_instruction or self.passage_instruction:
            config["instructions"] = {
                "query": self.query_instruction,
                "data": self.passage_instruction,
            }
        if self.maxlength:
            config["maxlength"] = self.maxlength
        return config


# BMRetriever (Xu et al. 2024, arXiv:2404.18443): a Pythia (GPT-NeoX) decoder; a query is
# "<task>\nQuery: <text>", a passage "Represent this passage\npassage: <text>", both end with
# EOS and the embedding is the EOS token's last hidden state. The task line is the authors' one
# for medical questions (their NFCorpus instruction).
BMRETRIEVER_QUERY = (
    "Given a question, retrieve relevant documents that best answer the question\nQuery: "
)
BMRETRIEVER_PASSAGE = "Represent this passage\npassage: "

PROFILES: dict[str, ModelProfile] = {
    profile.name: profile
    for profile in (
        ModelProfile("pubmedbert", ("neuml/pubmedbert-base-embeddings",)),
        ModelProfile(
            "pubmedbert-matryoshka",
            ("neuml/pubmedbert-base-embeddings-matryoshka",),
            matryoshka=(64, 128, 256, 384, 512, 768),
        ),
        ModelProfile(
            "minilm",
            (
                "sentence-transformers/all-MiniLM-L6-v2",
                "offline:sentence-transformers/all-MiniLM-L6-v2",
            ),
        ),
        ModelProfile(
            "bmretriever",
            ("BMRetriever/BMRetriever-410M",),
            method=LAST_TOKEN_METHOD,
            query_instruction=BMRETRIEVER_QUERY,
            passage_instruction=BMRETRIEVER_PASSAGE,
            maxlength=512,
        ),
        ModelProfile(SENTENCE_TRANSFORMERS),
    )
}


def choose_profile(model: str, setting: str = "auto") -> ModelProfile:
    """The profile of a model name (hub id, local path or manifest name).

    ``setting`` (``embeddings_profile``) names a row outright; ``auto`` matches the name, then
    its last path component, against the rows' hub ids (case-insensitive).

    Raises:
        UserError: ``setting`` names no row.
    """
    if setting != "auto":
        if setting not in PROFILES:
            raise UserError(
                f"unknown embeddings profile {setting!r}: use auto or one of {', '.join(PROFILES)}"
            )
        return PROFILES[setting]
    wanted = model.lower().rstrip("/")
    tail = wanted.rsplit("/", 1)[-1]
    for profile in PROFILES.values():
        ids = [name.lower() for name in profile.models]
        if wanted in ids:
            return profile
    for profile in PROFILES.values():
        if tail in [name.lower().rsplit("/", 1)[-1] for name in profile.models]:
            return profile
    return PROFILES[SENTENCE_TRANSFORMERS]


def recorded_profile(config: dict[str, Any] | None) -> ModelProfile:
    """The profile an index records (indexes from before profiles: plain sentence-transformers)."""
    name = (config or {}).get("profile")
    default = PROFILES[SENTENCE_TRANSFORMERS]
    return PROFILES.get(name, default) if isinstance(name, str) else default


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def model_width(path: str) -> int | None:
    """The width of the vectors a model folder produces, read from its files (None: unknown).

    A sentence-transformers ``Dense`` module's ``out_features`` wins; otherwise the
    transformer's hidden size.
    """
    folder = Path(path)
    width = None
    modules = _json(folder / "modules.json")
    for module in modules if isinstance(modules, list) else []:
        if isinstance(module, dict) and str(module.get("type", "")).endswith("Dense"):
            dense = _json(folder / str(module.get("path", "")) / "config.json")
            width = dense.get("out_features", width) if isinstance(dense, dict) else width
    if width is None:
        config = _json(folder / "config.json")
        config = config if isinstance(config, dict) else {}
        for key in ("hidden_size", "d_model", "n_embd", "dim"):
            if isinstance(config.get(key), int):
                width = config[key]
                break
    return int(width) if width else None


def stored_dimensionality(model_path: str, profile: ModelProfile, wanted: int | None) -> int | None:
    """The ``dimensionality`` to record for a new index: ``wanted``, or None for full width.

    Raises:
        DimensionalityError: ``wanted`` is larger than the model's vectors.
    """
    if wanted is None:
        return None
    width = model_width(model_path)
    if width is not None and wanted > width:
        raise DimensionalityError(
            f"PUBMED_RAG_DIMENSIONALITY={wanted} is larger than the model's {width}-dimensional "
            "vectors; choose a smaller value or unset it"
        )
    if width is not None and wanted == width:
        return None  # no truncation: the same index as an unset setting
    if profile.matryoshka and wanted not in profile.matryoshka:
        log.warning(
            "%s was trained to be truncated to %s dimensions, not %d: quality may drop more",
            profile.name,
            "/".join(map(str, profile.matryoshka)),
            wanted,
        )
    elif not profile.matryoshka:
        log.warning(
            "truncating %s vectors to %d dimensions: this model was not trained for it "
            "(Matryoshka), so search quality may drop sharply",
            profile.name,
            wanted,
        )
    return wanted
