"""Support labels of stored answers checked again: old and new label per sentence, no generator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from evaluation.answers import read_answers
from evaluation.errors import EvalDataError
from evaluation.rescore import CachedEncoder, article_pools, merge_pools, rescore_answer
from rag.support import CONTRADICTED, SUPPORTED
from tests.hashed_encoder import encode, encode_claims

CURED = "Bismuth quadruple therapy cured the infection in most patients."
ABSTRACTS = {"31": f"RESULTS: {CURED}", "32": "RESULTS: Warfarin doubled bleeding events."}
THRESHOLDS = (0.55, 0.45)


@pytest.fixture(scope="module")
def pools():
    return article_pools(ABSTRACTS, encode)


def _answer(*sentences: tuple[str, str], **extra) -> dict:
    return {
        "text": " ".join(text for text, _ in sentences),
        "abstained": False,
        "failed": False,
        "context": ["31", "32"],
        "sentences": [
            {"text": text, "citations": ["31"], "support": support} for text, support in sentences
        ],
        **extra,
    }


def test_a_stored_sentence_gets_its_new_label_beside_the_old(pools) -> None:
    answer = _answer(
        (
            "No, bismuth quadruple therapy did not cure the infection in most patients [PMID:31].",
            SUPPORTED,
        ),
        (f"{CURED[:-1]} [PMID:31].", SUPPORTED),
    )

    rows = rescore_answer(answer, pools, encode_claims, THRESHOLDS)

    assert [(row["old"], row["new"]) for row in rows] == [
        (SUPPORTED, CONTRADICTED),
        (SUPPORTED, SUPPORTED),
    ]
    assert rows[0]["quote"] == CURED and rows[0]["quote_pmid"] == "31"
    assert rows[0]["conflict"] == "claim “not”; quote affirms"


def test_abstentions_and_failures_have_no_sentences_to_check(pools) -> None:
    sentence = (f"{CURED[:-1]} [PMID:31].", SUPPORTED)

    assert rescore_answer(_answer(sentence, abstained=True), pools, encode_claims, THRESHOLDS) == []
    assert rescore_answer(_answer(sentence, failed=True), pools, encode_claims, THRESHOLDS) == []
    assert rescore_answer(_answer(), pools, encode_claims, THRESHOLDS) == []


def test_article_pools_split_one_encoding_by_article(pools) -> None:
    assert sorted(pools) == ["31", "32"]
    merged = merge_pools([pools["32"], pools["31"]])
    assert [s.pmid for s in merged.sentences] == ["32", "31"]
    assert merged.vectors.shape[0] == 2
    assert merge_pools([]).sentences == ()


def test_the_cached_encoder_encodes_each_text_once() -> None:
    seen: list[str] = []

    def counting(texts):
        seen.extend(texts)
        return encode(texts)

    cached = CachedEncoder(counting)
    first = cached(["a b", "c d", "a b"])
    again = cached(["c d"])

    assert seen == ["a b", "c d"]
    assert np.allclose(first[2], first[0]) and np.allclose(again[0], first[1])


def test_an_answers_file_is_read_without_being_changed(tmp_path: Path) -> None:
    path = tmp_path / "answers.jsonl"
    rows = [{"made_by": {"generator": "x"}}, {"setting": "gold", "pmid": "1", "answer": {"a": 1}}]
    raw = "\n".join(json.dumps(row) for row in rows) + '\n{"setting": "gold", "pm'
    path.write_text(raw, encoding="utf-8")

    made_by, answers = read_answers(path)

    assert made_by == {"generator": "x"} and answers == {("gold", "1"): {"a": 1}}
    assert path.read_text(encoding="utf-8") == raw  # the cut-off line is skipped, not removed
    path.write_text("not json\n", encoding="utf-8")
    with pytest.raises(EvalDataError, match="not an answers file"):
        read_answers(path)


def test_rescore_support_needs_the_answers_file(tmp_path: Path) -> None:
    from rag.__main__ import cli

    result = CliRunner().invoke(
        cli, ["eval", "pubmedqa", "--data", str(tmp_path), "--rescore-support"]
    )

    assert result.exit_code == 2
    assert "--rescore-support needs --answers" in result.output
