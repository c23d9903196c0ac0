"""BEIR-format collections: read them, score the product and plain txtai baselines on them.

Baselines, measured in the same run: plain txtai BM25 (``Embeddings(keyword=True,
content=True)``), plain txtai dense (``Embeddings(path=<same embedder>, content=True)``) and
plain txtai hybrid (``hybrid: true``), each indexing whole documents (title + text) in one
``index()`` call, as a txtai user would. The @10 figures come from a search with ``limit=10``
(what a user asking for ten articles gets); recall@100 from a separate search with
``limit=100``, because the product's candidate pool, and so the fused ranking, depends on the
limit.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from evaluation.errors import EvalDataError
from evaluation.machine import machine_info
from evaluation.metrics import DEEP_K, TOP_K, score_run
from evaluation.product import faiss_layout, index_description, temporary_index
from evaluation.serving import serving_memory
from indexing.article import AbstractSection, Article
from indexing.keywords import describe as describe_keywords
from indexing.settings import Settings, get_settings
from indexing.store import PublishedIndex
from rag.rerank import LateInteraction, Reranker, second_stage
from rag.search import Feedback, search
from rag.settings import RagSettings

SERVED = 50  # queries the serving-memory probe searches (its peak RSS is what they reach)

BASELINES = ("txtai-bm25", "txtai-dense", "txtai-hybrid")


@dataclass(frozen=True, slots=True)
class BeirDoc:
    """One corpus line."""

    doc_id: str
    title: str
    text: str


@dataclass(frozen=True, slots=True)
class BeirCollection:
    """A BEIR collection restricted to the judged queries."""

    corpus: dict[str, BeirDoc]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def read_jsonl(path: Path, required: Sequence[str] = ("_id",)) -> Iterator[dict[str, Any]]:
    """JSON objects of a JSON-lines file, each with the ``required`` keys.

    Raises:
        EvalDataError: unreadable file, a line that is not a JSON object, a missing key.
    """
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise EvalDataError(f"{path}:{number}: not JSON ({exc})") from exc
                if not isinstance(row, dict):
                    raise EvalDataError(f"{path}:{number}: expected a JSON object")
                missing = [key for key in required if row.get(key) in (None, "")]
                if missing:
                    raise EvalDataError(f"{path}:{number}: missing {', '.join(missing)}")
                yield row
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalDataError(f"cannot read {path}: {exc}") from exc


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """``query-id corpus-id score`` TSV with a header line → ``{qid: {doc_id: score}}``.

    Raises:
        EvalDataError: unreadable file, a line without three fields or with a non-integer score.
    """
    qrels: dict[str, dict[str, int]] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalDataError(f"cannot read {path}: {exc}") from exc
    for number, line in enumerate(lines, start=1):
        parts = line.split("\t") if "\t" in line else line.split()
        if not line.strip():
            continue
        if number == 1 and not parts[-1].lstrip("-").isdigit():
            continue  # the header
        if len(parts) < 3:
            raise EvalDataError(f"{path}:{number}: expected 'query-id corpus-id score'")
        try:
            score = int(parts[-1])
        except ValueError:
            raise EvalDataError(f"{path}:{number}: score {parts[-1]!r} is not an integer") from None
        qrels.setdefault(parts[0], {})[parts[1]] = score
    return qrels


def load_beir(
    corpus: Path, queries: Path, qrels: Path, limit_queries: int | None = None
) -> BeirCollection:
    """Read a BEIR collection; keep the judged queries (the first ``limit_queries`` of them).

    Raises:
        EvalDataError: a file is missing, malformed, or no judged query has a text.
    """
    judgments = read_qrels(qrels)
    if not judgments:
        raise EvalDataError(f"{qrels} holds no judgments")
    texts = {str(row["_id"]): str(row.get("text") or "") for row in read_jsonl(queries)}
    kept = [qid for qid in judgments if texts.get(qid, "").strip()]
    if limit_queries is not None:
        kept = kept[:limit_queries]
    if not kept:
        raise EvalDataError(f"no query of {qrels} has a text in {queries}")
    docs = {
        str(row["_id"]): BeirDoc(
            str(row["_id"]), str(row.get("title") or ""), str(row.get("text") or "")
        )
        for row in read_jsonl(corpus)
    }
    if not docs:
        raise EvalDataError(f"{corpus} holds no documents")
    return BeirCollection(
        corpus=docs,
        queries={qid: texts[qid] for qid in kept},
        qrels={qid: judgments[qid] for qid in kept},
    )


def beir_article(doc: BeirDoc) -> Article:
    """A corpus document as the product's record: ``_id`` plays the PMID."""
    abstract = (AbstractSection(doc.text),) if doc.text.strip() else ()
    return Article(pmid=doc.doc_id, title=doc.title, abstract=abstract)


