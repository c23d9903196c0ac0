"""The ``search`` section and its synthetic corpus (also built by :mod:`benchmarks.pg_search`)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.sections.common import ROOT, log

DIMENSIONS = 384  # synthetic search vectors (MiniLM-sized)
YEAR_FROM = 2010
TOPICS = 200


def build_bag_of_words(folder: Path, tokenizer_path: str, dimensions: int = DIMENSIONS) -> Path:
    """A 0-layer BERT (random token embeddings + mean pooling): fast synthetic vectors."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    transformer = folder / "transformer"
    config = BertConfig(
        hidden_size=dimensions, num_hidden_layers=0, num_attention_heads=6, intermediate_size=4
    )
    BertModel(config).save_pretrained(transformer)
    AutoTokenizer.from_pretrained(tokenizer_path).save_pretrained(transformer)
    word = Transformer(str(transformer), max_seq_length=128)
    pooling = Pooling(dimensions, pooling_mode="mean")
    SentenceTransformer(modules=[word, pooling], device="cpu").save(str(folder))
    return folder


def synthetic_vocabulary(tokenizer_path: str) -> list[str]:
    """Whole words of the tokenizer's vocabulary (alphabetic, 4+ letters)."""
    from transformers import AutoTokenizer

    vocab = AutoTokenizer.from_pretrained(tokenizer_path).get_vocab()
    return sorted(word for word in vocab if word.isalpha() and len(word) >= 4)


def synthetic_articles(
    count: int, vocabulary: list[str], seed: int = 0
) -> Iterator[tuple[Any, int]]:
    """``(Article, year)`` pairs: Zipf-distributed words with topic structure, one passage each."""
    from indexing.article import AbstractSection, Article

    rng = np.random.default_rng(seed)
    size = len(vocabulary)
    topic_words = rng.integers(0, size, size=(TOPICS, 40))
    block = 10_000
    for start in range(0, count, block):
        n = min(block, count - start)
        topics = rng.integers(0, TOPICS, size=n)
        general = np.minimum(rng.zipf(1.3, size=(n, 48)) - 1, size - 1)
        specific = topic_words[topics[:, None], rng.integers(0, 40, size=(n, 48))]
        words = np.where(rng.random((n, 48)) < 0.35, specific, general)
        years = rng.integers(1980, 2026, size=n)
        for row in range(n):
            tokens = [vocabulary[i] for i in words[row]]
            number = start + row + 1
            article = Article(
                pmid=str(number),
                title=" ".join(tokens[:8]).capitalize(),
                abstract=(AbstractSection(" ".join(tokens[8:]) + "."),),
                journal=f"Journal of Synthetic Studies {number % 50}",
                year=int(years[row]),
                languages=("eng",),
                publication_types=("Journal Article",),
            )
            yield article, int(years[row])


def build_synthetic(
    settings: Any, count: int, vocabulary: Any, model_dir: Path, desc: str
) -> list[int]:
    """Publish ``count`` synthetic articles with the product's writer, as ingestion batches
    them (:func:`indexing.store.build_index`); their years."""
    from tqdm import tqdm

    from indexing.models import ModelChoice
    from indexing.store import build_index

    years: list[int] = []

    def articles() -> Iterator[Any]:
        for article, year in synthetic_articles(count, vocabulary):
            years.append(year)
            yield article

    choice = ModelChoice(str(model_dir), str(model_dir))
    with tqdm(total=count, unit="doc", desc=desc, leave=False) as bar:
        build_index(articles(), settings, choice=choice, source="bench", run_id="bench",
                    on_batch=bar.update)  # fmt: skip
    return years


def synthetic_queries(count: int, vocabulary: list[str], seed: int = 1) -> list[str]:
    """Short queries drawn from the same distribution as the texts."""
    articles = [a for a, _ in synthetic_articles(count, vocabulary, seed)]
    rng = np.random.default_rng(seed)
    queries = []
    for article in articles:
        words = article.abstract[0].text.rstrip(".").split()
        picks = rng.choice(len(words), size=5, replace=False)
        queries.append(" ".join(words[i] for i in sorted(picks)))
    return queries


def build_synthetic_index(
    data_dir: Path, count: int, model_dir: Path, vocabulary: list[str], ann: str = "exact"
) -> float:
    """Publish ``count`` synthetic articles the way ingestion does; return the build seconds.

    ``ann`` is the ``PUBMED_RAG_ANN`` setting of the build (``exact`` here: the baseline the
    approximate copy of :func:`approximate_copy` is measured against).
    """
    from indexing.settings import Settings

    settings = Settings(data_dir=data_dir, offline=True, ann=ann)
    began = time.perf_counter()
    years = build_synthetic(settings, count, vocabulary, model_dir, f"building {count:,}")
    elapsed = time.perf_counter() - began
    np.save(data_dir / "years.npy", np.asarray(years, dtype=np.int32))
    return elapsed


