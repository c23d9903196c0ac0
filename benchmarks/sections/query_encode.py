"""The ``query_encode`` section: p50/p95 of encoding one short query, both encoders."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from benchmarks.sections.common import percentiles
from benchmarks.sections.encoders import build_bert_base, product_encoder

SHORT_QUERY = "statin therapy and risk of myopathy"


def bench_query_encode(work: Path, repeats: int) -> dict[str, Any]:
    """p50/p95 of one short query through the product's path (its choice, fp32, int8), both encoders."""
    from indexing.models import resolve_embeddings
    from indexing.onnx_encoder import unavailable
    from indexing.settings import get_settings

    choice = resolve_embeddings(get_settings())
    bert_dir = work / "pubmedbert-shaped"
    if not (bert_dir / "modules.json").exists():
        build_bert_base(bert_dir, choice.path)
    report: dict[str, Any] = {"query": SHORT_QUERY, "repeats": repeats}
    for key, (name, path) in {
        "configured": (choice.name, choice.path),
        "pubmedbert-shaped": ("bench:pubmedbert-shaped", str(bert_dir)),
    }.items():
        variants = [("product", None), ("product_fp32", "fp32")]
        if not unavailable(path, "sentence-transformers"):
            variants.append(("product_int8", "int8"))
        for label, precision in variants:
            encode, embeddings = product_encoder(name, path, precision)
            encode([SHORT_QUERY])
            times = []
            for _ in range(repeats):
                began = time.perf_counter()
                encode([SHORT_QUERY])
                times.append((time.perf_counter() - began) * 1000)
            report[f"{key}/{label}"] = {
                "model": name,
                "precision": (embeddings.config or {}).get("encoder", {}).get("precision"),
                **percentiles(times),
            }
    configured = report["configured/product"]
    report["p50"], report["p95"] = configured["p50"], configured["p95"]
    return report
