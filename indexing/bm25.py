"""txtai's BM25 over Snowball stems: a custom txtai scoring method (see :mod:`indexing.keywords`).

Imported by txtai itself when it builds or loads an index whose configuration names
``indexing.bm25.StemmedBM25``; the rest of the program only needs :mod:`indexing.keywords`,
which does not import txtai. Its terms index (:class:`MergingTerms`) is txtai's, with one loop
done by numpy and the top candidates chosen among scored documents only: the same scores,
faster when a filter makes search ask for many candidates and at a million passages.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import Stemmer  # PyStemmer: the Snowball stemmers in C
from txtai.pipeline import Tokenizer
from txtai.scoring import BM25
from txtai.scoring.terms import Terms

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


class MergingTerms(Terms):
    """txtai's terms index, with its merge of common terms done by numpy.

    txtai scores rare terms for every document, keeps the best ``5 * limit`` candidates, then
    adds each common term's (> 10% of documents) score to those candidates, finding them in
    the term's postings with one Python step per candidate. Hybrid search asks BM25 for 10x
    its pool, and a filter grows the pool (:func:`rag.search.search`): at a pool of 800 that
    loop ran over 40,000 candidates per common query word and was the largest cost of a
    filtered search at 100k passages; at the largest pools it walks the whole index. The
    same lookups as one vectorised ``searchsorted``: equal scores, equal rankings.
    """

    def merge(self, scores: Any, matches: Any, hasscores: bool, terms: Any) -> None:
        for term, freq in terms.items():
            uids, weights = self.weights(term)
            if hasscores:
                # The candidates found in this term's (sorted) postings, in candidates' order.
                at = np.searchsorted(uids, matches)
                inside = at < len(uids)
                inside[inside] = uids[at[inside]] == matches[inside]
                uids, weights = uids[at[inside]], weights[at[inside]]
            scores[uids] += freq * weights
        # Common term scores can restore deleted candidates; clear them after merging.
        scores[self.deletes] = 0

    def candidates(self, scores: Any, topn: int) -> Any:
        """The ``topn`` best-scored documents, among those with a score at all.

        txtai selects them with one ``argpartition`` over every document's score, most of them
        zero: at 1M passages that was most of a keyword search's time (numpy's selection is
        slow on long runs of equal values). Selecting among the nonzero scores finds the same
        documents (ties at the boundary aside); where fewer than ``topn`` documents scored,
        txtai would pad with arbitrary zero-score documents (the first ones found), which a
        query's common terms could then lift into the results; :meth:`topn` instead scores
        the common terms for every document in that case.
        """
        scores[self.deletes] = 0
        scored = np.flatnonzero(scores)
        if len(scored) <= topn:
            return scored
        return scored[np.argpartition(scores[scored], -topn)[-topn:]]

    def topn(self, scores: Any, limit: int, hasscores: bool, skipped: Any) -> list[Any]:
        topn = min(len(scores), limit * 5)
        matches = self.candidates(scores, topn)
        if hasscores and skipped and len(matches) < topn:
            # Fewer documents matched the rarer words than the pool holds: score the common
            # words for every document, as txtai does when a query has only common words, so
            # the pool fills by exact BM25 rather than by which documents came first.
            hasscores = False
        self.merge(scores, matches, hasscores, skipped)
        if not hasscores:
            matches = self.candidates(scores, topn)
        matches = matches[np.argsort(-scores[matches])][:limit]
        matches = matches[scores[matches] > 0]
        ids = self.ids
        return [
            (ids[x], score)
            for x, score in zip(matches.tolist(), scores[matches].tolist(), strict=True)
        ]


class StemmedBM25(BM25):
    """txtai's BM25 whose terms are stemmed (config key ``stemmer``, default ``english``)."""

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__(config)
        self._merge_with_numpy()

    def load(self, path: str) -> None:
        super().load(path)
        self._merge_with_numpy()

    def _merge_with_numpy(self) -> None:
        # txtai makes its own Terms in __init__ and again in load; MergingTerms only replaces
        # methods (no state of its own), so the object it made can simply take its class.
        terms = getattr(self, "terms", None)
        if type(terms) is Terms:
            terms.__class__ = MergingTerms

    def loadtokenizer(self) -> StemmingTokenizer:
        return StemmingTokenizer(str(self.config.get("stemmer") or "english"))
