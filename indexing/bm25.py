"""txtai's BM25 over Snowball stems: a custom txtai scoring method (see :mod:`indexing.keywords`).

Imported by txtai itself when it builds or loads an index whose configuration names
``indexing.bm25.StemmedBM25``; the rest of the program only needs :mod:`indexing.keywords`,
which does not import txtai. Its terms index (:class:`MergingTerms`) is txtai's, with one loop
done by numpy, the top candidates chosen among scored documents only, and a cache of term
weights bounded in bytes. Scores are txtai's BM25; the ranking is txtai's wherever the rarer
query words match at least the candidate pool, and exact BM25 over every record where they
match fewer (txtai would pad the pool with arbitrary records). Faster when a filter makes
search ask for many candidates and at a million passages.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from typing import Any

import numpy as np
import Stemmer  # PyStemmer: the Snowball stemmers in C
from txtai.pipeline import Tokenizer
from txtai.scoring import BM25
from txtai.scoring.terms import Terms

from indexing.keywords import STEMMERS
from indexing.settings import get_settings


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


_ENTRY_BYTES = 200  # what one cached entry costs beside its arrays (key, tuple, dict slot)


class TermWeights:
    """One terms index's cache of term weights: least recently used first out, bounded in bytes.

    Replaces txtai's ``functools.lru_cache(maxsize=500)`` on ``Terms.weights``, which bounds
    the number of terms, not their size: at a million passages a common term's weights are
    megabytes, and 200 searches left about 157 MiB cached. That cache is also one for the
    whole process, keyed by the index object, so an index version the app has moved past stays
    in memory until 500 newer terms push it out; this one lives and dies with its index.
    Thread-safe like ``lru_cache``: two threads may compute the same term at once; one result is
    kept.
    """

    def __init__(self, terms: Terms, budget: int) -> None:
        self._terms = weakref.ref(terms)  # no cycle: the index owns the cache, not the reverse
        self.budget = budget
        self.size = 0
        self._entries: OrderedDict[str, tuple[Any, Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, term: str) -> tuple[Any, Any]:
        with self._lock:
            entry = self._entries.get(term)
            if entry is not None:
                self._entries.move_to_end(term)
                return entry[0], entry[1]
        terms = self._terms()
        if terms is None:
            raise ReferenceError("the terms index this cache belonged to is gone")
        uids, weights = _txtai_weights(terms, term)
        cost = _ENTRY_BYTES + (0 if uids is None else uids.nbytes + weights.nbytes)
        if cost <= self.budget:
            with self._lock:
                if term not in self._entries:
                    self._entries[term] = (uids, weights, cost)
                    self.size += cost
                while self.size > self.budget:
                    _, (_, _, evicted) = self._entries.popitem(last=False)
                    self.size -= evicted
        return uids, weights

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, term: object) -> bool:
        return term in self._entries

    def cache_clear(self) -> None:
        """Forget every term (txtai calls this after indexing and loading)."""
        with self._lock:
            self._entries.clear()
            self.size = 0


# txtai's computation of one term's weights, without its process-wide cache.
_txtai_weights = Terms.weights.__wrapped__


class _CachedWeights:
    """``MergingTerms.weights``: each index object gets its own :class:`TermWeights`."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, terms: Terms | None, owner: type | None = None) -> Any:
        if terms is None:
            return self
        cache = TermWeights(terms, _weights_budget())
        # Stored on the object, which then finds it before this (non-data) descriptor.
        terms.__dict__[self.name] = cache
        return cache


def _weights_budget() -> int:
    return get_settings().keyword_cache_mb * 2**20


class MergingTerms(Terms):
    """txtai's terms index, with its merge of common terms done by numpy.

    txtai scores rare terms for every document, keeps the best ``5 * limit`` candidates, then
    adds each common term's (> 10% of documents) score to those candidates, finding them in
    the term's postings with one Python step per candidate. Hybrid search asks BM25 for 10x
    its pool, and a filter grows the pool (:func:`rag.search.search`): at a pool of 800 that
    loop ran over 40,000 candidates per common query word and was the largest cost of a
    filtered search at 100k passages; at the largest pools it walks the whole index. The
    same lookups as one vectorised ``searchsorted``: equal scores, equal rankings.
    Its term weights are cached per index within a memory budget (:class:`TermWeights`).
    """

    weights = _CachedWeights()

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
