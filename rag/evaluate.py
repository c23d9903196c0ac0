"""Quality on public benchmarks, measured through the product's own indexing and search code.

``python -m rag eval beir`` scores any BEIR-format collection; ``python -m rag eval pubmedqa``
scores PubMedQA (PQA-L, official 500-question test split). Both build a *temporary* index in a
throw-away data directory with :func:`indexing.store.temporary_index` (the product's writer)
and the configured settings (embedder, passage splitting), search it with
:func:`rag.search.search` (hybrid weight, candidate pool, collapse to one hit per article) and
answer with :class:`rag.service.AnswerService` — the code paths of the app, not copies of them.

Every product figure comes with baselines measured in the same run:

* BEIR: plain txtai BM25 (``Embeddings(keyword=True, content=True)``), plain txtai dense
  (``Embeddings(path=<same embedder>, content=True)``) and plain txtai hybrid (``hybrid: true``),
  each indexing whole documents (title + text) in one ``index()`` call, as a txtai user would.
* PubMedQA: the majority class ("yes") of the scored questions.

Metrics (:func:`score_run`), per query then averaged over the queries with at least one
relevant judgment: nDCG@10 with linear gain (``rel / log2(rank + 1)``, as ``trec_eval`` and
BEIR compute it; graded relevance allowed), recall@10 and recall@100 (relevant = score > 0) and
MRR@10. The @10 figures come from a search with ``limit=10`` (what a user asking for ten
articles gets); recall@100 from a separate search with ``limit=100``, because the product's
candidate pool, and so the fused ranking, depends on the limit.

How a yes/no/maybe label is read from a generated answer (:func:`read_label`), chosen to be
robust for a 135M model that does not follow format instructions reliably but does copy the
worked example's opening ("No. In a randomized trial ..."):

1. the answer's first word, ignoring case, markup and punctuation, if it is yes, no or maybe;
2. otherwise the first of the whole words yes / no / maybe / unclear / uncertain /
   inconclusive in the first sentence (the last three read as "maybe");
3. otherwise no label: the answer counts as wrong and as ``unparsed``.

An abstention has no label and counts as wrong too; ``accuracy_answered`` leaves abstentions
out. The product's prompts are used unchanged: the eval measures the answers users get.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import re
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from indexing import store as index_store
from indexing.article import AbstractSection, Article, MeshHeading
from indexing.errors import UserError, guarded
from indexing.models import OFFLINE_EMBEDDINGS
from indexing.settings import Settings, get_settings
from indexing.store import PublishedIndex
from rag.search import Filters, Hit, SearchResult, encode, prepare_query, search
from rag.service import AnswerService
from rag.settings import RagSettings

TOP_K = 10
DEEP_K = 100
METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")
SOURCE_RECALL_KS = (1, 5, 10)
LABELS = ("yes", "no", "maybe")
LABEL_RULE = (
    "first word if yes/no/maybe; else first of yes/no/maybe/unclear/uncertain/inconclusive "
    "as a whole word in the first sentence (the last three = maybe); else unparsed (wrong); "
    "abstentions count as wrong"
)
BASELINES = ("txtai-bm25", "txtai-dense", "txtai-hybrid")

Ranking = Sequence[str]
Qrels = Mapping[str, Mapping[str, int]]


class EvalDataError(UserError, ValueError):
    """A benchmark file is missing or malformed."""


# -- metrics -------------------------------------------------------------------------------------


def _unique(ranking: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(ranking))


def ndcg_at_k(ranking: Ranking, relevance: Mapping[str, int], k: int) -> float:
    """nDCG@k with linear gain: ``sum(rel_i / log2(i + 1))`` over ranks ``i = 1..k``, normalised.

    Returns 0.0 when nothing is relevant.
    """
    gains = sorted((rel for rel in relevance.values() if rel > 0), reverse=True)[:k]
    ideal = sum(rel / math.log2(rank + 2) for rank, rel in enumerate(gains))
    if ideal <= 0:
        return 0.0
    found = sum(
        max(relevance.get(doc, 0), 0) / math.log2(rank + 2)
        for rank, doc in enumerate(_unique(ranking)[:k])
    )
    return found / ideal


def recall_at_k(ranking: Ranking, relevance: Mapping[str, int], k: int) -> float:
    """Share of the relevant documents (score > 0) found in the first ``k``."""
    relevant = {doc for doc, rel in relevance.items() if rel > 0}
    if not relevant:
        return 0.0
    return len(relevant & set(_unique(ranking)[:k])) / len(relevant)


def mrr_at_k(ranking: Ranking, relevance: Mapping[str, int], k: int) -> float:
    """Reciprocal rank of the first relevant document in the first ``k`` (0.0 if none)."""
    for rank, doc in enumerate(_unique(ranking)[:k], start=1):
        if relevance.get(doc, 0) > 0:
            return 1.0 / rank
    return 0.0


def score_query(top: Ranking, deep: Ranking, relevance: Mapping[str, int]) -> dict[str, float]:
    """The four metrics of one query: @10 from ``top``, recall@100 from ``deep``."""
    return {
        "ndcg@10": ndcg_at_k(top, relevance, TOP_K),
        "recall@10": recall_at_k(top, relevance, TOP_K),
        "recall@100": recall_at_k(deep, relevance, DEEP_K),
        "mrr@10": mrr_at_k(top, relevance, TOP_K),
    }


def score_run(
    top: Mapping[str, Ranking], qrels: Qrels, deep: Mapping[str, Ranking] | None = None
) -> dict[str, float]:
    """Mean metrics over the queries of ``qrels`` that have a relevant document.

    A query missing from the run scores 0. ``deep`` (rankings of 100) defaults to ``top``.
    """
    deep = top if deep is None else deep
    judged = [qid for qid, rels in qrels.items() if any(rel > 0 for rel in rels.values())]
    totals = dict.fromkeys(METRICS, 0.0)
    for qid in judged:
        for name, value in score_query(top.get(qid, ()), deep.get(qid, ()), qrels[qid]).items():
            totals[name] += value
    count = max(len(judged), 1)
    return {name: round(total / count, 4) for name, total in totals.items()}


# -- BEIR data -----------------------------------------------------------------------------------


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


def _read_jsonl(path: Path, required: Sequence[str] = ("_id",)) -> Iterator[dict[str, Any]]:
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
    texts = {str(row["_id"]): str(row.get("text") or "") for row in _read_jsonl(queries)}
    kept = [qid for qid in judgments if texts.get(qid, "").strip()]
    if limit_queries is not None:
        kept = kept[:limit_queries]
    if not kept:
        raise EvalDataError(f"no query of {qrels} has a text in {queries}")
    docs = {
        str(row["_id"]): BeirDoc(
            str(row["_id"]), str(row.get("title") or ""), str(row.get("text") or "")
        )
        for row in _read_jsonl(corpus)
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


# -- temporary product index ---------------------------------------------------------------------


def eval_settings(base: Settings, data_dir: Path) -> Settings:
    """The configured settings with the data directory (and PostgreSQL schema) moved to throw-away ones."""
    update: dict[str, Any] = {"data_dir": data_dir}
    if base.database_url is not None:
        update["database_schema"] = f"{base.database_schema[:20]}_eval_{os.getpid()}"
    return base.model_copy(update=update)


@contextlib.contextmanager
def temporary_index(
    articles: Sequence[Article], base: Settings, *, progress: bool = True, desc: str = "indexing"
) -> Iterator[tuple[PublishedIndex, Settings]]:
    """Publish ``articles`` into a fresh temporary data dir with the product's writer.

    Yields the published version and the settings that point at it; everything is removed
    afterwards.
    """
    with tempfile.TemporaryDirectory(prefix="pubmed-rag-eval-") as tmp:
        settings = eval_settings(base, Path(tmp) / "data")
        with (
            tqdm(total=len(articles), unit="doc", desc=desc, disable=not progress) as bar,
            index_store.temporary_index(articles, settings, on_batch=bar.update) as index,
        ):
            bar.close()  # built: the bar is done before the evaluation prints
            yield index, settings


def faiss_layout(config: Mapping[str, Any] | None) -> str | None:
    """The faiss index factory string txtai chose (``IDMap,Flat`` is exact; ``IVF…`` is not)."""
    build = (config or {}).get("build") or {}
    settings = build.get("settings") if isinstance(build, Mapping) else None
    return settings.get("components") if isinstance(settings, Mapping) else None


def index_description(index: PublishedIndex) -> dict[str, Any]:
    """What was built: model, counts, and the faiss layout txtai chose."""
    config = index.manifest.embeddings_config
    return {
        "embeddings_model": index.manifest.embeddings_model,
        "articles": index.manifest.articles,
        "passages": index.manifest.passages,
        "dimensions": index.manifest.dimensions,
        "encoder": config.get("encoder"),
        "scoring": config.get("scoring"),
        "faiss": faiss_layout(config),
    }


def product_rankings(
    index: PublishedIndex,
    queries: Mapping[str, str],
    rag: RagSettings,
    limit: int,
    *,
    progress: bool = True,
    desc: str = "querying",
) -> dict[str, list[str]]:
    """``{qid: [doc ids]}`` from :func:`rag.search.search` with the configured settings."""
    rankings: dict[str, list[str]] = {}
    for qid, text in tqdm(queries.items(), unit="q", desc=desc, disable=not progress):
        result = search(
            index,
            text,
            None,
            limit,
            rag.hybrid_weight,
            candidates=rag.candidates,
            max_query_chars=rag.max_query_chars,
        )
        rankings[qid] = [hit.pmid for hit in result.hits]
    return rankings


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
) -> dict[str, Any]:
    """Product and baseline metrics on a BEIR collection, in the ``--out`` JSON shape."""
    settings = settings or get_settings()
    rag = rag or RagSettings()
    articles = [beir_article(doc) for doc in collection.corpus.values()]
    started = time.perf_counter()
    with temporary_index(articles, settings, progress=progress) as (index, _):
        built = time.perf_counter() - started
        top = product_rankings(index, collection.queries, rag, TOP_K, progress=progress)
        deep = product_rankings(
            index, collection.queries, rag, DEEP_K, progress=progress, desc="querying @100"
        )
        described = index_description(index)
        from indexing.models import locate_model

        model_path = locate_model(index.manifest.embeddings_model, allow_download=False)
    product_s = time.perf_counter() - started
    results: dict[str, Any] = {"product": score_run(top, collection.qrels, deep)}
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


# -- PubMedQA ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PubmedqaItem:
    """One PQA-L record."""

    pmid: str
    question: str
    contexts: tuple[str, ...]
    labels: tuple[str, ...]
    meshes: tuple[str, ...]
    year: int | None
    decision: str
    long_answer: str = ""

    def article(self) -> Article:
        """The record as an indexed article. The conclusion (LONG_ANSWER) is left out, as in
        PubMedQA's reasoning-required setting: it states the answer. There is no title."""
        labels = self.labels + ("",) * (len(self.contexts) - len(self.labels))
        sections = tuple(
            AbstractSection(text, label.title() if label else "")
            for text, label in zip(self.contexts, labels[: len(self.contexts)], strict=True)
        )
        return Article(
            pmid=self.pmid,
            title="",
            abstract=sections,
            year=self.year,
            mesh_terms=tuple(MeshHeading(term) for term in self.meshes),
        )


