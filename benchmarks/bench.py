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
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_SCALES = (10_000, 100_000, 1_000_000)
ABSTRACT_TOKENS = 300
DIMENSIONS = 384  # synthetic search vectors (MiniLM-sized)
SHORT_QUERY = "statin therapy and risk of myopathy"
SORT_WINDOW_TEXT = "1024 texts per txtai call"
QUESTIONS = (
    "Is long-term use of proton pump inhibitors safe?",
    "Does Helicobacter pylori infection cause gastric cancer?",
    "What are the risks of radiotherapy?",
)


def log(message: str) -> None:
    """Progress on stderr (results go to files)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50/p95 in the values' unit, rounded."""
    array = np.asarray(values, dtype=np.float64)
    return {
        "p50": round(float(np.percentile(array, 50)), 2),
        "p95": round(float(np.percentile(array, 95)), 2),
    }


# -- matmul --------------------------------------------------------------------------------------


def bench_matmul(size: int, seconds: float) -> dict[str, Any]:
    """Best fp32 (and bf16) matmul rate over ``seconds`` of repeated ``size``×``size`` products.

    fp32 is the reference every encoder figure is divided by; bf16 is what the bf16 encoder
    path can attain at best on this CPU (reported, not used as a divisor).
    """
    import torch

    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator, dtype=torch.float32)
    b = torch.randn(size, size, generator=generator, dtype=torch.float32)
    report: dict[str, Any] = {"size": size, "threads": torch.get_num_threads()}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        x, y = a.to(dtype), b.to(dtype)
        torch.matmul(x, y)  # warm up
        best, runs = 0.0, 0
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline or runs < 3:
            began = time.perf_counter()
            torch.matmul(x, y)
            best = max(best, 2 * size**3 / (time.perf_counter() - began))
            runs += 1
        report["gflops" if name == "fp32" else "bf16_gflops"] = round(best / 1e9, 1)
        report[f"{name}_runs"] = runs
    return report


# -- parsing -------------------------------------------------------------------------------------


def sample_xml_files(samples: Path) -> list[Path]:
    """Every PubMed XML sample file under ``samples`` (``.xml``, ``.xml.gz``), recursively."""
    return sorted(
        path
        for path in samples.rglob("*")
        if path.is_file() and (path.name.endswith(".xml") or path.name.endswith(".xml.gz"))
    )


def bench_parsing(samples: Path, repeats: int) -> dict[str, Any]:
    """Records/s of the streaming parser over every sample XML file (best of ``repeats``).

    Some samples are not PubMed article sets (other XML from parser test suites); a file the
    parser rejects is counted, not timed twice.
    """
    from indexing.pubmed import open_xml, parse_pubmed_xml

    files = sample_xml_files(samples)
    best = float("inf")
    records = 0
    rejected: set[str] = set()
    for _ in range(repeats):
        records = 0
        began = time.perf_counter()
        for path in files:
            try:
                with open_xml(path) as stream:
                    for _record in parse_pubmed_xml(stream):
                        records += 1
            except Exception:
                rejected.add(path.name)
        best = min(best, time.perf_counter() - began)
    return {
        "files": len(files),
        "files_rejected": sorted(rejected),
        "records": records,
        "bytes": sum(path.stat().st_size for path in files),
        "seconds": round(best, 3),
        "records_per_s": round(records / best, 1) if best > 0 else None,
    }


# -- encoders ------------------------------------------------------------------------------------

Encode = Callable[[list[str]], Any]


def flops_per_token(layers: int, hidden: int, ffn: int, seq_len: int) -> float:
    """Matmul FLOPs per token of a BERT encoder at sequence length ``seq_len`` (see docstring)."""
    return 2 * layers * (4 * hidden**2 + 2 * hidden * ffn) + 4 * layers * seq_len * hidden


def build_bert_base(folder: Path, tokenizer_path: str) -> Path:
    """A PubMedBERT-shaped sentence-transformers model (BERT-base, random weights, mean pooling).

    PubMedBERT's vocabulary also has 30,522 entries; the bundled MiniLM's BERT tokenizer
    stands in for it, so nothing is downloaded.
    """
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    transformer = folder / "transformer"
    BertModel(BertConfig()).save_pretrained(transformer)
    AutoTokenizer.from_pretrained(tokenizer_path).save_pretrained(transformer)
    word = Transformer(str(transformer), max_seq_length=512)
    pooling = Pooling(word.get_embedding_dimension(), pooling_mode="mean")
    SentenceTransformer(modules=[word, pooling], device="cpu").save(str(folder))
    return folder


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