def product_rankings(
    index: PublishedIndex,
    queries: Mapping[str, str],
    rag: RagSettings,
    limit: int,
    *,
    progress: bool = True,
    desc: str = "querying",
    reranker: Reranker | LateInteraction | None = None,
    weight: float | None = None,
    latencies: list[float] | None = None,
    feedback: bool = True,
) -> dict[str, list[str]]:
    """``{qid: [doc ids]}`` from :func:`rag.search.search` with the configured settings.

    ``weight`` overrides the hybrid weight (0 = BM25 only, 1 = dense only, for the ablation);
    ``feedback=False`` switches the configured feedback off (the ablation); ``latencies``
    collects each search's milliseconds.
    """
    rocchio = Feedback.chosen(rag.feedback_docs, rag.feedback_weight) if feedback else None
    rankings: dict[str, list[str]] = {}
    for qid, text in tqdm(queries.items(), unit="q", desc=desc, disable=not progress):
        result = search(
            index,
            text,
            None,
            limit,
            rag.hybrid_weight if weight is None else weight,
            candidates=rag.candidates,
            max_query_chars=rag.max_query_chars,
            reranker=reranker,
            feedback=rocchio,
        )
        rankings[qid] = [hit.pmid for hit in result.hits]
        if latencies is not None:
            latencies.append(result.elapsed_ms)
    return rankings


def latency_summary(latencies: Sequence[float]) -> dict[str, float]:
    """p50 / p95 / max milliseconds of the product's searches."""
    ordered = sorted(latencies)
    if not ordered:
        return {}

    def at(share: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 1)

    return {"p50": at(0.50), "p95": at(0.95), "max": round(ordered[-1], 1), "n": len(ordered)}


def ablations(
    index: PublishedIndex,
    collection: BeirCollection,
    rag: RagSettings,
    reranker: Reranker | LateInteraction | None,
    *,
    progress: bool = True,
) -> dict[str, dict[str, float]]:
    """The product's metrics with one stage switched off at a time, on the same index.

    Stemming is a property of the index, so its row comes from a second run
    (``PUBMED_RAG_KEYWORD_STEMMER=none``, see ``benchmarks/evaluate.py``).
    """
    variants: dict[str, dict[str, Any]] = {
        "without the dense side (BM25 only)": {"weight": 0.0, "reranker": reranker},
        "without BM25 (dense only)": {"weight": 1.0, "reranker": reranker},
    }
    if reranker is not None:
        variants["without the second stage"] = {"weight": None, "reranker": None}
    if rag.feedback_docs > 0:
        variants["without feedback"] = {"weight": None, "reranker": reranker, "feedback": False}
    out = {}
    for name, options in variants.items():
        top = product_rankings(
            index, collection.queries, rag, TOP_K, progress=progress, desc=name, **options
        )
        deep = product_rankings(
            index, collection.queries, rag, DEEP_K, progress=progress, desc=name, **options
        )
        out[name] = score_run(top, collection.qrels, deep)
    return out


def baseline_configs(model_path: str) -> dict[str, dict[str, Any]]:
    """Plain txtai configurations: what a txtai user writes, with the product's embedder."""
    return {
        "txtai-bm25": {"keyword": True, "content": True},
        "txtai-dense": {"path": model_path, "content": True},
        "txtai-hybrid": {"path": model_path, "content": True, "hybrid": True},
    }


