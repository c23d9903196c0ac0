"""One process serving search over a published index: latency, peak RSS, recall against exact.

Run by :mod:`benchmarks.bench` as a subprocess, so that its peak RSS (Linux ``VmHWM``) is
the memory of serving that index and nothing else::

    python -m benchmarks.search_probe --data-dir DIR --queries queries.json [--exact-dir EXACT]

``queries.json`` holds ``{"queries": [...], "year_from": 2010}``; ``DIR/years.npy`` holds the
publication year of each passage in insertion order (the faiss ids). Prints one JSON object,
and writes the hybrid hits of each query to ``DIR/hits.json``.

``--exact-dir`` names an exact index of the same passages (same ids): the true neighbours are
then searched among its float32 vectors, not among the (compressed) ones of the index probed,
and its ``hits.json`` is compared with this index's hybrid hits (``hybrid_overlap@10``).

Peak RSS is read right after the timed searches, before the exact-search check, which has to
copy every vector out of faiss and would otherwise inflate it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.serving import peak_rss_mib

K = 10


def percentile(values: list[float], q: float) -> float:
    """The ``q`` percentile (0-100) of ``values``, linear interpolation."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else 0.0


def dense_matrix(backend: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, vectors)`` stored in a txtai faiss backend (``IDMap,Flat`` or ``IVF…``)."""
    import faiss

    if isinstance(backend, faiss.IndexIDMap):
        inner = faiss.downcast_index(backend.index)
        return faiss.vector_to_array(backend.id_map), inner.reconstruct_n(0, inner.ntotal)
    ivf = faiss.extract_index_ivf(backend)
    ivf.make_direct_map()
    return np.arange(backend.ntotal, dtype=np.int64), backend.reconstruct_n(0, backend.ntotal)


def exact_vectors(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, vectors)`` of the published version of an exact index, read from its faiss file."""
    import faiss

    from indexing.store.layout import CURRENT, EMBEDDINGS, VERSIONS

    root = data_dir / "index"
    version = (root / CURRENT).read_text(encoding="utf-8").strip()
    return dense_matrix(
        faiss.read_index(str(root / VERSIONS / version / EMBEDDINGS / "embeddings"))
    )


def exact_top(
    vectors: np.ndarray, ids: np.ndarray, queries: np.ndarray, mask: np.ndarray | None
) -> list[set[int]]:
    """Brute-force inner-product top-``K`` ids per query (optionally among ``mask`` only)."""
    scores = queries @ vectors.T
    if mask is not None:
        scores[:, ~mask] = -np.inf
    top = np.argpartition(-scores, K, axis=1)[:, :K]
    return [{int(ids[i]) for i in row} for row in top]


