"""The dense side's faiss layout, chosen from the passage count when a version is published.

txtai picks a faiss layout once, from the first batch it indexes; ingestion adds articles in
small batches (:data:`indexing.store.config.UPSERT_BATCH`), so every index stayed exact
(``IDMap,Flat``): each query compares itself with every vector, and all of them are kept in
fp32. That is fast up to a few hundred thousand passages and linear beyond.

So the writer looks again before it publishes (:func:`apply_layout`). Below
``PUBMED_RAG_ANN_MIN_PASSAGES`` passages, or with ``PUBMED_RAG_ANN=exact``, the index stays
exact. Above it, the vectors are moved into an inverted-file index of about sqrt(passages)
lists: ``IVF<lists>,SQ8`` (1 byte per dimension) with an fp16 copy mapped from disk that
rescores the candidates, where that reaches the tuning recall, else ``IVF<lists>,SQfp16``
(half of fp32; the benchmark's synthetic vectors, too close for 8 bits, always end here; see
:func:`build_layout`). ``nprobe``, the lists
a query reads, is tuned right there on the index's own vectors against exact search:
the smallest that finds :data:`TUNING_RECALL` of the true ten nearest neighbours of
:data:`TUNING_QUERIES` stored passages. A second value, ``deep_nprobe``, is tuned the same way
for :data:`DEEP` neighbours (:data:`DEEP_RECALL` of the true ones): a filtered search asks for
that many when its filter keeps few passages, and the ten best of those that pass the filter
are neighbours far down the unfiltered ranking, which the probes of the top ten miss (at 1M
synthetic passages and a filter keeping 2.2% of them, 0.970 of the true ten at ``nprobe`` 231,
0.989 at 350). Layout, ``nprobe`` and ``deep_nprobe`` are written into the index's
configuration (and so into ``manifest.json``); readers use what was built, whatever the
settings say later. The ids of the vectors do not change, so the text store, the keyword index
and deletions are untouched, and later upserts go into the same lists. When the index has grown
so that it wants at least twice the lists it has, the layout is built again.

Queries of an approximate index go through :class:`indexing.ivf.ProbedFaiss`, which widens the
probes when a filtered search asks for more candidates, so filters never lose matches to the
probes and never make a search read the whole index.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

BACKEND = "indexing.ivf.ProbedFaiss"
# Vector storage, most compressed first: the first whose recall can reach TUNING_RECALL is kept.
STORAGES = ("SQ8", "SQfp16")
# Stored passages used as queries when nprobe is tuned, and the recall@10 against exact search
# they must reach (above the 0.98 asked of real queries: stored passages are easier queries
# than short questions, they sit inside a list).
TUNING_QUERIES = 200
TUNING_RECALL = 0.99
K = 10
# The depth of a filtered search's second pool (rag.search: 100 candidates, then 8 times as
# many), and the recall of the true DEEP neighbours its probes must reach. Stored passages are
# harder queries at depth than short questions (at 1M synthetic passages and nprobe 350: 0.978
# of the true 800 vs 0.989), and 0.98 here gave 0.989 of a narrow filter's true ten.
DEEP = 800
DEEP_RECALL = 0.98
# faiss wants at least 39 training points per list; a sample of this many per list trains
# as well as all of them, in a fraction of the time at a million passages.
TRAIN_PER_LIST = 64


@dataclass(frozen=True, slots=True)
class Layout:
    """An approximate layout: faiss components and the lists a query probes."""

    components: str
    lists: int
    nprobe: int
    deep_nprobe: int = 0  # for DEEP neighbours (0: as nprobe)


def lists_for(passages: int) -> int:
    """Inverted lists for ``passages`` vectors: about sqrt(n), at least 39 vectors each."""
    return max(1, min(round(math.sqrt(passages)), passages // 39))


def current_lists(config: dict[str, Any]) -> int:
    """The lists of the index's current layout (0 = exact)."""
    components = str(((config.get("build") or {}).get("settings") or {}).get("components") or "")
    first = components.split(",", maxsplit=1)[0]
    return int(first[3:]) if first.startswith("IVF") and first[3:].isdigit() else 0


