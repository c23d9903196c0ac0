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
less. A deep ask also probes more lists for recall's sake: its filtered ten best are far down
the unfiltered ranking, so from :data:`SHALLOW` neighbours up to the layout's ``deep_depth``
the probes rise from ``nprobe`` to ``deep_nprobe`` (both tuned at publish,
:mod:`indexing.store.ann`), by the logarithm of the ask. It still reads only a bounded part of
the index, never all of it unless asked for a large share of it.

With 8-bit lists (``"refine": "fp16"`` in the ``faiss`` block) the index keeps a second copy of
every vector in fp16, in a file beside faiss's (``embeddings.fp16``) that readers map instead of
loading: :data:`RERANK` times the neighbours asked for come from the 8-bit lists, and are scored
again with their fp16 vectors. 8 bits per dimension alone lose the order of near neighbours
(recall@10 0.96 against exact on the benchmark's vectors); the fp16 scores restore it, and only
the rows of those candidates are ever read, so the copy costs disk, not memory.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from txtai.ann import Faiss

# Probed lists hold at least this many times the neighbours asked for (lists differ in size).
HEADROOM = 4
# Asks up to this many neighbours (a search's first pool, rag.search) probe the tuned nprobe.
SHALLOW = 100
# Candidates from the 8-bit lists per neighbour asked for, scored again in fp16; asks larger
# than RERANK_MAX (a filter's largest pools) are answered from the lists alone.
RERANK = 4
RERANK_MAX = 2000
REFINE_SUFFIX = ".fp16"


def rescore(found: np.ndarray, queries: np.ndarray, exact: Any, limit: int) -> list[Any]:
    """``[(id, score)]`` per query: the ``found`` ids (-1 = none) scored with ``exact`` rows."""
    results = []
    for row, query in zip(found, queries, strict=True):
        ids = np.unique(row[row >= 0])  # sorted: the mapped rows are read in file order
        scores = np.asarray(exact[ids], dtype=np.float32) @ query
        best = np.argsort(-scores, kind="stable")[:limit]
        results.append(list(zip(ids[best].tolist(), scores[best].tolist(), strict=True)))
    return results


class ProbedFaiss(Faiss):
    """txtai's ``Faiss`` with ``nprobe`` = max(the tuned value, what the limit needs).

    ``exact`` is the fp16 copy (row = faiss id) of an index with 8-bit lists, else ``None``.
    """

    exact: Any = None

    def load(self, path: str) -> None:
        super().load(path)
        refine = Path(path + REFINE_SUFFIX)
        if self.setting("refine") == "fp16" and refine.exists():
            self.exact = np.load(refine, mmap_mode="r")

    def save(self, path: str) -> None:
        super().save(path)
        if self.exact is not None:
            # Written beside, then renamed: the file being replaced may be mapped right now.
            partial = Path(f"{path}{REFINE_SUFFIX}.partial")
            with partial.open("wb") as stream:
                np.save(stream, np.asarray(self.exact))
            partial.replace(path + REFINE_SUFFIX)

    def append(self, embeddings: Any) -> None:
        offset = int(self.config["offset"])
        super().append(embeddings)
        if self.exact is not None:
            rows = np.zeros((offset + len(embeddings), embeddings.shape[1]), dtype=np.float16)
            rows[: len(self.exact)] = self.exact
            rows[offset:] = embeddings
            self.exact = rows

    def setting(self, name: str, default: Any = None) -> Any:
        # txtai reads a backend's settings under its name; this one keeps faiss's "faiss" block.
        settings = self.config.get("faiss") or {}
        value = settings.get(name)
        return value if value or name in settings else default

    def search(self, queries: Any, limit: int) -> list[Any]:
        self._asked = int(limit)
        if self.exact is None or limit > RERANK_MAX:
            self._limit = int(limit)
            return list(super().search(queries, limit))
        self._limit = int(limit) * RERANK
        self.backend.nprobe = self.nprobe()
        _, found = self.backend.search(queries, self._limit)
        return rescore(found, np.asarray(queries, dtype=np.float32), self.exact, int(limit))

    def nprobe(self) -> int:
        tuned = int(super().nprobe())
        lists = int(getattr(self.backend, "nlist", 0) or 0)
        total = int(self.backend.ntotal)
        if not lists or not total:
            return tuned
        needed = math.ceil(HEADROOM * getattr(self, "_limit", 0) * lists / total)
        return min(lists, max(self.deep(tuned, getattr(self, "_asked", 0)), needed))

    def deep(self, tuned: int, asked: int) -> int:
        """The probes for ``asked`` neighbours by recall: ``tuned`` up to SHALLOW, the layout's
        ``deep_nprobe`` from its ``deep_depth`` on, log-interpolated between (indexes laid out
        before it was tuned: ``tuned``)."""
        deep = int(self.setting("deep_nprobe", 0) or 0)
        depth = int(self.setting("deep_depth", 0) or 0)
        if deep <= tuned or depth <= SHALLOW or asked <= SHALLOW:
            return tuned
        share = min(1.0, math.log(asked / SHALLOW) / math.log(depth / SHALLOW))
        return tuned + math.ceil((deep - tuned) * share)
