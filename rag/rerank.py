"""The second stage: rescore the first stage's top articles with a cross-encoder.

The first stage (:func:`rag.search.search`) ranks every candidate by a fused BM25 + dense score
in milliseconds; a cross-encoder reads the query and each article's best passage *together*,
which is far better at telling the article that answers from the one that shares words, and far
slower, so it sees only the top ``depth`` articles. Their order becomes the cross-encoder's;
articles below ``depth`` keep theirs, after them.

Loaded through txtai's ``Similarity`` pipeline (``crossencode=True``: a transformers
sequence-classification model scoring ``(query, text)`` pairs; the raw logit of its first label
is the score). The model documented for real users is ``ncbi/MedCPT-Cross-Encoder`` (PubMedBERT
fine-tuned on PubMed search logs), fetched into the hub cache like the embedder; no
cross-encoder ships with the offline bundle, so offline the stage is off unless a local model
folder is named (``PUBMED_RAG_RERANKER``).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Sequence
from typing import Any

from rag.errors import RerankerUnavailableError

# MedCPT's cross-encoder reads up to 512 tokens; a passage (<= PUBMED_RAG_PASSAGE_TOKENS) with
# its title and the query fits, and longer text is cut on words before the tokenizer sees it.
MAX_WORDS = 320
BATCH = 16


class Reranker:
    """A cross-encoder that reorders the top articles of a search."""

    def __init__(self, name: str, depth: int = 30, *, allow_download: bool = True) -> None:
        """Load ``name`` (a hub id or a local folder) on the CPU.

        Raises:
            RerankerUnavailableError: the model cannot be found, downloaded or loaded.
        """
        from indexing.models import ModelUnavailableError, locate_model

        self.name, self.depth = name, depth
        try:
            self.path = locate_model(name, allow_download=allow_download)
        except ModelUnavailableError as exc:
            raise RerankerUnavailableError(f"reranker unavailable: {exc}") from exc
        try:
            from txtai.pipeline import Similarity

            self.pipeline = Similarity(self.path, crossencode=True, gpu=False)
        except Exception as exc:  # a folder that is not a sequence-classification model
            raise RerankerUnavailableError(
                f"reranker {name!r} could not be loaded from {self.path}: {exc}"
            ) from exc
        self._lock = threading.Lock()  # one forward pass at a time (the app's threads share it)

    def scores(self, query: str, texts: Sequence[str]) -> list[float]:
        """The cross-encoder's raw score of each ``(query, text)`` pair, in ``texts`` order."""
        if not texts:
            return []
        cut = [" ".join(text.split()[:MAX_WORDS]) for text in texts]
        out = [0.0] * len(cut)
        with self._lock:
            for start in range(0, len(cut), BATCH):
                chunk = cut[start : start + BATCH]
                for position, score in self.pipeline(query, chunk, multilabel=None):
                    out[start + position] = float(score)
        return out

    def rerank(self, query: str, hits: Sequence[Any]) -> tuple[list[Any], float]:
        """``hits`` with the top ``depth`` reordered by the cross-encoder, and the milliseconds.

        Each rescored hit carries its ``rerank_score``; the others keep ``None`` and their
        first-stage order below the rescored ones.
        """
        started = time.perf_counter()
        top, rest = list(hits[: self.depth]), list(hits[self.depth :])
        scores = self.scores(query, [f"{hit.title}\n{hit.passage}".strip() for hit in top])
        rescored = [
            dataclasses.replace(hit, rerank_score=score)
            for hit, score in zip(top, scores, strict=True)
        ]
        rescored.sort(key=lambda hit: -hit.rerank_score)  # stable: ties keep the first order
        return rescored + rest, (time.perf_counter() - started) * 1000