def main(argv: list[str] | None = None) -> int:
    """Load, search, measure; print JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--queries", type=Path, required=True)
    parser.add_argument("--exact-dir", type=Path, help="An exact index of the same passages.")
    args = parser.parse_args(argv)

    from indexing.settings import Settings
    from indexing.store import IndexReader
    from rag.search import Filters, search
    from rag.settings import RagSettings

    spec = json.loads(args.queries.read_text(encoding="utf-8"))
    queries: list[str] = spec["queries"]
    filters = Filters(year_from=int(spec["year_from"]))
    rag = RagSettings()
    started = time.perf_counter()
    index = IndexReader(Settings(data_dir=args.data_dir, offline=True)).get()
    load_s = time.perf_counter() - started
    rss_loaded = peak_rss_mib()

    def run(query: str, weight: float) -> list[str]:  # the pmids found, best first
        result = search(
            index, query, filters, K, weight, candidates=rag.candidates, max_query_chars=1000
        )
        return [hit.pmid for hit in result.hits]

    for query in queries[:3]:  # warm caches and lazy model parts
        run(query, rag.hybrid_weight)
    latencies, hits = [], []
    for query in queries:
        began = time.perf_counter()
        hits.append(run(query, rag.hybrid_weight))
        latencies.append((time.perf_counter() - began) * 1000)
    rss_serving = peak_rss_mib()
    terms = getattr(getattr(index.embeddings, "scoring", None), "terms", None)
    cached = getattr(getattr(terms, "weights", None), "size", None)  # bytes (indexing.bm25)
    (args.data_dir / "hits.json").write_text(json.dumps(hits), encoding="utf-8")
    # Each retriever on its own (same filter): which side grows with the index.
    sides: dict[str, list[float]] = {"dense_only": [], "keyword_only": []}
    for side, weight in (("dense_only", 1.0), ("keyword_only", 0.0)):
        for query in queries:
            began = time.perf_counter()
            run(query, weight)
            sides[side].append((time.perf_counter() - began) * 1000)

    # Exact search over the very vectors faiss holds; faiss id = insertion order = pmid - 1.
    embeddings = index.embeddings
    assert embeddings is not None
    ids, vectors = (
        exact_vectors(args.exact_dir) if args.exact_dir else dense_matrix(embeddings.ann.backend)
    )
    query_vectors = np.asarray(embeddings.batchtransform(queries), dtype=np.float32)
    years = np.load(args.data_dir / "years.npy")[ids]
    ann = embeddings.ann.search(query_vectors, K)
    exact = exact_top(vectors, ids, query_vectors, None)
    exact_filtered = exact_top(vectors, ids, query_vectors, years >= filters.year_from)
    ann_recall = [
        len({int(i) for i, _ in row} & truth) / K for row, truth in zip(ann, exact, strict=True)
    ]
    filtered_recall = [
        len({int(pmid) - 1 for pmid in run(query, 1.0)} & truth) / K
        for query, truth in zip(queries, exact_filtered, strict=True)
    ]
    # A filter that keeps ~2% of the passages: the candidate pool has to grow (rag.search).
    narrow = Filters(year_from=int(spec.get("narrow_year_from", 2025)))
    narrow_mask = years >= narrow.year_from
    narrow_truth = exact_top(vectors, ids, query_vectors, narrow_mask)
    narrow_latencies, narrow_recall = [], []
    for query, truth in zip(queries, narrow_truth, strict=True):
        began = time.perf_counter()
        found = search(index, query, narrow, K, 1.0, candidates=rag.candidates).hits
        narrow_latencies.append((time.perf_counter() - began) * 1000)
        narrow_recall.append(len({int(hit.pmid) - 1 for hit in found} & truth) / K)
    # Load on a shared machine drifts between two probe processes; the same searches of both
    # indexes alternated in this one process compare them under the same load.
    interleaved: dict[str, float] = {}
    if args.exact_dir:
        exact_index = IndexReader(Settings(data_dir=args.exact_dir, offline=True)).get()
        timings: dict[str, list[float]] = {"exact": [], "this": []}
        for query in queries:
            for name, source in (("exact", exact_index), ("this", index)):
                began = time.perf_counter()
                search(source, query, filters, K, rag.hybrid_weight, candidates=rag.candidates)
                timings[name].append((time.perf_counter() - began) * 1000)
        interleaved = {
            f"{name}_{label}_ms": round(percentile(values, q), 2)
            for name, values in timings.items()
            for label, q in (("p50", 50), ("p95", 95))
        }
        exact_index.close()
    overlap = None
    if args.exact_dir and (args.exact_dir / "hits.json").exists():
        truth_hits = json.loads((args.exact_dir / "hits.json").read_text(encoding="utf-8"))
        overlap = float(
            np.mean(
                [
                    len(set(found) & set(wanted)) / max(len(wanted), 1)
                    for found, wanted in zip(hits, truth_hits, strict=True)
                ]
            )
        )
    print(
        json.dumps(
            {
                "passages": int(index.manifest.passages),
                "faiss": (embeddings.config.get("build") or {})
                .get("settings", {})
                .get("components"),
                "nprobe": (embeddings.config.get("faiss") or {}).get("nprobe"),
                "load_s": round(load_s, 2),
                "queries": len(queries),
                "p50_ms": round(percentile(latencies, 50), 2),
                "p95_ms": round(percentile(latencies, 95), 2),
                **{
                    f"{side}_{name}_ms": round(percentile(values, q), 2)
                    for side, values in sides.items()
                    for name, q in (("p50", 50), ("p95", 95))
                },
                "ann_recall@10": round(float(np.mean(ann_recall)), 4),
                "filtered_dense_recall@10": round(float(np.mean(filtered_recall)), 4),
                **({"hybrid_overlap@10": round(overlap, 4)} if overlap is not None else {}),
                **({"interleaved_with_exact": interleaved} if interleaved else {}),
                "filter_selectivity": round(float(np.mean(years >= filters.year_from)), 3),
                "narrow_filter": f"year >= {narrow.year_from}",
                "narrow_selectivity": round(float(np.mean(narrow_mask)), 4),
                "narrow_dense_p50_ms": round(percentile(narrow_latencies, 50), 2),
                "narrow_dense_p95_ms": round(percentile(narrow_latencies, 95), 2),
                "narrow_dense_recall@10": round(float(np.mean(narrow_recall)), 4),
                "peak_rss_loaded_mib": round(rss_loaded, 1),
                "peak_rss_serving_mib": round(rss_serving, 1),
                **({"keyword_cache_mib": round(cached / 2**20, 1)} if cached is not None else {}),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