def abstract_texts(shared: Path, tokenizer_path: str, count: int) -> list[str]:
    """``count`` real abstracts (PubMedQA contexts, joined when short) cut to 300 tokens."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    raw = json.loads((shared / "pubmedqa" / "ori_pqal.json").read_text(encoding="utf-8"))
    texts: list[str] = []
    pending: list[int] = []
    for row in raw.values():
        pending += tokenizer(" ".join(row["CONTEXTS"]), add_special_tokens=False)["input_ids"]
        if len(pending) >= ABSTRACT_TOKENS - 2:
            texts.append(str(tokenizer.decode(pending[: ABSTRACT_TOKENS - 2])))
            pending = []
            if len(texts) == count:
                break
    return texts


def product_encoder(name: str, path: str, precision: str | None = None) -> tuple[Encode, Any]:
    """The encoder ingestion uses, built by the product's own configuration function.

    ``precision`` overrides the ``encoder_precision`` setting (``fp32`` = the fast path off).
    Returns the encode function and the txtai ``Embeddings`` (for its configuration).
    """
    from txtai import Embeddings

    from indexing.models import ModelChoice
    from indexing.settings import get_settings
    from indexing.store.config import embeddings_config

    settings = get_settings()
    if precision is not None:
        settings = settings.model_copy(update={"encoder_precision": precision})
    embeddings = Embeddings(embeddings_config(ModelChoice(name, path), settings))
    return embeddings.batchtransform, embeddings


def txtai_default_encoder(path: str) -> Encode:
    """txtai's default embedding path: ``Embeddings(path=…)`` (transformers, mean pooling, fp32)."""
    from txtai import Embeddings

    return Embeddings(path=path).batchtransform


def candidate_encoders(path: str, batch: int) -> dict[str, Encode | str]:
    """Other ways to run the encoder, measured to justify the product's choice (README).

    sentence-transformers directly: fp32, bf16 weights (what the product does), bf16 autocast
    (weights fp32), int8 dynamic quantization of the Linear layers. ONNX Runtime and OpenVINO
    are measured when installed (they are not dependencies of the product); otherwise the
    entry says so.
    """
    import importlib.util

    import torch
    from sentence_transformers import SentenceTransformer

    def wrap(model: Any, autocast: bool = False) -> Encode:
        def encode(texts: list[str]) -> Any:
            with torch.inference_mode():
                if autocast:
                    with torch.autocast("cpu", dtype=torch.bfloat16):
                        return model.encode(texts, batch_size=batch)
                return model.encode(texts, batch_size=batch)

        return encode

    fp32 = {"dtype": torch.float32}
    int8 = SentenceTransformer(path, device="cpu", model_kwargs=fp32)
    int8[0].auto_model = torch.ao.quantization.quantize_dynamic(
        int8[0].auto_model, {torch.nn.Linear}, dtype=torch.qint8
    )
    candidates: dict[str, Encode | str] = {
        "st-fp32": wrap(SentenceTransformer(path, device="cpu", model_kwargs=fp32)),
        "st-bf16-weights": wrap(
            SentenceTransformer(path, device="cpu", model_kwargs={"dtype": torch.bfloat16})
        ),
        "st-bf16-autocast": wrap(
            SentenceTransformer(path, device="cpu", model_kwargs=fp32), autocast=True
        ),
        "st-int8-dynamic": wrap(int8),
    }
    for backend, module in (("onnx", "onnxruntime"), ("openvino", "openvino")):
        if importlib.util.find_spec(module) is None:
            candidates[f"st-{backend}"] = f"not installed ({module} is not a dependency)"
    return candidates


def time_paths(
    paths: dict[str, Encode], texts: list[str], rounds: int
) -> dict[str, tuple[float, float, Any]]:
    """``{name: (best wall s, its CPU s, vectors)}``; rounds interleave the paths.

    Interleaving and taking each path's best round keep a noisy neighbour on a shared machine
    from favouring whichever path ran at a quiet moment.
    """
    for encode in paths.values():
        encode(texts[:2])  # warm up: lazy loading, allocator, thread pool
    best: dict[str, tuple[float, float, Any]] = {}
    for _ in range(rounds):
        for name, encode in paths.items():
            wall, cpu = time.perf_counter(), time.process_time()
            vectors = np.asarray(encode(texts), dtype=np.float32)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            if name not in best or wall < best[name][0]:
                best[name] = (wall, cpu, vectors)
    return best


