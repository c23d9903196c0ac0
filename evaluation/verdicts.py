"""``rag eval pubmedqa --verdicts MODEL``: yes/no/maybe accuracy of a verdict model on PubMedQA.

Each test question is judged against its gold abstract (the CONTEXTS, without the conclusion
that states the answer: PubMedQA's reasoning-required setting), with no index and no
generator; the accuracy is reported beside the majority-class baseline of the same questions.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from tqdm import tqdm

from evaluation.machine import machine_info
from evaluation.pubmedqa import LABELS, load_pubmedqa, spread
from rag.verdicts import VerdictModel, load_verdict_model


def evaluate_verdicts(
    data_dir: Path,
    model: VerdictModel | str,
    *,
    limit: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Accuracy, majority baseline and confusion counts of ``model`` on the PQA-L test split."""
    judge = load_verdict_model(model) if isinstance(model, str) else model
    items, truth = load_pubmedqa(data_dir)
    questions = list(truth)
    chosen = spread(questions, limit) if limit is not None else questions
    predicted: dict[str, str] = {}
    began = time.perf_counter()
    for pmid in tqdm(chosen, unit="q", desc=f"verdicts ({judge.name})", disable=not progress):
        item = items[pmid]
        predicted[pmid] = judge.judge(item.question, " ".join(item.contexts)).label
    seconds = time.perf_counter() - began
    total = len(chosen)
    majority = Counter(truth[pmid] for pmid in chosen).most_common(1)[0][0]
    confusion = {
        gold: {label: sum(1 for p in chosen if truth[p] == gold and predicted[p] == label)
               for label in LABELS}
        for gold in LABELS
    }  # fmt: skip
    return {
        "verdicts": {
            "model": judge.name,
            "questions": total,
            "accuracy": round(sum(predicted[p] == truth[p] for p in chosen) / total, 4),
            "majority_class": majority,
            "majority_baseline": round(sum(truth[p] == majority for p in chosen) / total, 4),
            "predicted": dict(Counter(predicted.values())),
            "confusion": confusion,
            "seconds_per_question": round(seconds / total, 3),
        },
        "config": {
            "test_questions": len(questions),
            "limit": limit,
            "context": "gold abstract (CONTEXTS, without LONG_ANSWER)",
        },
        "machine": machine_info(),
    }
