"""The keyword side of the hybrid index: txtai's BM25 over stemmed terms.

txtai's own BM25 with a terms index tokenizes with :class:`txtai.pipeline.Tokenizer` (lower
case, Unicode word segmentation) and matches words exactly, so "mutations" never meets
"mutated" and "inhibits" never meets "inhibition". :class:`indexing.bm25.StemmedBM25` is txtai's ``BM25``
with one change: each token is reduced to its Snowball stem (PyStemmer) when the index is
built and when it is queried. On SciFact train (tuned there, scored on test) this lifts
passage-level BM25 from nDCG@10 0.659 to 0.695 and the product's hybrid ranking from 0.706
to 0.733 (``benchmarks/results/``).

It plugs into txtai as a custom scoring method (``"scoring": {"method":
"indexing.bm25.StemmedBM25", "stemmer": "english"}``): the name and the stemmer are saved
in the index's configuration, so an index is always queried with the tokenizer it was built
with, whatever the setting says later. PostgreSQL's ``pgtext`` scoring stems with its own
``english`` text-search configuration and does not use this.
"""

from __future__ import annotations

from typing import Any

METHOD = "indexing.bm25.StemmedBM25"
STEMMERS = ("english", "porter")


def scoring_config(stemmer: str) -> dict[str, Any]:
    """The ``scoring`` block of a new embedded index: BM25 with a terms index, normalised.

    ``stemmer`` ``none`` is txtai's plain BM25 (exact words), as indexes built before stemming.
    """
    base: dict[str, Any] = {"terms": True, "normalize": True}
    if stemmer == "none":
        return {"method": "bm25", **base}
    return {"method": METHOD, "stemmer": stemmer, **base}


def describe(scoring: dict[str, Any] | None) -> str:
    """How an index's keyword side matches words: ``english`` / ``porter`` stems, or ``none``."""
    scoring = scoring or {}
    if scoring.get("method") == METHOD:
        return str(scoring.get("stemmer") or "english")
    return "none" if scoring.get("method") in (None, "bm25") else str(scoring.get("method"))
