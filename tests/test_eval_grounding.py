"""The PubMedQA grounding figures and the support-checker evaluation of ``make eval``."""

from __future__ import annotations

from pathlib import Path

from evaluation.pubmedqa import evaluate_support, grounding_scores, load_pubmedqa
from rag.prompts import EXAMPLE_ANSWER
from tests import hashed_encoder
from tests.conftest import SHARED_DATA, needs_shared_data


def _row(text: str, context: list[str], supports: list[str]) -> dict:
    return {
        "text": text,
        "context": context,
        "sentences": [{"support": support} for support in supports],
        "evidence_ms": 120.0,
        "prompt_tokens": 250,
    }


def test_grounding_scores_count_cited_sentences_support_and_copies() -> None:
    answers = {
        "1": _row("Yes, it helps [PMID:1]. It also lasts [PMID:2].", ["1", "2"], ["supported"] * 2),
        # The second sentence cites a PMID outside the prompt: not a valid citation.
        "2": _row("No [PMID:3]. Risk rises [PMID:9].", ["3"], ["weak", "unsupported"]),
        "3": _row(EXAMPLE_ANSWER.replace("10000001", "4"), ["4"], ["unsupported"]),
    }

    scores = grounding_scores(answers, ["1", "2", "3"])

    # "No." alone states nothing: it belongs to the sentence after it, as in the product.
    assert scores["answer_sentences"] == 5
    assert scores["sentences_with_valid_citation"] == 0.8
    assert scores["support"] == {
        "supported": 0.4,
        "weak": 0.2,
        "unsupported": 0.4,
        "contradicted": 0.0,
    }
    assert scores["copied_from_demonstration"] == 1  # the worked example, word for word
    assert scores["evidence_ms_median"] == 120.0 and scores["prompt_tokens_median"] == 250


@needs_shared_data()
def test_support_checker_separates_a_conclusion_from_other_abstracts_on_pubmedqa() -> None:
    items, _ = load_pubmedqa(Path(SHARED_DATA) / "pubmedqa")
    subset = {pmid: items[pmid] for pmid in list(items)[:80]}

    result = evaluate_support(subset, hashed_encoder.encode_claims, half=40)

    assert result["pairs"] == 80
    # Even a bag-of-words encoder tells a conclusion's own abstract from a random one.
    assert result["auc_random_negative"] >= 0.95
    assert 0.5 <= result["auc_hard_negative"] <= result["auc_random_negative"]
    chosen = result["chosen_on_first_half"]
    assert chosen["weak"] <= chosen["supported"]
    held = result["held_out_half"]["supported_vs_random"]
    assert held["threshold"] == chosen["supported"] and 0 <= held["recall"] <= 1
    # The polarity check seldom finds a conclusion contradicted by its own abstract.
    assert 0 <= result["contradicted"]["own_abstract"] <= 0.1
    medians = result["median_score"]
    assert medians["own_abstract"] > medians["most_similar_other_abstract"]
    assert medians["most_similar_other_abstract"] >= medians["random_abstract"]


def test_pubmedqa_settings_option_refuses_an_unknown_setting(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from rag.__main__ import cli

    result = CliRunner().invoke(
        cli, ["eval", "pubmedqa", "--data", str(tmp_path), "--settings", "retrieval,oracle"]
    )

    assert result.exit_code == 2
    assert "give retrieval, gold, retrieval,gold or none" in result.output