def throughput(
    elapsed: tuple[float, float, Any],
    token_counts: list[int],
    shape: tuple[int, int, int],
    gflops: float,
) -> dict[str, Any]:
    """Tokens/s, abstracts/s, achieved GFLOP/s and share of the fp32 matmul rate."""
    wall, cpu, vectors = elapsed
    layers, hidden, ffn = shape
    tokens = sum(token_counts)
    flops = sum(n * flops_per_token(layers, hidden, ffn, n) for n in token_counts)
    achieved = flops / wall / 1e9
    return {
        "abstracts": len(token_counts),
        "tokens": tokens,
        "seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 2),
        "tokens_per_s": round(tokens / wall, 1),
        "abstracts_per_s": round(len(token_counts) / wall, 2),
        "gflops": round(achieved, 2),
        "share_of_matmul": round(achieved / gflops, 4) if gflops else None,
        "dimensions": int(vectors.shape[1]) if vectors.ndim == 2 else None,
    }


def cosine_stats(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Mean and minimum cosine similarity of matching rows."""
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    cosines = (a * b).sum(axis=1)
    return {"mean": round(float(cosines.mean()), 6), "min": round(float(cosines.min()), 6)}


def padding_share(lengths: Sequence[int], window: int, batch: int) -> float:
    """Share of encoder positions that are padding when each ``window`` of texts (in arrival
    order) is sorted by length and cut into batches of ``batch``, as sentence-transformers does
    within one txtai vectorize call."""
    padded = 0
    for start in range(0, len(lengths), window):
        ordered = sorted(lengths[start : start + window], reverse=True)
        for first in range(0, len(ordered), batch):
            chunk = ordered[first : first + batch]
            padded += chunk[0] * len(chunk)
    return round(1 - sum(lengths) / padded, 4) if padded else 0.0


def real_passage_padding(shared: Path, tokenizer_path: str, batch: int) -> dict[str, Any]:
    """Padding waste on real passages (PubMedQA abstracts split as ingestion splits them)."""
    from transformers import AutoTokenizer

    from indexing.article import AbstractSection, Article, article_documents
    from indexing.settings import get_settings
    from indexing.store.config import SORT_WINDOW

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    raw = json.loads((shared / "pubmedqa" / "ori_pqal.json").read_text(encoding="utf-8"))
    texts = [
        document["text"]
        for pmid, row in raw.items()
        for document in article_documents(
            Article(
                pmid=pmid,
                title=str(row["QUESTION"]),
                abstract=tuple(AbstractSection(str(c)) for c in row["CONTEXTS"]),
            ),
            get_settings().passage_tokens,
        )
    ]
    lengths = [min(len(ids), 512) for ids in tokenizer(texts)["input_ids"]]
    return {
        "passages": len(lengths),
        "mean_tokens": round(sum(lengths) / len(lengths), 1),
        "encode_batch": batch,
        f"padding_share_sorted_within_{batch}": padding_share(lengths, batch, batch),
        f"padding_share_sorted_within_{SORT_WINDOW} (product)": padding_share(
            lengths, SORT_WINDOW, batch
        ),
        "note": "an earlier product configuration sorted only within each encoder batch",
    }


def encoder_shape(path: str) -> tuple[tuple[int, int, int], int]:
    """``((layers, hidden, ffn), max_seq_length)`` of a sentence-transformers BERT folder."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(path, device="cpu")
    transformer: Any = model[0]
    config = transformer.auto_model.config
    shape = (
        int(config.num_hidden_layers),
        int(config.hidden_size),
        int(config.intermediate_size),
    )
    return shape, int(model.max_seq_length or 512)


def bench_encoders(
    shared: Path, counts: dict[str, int], rounds: int, gflops: float, work: Path, quick: bool
) -> dict[str, Any]:
    """Both encoders through the product's path, with the fast path off, and txtai's default.

    Ratios come from the same run: ``product_vs_txtai_default`` (issue 7's goal),
    ``product_vs_fp32`` (what the precision alone buys) and each path's share of the fp32
    matmul rate. For the configured encoder (real weights), the cosine similarity of the
    product's vectors to fp32 vectors of the same real abstracts is the quality check.
    """
    from transformers import AutoTokenizer

    from indexing.encoder import cpu_flags, native_bf16
    from indexing.models import resolve_embeddings
    from indexing.settings import get_settings

    settings = get_settings()
    configured = resolve_embeddings(settings)
    bert_dir = build_bert_base(work / "pubmedbert-shaped", configured.path)
    encoders = {
        "configured": (configured.name, configured.path),
        "pubmedbert-shaped": ("bench:pubmedbert-shaped (BERT-base, random weights)", str(bert_dir)),
    }
    texts_all = abstract_texts(shared, configured.path, max(counts.values()))
    tokenizer = AutoTokenizer.from_pretrained(configured.path)
    report: dict[str, Any] = {
        "abstract_tokens": ABSTRACT_TOKENS,
        "rounds": rounds,
        "encode_batch": settings.encode_batch,
        "encoder_precision_setting": settings.encoder_precision,
        "native_bf16": native_bf16(),
        "cpu_bf16_flags": sorted(flag for flag in cpu_flags() if "bf16" in flag),
        "flops_formula": "2*layers*(4*h^2 + 2*h*ffn) + 4*layers*L*h per token (matmuls only)",
        "timing": "best of the rounds (paths interleaved); wall clock",
        "real_passage_padding": real_passage_padding(
            shared, configured.path, settings.encode_batch
        ),
    }
    for key, (name, path) in encoders.items():
        shape, max_len = encoder_shape(path)
        texts = texts_all[: counts[key]]
        token_counts = [
            min(len(ids), max_len) for ids in tokenizer(texts, truncation=False)["input_ids"]
        ]
        log(f"encoders: {key} ({len(texts)} abstracts x {rounds} rounds)")
        product, embeddings = product_encoder(name, path)
        product_fp32, _ = product_encoder(name, path, precision="fp32")
        paths: dict[str, Encode] = {
            "product": product,
            "product_fp32": product_fp32,
            "txtai_default": txtai_default_encoder(path),
        }
        timed = time_paths(paths, texts, rounds)
        entry: dict[str, Any] = {
            "model": name,
            "layers_hidden_ffn": list(shape),
            "max_seq_length": max_len,
            "flops_per_token_at_300": round(flops_per_token(*shape, ABSTRACT_TOKENS) / 1e6, 1),
            "product_config": {
                k: v for k, v in (embeddings.config or {}).items() if k not in ("path",)
            },
        }
        for label in paths:
            entry[label] = throughput(timed[label], token_counts, shape, gflops)
        rate = {label: entry[label]["tokens_per_s"] for label in paths}
        entry["product_vs_txtai_default"] = round(rate["product"] / rate["txtai_default"], 2)
        entry["product_vs_fp32"] = round(rate["product"] / rate["product_fp32"], 2)
        entry["cosine_product_vs_fp32"] = cosine_stats(
            timed["product"][2], timed["product_fp32"][2]
        )
        entry["cosine_product_vs_txtai_default"] = cosine_stats(
            timed["product"][2], timed["txtai_default"][2]
        )
        if key == "pubmedbert-shaped" and not quick:
            log("encoders: candidate ways to run the PubMedBERT-shaped encoder")
            candidates = candidate_encoders(path, settings.encode_batch)
            runnable = {k: v for k, v in candidates.items() if callable(v)}
            measured = time_paths(runnable, texts, max(1, rounds - 1))
            entry["candidates"] = {
                label: (
                    {
                        **throughput(measured[label], token_counts, shape, gflops),
                        "vs_txtai_default": round(
                            sum(token_counts) / measured[label][0] / rate["txtai_default"], 2
                        ),
                    }
                    if label in measured
                    else {"skipped": candidates[label]}
                )
                for label in candidates
            }
        report[key] = entry
    return report


def bench_query_encode(work: Path, repeats: int) -> dict[str, Any]:
    """p50/p95 of one short query through the product's path (fast and fp32), both encoders."""
    from indexing.models import resolve_embeddings
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
        for label, precision in (("product", None), ("product_fp32", "fp32")):
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


# -- search at scale -----------------------------------------------------------------------------

YEAR_FROM = 2010
TOPICS = 200


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
    data_dir: Path, count: int, model_dir: Path, vocabulary: list[str]
) -> float:
    """Publish ``count`` synthetic articles the way ingestion does; return the build seconds."""
    from indexing.settings import Settings

    settings = Settings(data_dir=data_dir, offline=True)
    began = time.perf_counter()
    years = build_synthetic(settings, count, vocabulary, model_dir, f"building {count:,}")
    elapsed = time.perf_counter() - began
    np.save(data_dir / "years.npy", np.asarray(years, dtype=np.int32))
    return elapsed


