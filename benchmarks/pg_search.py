"""Hybrid search latency on the PostgreSQL + pgvector backend, beside the embedded one.

Builds the same synthetic indexes as the ``search`` section of :mod:`benchmarks.bench` (same
articles, same 0-layer-BERT vectors, same queries and filter) with the product's writer into a
local PostgreSQL 16 + pgvector server (PyPI ``pgserver``, started in the work folder), then
times :func:`rag.search.search` through :class:`indexing.store.IndexReader` — what the app
does with ``PUBMED_RAG_DATABASE_URL`` set. Reports p50/p95 per scale, the build time, and the
server's version; a scale whose build is estimated (from the previous one) to exceed
``max_build_s`` is skipped and says so.

Hook for ``benchmarks/bench.py`` (next to its ``search`` section)::

    from benchmarks.pg_search import bench_pg_search
    run_section(sections, "search_postgres",
                lambda: bench_pg_search(scales, args.max_scale, args.max_build_s, queries, work))

Standalone: ``python -m benchmarks.pg_search --scales 100000 1000000 --out result.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.machine import machine_info

K = 10
# HNSW builds in memory when the graph fits in maintenance_work_mem, and far slower once it
# spills. By our estimate the graph of 1M 384-d vectors needs about 2.1 GB (1.5 KB of vector
# plus neighbour lists per row): over pgserver's default (64 MB) and over the 2 GB this bench
# first used, whose 1M build had not finished after 23 minutes of CREATE INDEX.
MAINTENANCE_WORK_MEM = "6GB"


def _percentiles(values: Sequence[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=np.float64)
    return {
        "p50_ms": round(float(np.percentile(array, 50)), 2),
        "p95_ms": round(float(np.percentile(array, 95)), 2),
    }


def _log(message: str) -> None:
    print(f"[pg-bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def start_server(folder: Path) -> tuple[Any, str]:
    """A local PostgreSQL + pgvector server and its URL."""
    import pgserver

    server = pgserver.get_server(folder, cleanup_mode="stop")
    server.psql(f"ALTER SYSTEM SET maintenance_work_mem = '{MAINTENANCE_WORK_MEM}';")
    server.psql("SELECT pg_reload_conf();")
    return server, str(server.get_uri())


def build(settings: Any, count: int, model_dir: Path, vocabulary: list[str]) -> float:
    """Publish ``count`` synthetic articles with the product's writer; the build seconds."""
    from benchmarks.sections.search import build_synthetic

    began = time.perf_counter()
    build_synthetic(settings, count, vocabulary, model_dir, f"postgres {count:,}")
    return time.perf_counter() - began


def measure(settings: Any, queries: list[str]) -> dict[str, Any]:
    """Hybrid search (year filter) on the published index, the GIN path beside the old one.

    The top-level figures are the product's: keyword search through the GIN index (:class:`indexing.store.
    postgres.keywords.PgKeywords`), exact vectors past ``hnsw.ef_search``, and each search
    runs only the retriever it weights; ``plans`` shows the keyword statement's plan
    (``EXPLAIN ANALYZE``). ``full_table_pgtext`` is the same index searched as
    before, in the same run: txtai's ``pgtext`` and ``pgvector`` (every row ranked, both
    retrievers run on every call). Each reports the product's search (p50/p95), the keyword
    statement alone (1,000 rows, what txtai asks for at the default pool), and a selective
    filter (year and one journal of 50: about 0.04% of passages) with the hits it returned.
    """
    from benchmarks.sections.search import YEAR_FROM
    from indexing.store import IndexReader

    started = time.perf_counter()
    reader = IndexReader(settings)
    index = reader.get()
    load_s = time.perf_counter() - started
    result: dict[str, Any] = {
        "passages": int(index.manifest.passages),
        "load_s": round(load_s, 2),
        "queries": len(queries),
        "filter": f"year >= {YEAR_FROM}",
        "selective_filter": f"year >= {SELECTIVE_YEAR} and journal 'Studies {SELECTIVE_JOURNAL}'",
    }
    new = (index.embeddings.ann, index.embeddings.scoring)
    result.update(_measure_path(reader, index, queries))
    result["plans"] = _plans(index.embeddings.scoring, queries)
    index.embeddings.ann, index.embeddings.scoring = _old_path(*new)
    result["full_table_pgtext"] = _measure_path(reader, index, queries)
    result["keyword_overlap_with_pgtext"] = _overlap(new[1], index.embeddings.scoring, queries)
    index.embeddings.ann.close()
    index.embeddings.scoring.close()
    index.embeddings.ann, index.embeddings.scoring = new
    # 1/5/15-minute averages: what else ran, the server's own index build included
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    index.close()
    reader.store.close()
    return result


