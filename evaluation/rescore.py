"""``rag eval pubmedqa --rescore-support``: the support labels of stored answers, checked again.

A change to the support check (:mod:`rag.support`) changes the labels, not the answers: the
answers file of a PubMedQA run (:class:`evaluation.answers.AnswerLog`) holds every answer as
shown. This re-checks each of them with the product's code as it is now, without generating
anything: the answer's sentences (their text and citations as shown) go through
:func:`rag.grounding.ground_answer` again against the sentences of the abstracts that were in
its prompt, read from a temporary index of the PubMedQA corpus and encoded by the index's own
encoder — the path an answer takes in the product. The result holds the share of sentences per
label before (as recorded) and after, the label changes, and every sentence whose label
changed with its quote, for a hand check; with ``calibrate``, also the support-checker figures
of :func:`evaluation.pubmedqa.evaluate_support` (the same index and encoder).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from evaluation.answers import read_answers
from evaluation.machine import machine_info
from evaluation.product import index_description, temporary_index
from evaluation.pubmedqa import evaluate_support, load_pubmedqa
from indexing.settings import Settings, get_settings
from rag.evidence import ArticleSentences, collect_sentences
from rag.grounding import ground_answer
from rag.prompts import demonstrations
from rag.search import article_texts, encode
from rag.support import LABELS, claim_text, thresholds_for

RULE = (
    "rag.support: 0.75 cosine + 0.25 word overlap against the quotes of the cited abstracts, "
    "thresholds 0.55 / 0.45, then the polarity check: the closest quote that states a finding "
    "and says the opposite makes the claim contradicted, unless a weaker quote above the weak "
    "threshold agrees"
)

# Abstracts read back from the index per query (each PMID is a bound parameter), and a
# bound on their passages that no PubMedQA abstract comes near.
TEXTS_PER_QUERY, PASSAGES_PER_ARTICLE = 100, 20


class CachedEncoder:
    """An encoder that encodes each distinct text once (abstracts recur from prompt to prompt)."""

    def __init__(self, encode_texts: Callable[[Sequence[str]], np.ndarray]) -> None:
        self._encode = encode_texts
        self._vectors: dict[str, np.ndarray] = {}

    def __call__(self, texts: Sequence[str], kind: str = "data") -> np.ndarray:
        """Vectors of ``texts`` (``kind`` is ignored: answers and abstracts encode as data)."""
        missing = list(dict.fromkeys(text for text in texts if text not in self._vectors))
        if missing:
            for text, vector in zip(missing, self._encode(missing), strict=True):
                self._vectors[text] = np.asarray(vector, dtype=np.float32)
        if not texts:
            return np.zeros((0, 1), dtype=np.float32)
        return np.stack([self._vectors[text] for text in texts])


def _shares(counts: Counter[str]) -> dict[str, float | None]:
    total = sum(counts.values())
    return {label: round(counts[label] / total, 4) if total else None for label in LABELS}


def rescore_answer(
    answer: Mapping[str, Any],
    pools: Mapping[str, ArticleSentences],
    encode_claims: Callable[[Sequence[str]], np.ndarray],
    thresholds: tuple[float, float],
    demonstration_texts: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """The sentences of one recorded answer, checked again (``[]`` for an abstention).

    Each sentence as recorded (text with its citations) is grounded again against the
    sentences of its prompt's articles (``pools``: one pool per PMID, see
    :func:`article_pools`); each result row holds the recorded label (``old``, ``None`` when
    the sentence is new) beside the new one.
    """
    recorded = [s for s in answer.get("sentences") or [] if str(s.get("text") or "").strip()]
    if answer.get("abstained") or answer.get("failed") or not recorded:
        return []
    context = [str(pmid) for pmid in answer.get("context") or []]
    pool = merge_pools([pools[pmid] for pmid in context if pmid in pools])
    text = " ".join(str(s["text"]) for s in recorded)
    grounded = ground_answer(
        text, context, pool, encode_claims, thresholds, tuple(demonstration_texts)
    )
    old: dict[str, list[str]] = {}
    for sentence in recorded:
        old.setdefault(claim_text(str(sentence["text"])), []).append(str(sentence["support"]))
    rows = []
    for sentence in grounded.sentences:
        before = old.get(claim_text(sentence.text)) or []
        rows.append(
            {
                "text": sentence.text,
                "citations": list(sentence.citations),
                "old": before.pop(0) if before else None,  # None: not a sentence recorded
                "new": sentence.support,
                "quote": sentence.quote,
                "quote_pmid": sentence.quote_pmid,
                "score": round(sentence.score, 4),
                "conflict": sentence.conflict,
            }
        )
    return rows


def merge_pools(pools: Sequence[ArticleSentences]) -> ArticleSentences:
    """One pool of the sentences (and vectors) of several articles, in order."""
    if not pools:
        return ArticleSentences((), np.zeros((0, 1), dtype=np.float32))
    sentences = tuple(s for pool in pools for s in pool.sentences)
    return ArticleSentences(sentences, np.concatenate([pool.vectors for pool in pools]))


def article_pools(
    texts: Mapping[str, str], encode_texts: Callable[[Sequence[str], str], np.ndarray]
) -> dict[str, ArticleSentences]:
    """Each article's sentences, encoded (all at once), as a pool of its own."""
    everything = collect_sentences(texts, encode_texts, list(texts))
    rows: dict[str, list[int]] = {}
    for row, sentence in enumerate(everything.sentences):
        rows.setdefault(sentence.pmid, []).append(row)
    return {
        pmid: ArticleSentences(
            tuple(everything.sentences[r] for r in found), everything.vectors[found]
        )
        for pmid, found in rows.items()
    }