def probe(data_dir: Path, queries: list[str]) -> dict[str, Any]:
    """Run :mod:`benchmarks.search_probe` in a fresh process; its JSON line."""
    spec = data_dir / "queries.json"
    spec.write_text(json.dumps({"queries": queries, "year_from": YEAR_FROM}), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PUBMED_RAG_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.search_probe", "--data-dir", str(data_dir),
         "--queries", str(spec)],
        capture_output=True, text=True, env=env, cwd=ROOT, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"search probe failed: {done.stderr.strip()[-2000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def bench_search(
    scales: Sequence[int], max_scale: int, max_build_s: float, queries: int, work: Path
) -> dict[str, Any]:
    """Build, serve and measure each scale; skip what the caps rule out, saying why."""
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
        entry = {"build_s": round(built, 1), "build_passages_per_s": round(rate, 1)}
        entry.update(probe(data_dir, texts))
        report["scales"][str(scale)] = entry
        with contextlib.suppress(OSError):
            import shutil

            shutil.rmtree(data_dir)
    return report


# -- ingestion and answers -----------------------------------------------------------------------


def bench_ingest(samples: list[Path], data_dir: Path) -> dict[str, Any]:
    """Records/s from the local E-utilities server to a published index (offline embedder)."""
    from indexing.ingest import ingest_query
    from indexing.settings import Settings
    from testkit.eutils_server import EutilsServer, load_records

    records = load_records([path for path in samples if path.exists()])
    with EutilsServer(records) as server:
        settings = Settings(
            data_dir=data_dir, offline=True, eutils_url=server.url, ncbi_email="bench@example.org"
        )
        began = time.perf_counter()
        report = ingest_query("all[sb]", settings, quiet=True)
        elapsed = time.perf_counter() - began
    return {
        "records_served": len(records),
        "added": report.added,
        "seconds": round(elapsed, 2),
        "records_per_s": round(report.added / elapsed, 2) if elapsed > 0 else None,
        "note": "includes the client's NCBI rate limit (3 requests/s without an API key)",
    }


