"""The second stage: rescore the first stage's top articles, by a cross-encoder or late interaction.

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

Without a cross-encoder, :class:`LateInteraction` rescores with what the index already has:
the encoder's *token* vectors (before pooling), matched ColBERT-style — each query token's best
cosine among the passage's tokens, averaged over the query (MaxSim) — and mixed with the first
stage's fused score::

    score = (1 - weight) * fused + weight * maxsim(query tokens, best passage tokens)

The encoder was trained for pooled vectors, not for this; on SciFact it still adds +0.012
nDCG@10 on train (where depth 20 and weight 0.6 were chosen) and +0.004 on test (README,
Ranking). The passages are encoded again at query time, so it costs one encoder pass over ``depth``
passages per search.
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

    def rerank(self, query: str, hits: Sequence[Any], index: Any = None) -> tuple[list[Any], float]:
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


class LateInteraction:
    """MaxSim over the index encoder's token vectors, mixed with the first stage's score."""

    def __init__(self, depth: int = 20, weight: float = 0.6) -> None:
        self.depth, self.weight = depth, weight
        self.name = f"late interaction (top {depth}, weight {weight})"

    def rerank(self, query: str, hits: Sequence[Any], index: Any) -> tuple[list[Any], float]:
        """``hits`` with the top ``depth`` reordered by the mixed score, and the milliseconds.

        Raises:
            RerankerUnavailableError: the index's encoder gives no token vectors (it is not a
                sentence-transformers model).
        """
        started = time.perf_counter()
        top, rest = list(hits[: self.depth]), list(hits[self.depth :])
        if not top:
            return list(hits), 0.0
        texts = [f"{hit.title}\n{hit.passage}".strip() for hit in top]
        query_tokens, *passage_tokens = token_vectors(index, [query], "query") + token_vectors(
            index, texts, "data"
        )
        maxsim = [float((query_tokens @ tokens.T).max(axis=1).mean()) for tokens in passage_tokens]
        rescored = [
            dataclasses.replace(
                hit, rerank_score=(1 - self.weight) * hit.score + self.weight * score
            )
            for hit, score in zip(top, maxsim, strict=True)
        ]
        rescored.sort(key=lambda hit: -hit.rerank_score)
        return rescored + rest, (time.perf_counter() - started) * 1000


def token_vectors(index: Any, texts: Sequence[str], category: str) -> list[Any]:
    """Unit token vectors of each text (without [CLS]/[SEP]) by the index's own encoder.

    Raises:
        RerankerUnavailableError: the encoder is not a sentence-transformers model.
    """

    vectors: Any = getattr(getattr(index, "embeddings", None), "model", None)
    model = getattr(vectors, "model", None)
    if hasattr(vectors, "token_vectors"):  # the int8 ONNX encoder (indexing.onnx_vectors)
        with index.lock:
            arrays = vectors.token_vectors(list(texts))
        return [unit_rows(array[1:-1] if len(array) > 2 else array) for array in arrays]
    if model is None or not hasattr(model, "encode_query"):
        raise RerankerUnavailableError(
            "late interaction needs a sentence-transformers encoder (token vectors); this index's "
            "encoder has none: set PUBMED_RAG_LATE_INTERACTION=0"
        )
    encode = model.encode_query if category == "query" else model.encode_document
    with index.lock:
        outputs = encode(list(texts), output_value="token_embeddings", batch_size=32)
    out = []
    for tokens in outputs:
        array = tokens.float().cpu().numpy()
        out.append(unit_rows(array[1:-1] if len(array) > 2 else array))
    return out


def unit_rows(array: Any) -> Any:
    """Rows scaled to unit length (zero rows left as they are)."""
    import numpy as np

    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return array / np.where(norms == 0, 1.0, norms)


def second_stage(
    reranker: str | None, depth: int, late_depth: int, late_weight: float, *, allow_download: bool
) -> Reranker | LateInteraction | None:
    """The second stage the settings choose: the named cross-encoder, else late interaction
    (``late_depth`` > 0), else none."""
    if reranker:
        return Reranker(reranker, depth, allow_download=allow_download)
    if late_depth > 0:
        return LateInteraction(late_depth, late_weight)
    return None
