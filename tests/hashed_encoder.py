"""A deterministic stand-in for the index's encoder, for exact cases of evidence and support.

Each word (lower case) is hashed to one of ``DIMENSIONS`` axes, so the cosine of two texts is
their shared words over the geometric mean of their lengths: a case can be worked out by hand.
The real MiniLM is used where the behaviour depends on meaning, not on exact scores.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

import numpy as np

DIMENSIONS = 1 << 16
_WORD = re.compile(r"[a-z0-9]+")


def encode(texts: Sequence[str], kind: str = "data") -> np.ndarray:
    """Unit bag-of-words vectors of ``texts`` (``kind`` is ignored: queries encode as data)."""
    vectors = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in _WORD.findall(text.lower()):
            vectors[row, zlib.crc32(word.encode("utf-8")) % DIMENSIONS] += 1.0
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


def encode_claims(texts: Sequence[str]) -> np.ndarray:
    """The one-argument encoder :func:`rag.grounding.ground_answer` takes."""
    return encode(texts)