def approximate_copy(exact_dir: Path, data_dir: Path, model_dir: Path) -> float:
    """Copy an exact index and publish the copy with ``PUBMED_RAG_ANN=auto``, its threshold
    at the lowest allowed: the writer gives it the approximate layout (:mod:`indexing.store.ann`)
    as it would for a large index. Returns the seconds the publish took (copy excluded)."""
    import shutil

    from indexing.models import ModelChoice
    from indexing.settings import Settings
    from indexing.store.factory import open_store

    shutil.rmtree(data_dir, ignore_errors=True)
    shutil.copytree(exact_dir, data_dir, ignore=shutil.ignore_patterns("hits.json"))
    settings = Settings(data_dir=data_dir, offline=True, ann="auto", ann_min_passages=1)
    store = open_store(settings)
    try:
        began = time.perf_counter()
        choice = ModelChoice(str(model_dir), str(model_dir))
        with store.lock(purpose="bench"), store.open_writer(choice) as writer:
            writer.publish("bench-ann")
        return time.perf_counter() - began
    finally:
        store.close()


def encoder_rate(model_dir: Path, vocabulary: list[str], count: int = 2000) -> float:
    """Passages per second of the synthetic encoder alone, on the same synthetic texts."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_dir), device="cpu")
    texts = [f"{a.title}\n{a.abstract[0].text}" for a, _ in synthetic_articles(count, vocabulary)]
    model.encode(texts[:64], batch_size=32)
    began = time.perf_counter()
    model.encode(texts, batch_size=32)
    return count / (time.perf_counter() - began)


def probe(data_dir: Path, queries: list[str], exact_dir: Path | None = None) -> dict[str, Any]:
    """Run :mod:`benchmarks.search_probe` in a fresh process; its JSON line."""
    spec = data_dir / "queries.json"
    spec.write_text(json.dumps({"queries": queries, "year_from": YEAR_FROM}), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PUBMED_RAG_OFFLINE": "1"}
    extra = ["--exact-dir", str(exact_dir)] if exact_dir else []
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.search_probe", "--data-dir", str(data_dir),
         "--queries", str(spec), *extra],
        capture_output=True, text=True, env=env, cwd=ROOT, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"search probe failed: {done.stderr.strip()[-2000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def bench_search(
    scales: Sequence[int], max_scale: int, max_build_s: float, queries: int, work: Path
) -> dict[str, Any]:
    """Build, serve and measure each scale; skip what the caps rule out, saying why.

    Each scale is built exact (the entry's own figures) and then given the approximate layout
    on a copy (``ann``: the same figures, recall against the exact index's float32 vectors, and
    ``hybrid_overlap@10``, the share of the exact index's hybrid hits it returns too).
    """
    from indexing.models import resolve_embeddings
    from indexing.settings import get_settings

    tokenizer_path = resolve_embeddings(get_settings()).path
    model_dir = build_bag_of_words(work / "bag-of-words", tokenizer_path)
    vocabulary = synthetic_vocabulary(tokenizer_path)
    texts = synthetic_queries(queries, vocabulary)
    report: dict[str, Any] = {
        "filter": f"year >= {YEAR_FROM}",
        "vectors": f"0-layer BERT (random token embeddings, mean pooling), {DIMENSIONS} dims",
        "dimensions": DIMENSIONS,
        "max_scale": max_scale,
        "max_build_s": max_build_s,
        "scales": {},
    }
    report["encoder_passages_per_s"] = round(encoder_rate(model_dir, vocabulary), 1)
    rate: float | None = None  # passages per second of the last build
    for scale in sorted(scales):
        if scale > max_scale:
            report["scales"][str(scale)] = {"skipped": f"above --max-scale {max_scale}"}
            continue
        if rate and scale / rate > max_build_s:
            report["scales"][str(scale)] = {
                "skipped": f"estimated build {scale / rate:.0f} s > --max-build-s {max_build_s:.0f}"
            }
            continue
        data_dir = work / f"search-{scale}"
        log(f"search: building {scale:,} passages")
        built = build_synthetic_index(data_dir, scale, model_dir, vocabulary)
        rate = scale / built
        log(f"search: built in {built:.0f} s; serving in a subprocess")
        entry: dict[str, Any] = {"build_s": round(built, 1), "build_passages_per_s": round(rate, 1)}
        # The synthetic encoder's share of the build; the rest is the store (txtai's content
        # database, BM25 terms index, faiss, the catalog).
        entry["encoder_share_of_build"] = round(rate / report["encoder_passages_per_s"], 3)
        entry.update(probe(data_dir, texts))
        ann_dir = work / f"search-{scale}-ann"
        log(f"search: approximate layout of {scale:,} passages")
        layout_s = approximate_copy(data_dir, ann_dir, model_dir)
        entry["ann"] = {"layout_s": round(layout_s, 1), **probe(ann_dir, texts, data_dir)}
        report["scales"][str(scale)] = entry
        with contextlib.suppress(OSError):
            import shutil

            shutil.rmtree(data_dir)
            shutil.rmtree(ann_dir)
    return report
