"""Decoder embedders (BMRetriever): each text ends with EOS; the EOS token's hidden state is the vector.

txtai's own ``transformers`` method pools by mean (or by what a sentence-transformers
``1_Pooling`` file says) and never appends EOS, which BMRetriever's recipe requires: the text
is cut to ``maxlength - 1`` tokens, EOS is appended, then the batch is padded (either side:
the pooled position comes from the attention mask, so padding never changes a vector). txtai
loads this class by its path (``method`` in the index configuration); instructions are
prefixed by txtai itself (``instructions``), and vectors are L2-normalised (and truncated to
``dimensionality``) by txtai after pooling, as for every other model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from txtai.models import Models
from txtai.models.pooling.last import LastPooling
from txtai.vectors.dense.huggingface import HFVectors


class EosLastPooling(LastPooling):
    """Last-token pooling over ``text + EOS``, in batches of texts sorted by length."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.tokenizer.pad_token is None:  # GPT-NeoX tokenizers ship without one
            self.tokenizer.pad_token = self.tokenizer.eos_token

    def tokenize(self, texts: list[str]) -> Any:
        """Token ids of ``texts``, each ending with EOS, padded into one batch."""
        limit = self.maxlength - 1 if self.maxlength else None
        encoded = self.tokenizer(texts, truncation=limit is not None, max_length=limit)
        ids = [[*row, self.tokenizer.eos_token_id] for row in encoded["input_ids"]]
        return self.tokenizer.pad(
            {"input_ids": ids}, padding=True, return_attention_mask=True, return_tensors="pt"
        )

    def encode(self, documents: list[str], batch: int = 32, category: str | None = None) -> Any:
        """Vectors of ``documents`` (in their order), ``batch`` texts per forward pass."""
        documents = self.preencode(documents, category)
        order = np.argsort([-len(text) for text in documents], kind="stable")
        results: list[Any] = []
        for start in range(0, len(documents), batch):
            inputs = self.tokenize([documents[i] for i in order[start : start + batch]])
            with torch.no_grad():
                pooled = self.forward(**inputs.to(self.device))
            results.extend(pooled.cpu().to(torch.float32).numpy())
        return np.asarray([results[i] for i in np.argsort(order, kind="stable")])


class LastTokenVectors(HFVectors):
    """txtai vectors backed by :class:`EosLastPooling` (``method: indexing.lastpool.LastTokenVectors``)."""

    def loadmodel(self, path: str) -> EosLastPooling:
        """The pooling model; ``vectors.model_kwargs`` (the precision) go to ``from_pretrained``."""
        modelargs = dict((self.config.get("vectors") or {}).get("model_kwargs") or {})
        return EosLastPooling(
            path,
            Models.deviceid(self.config.get("gpu", True)),
            self.config.get("tokenizer"),
            self.config.get("maxlength"),
            False,  # instructions come from the index configuration, not the model folder
            modelargs,
        )