def bench_answer(data_dir: Path, questions: Sequence[str], max_tokens: int) -> dict[str, Any]:
    """TTFT and tokens/s of the offline generator with 5 sources, generator loaded beforehand."""
    from indexing.settings import Settings
    from rag.service import AnswerService
    from rag.settings import RagSettings

    settings = Settings(data_dir=data_dir, offline=True)
    rag = RagSettings(top_k=5, abstain_threshold=-1.0, max_answer_tokens=max_tokens)
    service = AnswerService(settings=settings, rag=rag)
    began = time.perf_counter()
    service.load_generator()
    load_s = time.perf_counter() - began
    rows: list[dict[str, Any]] = []
    for question in questions:
        answer = service.answer(question)
        rows.append(
            {
                "question": question,
                "sources": len(answer.context),
                "first_token_ms": answer.timings.first_token_ms,
                "tokens_per_s": answer.timings.tokens_per_s,
                "generated_tokens": answer.timings.generated_tokens,
                "retrieval_ms": round(answer.timings.retrieval_ms, 1),
                "evidence_ms": answer.timings.evidence_ms,
                "prompt_tokens": answer.timings.prompt_tokens,
                "evidence": len(answer.evidence),
            }
        )
    ttft = [float(r["first_token_ms"]) for r in rows if r["first_token_ms"] is not None]
    evidence = [float(r["evidence_ms"]) for r in rows if r["evidence_ms"] is not None]
    speed = [float(r["tokens_per_s"]) for r in rows if r["tokens_per_s"] is not None]
    return {
        "model": service.model_name,
        "load_s": round(load_s, 2),
        "max_answer_tokens": max_tokens,
        "first_token_ms_median": round(float(np.median(ttft)), 1) if ttft else None,
        "evidence_ms_median": round(float(np.median(evidence)), 1) if evidence else None,
        "tokens_per_s_median": round(float(np.median(speed)), 2) if speed else None,
        "answers": rows,
    }