def wanted_lists(passages: int, mode: str, min_passages: int) -> int:
    """The lists the settings ask for at ``passages`` (0 = exact)."""
    if mode == "exact" or passages < min_passages:
        return 0
    return lists_for(passages)


def needs_layout(config: dict[str, Any], passages: int, mode: str, min_passages: int) -> bool:
    """Whether the index should get a new approximate layout before it is published.

    An approximate index is never turned back into an exact one: its vectors are fp16 now, and
    the exact layout would only hold them in more memory (rebuild the index to get fp32 back).
    """
    want = wanted_lists(passages, mode, min_passages)
    have = current_lists(config)
    return want > 0 and want >= 2 * have


def stored_vectors(backend: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, vectors)`` held by a faiss index of txtai (``IDMap,Flat`` or ``IVF…``)."""
    import faiss

    if isinstance(backend, faiss.IndexIDMap):
        inner = faiss.downcast_index(backend.index)
        return faiss.vector_to_array(backend.id_map).astype(np.int64), inner.reconstruct_n(
            0, inner.ntotal
        )
    ivf: Any = faiss.extract_index_ivf(backend)
    lists: Any = ivf.invlists
    ids = np.concatenate(
        [
            faiss.rev_swig_ptr(lists.get_ids(number), lists.list_size(number)).copy()
            for number in range(ivf.nlist)
            if lists.list_size(number)
        ]
        or [np.zeros(0, dtype=np.int64)]
    ).astype(np.int64)
    ivf.set_direct_map_type(faiss.DirectMap.Hashtable)  # type: ignore[attr-defined]
    vectors = backend.reconstruct_batch(ids)
    ivf.set_direct_map_type(faiss.DirectMap.NoMap)  # type: ignore[attr-defined]
    return ids, vectors


def tune_nprobe(
    index: Any,
    ids: np.ndarray,
    vectors: np.ndarray,
    exact: np.ndarray | None,
    seed: int = 0,
    depth: int = K,
    target: float = TUNING_RECALL,
    start: int = 1,
) -> int | None:
    """The smallest ``nprobe`` (from ``start`` up) whose recall of the true ``depth`` nearest
    neighbours, asked for ``depth``, reaches ``target`` (recall@10 and TUNING_RECALL unless told).

    The queries are stored passages; each one's own vector is left out of both answers.
    ``exact`` is the fp16 copy that rescores the candidates of 8-bit lists (as readers do,
    :class:`indexing.ivf.ProbedFaiss`). ``None`` when even every list together misses it.
    """
    import faiss

    from indexing.ivf import RERANK, RERANK_MAX, rescore

    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(vectors), min(TUNING_QUERIES, len(vectors)), replace=False))
    queries = np.ascontiguousarray(vectors[rows])
    depth = min(depth, len(vectors) - 1)
    _, truth_rows = faiss.knn(queries, vectors, depth + 1, metric=faiss.METRIC_INNER_PRODUCT)
    truth = [
        _others(ids[row[row >= 0]], ids[query], depth)
        for row, query in zip(truth_rows, rows, strict=True)
    ]
    lists = int(index.nlist)
    rescored = exact is not None and depth + 1 <= RERANK_MAX

    def recall(nprobe: int) -> float:
        index.nprobe = nprobe
        if not rescored:
            _, found = index.search(queries, depth + 1)
        else:
            _, candidates = index.search(queries, (depth + 1) * RERANK)
            found = [
                np.array([i for i, _ in hits])
                for hits in rescore(candidates, queries, exact, depth + 1)
            ]
        hits = [
            len(_others(hit[hit >= 0], ids[query], depth) & wanted) / max(len(wanted), 1)
            for hit, wanted, query in zip(found, truth, rows, strict=True)
        ]
        return float(np.mean(hits))

    if recall(lists) < target:
        return None
    nprobe = max(1, min(start, lists))
    while nprobe < lists and recall(nprobe) < target:
        nprobe = min(lists, max(nprobe + 1, round(nprobe * 1.25)))
    return nprobe


def _others(found: np.ndarray, own: int, depth: int = K) -> set[int]:
    """The ``depth`` nearest ids of a stored passage, its own id left out."""
    return set([int(i) for i in found if int(i) != int(own)][:depth])


def build_layout(ids: np.ndarray, vectors: np.ndarray) -> tuple[Any, Layout, np.ndarray | None]:
    """A trained ``IVF<lists>,<storage>`` index of ``vectors`` under ``ids``, nprobe tuned.

    The storage is the first of :data:`STORAGES` that can reach :data:`TUNING_RECALL`: 8-bit
    lists with an fp16 copy that rescores their candidates (memory: 1 byte per dimension; the
    copy is mapped from disk), else fp16 lists. The lists are trained once for both. Returns
    the index, its layout, and the fp16 copy (rows by id) when the lists are 8-bit.
    """
    import faiss

    lists = lists_for(len(vectors))
    dimensions = vectors.shape[1]
    rng = np.random.default_rng(0)
    sample = vectors[
        np.sort(rng.choice(len(vectors), min(len(vectors), TRAIN_PER_LIST * lists), replace=False))
    ]
    trained: Any = None
    for storage in STORAGES:
        components = f"IVF{lists},{storage}"
        index: Any = faiss.index_factory(dimensions, components, faiss.METRIC_INNER_PRODUCT)
        if trained is not None:  # the same lists: only the scalar quantizer is trained again
            index.quantizer = faiss.clone_index(trained.quantizer)
            index.own_fields = True
            index.quantizer.this.disown()
        index.train(sample)
        trained = index
        index.add_with_ids(vectors, ids)
        exact = None
        if storage == "SQ8":
            exact = np.zeros((int(ids.max()) + 1, dimensions), dtype=np.float16)
            exact[ids] = vectors
        nprobe = tune_nprobe(index, ids, vectors, exact)
        if nprobe is not None:
            deep = tune_nprobe(
                index, ids, vectors, exact, depth=DEEP, target=DEEP_RECALL, start=nprobe
            )
            return index, Layout(components, lists, nprobe, deep or lists), exact
        log.info("%s misses recall@10 %.2f even probing every list", components, TUNING_RECALL)
    # Even fp16 misses the target (nearly equal vectors): probe every list, the best it does.
    return index, Layout(components, lists, lists, lists), None


def apply_layout(embeddings: Any, passages: int, mode: str, min_passages: int) -> Layout | None:
    """Give a txtai index the layout the settings ask for at ``passages``; ``None`` = unchanged.

    Args:
        embeddings: the writer's txtai ``Embeddings`` (faiss backend).
        passages: the passages it holds.
        mode: ``auto`` or ``exact`` (``PUBMED_RAG_ANN``).
        min_passages: where ``auto`` starts approximating (``PUBMED_RAG_ANN_MIN_PASSAGES``).
    """
    config = embeddings.config
    if config.get("backend", "faiss") not in ("faiss", BACKEND) or embeddings.ann is None:
        return None
    if not needs_layout(config, passages, mode, min_passages):
        return None
    began = time.perf_counter()
    ids, vectors = stored_vectors(embeddings.ann.backend)
    copy = getattr(embeddings.ann, "exact", None)  # an 8-bit index's fp16 copy: better vectors
    if copy is not None:
        vectors = np.asarray(copy[ids], dtype=np.float32)
    if len(vectors) < 39:
        return None
    index, layout, exact = build_layout(ids, np.ascontiguousarray(vectors, dtype=np.float32))
    if exact is not None and len(exact) < int(config.get("offset") or 0):
        # rows up to txtai's next id (the last ones may have been deleted)
        exact = np.concatenate(
            [exact, np.zeros((int(config["offset"]) - len(exact), exact.shape[1]), exact.dtype)]
        )
    from txtai.ann import ANNFactory

    config["backend"] = BACKEND
    config["faiss"] = {
        "components": layout.components,
        "nprobe": layout.nprobe,
        "deep_nprobe": layout.deep_nprobe,
        "deep_depth": DEEP,
    }
    if exact is not None:
        config["faiss"]["refine"] = "fp16"
    ann = ANNFactory.create(config)
    ann.backend = index
    ann.exact = exact
    ann.metadata({"components": layout.components})
    embeddings.ann = ann
    log.info(
        "dense layout %s, nprobe %d (%d for %d neighbours), for %d passages (%.1f s)",
        layout.components,
        layout.nprobe,
        layout.deep_nprobe,
        DEEP,
        len(vectors),
        time.perf_counter() - began,
    )
    return layout