SELECTIVE_YEAR = 2025
SELECTIVE_JOURNAL = 7
SELECTIVE_QUERIES = 20
KEYWORD_ROWS = 1000


def _old_path(ann: Any, scoring: Any) -> tuple[Any, Any]:
    """txtai's own pgvector and pgtext on the same tables (what every search ran before)."""
    from txtai.ann.dense.pgvector import PGVector
    from txtai.scoring.pgtext import PGText

    vectors = PGVector({**ann.config, "backend": "pgvector"})
    vectors.load(None)
    keywords = PGText({k: v for k, v in scoring.config.items() if k != "terms"})
    keywords.load(None)
    return vectors, keywords


def _measure_path(reader: Any, index: Any, queries: list[str]) -> dict[str, Any]:
    from benchmarks.sections.search import YEAR_FROM
    from rag.search import Filters, search
    from rag.settings import RagSettings

    rag = RagSettings()

    def run(query: str, filters: Filters) -> int:
        return len(
            search(reader, query, filters, K, rag.hybrid_weight, candidates=rag.candidates).hits
        )

    def timed(texts: list[str], filters: Filters) -> tuple[list[float], list[int]]:
        for query in texts[:3]:  # warm the model and the server's caches
            run(query, filters)
        latencies, hits = [], []
        for query in texts:
            began = time.perf_counter()
            hits.append(run(query, filters))
            latencies.append((time.perf_counter() - began) * 1000)
        return latencies, hits

    latencies, _ = timed(queries, Filters(year_from=YEAR_FROM))
    scoring = index.embeddings.scoring
    keyword = []
    for query in queries:
        began = time.perf_counter()
        with index.lock:
            scoring.search(query, KEYWORD_ROWS)
            scoring.save(None)  # end the read transaction, as a search does
        keyword.append((time.perf_counter() - began) * 1000)
    selective = Filters(year_from=SELECTIVE_YEAR, journal=f"Studies {SELECTIVE_JOURNAL}")
    narrow, hits = timed(queries[:SELECTIVE_QUERIES], selective)
    return {
        **_percentiles(latencies),
        "keyword_statement": _percentiles(keyword),
        "selective": {**_percentiles(narrow), "mean_hits": round(float(np.mean(hits)), 2)},
    }


def _overlap(scoring: Any, pgtext: Any, queries: list[str], k: int = 10) -> dict[str, Any]:
    """How many of pgtext's top ``k`` keyword hits the GIN path returns too, per query (mean),
    apart for the queries whose match is not every pair (the row budget narrowed it, or a
    lexeme no passage holds was left out)."""
    narrowed: list[float] = []
    exact: list[float] = []
    for query in queries:
        ours = {uid for uid, _ in scoring.search(query, KEYWORD_ROWS)[:k]}
        theirs = {uid for uid, _ in pgtext.search(query, KEYWORD_ROWS)[:k]}
        share = len(ours & theirs) / len(theirs) if theirs else 1.0
        statement = scoring._ranking(query, KEYWORD_ROWS)
        every = scoring.match_every_pair(query)
        (narrowed if statement is not None and statement[1]["match"] != every else exact).append(
            share
        )
    scoring.save(None)
    pgtext.save(None)
    return {
        "k": k,
        "queries_narrowed": len(narrowed),
        f"overlap@{k}": round(float(np.mean(narrowed + exact)), 3),
        f"overlap@{k}_narrowed": round(float(np.mean(narrowed)), 3) if narrowed else None,
        f"overlap@{k}_not_narrowed": round(float(np.mean(exact)), 3) if exact else None,
    }


