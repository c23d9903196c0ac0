"""The ``answer`` section: time to first token and tokens/s of the offline generator."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

FIVE_SOURCES = "PUBMED_RAG_EVIDENCE_PER_ARTICLE=1 PUBMED_RAG_EVIDENCE_FLOOR=0"
FIVE_SOURCES_LONG = "PUBMED_RAG_EVIDENCE_SENTENCES=10 PUBMED_RAG_EVIDENCE_FLOOR=0"
QUESTIONS = (
    "Is long-term use of proton pump inhibitors safe?",
    "Does Helicobacter pylori infection cause gastric cancer?",
    "What are the risks of radiotherapy?",
)


def bench_answer(data_dir: Path, questions: Sequence[str], max_tokens: int) -> dict[str, Any]:
    """TTFT and tokens/s of the offline generator with 5 sources, generator loaded beforehand,
    beside the same questions answered the way llama-cpp-python loads the bundled file by
    default (Q4_1 as it is, no flash attention), in the same run, and with evidence from all
    5 articles in the prompt: one sentence each (``five_sources``), two each
    (``five_sources_long``)."""
    from rag.settings import RagSettings

    def settings(**changes: Any) -> RagSettings:
        return RagSettings(top_k=5, abstain_threshold=-1.0, max_answer_tokens=max_tokens,
                           **changes)  # fmt: skip

    product = _answers(data_dir, questions, settings())
    baseline = _answers(data_dir, questions, settings(llm_repack="off", llm_flash_attention=False))
    # The default evidence prompt quotes 6 sentences, at most 2 per article and none below
    # 70% of the best, so it usually names 2-3 of the 5 articles. Without the floor, one
    # sentence per article quotes every one of the 5 (the goal's "5 sources"); two per article
    # (10 sentences) is the longest evidence prompt the limits allow.
    five = _answers(data_dir, questions, settings(evidence_per_article=1, evidence_floor=0.0))
    long = _answers(data_dir, questions, settings(evidence_sentences=10, evidence_floor=0.0))
    return {**product, "baseline": {"settings": "PUBMED_RAG_LLM_REPACK=off "
            "PUBMED_RAG_LLM_FLASH_ATTENTION=false", **baseline},
            "five_sources": {"settings": FIVE_SOURCES, **five},
            "five_sources_long": {"settings": FIVE_SOURCES_LONG, **long}}  # fmt: skip


def _answers(data_dir: Path, questions: Sequence[str], rag: Any) -> dict[str, Any]:
    from indexing.settings import Settings
    from rag.service import AnswerService

    settings = Settings(data_dir=data_dir, offline=True)
    max_tokens = rag.max_answer_tokens
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
                # llama.cpp's own timings of the same completion (llama_perf_context).
                "llama_cpp": getattr(service.generator, "last_perf", None),
            }
        )
    ttft = [float(r["first_token_ms"]) for r in rows if r["first_token_ms"] is not None]
    evidence = [float(r["evidence_ms"]) for r in rows if r["evidence_ms"] is not None]
    speed = [float(r["tokens_per_s"]) for r in rows if r["tokens_per_s"] is not None]
    perf = [r["llama_cpp"] for r in rows if r["llama_cpp"]]

    def median_of(key: str) -> float | None:
        values = [float(p[key]) for p in perf if p.get(key)]
        return round(float(np.median(values)), 1) if values else None

    return {
        "model": service.model_name,
        "file": str(getattr(service.generator, "path", "")),
        "load_s": round(load_s, 2),
        "max_answer_tokens": max_tokens,
        "first_token_ms_median": round(float(np.median(ttft)), 1) if ttft else None,
        "evidence_ms_median": round(float(np.median(evidence)), 1) if evidence else None,
        "tokens_per_s_median": round(float(np.median(speed)), 2) if speed else None,
        "llama_cpp_prompt_tokens_per_s_median": median_of("prompt_tokens_per_s"),
        "llama_cpp_generation_tokens_per_s_median": median_of("generation_tokens_per_s"),
        "prompt_tokens_reused_median": median_of("reused"),
        "answers": rows,
    }
