"""PubMedQA (PQA-L, official 500-question test split): answers, their labels, the support checker.

How a yes/no/maybe label is read from a generated answer (:func:`read_label`), chosen to be
robust for a 135M model that does not follow format instructions reliably but does copy the
worked example's opening ("No. In a randomized trial ..."):

1. the answer's first word, ignoring case, markup and punctuation, if it is yes, no or maybe;
2. otherwise the first of the whole words yes / no / maybe / unclear / uncertain /
   inconclusive in the first sentence (the last three read as "maybe");
3. otherwise no label: the answer counts as wrong and as ``unparsed``.

An abstention has no label and counts as wrong too; ``accuracy_answered`` leaves abstentions
out. The baseline is the majority class ("yes") of the scored questions. The product's prompts
are used unchanged: the eval measures the answers users get.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from tqdm import tqdm

from evaluation.answers import AnswerLog, answer_one
from evaluation.errors import EvalDataError
from evaluation.machine import machine_info
from evaluation.product import index_description, temporary_index
from indexing.article import AbstractSection, Article, MeshHeading
from indexing.models import OFFLINE_EMBEDDINGS
from indexing.settings import Settings, get_settings
from indexing.store import PublishedIndex
from rag.search import Filters, Hit, SearchResult, encode, prepare_query
from rag.service import AnswerService
from rag.settings import RagSettings, answer_shaping
from rag.support import LABELS as SUPPORT_LABELS

SOURCE_RECALL_KS = (1, 5, 10)
# A conclusion's sentences shorter than this ("Yes.") are not judged on their own.
MIN_CONCLUSION_WORDS = 4
LABELS = ("yes", "no", "maybe")
LABEL_RULE = (
    "first word if yes/no/maybe; else first of yes/no/maybe/unclear/uncertain/inconclusive "
    "as a whole word in the first sentence (the last three = maybe); else unparsed (wrong); "
    "abstentions count as wrong"
)


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
        rank_by_evidence: bool | None = None,
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
    from rag.constraints import copied_spans
    from rag.grounding import split_claims
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
        for sentence in split_claims(str(row["text"])):
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
            label: round(support[label] / judged, 4) if judged else None for label in SUPPORT_LABELS
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

    from rag.evidence import ArticleSentences, abstract_sentences, split_sentences, unit
    from rag.support import (
        CONTRADICTED,
        auc,
        calibrate,
        judge,
        precision_recall,
        span_scores,
        thresholds_for,
    )

    product = thresholds_for(embeddings_model)
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
    contradicted = {"own_abstract": 0, "most_similar_other_abstract": 0}
    for number, pmid in enumerate(pmids):
        claim = vectors[number : number + 1]

        def score(other: str, number: int = number, claim: Any = claim) -> tuple[float, str]:
            spans, scores = span_scores(claim, [claims[number]], pool, rows[other])
            verdict = judge(claims[number], scores[0], spans, pool, product)
            return float(scores[0].max()), verdict.support

        own, own_label = score(pmid)
        positive.append(own)
        contradicted["own_abstract"] += own_label == CONTRADICTED
        other = pmid
        while other == pmid:
            other = pmids[chooser.randrange(len(pmids))]
        random_negative.append(score(other)[0])
        similar = centroids @ vectors[number]
        similar[number] = -2.0
        hard, hard_label = score(pmids[int(np.argmax(similar))])
        hard_negative.append(hard)
        contradicted["most_similar_other_abstract"] += hard_label == CONTRADICTED
    # Each sentence of a conclusion on its own, as an answer sentence is checked: "contradicted"
    # by its own abstract is a false alarm but for the odd abstract that does say otherwise.
    parts = [
        (pmid, text)
        for pmid in pmids
        for text in split_sentences(items[pmid].long_answer)
        if len(text.split()) >= MIN_CONCLUSION_WORDS
    ]
    part_vectors = unit(encode([text for _, text in parts])) if parts else np.zeros((0, 1))
    flagged = 0
    for number, (pmid, text) in enumerate(parts):
        spans, scores = span_scores(part_vectors[number : number + 1], [text], pool, rows[pmid])
        flagged += judge(text, scores[0], spans, pool, product).support == CONTRADICTED
    chosen = calibrate(positive[:half], hard_negative[:half])

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
        # The polarity check (product thresholds): a conclusion "contradicted" by its own
        # abstract is a false alarm, but for the odd abstract that does say the opposite.
        "contradicted": {
            **{
                where: round(count / len(pmids), 4) if pmids else None
                for where, count in contradicted.items()
            },
            "own_abstract_per_sentence": round(flagged / len(parts), 4) if parts else None,
            "conclusion_sentences": len(parts),
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
    settings_to_answer: Sequence[str] = ("retrieval", "gold"),
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
                "rag": answer_shaping(rag),  # an answers file made without the others stays usable
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
            pmid: log.answer("retrieval", pmid, partial(answer_one, service, items[pmid].question))
            for pmid in tqdm(answered, unit="q", desc="answers (retrieval)", disable=not progress)
            if "retrieval" in settings_to_answer
        }
        loaded = service.generator
        # The gold setting reads the same temporary index (for the encoder and the abstract's
        # sentences); only its search is replaced.
        gold = GoldContextService(settings=tmp_settings, rag=rag, generator=loaded)
        gold.gold = {prepare_query(items[p].question)[0]: gold_hit(items[p]) for p in answered}
        gold_answers = {
            pmid: log.answer("gold", pmid, partial(answer_one, gold, items[pmid].question))
            for pmid in tqdm(
                answered, unit="q", desc="answers (gold abstract)", disable=not progress
            )
            if "gold" in settings_to_answer
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
            "settings_answered": list(settings_to_answer),
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
