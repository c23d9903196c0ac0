"""txtai vectors for the int8 ONNX encoder (:mod:`indexing.onnx_encoder`), named by class path.

Kept apart from the export code so that choosing a precision never imports txtai.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from txtai.vectors.dense.onnx import ONNX


class OnnxVectors(ONNX):
    """txtai's ONNX vectors, with each call's texts sorted by length before batching.

    sentence-transformers sorts one call's texts by length so that a batch pads little; txtai's
    ONNX method batches in arrival order, which on real passages wastes ~40% of the work on
    padding (``make bench``, real_passage_padding).
    """

    def encode(self, data: list[Any], category: str | None = None) -> Any:
        if len(data) <= self.encodebatch:
            return super().encode(data, category)
        order = sorted(range(len(data)), key=lambda i: -len(str(data[i])))
        vectors = super().encode([data[i] for i in order], category)
        result = np.empty_like(vectors)
        result[order] = vectors
        return result

    def token_vectors(self, texts: list[str]) -> list[Any]:
        """Each text's token vectors (the model's last hidden states, padding left out).

        What late interaction (:mod:`rag.rerank`) reads from a sentence-transformers encoder
        with ``output_value="token_embeddings"``; [CLS] and [SEP] included, as there.
        """
        session, tokenizer = self.model
        out: list[Any] = []
        for start in range(0, len(texts), self.encodebatch):
            encoding = tokenizer.encode_batch(list(texts[start : start + self.encodebatch]))
            inputs, masks = self.inputs(session, encoding)
            hidden = session.run(None, inputs)[0]
            out += [states[mask.astype(bool)] for states, mask in zip(hidden, masks, strict=True)]
        return out