def _plans(scoring: Any, queries: list[str]) -> list[dict[str, Any]]:
    """EXPLAIN ANALYZE of the keyword statement for the first queries: index used, time."""
    plans = []
    for query in queries[:3]:
        with_analyze = scoring.explain(query, KEYWORD_ROWS, analyze=True)
        scoring.save(None)
        text = "\n".join(with_analyze)
        plans.append(
            {
                "query": query,
                "gin_index_scan": 'Bitmap Index Scan on "scoring-index"' in text,
                "plan": with_analyze,
            }
        )
    return plans


def bench_pg_search(
    scales: Sequence[int],
    max_scale: int,
    max_build_s: float,
    queries: int,
    work: Path,
    *,
    keep: bool = False,
) -> dict[str, Any]:
    """Build and measure each scale on PostgreSQL; skip what the caps rule out, saying why."""
    from benchmarks.sections.search import (
        build_bag_of_words,
        synthetic_queries,
        synthetic_vocabulary,
    )
    from indexing.models import resolve_embeddings
    from indexing.settings import Settings, get_settings

    tokenizer_path = resolve_embeddings(get_settings()).path
    model_dir = build_bag_of_words(work / "bag-of-words-pg", tokenizer_path)
    vocabulary = synthetic_vocabulary(tokenizer_path)
    texts = synthetic_queries(queries, vocabulary)
    server, url = start_server(work / "postgres")
    report: dict[str, Any] = {
        "machine": machine_info(),
        "server": server.psql("SELECT version();").splitlines()[2].strip(),
        "pgvector": server.psql(
            "SELECT default_version FROM pg_available_extensions WHERE name = 'vector';"
        )
        .splitlines()[2]
        .strip(),
        "maintenance_work_mem": MAINTENANCE_WORK_MEM,
        "keyword_scoring": (
            "gin: PgKeywords (pgtext's ts_rank, computed only for the passages the GIN index "
            "matches: two query lexemes, or any for long queries); full_table_pgtext: txtai "
            "pgtext (ts_rank over the whole table, no GIN pre-filter), the same index, same run"
        ),
        "scales": {},
    }
    rate: float | None = None
    try:
        for scale in sorted(scales):
            if scale > max_scale:
                report["scales"][str(scale)] = {"skipped": f"above --max-scale {max_scale}"}
                continue
            if rate and scale / rate > max_build_s:
                report["scales"][str(scale)] = {
                    "skipped": f"estimated build {scale / rate:.0f} s > --max-build-s {max_build_s:.0f}"
                }
                continue
            settings = Settings(
                data_dir=work / f"pg-{scale}",
                offline=True,
                database_url=url,
                database_schema=f"bench_{scale}",
            )
            _log(f"building {scale:,} passages in PostgreSQL")
            built = build(settings, scale, model_dir, vocabulary)
            rate = scale / built
            _log(f"built in {built:.0f} s; measuring")
            entry: dict[str, Any] = {
                "build_s": round(built, 1),
                "build_passages_per_s": round(rate, 1),
            }
            entry.update(measure(settings, texts))
            report["scales"][str(scale)] = entry
            if not keep:
                from indexing.store import open_store

                store = open_store(settings)
                store.destroy()
                store.close()
    finally:
        server.cleanup()
    return report


def main(argv: list[str] | None = None) -> int:
    """Run the PostgreSQL search benchmark alone; print (or write) its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--max-scale", type=int, default=1_000_000)
    parser.add_argument("--max-build-s", type=float, default=3600.0)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pubmed-rag-pgbench-") as tmp:
        result = bench_pg_search(
            args.scales, args.max_scale, args.max_build_s, args.queries, Path(tmp)
        )
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