# -- report --------------------------------------------------------------------------------------


def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        text = f"{value:,.4g}" if abs(value) < 10 else f"{value:,.1f}"
    else:
        text = f"{value:,}" if isinstance(value, int) else str(value)
    return f"{text}{unit}"


def markdown(result: dict[str, Any]) -> str:
    """The summary table of one run."""
    machine = result["machine"]
    sections = result["sections"]
    lines = [
        f"# Benchmarks ({result['date']}{', quick' if result['quick'] else ''})",
        "",
        *(
            [f"**Incomplete run**: not yet measured: {', '.join(result['pending'])}.", ""]
            if not result.get("complete", True)
            else []
        ),
        *(
            line
            for resume in result.get("resumed", [])
            for line in (
                f"Completed by `--resume` at {resume['at']} (load average "
                f"{[round(x, 2) for x in resume['load_average'] or []]}), keeping "
                f"{', '.join(resume['kept'])}.",
                "",
            )
        ),
        f"Machine: **{machine['cpu']}**, {machine['cores']} cores, "
        f"{machine['memory_gib']} GiB; load average at start {machine['load_average']}.",
        f"fp32 matmul: **{_fmt(_get(sections, 'matmul', 'gflops'))} GFLOP/s** "
        f"(bf16: {_fmt(_get(sections, 'matmul', 'bf16_gflops'))}; "
        f"n={_get(sections, 'matmul', 'size')}, {_get(sections, 'matmul', 'threads')} threads).",
        "",
        "| measure | product | baseline / reference |",
        "|---|---|---|",
    ]
    parsing = sections.get("parsing", {})
    lines.append(
        f"| PubMed XML parsing | {_fmt(parsing.get('records_per_s'))} records/s "
        f"({_fmt(parsing.get('records'))} records) | – |"
    )
    encoders = sections.get("encoders", {})
    for key in ("pubmedbert-shaped", "configured"):
        entry = encoders.get(key)
        if not isinstance(entry, dict):
            continue
        precision = _get(entry, "product_config", "encoder", "precision")
        product, default = entry.get("product", {}), entry.get("txtai_default", {})
        fp32 = entry.get("product_fp32", {})
        lines.append(
            f"| encoder {key} ({precision}): tokens/s, abstracts/s | "
            f"**{_fmt(product.get('tokens_per_s'))}**, {_fmt(product.get('abstracts_per_s'))} | "
            f"txtai default (fp32): {_fmt(default.get('tokens_per_s'))}, "
            f"{_fmt(default.get('abstracts_per_s'))} → product/default "
            f"**{_fmt(entry.get('product_vs_txtai_default'))}×**; product with "
            f"`PUBMED_RAG_ENCODER_PRECISION=fp32`: {_fmt(fp32.get('tokens_per_s'))} "
            f"({_fmt(entry.get('product_vs_fp32'))}×) |"
        )
        lines.append(
            f"| encoder {key}: GFLOP/s (share of fp32 matmul) | "
            f"{_fmt(product.get('gflops'))} ({_fmt(product.get('share_of_matmul'))}) | "
            f"txtai default: {_fmt(default.get('gflops'))} "
            f"({_fmt(default.get('share_of_matmul'))}) |"
        )
        lines.append(
            f"| encoder {key}: cosine to fp32 vectors (mean, min) | "
            f"{_fmt(_get(entry, 'cosine_product_vs_fp32', 'mean'))}, "
            f"{_fmt(_get(entry, 'cosine_product_vs_fp32', 'min'))} | – |"
        )
        for label, candidate in (entry.get("candidates") or {}).items():
            if "skipped" in candidate:
                lines.append(f"| candidate {label} | {candidate['skipped']} | – |")
                continue
            lines.append(
                f"| candidate {label} | {_fmt(candidate.get('tokens_per_s'))} tok/s | "
                f"{_fmt(candidate.get('vs_txtai_default'))}× txtai default |"
            )
    padding = encoders.get("real_passage_padding") or {}
    shares = [v for k, v in padding.items() if k.startswith("padding_share")]
    if len(shares) == 2:
        lines.append(
            f"| padding share, {_fmt(padding.get('passages'))} real passages "
            f"(mean {_fmt(padding.get('mean_tokens'))} tokens) | {_fmt(shares[1])} "
            f"(sorted within {SORT_WINDOW_TEXT}) | {_fmt(shares[0])} (sorted within each batch) |"
        )
    query = sections.get("query_encode", {})
    for key in ("configured", "pubmedbert-shaped"):
        fast, exact = query.get(f"{key}/product"), query.get(f"{key}/product_fp32")
        if isinstance(fast, dict) and isinstance(exact, dict):
            lines.append(
                f"| short query encode, {key} ({fast.get('precision')}) | "
                f"p50 {_fmt(fast.get('p50'), ' ms')}, p95 {_fmt(fast.get('p95'), ' ms')} | "
                f"fp32: p50 {_fmt(exact.get('p50'), ' ms')} |"
            )
    dimensions = _get(sections, "search", "dimensions")
    for scale, entry in (_get(sections, "search", "scales") or {}).items():
        if "skipped" in entry:
            lines.append(f"| hybrid search + filter, {int(scale):,} passages | skipped: "
                         f"{entry['skipped']} | – |")  # fmt: skip
            continue
        vectors = (
            f" (its float32 vectors alone: {_fmt(int(scale) * dimensions * 4 / 2**20, ' MiB')})"
            if dimensions and entry.get("peak_rss_serving_mib")
            else ""
        )
        lines.append(
            f"| hybrid search + filter, {int(scale):,} passages | p50 {_fmt(entry['p50_ms'], ' ms')},"
            f" p95 {_fmt(entry['p95_ms'], ' ms')}; peak RSS {_fmt(entry['peak_rss_serving_mib'], ' MiB')}"
            f"{vectors} | faiss {entry['faiss']}: recall@10 vs exact {_fmt(entry['ann_recall@10'])}, "
            f"filtered dense {_fmt(entry['filtered_dense_recall@10'])} |"
        )
    embedded = _get(sections, "search", "scales") or {}
    for scale, entry in (_get(sections, "search_postgres", "scales") or {}).items():
        beside = embedded.get(scale, {})
        if "skipped" in entry:
            lines.append(f"| hybrid search + filter on PostgreSQL, {int(scale):,} passages | "
                         f"skipped: {entry['skipped']} | – |")  # fmt: skip
            continue
        lines.append(
            f"| hybrid search + filter on PostgreSQL, {int(scale):,} passages | "
            f"p50 {_fmt(entry['p50_ms'], ' ms')}, p95 {_fmt(entry['p95_ms'], ' ms')} "
            f"(built at {_fmt(entry.get('build_passages_per_s'))} passages/s) | "
            f"embedded: p50 {_fmt(beside.get('p50_ms'), ' ms')}, "
            f"p95 {_fmt(beside.get('p95_ms'), ' ms')} |"
        )
    ingest = sections.get("ingest", {})
    lines.append(
        f"| ingestion end to end (local E-utilities) | {_fmt(ingest.get('records_per_s'))} records/s "
        f"({_fmt(ingest.get('added'))} records) | – |"
    )
    answer = sections.get("answer", {})
    lines.append(
        f"| answer, 5 sources ({answer.get('model', '–')}) | key evidence "
        f"{_fmt(answer.get('evidence_ms_median'), ' ms')}, first token "
        f"{_fmt(answer.get('first_token_ms_median'), ' ms')}, "
        f"{_fmt(answer.get('tokens_per_s_median'), ' tok/s')} | – |"
    )
    errors = {
        name: s["error"] for name, s in sections.items() if isinstance(s, dict) and "error" in s
    }
    if errors:
        lines += ["", "Sections that failed:", ""]
        lines += [f"- `{name}`: {message}" for name, message in errors.items()]
    if result.get("notes"):  # written by hand into the JSON after a run; kept by --resume
        lines += ["", "Notes on this run:", ""]
        lines += [f"- {note}" for note in result["notes"]]
    lines += [
        "",
        "Encoder FLOPs per token (matmuls only): `2·layers·(4h² + 2h·ffn) + 4·layers·L·h`; "
        "search vectors are synthetic (see `benchmarks/bench.py`). Full figures: "
        f"`{result['json']}`.",
        "",
    ]
    return "\n".join(lines)


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
        if "ingest" in wanted or "answer" in wanted:
            section("ingest", lambda: bench_ingest(ingest_files, ingest_dir))
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
