"""``make eval``'s summary: which files it reads and how it labels a partial PubMedQA run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.evaluate import main

MACHINE = {"measured_at": "2026-11-23T12:00:00", "cpu": "Test CPU", "cores": 2}
SCORES = {"ndcg@10": 0.7, "recall@10": 0.8, "recall@100": 0.9, "mrr@10": 0.65}


def _scifact(precision: str) -> dict[str, Any]:
    return {
        "product": SCORES,
        "baselines": {"txtai-bm25": {**SCORES, "ndcg@10": 0.6}},
        "config": {
            "product": {"encoder": {"precision": precision}},
            "queries": 300,
            "documents": 5183,
        },
        "machine": MACHINE,
    }


def _pubmedqa(answered: int, accuracy: float) -> dict[str, Any]:
    setting = {"accuracy": accuracy, "majority_baseline": 0.55, "source_recall": {"@1": 0.9}}
    return {
        "config": {
            "answered_questions": answered,
            "test_questions": 500,
            "generator": "smollm2",
            "label_rule": "first word",
        },
        "retrieval": setting,
        "gold": setting,
        "machine": MACHINE,
    }


def _write(folder: Path, name: str, payload: dict[str, Any]) -> None:
    (folder / name).write_text(json.dumps(payload), encoding="utf-8")


def test_summary_takes_the_largest_partial_pubmedqa_run_and_says_it_is_partial(
    tmp_path: Path,
) -> None:
    _write(tmp_path, "eval-scifact.json", _scifact("bf16"))
    _write(tmp_path, "eval-scifact-fp32.json", _scifact("fp32"))
    _write(tmp_path, "eval-pubmedqa-limit20.json", _pubmedqa(20, 0.25))
    _write(tmp_path, "eval-pubmedqa-limit100.json", _pubmedqa(100, 0.42))

    assert main(["--summarize", "--out-dir", str(tmp_path)]) == 0

    text = (tmp_path / "eval-latest.md").read_text(encoding="utf-8")
    assert "Partial PubMedQA run**: 100 of the 500" in text
    assert "| accuracy (yes/no/maybe) | 42.0% |" in text
    assert "`eval-pubmedqa-limit100.json`" in text and "limit20" not in text


def test_summary_prefers_a_full_pubmedqa_run(tmp_path: Path) -> None:
    _write(tmp_path, "eval-scifact.json", _scifact("bf16"))
    _write(tmp_path, "eval-scifact-fp32.json", _scifact("fp32"))
    _write(tmp_path, "eval-pubmedqa-limit100.json", _pubmedqa(100, 0.42))
    _write(tmp_path, "eval-pubmedqa.json", _pubmedqa(500, 0.38))

    assert main(["--summarize", "--out-dir", str(tmp_path)]) == 0

    text = (tmp_path / "eval-latest.md").read_text(encoding="utf-8")
    assert "Partial" not in text and "| accuracy (yes/no/maybe) | 38.0% |" in text
    assert "nDCG@10 of the bf16 encoder minus fp32: **+0.0000**" in text


def test_summary_shows_what_each_stage_adds_and_the_search_latency(tmp_path: Path) -> None:
    full = _scifact("bf16")
    full["ablations"] = {"without BM25 (dense only)": {**SCORES, "ndcg@10": 0.64}}
    full["product_latency_ms"] = {"p50": 21.5, "p95": 40.2, "max": 80.0, "n": 300}
    full["config"]["product"]["keyword_stemmer"] = "english"
    _write(tmp_path, "eval-scifact.json", full)
    _write(tmp_path, "eval-scifact-fp32.json", _scifact("fp32"))
    _write(
        tmp_path,
        "eval-scifact-nostem.json",
        {**_scifact("bf16"), "product": {**SCORES, "ndcg@10": 0.68}},
    )

    assert main(["--summarize", "--out-dir", str(tmp_path)]) == 0

    text = (tmp_path / "eval-latest.md").read_text(encoding="utf-8")
    assert (
        "| without stemming (`PUBMED_RAG_KEYWORD_STEMMER=none`) | 0.680 | +0.020 | 0.900 |" in text
    )
    assert "| without BM25 (dense only) | 0.640 | +0.060 | 0.900 |" in text
    assert "stemmed BM25 (english)" in text
    assert "p50 21.5 ms, p95 40.2 ms" in text
    assert "`eval-scifact-nostem.json`" in text


def _rescored(on: str, after: dict[str, float]) -> dict[str, Any]:
    return {
        "rescored_at": on,
        "rule": "polarity",
        "settings": {
            "retrieval": {
                "support_before": {"supported": 0.7, "weak": 0.1, "unsupported": 0.2},
                "support_after": after,
                "sentences_before": 10,
                "sentences_after": 10,
            }
        },
        "support_checker": None,
    }


def test_rescored_support_labels_replace_the_shares_and_keep_those_as_generated() -> None:
    from benchmarks.evaluate import merge_rescored, pubmedqa_table

    result = _pubmedqa(500, 0.14)
    result["retrieval"]["support"] = {"supported": 0.7, "weak": 0.1, "unsupported": 0.2}
    after = {"supported": 0.6, "weak": 0.1, "unsupported": 0.2, "contradicted": 0.1}

    merged = merge_rescored(result, _rescored("2026-12-02", after))
    # Rescored again later: the shares "before" are still those the answers were made with.
    again = merge_rescored(merged, _rescored("2026-12-03", after))

    assert again["retrieval"]["support"] == after
    assert again["retrieval"]["support_rescored"]["on"] == "2026-12-03"
    assert again["retrieval"]["support_rescored"]["support_before"]["supported"] == 0.7
    assert result["retrieval"]["support"]["supported"] == 0.7  # the input is not changed
    table = "\n".join(pubmedqa_table(again))
    assert "| answer sentences judged contradicted | 10.0% |" in table
    assert "rescored on 2026-12-03" in table and "supported 70.0%" in table
