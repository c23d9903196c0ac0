"""txtai's faiss backend whose IVF probes grow with the number of neighbours asked for.

Named in the configuration of an index with an approximate layout (``"backend":
"indexing.ivf.ProbedFaiss"``, see :mod:`indexing.store.ann`) and imported by txtai when it
loads one; exact indexes keep txtai's own ``faiss`` backend.

An IVF index only looks into ``nprobe`` of its lists, so it can return at most the vectors of
those lists. A filtered search asks for more and more candidates while the filter leaves too
few (:func:`rag.search.search`, up to ``PUBMED_RAG_MAX_CANDIDATES``); with a fixed ``nprobe``
the larger asks would come back short and matches of the filter would be lost without a word.
Here the probes cover at least :data:`HEADROOM` times the vectors asked for, and never fewer
than the ``nprobe`` tuned when the layout was built, so a larger ask is never answered with
less. It still reads only a bounded part of the index, never all of it unless asked for a
large share of it.
"""

from __future__ import annotations

import math
from typing import Any

from txtai.ann import Faiss

# Probed lists hold at least this many times the neighbours asked for (lists differ in size).
HEADROOM = 4


class ProbedFaiss(Faiss):
    """txtai's ``Faiss`` with ``nprobe`` = max(the tuned value, what the limit needs)."""

    def setting(self, name: str, default: Any = None) -> Any:
        # txtai reads a backend's settings under its name; this one keeps faiss's "faiss" block.
        settings = self.config.get("faiss") or {}
        value = settings.get(name)
        return value if value or name in settings else default

    def search(self, queries: Any, limit: int) -> list[Any]:
        self._limit = int(limit)
        return list(super().search(queries, limit))

    def nprobe(self) -> int:
        tuned = int(super().nprobe())
        lists = int(getattr(self.backend, "nlist", 0) or 0)
        total = int(self.backend.ntotal)
        if not lists or not total:
            return tuned
        needed = math.ceil(HEADROOM * getattr(self, "_limit", 0) * lists / total)
        return min(lists, max(tuned, needed))