def load_pubmedqa(data_dir: Path) -> tuple[dict[str, PubmedqaItem], dict[str, str]]:
    """``ori_pqal.json`` records and the official test split ``{pmid: label}`` (file order).

    Raises:
        EvalDataError: the files are missing or malformed.
    """
    try:
        raw = json.loads((data_dir / "ori_pqal.json").read_text(encoding="utf-8"))
        test = json.loads((data_dir / "test_ground_truth.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EvalDataError(f"cannot read PubMedQA from {data_dir}: {exc}") from exc
    items = {}
    for pmid, row in raw.items():
        year = str(row.get("YEAR") or "")
        items[str(pmid)] = PubmedqaItem(
            pmid=str(pmid),
            question=str(row["QUESTION"]),
            contexts=tuple(str(c) for c in row.get("CONTEXTS", [])),
            labels=tuple(str(label) for label in row.get("LABELS", [])),
            meshes=tuple(str(m) for m in row.get("MESHES", [])),
            year=int(year) if year.isdigit() else None,
            decision=str(row.get("final_decision", "")),
            long_answer=str(row.get("LONG_ANSWER") or ""),
        )
    missing = [pmid for pmid in test if pmid not in items]
    if missing:
        raise EvalDataError(f"test PMIDs missing from ori_pqal.json: {missing[:5]}")
    return items, {str(pmid): str(label) for pmid, label in test.items()}


_FIRST_WORD = re.compile(r"[a-z]+")
_LABEL_WORD = re.compile(r"\b(yes|no|maybe|unclear|uncertain|inconclusive)\b")
_SENTENCE_END = re.compile(r"[.!?\n]")


def read_label(answer: str) -> str | None:
    """The yes/no/maybe label of an answer (see the module docstring), or None."""
    text = answer.strip().lower()
    first = _FIRST_WORD.search(text)
    if first and first.group(0) in LABELS:
        return first.group(0)
    end = _SENTENCE_END.search(text)
    sentence = text[: end.start()] if end else text
    found = _LABEL_WORD.search(sentence)
    if not found:
        return None
    word = found.group(0)
    return word if word in LABELS else "maybe"


class GoldContextService(AnswerService):
    """The answer service with the gold abstract as the only source of each question.

    Only :meth:`search` is replaced; prompting, generation and the citation check are the
    product's. The gold hit carries a dense score of 1.0: the abstract is given, so the
    abstention threshold is not in play.
    """

    gold: dict[str, Hit]

    def search(
        self,
        query: str,
        filters: Filters | None = None,
        limit: int | None = None,
        index: PublishedIndex | None = None,
    ) -> SearchResult:
        """A one-hit result: the gold abstract of ``query``."""
        text, notices = prepare_query(query, self.rag.max_query_chars)
        return SearchResult(
            hits=(self.gold[text],),
            elapsed_ms=0.0,
            index_version="gold",
            query=text,
            notices=tuple(notices),
            embeddings_model="gold",
        )


def gold_hit(item: PubmedqaItem) -> Hit:
    """The whole abstract (without its conclusion) as one source."""
    return Hit(
        pmid=item.pmid,
        title="",
        journal="",
        year=item.year,
        authors="",
        pubtypes=(),
        mesh=item.meshes,
        doi="",
        pmc="",
        retracted=False,
        has_abstract=True,
        score=1.0,
        passage=item.article().abstract_text,
        passage_id=f"{item.pmid}#0",
        dense_score=1.0,
    )


def _answer_one(service: AnswerService, question: str) -> dict[str, Any]:
    """Ask and reduce the final event to what the scores need."""
    from rag.service import Answer, Failed

    failed = {"text": "", "abstained": False, "citations": [], "removed": [], "failed": True}
    for event in service.ask(question):
        if isinstance(event, Answer):
            return {
                "text": event.text,
                "raw_text": event.raw_text,
                "abstained": event.abstained,
                "citations": list(event.citations),
                "removed": list(event.removed_citations),
                "context": [hit.pmid for hit in event.context],
                "sentences": [
                    {"citations": list(s.citations), "support": s.support, "text": s.text}
                    for s in event.sentences
                ],
                "dropped_sentences": list(event.uncited),
                "evidence_pmids": [item.pmid for item in event.evidence],
                "evidence_ms": event.timings.evidence_ms,
                "first_token_ms": event.timings.first_token_ms,
                "tokens_per_s": event.timings.tokens_per_s,
                "prompt_tokens": event.timings.prompt_tokens,
                "failed": False,
            }
        if isinstance(event, Failed):
            return failed
    return failed


class AnswerLog:
    """Generated answers as JSON lines, appended one by one: a run cut short resumes from it.

    The first line records what made the answers (generator, answer settings, embedder); a
    file made under other settings is refused, never mixed in. A last line cut off by a
    killed run is dropped, and its answer generated again.
    """

    def __init__(self, path: Path | None, made_by: Mapping[str, Any]) -> None:
        self.path = path
        self.made_by = json.loads(json.dumps(made_by))  # as it reads back from the file
        self.done: dict[tuple[str, str], dict[str, Any]] = {}
        if path is None:
            return
        raw = path.read_bytes() if path.exists() else b""
        if raw and not raw.endswith(b"\n"):
            raw = raw[: raw.rfind(b"\n") + 1]  # the line a killed run was writing
            path.write_bytes(raw)
        lines = raw.decode("utf-8").splitlines()
        if not lines:
            self._append({"made_by": self.made_by})
            return
        try:
            rows = [json.loads(line) for line in lines]
            recorded = rows[0]["made_by"]
            pairs = [((row["setting"], row["pmid"]), row["answer"]) for row in rows[1:]]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise EvalDataError(f"{path}: not an answers file of `rag eval` ({exc})") from None
        if recorded != self.made_by:
            changed = sorted(
                key
                for key in {*recorded, *self.made_by}
                if recorded.get(key) != self.made_by.get(key)
            )
            raise EvalDataError(
                f"{path} holds answers made with other settings ({', '.join(changed)}); "
                "delete it or name another answers file"
            )
        self.done = dict(pairs)

    def answer(self, setting: str, pmid: str, make: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The recorded answer of ``pmid`` in ``setting``, else ``make()``'s, recorded."""
        if (setting, pmid) not in self.done:
            self.done[setting, pmid] = make()
            self._append({"setting": setting, "pmid": pmid, "answer": self.done[setting, pmid]})
        return self.done[setting, pmid]

    def _append(self, row: Mapping[str, Any]) -> None:
        if self.path is None:
            return
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            out.flush()
            os.fsync(out.fileno())


def score_answers(
    answers: Mapping[str, Mapping[str, Any]], truth: Mapping[str, str]
) -> dict[str, Any]:
    """Accuracy (+ majority baseline), citation validity and abstention of generated answers."""
    total = len(answers)
    if not total:
        return {"questions": 0}
    predicted = {
        pmid: None if row["abstained"] or row["failed"] else read_label(str(row["text"]))
        for pmid, row in answers.items()
    }
    answered = [pmid for pmid, row in answers.items() if not row["abstained"] and not row["failed"]]
    correct = sum(1 for pmid, label in predicted.items() if label == truth[pmid])
    correct_answered = sum(1 for pmid in answered if predicted[pmid] == truth[pmid])
    majority = Counter(truth.values()).most_common(1)[0][0]
    speeds = [float(r["tokens_per_s"]) for r in answers.values() if r.get("tokens_per_s")]
    ttft = [float(r["first_token_ms"]) for r in answers.values() if r.get("first_token_ms")]
    return {
        "questions": total,
        "accuracy": round(correct / total, 4),
        "accuracy_answered": round(correct_answered / len(answered), 4) if answered else None,
        "majority_class": majority,
        "majority_baseline": round(
            sum(1 for pmid in answers if truth[pmid] == majority) / total, 4
        ),
        "predicted": dict(Counter(str(label) for label in predicted.values())),
        "unparsed_rate": round(sum(1 for pmid in answered if predicted[pmid] is None) / total, 4),
        "abstention_rate": round(sum(1 for r in answers.values() if r["abstained"]) / total, 4),
        "failure_rate": round(sum(1 for r in answers.values() if r["failed"]) / total, 4),
        "citations_all_valid": round(
            sum(1 for pmid in answered if not answers[pmid]["removed"]) / len(answered), 4
        )
        if answered
        else None,
        "cites_any": round(
            sum(1 for pmid in answered if answers[pmid]["citations"]) / len(answered), 4
        )
        if answered
        else None,
        "cites_source": round(
            sum(1 for pmid in answered if pmid in answers[pmid]["citations"]) / len(answered), 4
        )
        if answered
        else None,
        "first_token_ms_median": round(sorted(ttft)[len(ttft) // 2], 1) if ttft else None,
        "tokens_per_s_median": round(sorted(speeds)[len(speeds) // 2], 2) if speeds else None,
        **grounding_scores(answers, answered),
    }


def _median(values: Sequence[float]) -> float | None:
    ordered = sorted(values)
    return round(ordered[len(ordered) // 2], 1) if ordered else None


def grounding_scores(
    answers: Mapping[str, Mapping[str, Any]], answered: Sequence[str]
) -> dict[str, Any]:
    """Sentence-level citation and support figures, copies of the demonstration, evidence."""
    from rag.citations import split_sentences
    from rag.constraints import copied_spans
    from rag.prompts import demonstrations

    # The worked example the product used to show: an answer must never copy from it, in the
    # prompt or not (before the citation grammar, 135M answers copied it word for word).
    example = demonstrations(True)
    sentences = cited = 0
    support: Counter[str] = Counter()
    copied = 0
    for pmid in answered:
        row = answers[pmid]
        context = set(row.get("context") or [])
        for sentence in split_sentences(str(row["text"])):
            sentences += 1
            tags = set(re.findall(r"\[PMID:(\d+)\]", sentence))
            cited += int(bool(tags) and tags <= context)
        support.update(str(s["support"]) for s in row.get("sentences") or [])
        copied += int(bool(copied_spans(str(row["text"]), example, [])))
    judged = sum(support.values())
    evidence_ms = [float(r["evidence_ms"]) for r in answers.values() if r.get("evidence_ms")]
    prompt_tokens = [float(r["prompt_tokens"]) for r in answers.values() if r.get("prompt_tokens")]
    return {
        "answer_sentences": sentences,
        "sentences_with_valid_citation": round(cited / sentences, 4) if sentences else None,
        "support": {
            label: round(support[label] / judged, 4) if judged else None
            for label in ("supported", "weak", "unsupported")
        },
        "copied_from_demonstration": copied,
        "evidence_ms_median": _median(evidence_ms),
        "prompt_tokens_median": _median(prompt_tokens),
    }


def evaluate_support(
    items: Mapping[str, PubmedqaItem],
    encode: Callable[[Sequence[str]], Any],
    half: int = 500,
    embeddings_model: str = OFFLINE_EMBEDDINGS,
) -> dict[str, Any]:
    """The support checker on PubMedQA: each conclusion (``LONG_ANSWER``) against its own
    abstract (supported) and against another abstract (unsupported): a random one and the most
    similar one (hard). Thresholds are chosen on the first ``half`` questions and checked on
    the rest; the product's calibrated thresholds are scored on all of them.
    """
    import random

    import numpy as np

    from rag.evidence import ArticleSentences, abstract_sentences, unit
    from rag.support import auc, calibrate, precision_recall, support_scores, thresholds_for

    pmids = [pmid for pmid, item in items.items() if item.long_answer]
    sentences = [s for p in pmids for s in abstract_sentences(p, items[p].article().abstract_text)]
    pool = ArticleSentences(tuple(sentences), unit(encode([s.text for s in sentences])))
    rows: dict[str, list[int]] = {}
    for row, sentence in enumerate(sentences):
        rows.setdefault(sentence.pmid, []).append(row)
    claims = [items[p].long_answer for p in pmids]
    vectors = unit(encode(claims))
    centroids = unit(np.stack([pool.vectors[rows[p]].mean(axis=0) for p in pmids]))
    chooser = random.Random(0)  # noqa: S311 - a fixed sample of pairs, not a secret
    positive, random_negative, hard_negative = [], [], []
    for number, pmid in enumerate(pmids):
        claim = vectors[number : number + 1]

        def score(other: str, number: int = number, claim: Any = claim) -> float:
            return support_scores(claim, [claims[number]], pool, rows[other])[0][0]

        positive.append(score(pmid))
        other = pmid
        while other == pmid:
            other = pmids[chooser.randrange(len(pmids))]
        random_negative.append(score(other))
        similar = centroids @ vectors[number]
        similar[number] = -2.0
        hard_negative.append(score(pmids[int(np.argmax(similar))]))
    chosen = calibrate(positive[:half], hard_negative[:half])
    product = thresholds_for(embeddings_model)

    def at(threshold: float, negatives: Sequence[float], start: int = 0) -> dict[str, float]:
        precision, recall = precision_recall(positive[start:], negatives[start:], threshold)
        return {
            "threshold": threshold,
            "precision": round(precision, 4),
            "recall": round(recall, 4),
        }

    return {
        "pairs": len(pmids),
        "auc_random_negative": round(auc(positive, random_negative), 4),
        "auc_hard_negative": round(auc(positive, hard_negative), 4),
        "chosen_on_first_half": {"supported": chosen[0], "weak": chosen[1]},
        "held_out_half": {
            "supported_vs_hard": at(chosen[0], hard_negative, half),
            "weak_vs_hard": at(chosen[1], hard_negative, half),
            "supported_vs_random": at(chosen[0], random_negative, half),
        },
        "product_thresholds": {
            "supported_vs_hard": at(product[0], hard_negative),
            "weak_vs_hard": at(product[1], hard_negative),
            "supported_vs_random": at(product[0], random_negative),
        },
        "median_score": {
            "own_abstract": round(float(np.median(positive)), 4),
            "random_abstract": round(float(np.median(random_negative)), 4),
            "most_similar_other_abstract": round(float(np.median(hard_negative)), 4),
        },
    }


def spread(items: list[str], count: int) -> list[str]:
    """``count`` items evenly spaced over ``items``, in order.

    The official test split lists its questions grouped by label (its first 276 are all
    "yes"), so the first N questions would be a sample of one label only.
    """
    if count >= len(items):
        return list(items)
    return [items[position * len(items) // count] for position in range(count)]


def evaluate_pubmedqa(
    data_dir: Path,
    settings: Settings | None = None,
    rag: RagSettings | None = None,
    *,
    limit: int | None = None,
    progress: bool = True,
    generator: Any = None,
    answers_file: Path | None = None,
) -> dict[str, Any]:
    """PubMedQA test split: retrieval over all 1000 abstracts, and answers with/without gold.

    Source recall is measured on all 500 test questions (retrieval is cheap); answers are
    generated for ``limit`` test questions spread evenly over the file (see :func:`spread`)
    in both settings. With ``answers_file`` every answer is recorded as it comes (see
    :class:`AnswerLog`), and the answers it already holds are not generated again.
    """
    settings = settings or get_settings()
    rag = rag or RagSettings()
    items, truth = load_pubmedqa(data_dir)
    questions = list(truth)
    answered = spread(questions, limit) if limit is not None else questions
    articles = [items[pmid].article() for pmid in items]
    with temporary_index(articles, settings, progress=progress) as (index, tmp_settings):
        described = index_description(index)
        found = 0
        recall_hits = dict.fromkeys(SOURCE_RECALL_KS, 0)
        service = AnswerService(settings=tmp_settings, rag=rag, generator=generator)
        log = AnswerLog(
            answers_file,
            {
                "generator": service.model_name,
                "embeddings": described["embeddings_model"],
                "rag": rag.model_dump(mode="json", exclude={"gpu_layers", "llm_threads"}),
            },
        )
        reused = len(log.done)
        for pmid in tqdm(questions, unit="q", desc="retrieval", disable=not progress):
            result = service.search(items[pmid].question, limit=max(SOURCE_RECALL_KS))
            ranked = [hit.pmid for hit in result.hits]
            found += 1
            for k in SOURCE_RECALL_KS:
                recall_hits[k] += int(pmid in ranked[:k])
        support = evaluate_support(
            items,
            lambda texts: encode(index, texts, "data"),
            half=len(items) // 2,
            embeddings_model=described["embeddings_model"],
        )
        retrieval_answers = {
            pmid: log.answer("retrieval", pmid, partial(_answer_one, service, items[pmid].question))
            for pmid in tqdm(answered, unit="q", desc="answers (retrieval)", disable=not progress)
        }
        loaded = service.generator
        # The gold setting reads the same temporary index (for the encoder and the abstract's
        # sentences); only its search is replaced.
        gold = GoldContextService(settings=tmp_settings, rag=rag, generator=loaded)
        gold.gold = {prepare_query(items[p].question)[0]: gold_hit(items[p]) for p in answered}
        gold_answers = {
            pmid: log.answer("gold", pmid, partial(_answer_one, gold, items[pmid].question))
            for pmid in tqdm(
                answered, unit="q", desc="answers (gold abstract)", disable=not progress
            )
        }
    subset_truth = {pmid: truth[pmid] for pmid in answered}
    retrieval = score_answers(retrieval_answers, subset_truth)
    retrieval["source_recall"] = {
        f"@{k}": round(recall_hits[k] / max(found, 1), 4) for k in SOURCE_RECALL_KS
    }
    retrieval["source_recall_questions"] = found
    return {
        "retrieval": retrieval,
        "gold": score_answers(gold_answers, subset_truth),
        "support_checker": support,
        "config": {
            "test_questions": len(questions),
            "answered_questions": len(answered),
            "limit": limit,
            "answers_reused": reused,
            "corpus": f"{len(articles)} PQA-L abstracts (CONTEXTS, without LONG_ANSWER)",
            "label_rule": LABEL_RULE,
            "generator": getattr(loaded, "name", None) or rag.llm,
            "offline": settings.offline,
            "max_answer_tokens": rag.max_answer_tokens,
            "top_k": rag.top_k,
            "hybrid_weight": rag.hybrid_weight,
            "abstain_threshold": rag.threshold_for(described["embeddings_model"]),
            "index": described,
        },
        "machine": machine_info(),
    }


# -- machine -------------------------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU's model name (Linux ``/proc/cpuinfo``; ``platform`` elsewhere)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """Where a figure was measured: CPU, cores, memory, library versions, time."""
    from importlib import metadata

    versions = {}
    for package in ("txtai", "torch", "sentence-transformers", "faiss-cpu", "llama_cpp_python"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[package] = metadata.version(package)
    memory = None
    with contextlib.suppress(OSError, ValueError):
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory = round(pages / 2**30, 1)
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": memory,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "versions": versions,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


# -- command line --------------------------------------------------------------------------------


def _write(payload: dict[str, Any], out: Path | None) -> None:
    text = json.dumps(payload, indent=2, ensure_ascii=False)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n", encoding="utf-8")
    click.echo(text)


def _guarded(ctx: click.Context, action: Callable[[], Any]) -> None:
    guarded(action, bool((ctx.find_root().obj or {}).get("debug")))


EVAL_EXAMPLES = """
\b
Examples:
  python -m rag eval beir --corpus ../shared/data/scifact/corpus.jsonl \\
      --queries ../shared/data/scifact/queries.jsonl \\
      --qrels ../shared/data/scifact/qrels-test.tsv --out scifact.json
  python -m rag eval pubmedqa --data ../shared/data/pubmedqa --limit 50 --out pqa.json
  python -m rag eval pubmedqa --data ../shared/data/pubmedqa --answers pqa.jsonl  # resumable
"""


@click.group("eval", epilog=EVAL_EXAMPLES)
def eval_group() -> None:
    """Measure retrieval and answer quality on public benchmarks (temporary indexes)."""


_existing = click.Path(exists=True, dir_okay=False, path_type=Path)


@eval_group.command("beir", epilog=EVAL_EXAMPLES)
@click.option("--corpus", type=_existing, required=True, help="corpus.jsonl (_id, title, text).")
@click.option("--queries", type=_existing, required=True, help="queries.jsonl (_id, text).")
@click.option("--qrels", type=_existing, required=True, help="qrels TSV with a header line.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write JSON here.")
@click.option("--limit-queries", type=click.IntRange(1), help="Score only the first N queries.")
@click.option(
    "--baselines/--no-baselines",
    default=True,
    show_default=True,
    help="Also score plain txtai BM25, dense and hybrid (each indexes the corpus again).",
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.pass_context
def beir_command(
    ctx: click.Context,
    corpus: Path,
    queries: Path,
    qrels: Path,
    out: Path | None,
    limit_queries: int | None,
    baselines: bool,
    quiet: bool,
) -> None:
    """nDCG@10, recall@10/@100 and MRR@10 of the product and of plain txtai baselines.

    The product runs with the current settings (PUBMED_RAG_OFFLINE, PUBMED_RAG_ENCODER_PRECISION,
    PUBMED_RAG_HYBRID_WEIGHT, ...), so one setting can be compared by running twice.
    """

    def body() -> None:
        collection = load_beir(corpus, queries, qrels, limit_queries)
        payload = evaluate_beir(
            collection, baselines=BASELINES if baselines else (), progress=not quiet
        )
        payload["config"]["files"] = {
            "corpus": str(corpus),
            "queries": str(queries),
            "qrels": str(qrels),
        }
        payload["config"]["limit_queries"] = limit_queries
        _write(payload, out)

    _guarded(ctx, body)


@eval_group.command("pubmedqa", epilog=EVAL_EXAMPLES)
@click.option(
    "--data",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="Folder with ori_pqal.json and test_ground_truth.json.",
)
@click.option(
    "--limit",
    type=click.IntRange(1),
    help="Generate answers for N test questions only, spread evenly over the file (for development; official "
    "figures use all 500).",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write JSON here.")
@click.option(
    "--answers",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Record every generated answer in this JSON-lines file as it comes, and reuse the "
    "answers it already holds: a run cut short resumes where it stopped.",
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.pass_context
def pubmedqa_command(
    ctx: click.Context,
    data: Path,
    limit: int | None,
    out: Path | None,
    answers: Path | None,
    quiet: bool,
) -> None:
    """Yes/no/maybe accuracy, source recall, citation validity and abstention on PubMedQA."""

    def body() -> None:
        result = evaluate_pubmedqa(data, limit=limit, progress=not quiet, answers_file=answers)
        _write(result, out)

    _guarded(ctx, body)