def rescore_support(
    data_dir: Path,
    answers_file: Path,
    settings: Settings | None = None,
    *,
    calibrate: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Support labels of the answers in ``answers_file`` before and after, by setting.

    Raises:
        EvalDataError: the PubMedQA files or the answers file cannot be read.
    """
    settings = settings or get_settings()
    made_by, answers = read_answers(answers_file)
    items, _ = load_pubmedqa(data_dir)
    articles = [items[pmid].article() for pmid in items]
    example_turn = bool((made_by.get("rag") or {}).get("example_turn"))
    with temporary_index(articles, settings, progress=progress) as (index, _):
        described = index_description(index)
        thresholds = thresholds_for(described["embeddings_model"])
        encoder = CachedEncoder(lambda texts: encode(index, texts, "data"))
        pmids = list(items)
        texts: dict[str, str] = {}
        for start in range(0, len(pmids), TEXTS_PER_QUERY):
            chunk = pmids[start : start + TEXTS_PER_QUERY]
            texts.update(article_texts(index, chunk, limit=PASSAGES_PER_ARTICLE * len(chunk)))
        pools = article_pools(texts, encoder)
        by_setting: dict[str, dict[str, Any]] = {}
        changed: list[dict[str, Any]] = []
        for (setting, pmid), answer in tqdm(
            sorted(answers.items()), unit="answer", desc="rescoring", disable=not progress
        ):
            summary = by_setting.setdefault(
                setting, {"answers": 0, "before": Counter(), "after": Counter(), "moves": Counter()}
            )
            summary["answers"] += 1
            summary["before"].update(str(s["support"]) for s in answer.get("sentences") or [])
            for row in rescore_answer(
                answer, pools, encoder, thresholds, demonstrations(example_turn)
            ):
                summary["after"][row["new"]] += 1
                summary["moves"][f"{row['old']} -> {row['new']}"] += 1
                if row["old"] != row["new"]:
                    changed.append({"setting": setting, "pmid": pmid, **row})
        checker = (
            evaluate_support(
                items,
                encoder,
                half=len(items) // 2,
                embeddings_model=described["embeddings_model"],
            )
            if calibrate
            else None
        )
    return {
        "rescored_at": datetime.now(UTC).date().isoformat(),
        "rule": RULE,
        "answers_file": str(answers_file),
        "made_by": made_by,
        "settings": {
            setting: {
                "answers": summary["answers"],
                "sentences_before": sum(summary["before"].values()),
                "sentences_after": sum(summary["after"].values()),
                "support_before": _shares(summary["before"]),
                "support_after": _shares(summary["after"]),
                "counts_before": dict(summary["before"]),
                "counts_after": dict(summary["after"]),
                "moves": dict(summary["moves"].most_common()),
            }
            for setting, summary in by_setting.items()
        },
        "support_checker": checker,
        "changed": changed,
        "index": described,
        "machine": machine_info(),
    }
