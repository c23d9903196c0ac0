"""``make eval-dims``: SciFact nDCG@10, index size and serving memory per stored width (Matryoshka).

Each width is one ``python -m rag eval beir --no-baselines --no-ablations --serving-memory``
subprocess with
``PUBMED_RAG_EMBEDDINGS=<model>`` and ``PUBMED_RAG_DIMENSIONALITY=<width>`` (unset for
``full``), as a user would run it; the JSON files land in ``benchmarks/results/`` as
``eval-dims-<width>.json`` and the table in ``eval-dims.md``. Serving RSS is the peak of a
fresh process that opens the index and searches 50 queries (:mod:`evaluation.serving`); the
last column is what the dense vectors alone would take at a million passages (float32, the
layout txtai's exact faiss index stores), the scale where the width starts to matter.

The default model is ``neuml/pubmedbert-base-embeddings-matryoshka``, which must already be
in the Hugging Face cache (downloads are off during the run). ``--offline`` runs the same sweep
with the bundled MiniLM instead (not trained for truncation: a smoke run of the mechanics,
not a quality figure). ``--limit-queries N`` scores only N queries (development).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from benchmarks.evaluate import RESULTS, ROOT, log, run_eval

MATRYOSHKA = "neuml/pubmedbert-base-embeddings-matryoshka"
WIDTHS = ("full", "256", "128", "64")
MILLION = 1_000_000


def _mib(value: Any) -> str:
    return "–" if not value else f"{value / 2**20:.1f}"


def _rss(result: dict[str, Any]) -> str:
    served = result.get("product_serving") or {}
    peak = served.get("peak_rss_serving_mib")
    return f"{peak:,.0f}" if peak else "–"


def dims_table(results: dict[str, dict[str, Any]]) -> list[str]:
    """One row per width: nDCG@10, recall@100, vector and index sizes, serving RSS, and the
    vectors' size at a million passages."""
    lines = [
        "| stored width | nDCG@10 | recall@100 | vectors (MiB) | index on disk (MiB) "
        "| serving RSS (MiB) | vectors at 1M passages (MiB) | model |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for width, result in results.items():
        scores, product = result["product"], result["config"]["product"]
        dims = product.get("dimensions") or 0
        lines.append(
            f"| {width} ({dims}-d) | {scores['ndcg@10']:.3f} | "
            f"{scores['recall@100']:.3f} | {_mib(product.get('vector_bytes'))} | "
            f"{_mib(product.get('disk_bytes'))} | {_rss(result)} | "
            f"{_mib(MILLION * dims * 4)} | `{product.get('embeddings_model')}` |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run one SciFact evaluation per width and write the table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.dimensions", description=__doc__)
    parser.add_argument("--shared-data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    parser.add_argument("--model", default=MATRYOSHKA, help="Embedding model (hub id or folder).")
    parser.add_argument("--widths", default=",".join(WIDTHS), help="Comma-separated; full = unset.")
    parser.add_argument("--offline", action="store_true", help="Use the bundled MiniLM instead.")
    parser.add_argument("--limit-queries", type=int, help="Score only N queries (development).")
    args = parser.parse_args(argv)
    scifact = args.shared_data.resolve() / "scifact"
    out_dir: Path = args.out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    collection = ["--corpus", str(scifact / "corpus.jsonl"), "--queries",
                  str(scifact / "queries.jsonl"), "--qrels", str(scifact / "qrels-test.tsv")]  # fmt: skip
    if args.limit_queries:
        collection += ["--limit-queries", str(args.limit_queries)]
    model = {"PUBMED_RAG_OFFLINE": "1"} if args.offline else {
        "PUBMED_RAG_OFFLINE": "0", "PUBMED_RAG_EMBEDDINGS": args.model
    }  # fmt: skip
    tag = ("-offline" if args.offline else "") + (
        f"-q{args.limit_queries}" if args.limit_queries else ""
    )
    results: dict[str, dict[str, Any]] = {}
    for width in (part.strip() for part in args.widths.split(",") if part.strip()):
        env = {**model, "PUBMED_RAG_DIMENSIONALITY": "" if width == "full" else width}
        results[width] = run_eval(
            [
                "beir",
                *collection,
                "--no-baselines",
                "--no-ablations",
                "--serving-memory",
                "--quiet",
            ],
            out_dir / f"eval-dims-{width}{tag}.json",
            **env,
        )
    text = "\n".join(
        [
            f"# Stored width vs retrieval quality (SciFact test{tag or ''})",
            "",
            *dims_table(results),
            "",
            "Produced by `python -m benchmarks.dimensions " + " ".join(argv or sys.argv[1:]) + "`.",
            "",
        ]
    )
    md = out_dir / f"eval-dims{tag}.md"
    md.write_text(text, encoding="utf-8")
    log(f"wrote {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
