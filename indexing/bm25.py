"""txtai's BM25 over Snowball stems: a custom txtai scoring method (see :mod:`indexing.keywords`).

Imported by txtai itself when it builds or loads an index whose configuration names
``indexing.bm25.StemmedBM25``; the rest of the program only needs :mod:`indexing.keywords`,
which does not import txtai.
"""

from __future__ import annotations

import threading
from typing import Any

import Stemmer  # PyStemmer: the Snowball stemmers in C
from txtai.pipeline import Tokenizer
from txtai.scoring import BM25

from indexing.keywords import STEMMERS


class StemmingTokenizer:
    """txtai's default terms tokenizer, then each token's Snowball stem."""

    def __init__(self, language: str = "english") -> None:
        if language not in STEMMERS:
            raise ValueError(f"unknown stemmer {language!r}: choose from {', '.join(STEMMERS)}")
        self.language = language
        self.words = Tokenizer()
        self._local = threading.local()  # a Stemmer object is not safe across threads

    def _stemmer(self) -> Any:
        stemmer = getattr(self._local, "stemmer", None)
        if stemmer is None:
            stemmer = self._local.stemmer = Stemmer.Stemmer(self.language)
        return stemmer

    def __call__(self, text: str | None) -> list[str] | None:
        tokens = self.words(text)
        return None if tokens is None else self._stemmer().stemWords(tokens)


class StemmedBM25(BM25):
    """txtai's BM25 whose terms are stemmed (config key ``stemmer``, default ``english``)."""

    def loadtokenizer(self) -> StemmingTokenizer:
        return StemmingTokenizer(str(self.config.get("stemmer") or "english"))