def baseline_rankings(
    name: str,
    config: dict[str, Any],
    collection: BeirCollection,
    *,
    progress: bool = True,
) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """Index whole documents with a plain txtai configuration and rank the first 100 per query."""
    from txtai import Embeddings

    embeddings = Embeddings(dict(config))  # txtai fills in the dict it is given
    docs = list(collection.corpus.values())

    def stream() -> Iterator[tuple[str, str]]:
        with tqdm(
            total=len(docs), unit="doc", desc=f"{name} indexing", disable=not progress
        ) as bar:
            for doc in docs:
                bar.update(1)
                yield doc.doc_id, f"{doc.title}\n{doc.text}".strip()

    embeddings.index(stream())
    rankings: dict[str, list[str]] = {}
    items = list(collection.queries.items())
    batch = 32
    with tqdm(total=len(items), unit="q", desc=f"{name} querying", disable=not progress) as bar:
        for start in range(0, len(items), batch):
            chunk = items[start : start + batch]
            results = embeddings.batchsearch([text for _, text in chunk], DEEP_K)
            for (qid, _), rows in zip(chunk, results, strict=True):
                rankings[qid] = [str(row["id"]) for row in rows]
            bar.update(len(chunk))
    described = {
        "config": {k: v for k, v in config.items() if k != "path"},
        "faiss": faiss_layout(embeddings.config) if "path" in config else None,
    }
    embeddings.close()
    return rankings, described


def evaluate_beir(
    collection: BeirCollection,
    settings: Settings | None = None,
    rag: RagSettings | None = None,
    *,
    baselines: Sequence[str] = BASELINES,
    progress: bool = True,
    with_ablations: bool = True,
    with_serving_memory: bool = False,
) -> dict[str, Any]:
    """Product and baseline metrics on a BEIR collection, in the ``--out`` JSON shape.

    ``with_serving_memory`` also opens the product's index in a fresh process and records its
    peak RSS while it searches (:mod:`evaluation.serving`), as ``product_serving``.
    """
    settings = settings or get_settings()
    rag = rag or RagSettings()
    articles = [beir_article(doc) for doc in collection.corpus.values()]
    started = time.perf_counter()
    reranker = second_stage(
        rag.reranker,
        rag.rerank_depth,
        rag.late_interaction,
        rag.late_interaction_weight,
        allow_download=not settings.offline,
    )
    latencies: list[float] = []
    served: dict[str, Any] | None = None
    with temporary_index(articles, settings, progress=progress) as (index, index_settings):
        built = time.perf_counter() - started
        top = product_rankings(
            index, collection.queries, rag, TOP_K, progress=progress, reranker=reranker,
            latencies=latencies,
        )  # fmt: skip
        deep = product_rankings(
            index, collection.queries, rag, DEEP_K, progress=progress, desc="querying @100",
            reranker=reranker,
        )  # fmt: skip
        ablated = (
            ablations(index, collection, rag, reranker, progress=progress) if with_ablations else {}
        )
        described = index_description(index)
        if with_serving_memory:
            served = serving_memory(index_settings, list(collection.queries.values())[:SERVED])
        from indexing.models import locate_model

        model_path = locate_model(index.manifest.embeddings_model, allow_download=False)
    product_s = time.perf_counter() - started
    results: dict[str, Any] = {"product": score_run(top, collection.qrels, deep)}
    results["product_latency_ms"] = latency_summary(latencies)
    if ablated:
        results["ablations"] = ablated
    if served is not None:
        results["product_serving"] = served
    baseline_results: dict[str, dict[str, float]] = {}
    baseline_info: dict[str, Any] = {}
    configs = baseline_configs(model_path)
    for name in baselines:
        began = time.perf_counter()
        rankings, info = baseline_rankings(name, configs[name], collection, progress=progress)
        baseline_results[name] = score_run(rankings, collection.qrels)
        baseline_info[name] = {**info, "seconds": round(time.perf_counter() - began, 1)}
    results["baselines"] = baseline_results
    results["config"] = {
        "documents": len(collection.corpus),
        "queries": len(collection.queries),
        "judgments": sum(len(rels) for rels in collection.qrels.values()),
        "product": {
            **described,
            "hybrid_weight": rag.hybrid_weight,
            "candidates": rag.candidates,
            "keyword_stemmer": describe_keywords(described.get("scoring")),
            "reranker": reranker.name if reranker is not None else None,
            "rerank_depth": reranker.depth if reranker is not None else None,
            "feedback_docs": rag.feedback_docs,
            "feedback_weight": rag.feedback_weight if rag.feedback_docs else None,
            "passage_tokens": settings.passage_tokens,
            "encode_batch": settings.encode_batch,
            "offline": settings.offline,
            "collapse": "one hit per article (best passage)",
            "index_seconds": round(built, 1),
            "seconds": round(product_s, 1),
        },
        "baselines": baseline_info,
        "metrics": (
            "mean over judged queries; nDCG linear gain; @10 from a limit-10 search, "
            "recall@100 from a limit-100 search"
        ),
    }
    results["machine"] = machine_info()
    return results
