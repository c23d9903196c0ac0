"""Speed benchmarks of the product's code paths, each beside a baseline from the same run.

``make bench`` runs ``python -m benchmarks.bench --shared-data ../shared/data`` and writes
``benchmarks/results/bench-<date>.json`` and ``benchmarks/results/bench-latest.md``.
``--quick`` is a smoke run of every section with tiny sizes (seconds to a minute or two).

Sections (each reports, none asserts; a section that fails records its error and the run goes on):

* ``machine``: CPU model, cores, load average, library versions.
* ``matmul``: fp32 (and bf16) ``torch.matmul`` of two n×n matrices, best of a few seconds: the
  attainable GFLOP/s of this machine (``2 n³`` FLOPs per product); fp32 is the reference.
* ``parsing``: records/s of :func:`indexing.pubmed.parse_pubmed_xml` over the real sample XML.
* ``encoders``: tokens/s and abstracts/s on real abstracts cut to 300 tokens, for the configured
  embedder and for a PubMedBERT-shaped encoder (BERT-base config, random weights, built here
  with ``transformers``, mean pooling), each through three paths measured in the same run,
  interleaved, best of the rounds: (a) the product's path — a txtai ``Embeddings`` built from
  :func:`indexing.store.config.embeddings_config`, i.e. what ingestion uses (bf16 where the CPU has
  it); (b) the same with ``PUBMED_RAG_ENCODER_PRECISION=fp32``; (c) txtai's default path
  (``Embeddings(path=…)``: transformers, mean pooling, fp32). Each is reported as achieved
  FLOP/s and as a share of the fp32 matmul rate, with the ratios product/default and
  product/fp32, and the cosine similarity of the product's vectors to fp32 vectors of the same
  texts. A full run also measures other ways to run the PubMedBERT-shaped encoder (bf16
  autocast, int8 dynamic quantization; ONNX Runtime / OpenVINO when installed), and the
  padding share of real variable-length passages for the product's sort window. FLOPs per
  token of a BERT encoder at sequence length L (matmuls only; embeddings, layer norms,
  softmax, GELU ignored)::

      2 · layers · (4·h² + 2·h·ffn)   (Q, K, V, O projections and the two FFN matmuls)
    + 4 · layers · L · h              (Q·Kᵀ and attention·V)

  BERT-base (h=768, ffn=3072, 12 layers) at L=300: 170.0 M + 11.1 M ≈ 181 MFLOP per token.
  Only real tokens count (padding the encoder also processes is waste, not work).
* ``query_encode``: p50/p95 of encoding one short query through the product's path (and with
  the fp32 switch), for both encoders.
* ``search``: hybrid search with a filter (``rag.search.search``, the configured weight and
  candidate pool) over synthetic indexes of 10k/100k/1M passages built with the product's
  writer in ingestion-sized batches; p50/p95, peak RSS of the serving process (a subprocess,
  Linux ``VmHWM``; beside it the size of its float32 vectors alone), and recall@10 of faiss
  against exact (numpy) search, unfiltered and for the product's filtered dense ranking. Synthetic vectors come from a 0-layer BERT (random
  token embeddings, mean pooling: a bag-of-words random projection, 384 dims), so texts that
  share words get similar vectors and building 1M passages stays feasible on 2 cores. Scales
  above ``--max-scale``, or whose build is estimated (linearly from the previous scale) to
  take longer than ``--max-build-s``, are skipped and say so.
* ``search_postgres``: the same synthetic scales, built and searched on PostgreSQL + pgvector
  (a local server from the PyPI package ``pgserver``, see :mod:`benchmarks.pg_search`),
  beside the embedded figures.
* ``ingest``: records/s end to end from the local E-utilities server (``testkit.eutils_server``)
  serving the real sample records, through ``indexing.ingest.ingest_query``, to a published
  index.
* ``answer``: time to first token and tokens/s of the offline generator answering from 5
  sources (on the index that ``ingest`` built), through ``rag.service.AnswerService``.

This module is the CLI and the run loop; each section lives in :mod:`benchmarks.sections`
(``matmul``, ``parsing``, ``encoders``, ``query_encode``, ``search`` with the synthetic corpus,
``ingest``, ``answer``; ``common`` holds logging and percentiles), the PostgreSQL one in
:mod:`benchmarks.pg_search`, and the markdown summary in :mod:`benchmarks.report`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.report import _get, markdown
from benchmarks.sections.answer import QUESTIONS, bench_answer
from benchmarks.sections.cold_start import bench_cold_start
from benchmarks.sections.common import ROOT, log
from benchmarks.sections.encoders import bench_encoders
from benchmarks.sections.ingest import bench_ingest
from benchmarks.sections.matmul import bench_matmul
from benchmarks.sections.parsing import bench_parsing, sample_xml_files
from benchmarks.sections.query_encode import bench_query_encode
from benchmarks.sections.search import bench_search

RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_SCALES = (10_000, 100_000, 1_000_000)


def run_section(sections: dict[str, Any], name: str, action: Callable[[], dict[str, Any]]) -> None:
    """Run one section, recording its result or its error; never abort the run."""
    log(f"{name}...")
    began = time.perf_counter()
    try:
        sections[name] = action()
    except Exception as exc:
        traceback.print_exc()
        sections[name] = {"error": f"{type(exc).__name__}: {exc}"}
    sections[name]["section_s"] = round(time.perf_counter() - began, 1)


ALL_SECTIONS = (
    "matmul",
    "parsing",
    "encoders",
    "query_encode",
    "search",
    "search_postgres",
    "ingest",
    "cold_start",
    "answer",
)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks and write ``bench-<date>.json`` and ``bench-latest.md``."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench",
        description="Speed benchmarks of the product's code paths (see the module docstring).",
    )
    parser.add_argument("--shared-data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out-dir", type=Path, default=RESULTS, help="Where results go.")
    parser.add_argument("--quick", action="store_true", help="Tiny sizes: a smoke run.")
    parser.add_argument(
        "--scales",
        default=None,
        help="Comma-separated passage counts for search (default 10000,100000,1000000).",
    )
    parser.add_argument("--max-scale", type=int, default=1_000_000, help="Skip larger scales.")
    parser.add_argument(
        "--max-build-s",
        type=float,
        default=4800.0,
        help="Skip a scale whose build is estimated to take longer (seconds).",
    )
    parser.add_argument("--sections", default=",".join(ALL_SECTIONS), help="Which sections.")
    parser.add_argument(
        "--resume",
        type=Path,
        metavar="BENCH_JSON",
        help="Complete a run cut short: keep the sections that file holds, run the missing "
        "ones, and write the results back into it.",
    )
    args = parser.parse_args(argv)

    os.environ.setdefault("PUBMED_RAG_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from evaluation.machine import machine_info
    from indexing.settings import get_settings

    get_settings.cache_clear()
    wanted = [name.strip() for name in args.sections.split(",") if name.strip()]
    quick = bool(args.quick)
    scales = (
        [int(s) for s in args.scales.split(",")]
        if args.scales
        else ([2_000] if quick else list(DEFAULT_SCALES))
    )
    shared: Path = args.shared_data.resolve()
    samples = shared / "pubmed-xml-samples"
    started = time.perf_counter()
    sections: dict[str, Any] = {}
    date = datetime.now(UTC).strftime("%Y-%m-%d")
    machine = machine_info()
    earlier_s, resumed, notes = 0.0, [], []
    out_dir: Path = args.out_dir
    json_path = out_dir / f"bench-{date}{'-quick' if quick else ''}.json"
    if args.resume:
        earlier = json.loads(args.resume.read_text(encoding="utf-8"))
        sections, date, quick = earlier["sections"], earlier["date"], earlier["quick"]
        resumed = [*earlier.get("resumed", []), {"at": machine["measured_at"],
                   "load_average": machine["load_average"], "kept": sorted(sections)}]  # fmt: skip
        machine, earlier_s = earlier["machine"], float(earlier["seconds"])
        notes = earlier.get("notes", [])
        json_path, out_dir = args.resume, args.resume.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    # A smoke run never replaces the summary of a real run.
    md_path = out_dir / ("bench-quick.md" if quick else "bench-latest.md")

    def save(complete: bool) -> dict[str, Any]:
        """Write what has been measured so far: a run cut short still leaves its figures."""
        result = {
            "date": date,
            "quick": quick,
            "json": json_path.name,
            "complete": complete,
            "pending": [name for name in wanted if name not in sections],
            "seconds": round(earlier_s + time.perf_counter() - started, 1),
            "machine": machine,
            **({"resumed": resumed} if resumed else {}),
            **({"notes": notes} if notes else {}),
            "sections": sections,
        }
        text = json.dumps(result, indent=2, ensure_ascii=False) + "\n"
        json_path.write_text(text, encoding="utf-8")
        md_path.write_text(markdown(result), encoding="utf-8")
        return result

    def section(name: str, action: Callable[[], dict[str, Any]]) -> None:
        if name in sections and "error" not in sections[name]:
            log(f"{name}: kept from {json_path.name}")
            return
        run_section(sections, name, action)
        save(complete=False)

    with tempfile.TemporaryDirectory(prefix="pubmed-rag-bench-") as tmp:
        work = Path(tmp)
        if "matmul" in wanted:
            section(
                "matmul",
                lambda: bench_matmul(1024 if quick else 2048, 1.0 if quick else 5.0),
            )
        gflops = float(_get(sections, "matmul", "gflops") or 0.0)
        if "parsing" in wanted:
            section("parsing", lambda: bench_parsing(samples, 1 if quick else 3))
        if "encoders" in wanted:
            counts = {"configured": 4, "pubmedbert-shaped": 2} if quick else {
                "configured": 128, "pubmedbert-shaped": 64}  # fmt: skip
            rounds = 1 if quick else 2
            section(
                "encoders",
                lambda: bench_encoders(shared, counts, rounds, gflops, work, quick),
            )
        if "query_encode" in wanted:
            section("query_encode", lambda: bench_query_encode(work, 10 if quick else 100))
        if "search" in wanted:
            section(
                "search",
                lambda: bench_search(
                    scales, args.max_scale, args.max_build_s, 10 if quick else 100, work
                ),
            )
        if "search_postgres" in wanted:
            from benchmarks.pg_search import bench_pg_search

            section(
                "search_postgres",
                lambda: bench_pg_search(
                    scales, args.max_scale, args.max_build_s, 10 if quick else 100, work
                ),
            )
        ingest_dir = work / "ingest"
        ingest_files = sample_xml_files(samples / "metapub" if quick else samples)
        if "ingest" in wanted or "answer" in wanted or "cold_start" in wanted:
            section("ingest", lambda: bench_ingest(ingest_files, ingest_dir))
        if "cold_start" in wanted:
            section("cold_start", lambda: bench_cold_start(ingest_dir, 1 if quick else 3))
        if "answer" in wanted:
            section(
                "answer",
                lambda: bench_answer(
                    ingest_dir, QUESTIONS[:1] if quick else QUESTIONS, 16 if quick else 256
                ),
            )
    result = save(complete=True)
    log(f"wrote {json_path} and {md_path} in {result['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
