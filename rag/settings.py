"""Typed settings for the read side (retrieval and generation), from ``PUBMED_RAG_*``.

Shared settings (``data_dir``, ``offline``) live in :mod:`indexing.settings`; every field here
must also be listed in the README's settings table.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from rag import prompts

# Qwen2.5-1.5B-Instruct, 4-bit K-quant (986 MB): the smallest instruct model we tried that
# follows "cite [PMID:n]" instructions reliably; ~10 tokens/s on 2 CPU cores; Apache-2.0.
DEFAULT_LLM = "bartowski/Qwen2.5-1.5B-Instruct-GGUF/Qwen2.5-1.5B-Instruct-Q4_K_M.gguf"

# Best dense cosine (of any retrieved passage) below which we abstain, per embedder that
# built the index: cosines are not comparable across models. MiniLM, measured over 500
# PubMedQA abstracts + the 163 metapub records: PubMedQA questions whose abstract is indexed
# score p5 0.56 / median 0.73 (99.2% >= 0.40); the other 500 PubMedQA questions (abstract
# held out) median 0.48 (17% < 0.40); 40 off-topic questions max 0.33, median 0.18 (all
# < 0.40). 0.40 keeps a margin below answerable questions, which users phrase less like the
# abstract than PubMedQA does. PubMedBERT is not calibrated yet: it falls back to 0.40.
CALIBRATED_THRESHOLDS: dict[str, float] = {
    "offline:sentence-transformers/all-MiniLM-L6-v2": 0.40,
}
FALLBACK_THRESHOLD = 0.40
# Settings that cannot change an answer: where llama.cpp runs, how long a question waits for
# the generator, and the cap on the candidate pool (a search stopped there says so). Answer
# bundles and the PubMedQA answers file record every other setting.
NOT_SHAPING_ANSWERS = frozenset(
    {
        "gpu_layers",
        "llm_threads",
        "llm_flash_attention",
        "llm_repack",
        "generator_wait_s",
        "max_candidates",
    }
)


class RagSettings(BaseSettings):
    """Settings of search and answer generation."""

    model_config = SettingsConfigDict(env_prefix="PUBMED_RAG_", extra="ignore")

    llm: str = Field(
        DEFAULT_LLM,
        description=(
            "Generator GGUF: a hub file as 'org/repo/file.gguf' (downloaded once into "
            "<data_dir>/models/) or a local .gguf path. Ignored in offline mode, which uses "
            "the bundled SmolLM2-135M-Instruct."
        ),
    )
    n_ctx: int = Field(
        4096,
        ge=1024,
        le=131072,
        description="Generator context window in tokens (prompt + passages + answer).",
    )
    max_answer_tokens: int = Field(
        384, ge=16, le=4096, description="Most tokens the generator may write per answer."
    )
    temperature: float = Field(
        0.1, ge=0, le=2, description="Sampling temperature; low keeps answers close to sources."
    )
    top_k: int = Field(
        5, ge=1, le=50, description="Passages (best first) given to the generator, budget allowing."
    )
    search_limit: int = Field(
        10, ge=1, le=200, description="Articles a search returns (and an answer lists as sources)."
    )
    hybrid_weight: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Weight of the dense score in hybrid ranking: 0 = BM25 only, 1 = dense only.",
    )
    candidates: int = Field(
        100,
        ge=10,
        le=100000,
        description="Passages pulled per retriever before filters and collapsing; grown automatically when filters leave too few.",
    )
    reranker: str | None = Field(
        None,
        description="Second stage: a cross-encoder (hub id or local folder) that reorders the first "
        "stage's top articles, e.g. ncbi/MedCPT-Cross-Encoder (fetched once, like the embedder); "
        "unset = off. No cross-encoder ships with the offline bundle.",
    )
    rerank_depth: int = Field(
        30,
        ge=2,
        le=200,
        description="Articles the reranker rescores per search (the rest keep their order below them).",
    )
    feedback_docs: int = Field(
        0,
        ge=0,
        le=50,
        description="Pseudo-relevance feedback (Rocchio) on the query vector: the best passages of the "
        "first ranking's top N articles are added to the query's vector and the dense side is "
        "searched again (one encoder pass over N passages per search); 0 = off.",
    )
    feedback_weight: float = Field(
        0.5,
        ge=0,
        le=4,
        description="Weight of the feedback passages' mean vector beside the query's own (unit) vector.",
    )
    late_interaction: int = Field(
        0,
        ge=0,
        le=200,
        description="Second stage without a cross-encoder: rescore the top N articles by late "
        "interaction (MaxSim over the index encoder's token vectors, one encoder pass over N "
        "passages per search); 0 = off. Ignored when PUBMED_RAG_RERANKER is set.",
    )
    late_interaction_weight: float = Field(
        0.6,
        ge=0,
        le=1,
        description="Share of the late-interaction score in the rescored articles' score (the rest is the first stage's fused score).",
    )
    max_candidates: int = Field(
        20000,
        ge=10,
        le=10_000_000,
        description="Most passages pulled per retriever when filters leave too few hits; a search stopped "
        "there says its results may be incomplete.",
    )
    evidence_boost: bool = Field(
        False,
        description="Rank stronger study designs higher by default (the app's toggle, CLI --rank-by-evidence): adds up to 0.05 to a hit's score, meta-analysis most, other/unclassified nothing.",
    )
    generator_wait_s: float = Field(
        120.0,
        ge=0,
        le=3600,
        description="Seconds a question waits for the shared generator while others are answered "
        "(the app shows its place in the line); after that it fails with 'busy, try again'.",
    )
    abstain_threshold: float | None = Field(
        None,
        ge=-1,
        le=1,
        description="Best dense cosine below which `ask` abstains; unset = the value calibrated for the index's embedder.",
    )
    max_query_chars: int = Field(
        1000, ge=50, le=20000, description="Longer queries are trimmed (on a word) to this length."
    )
    gpu_layers: int = Field(
        -1,
        ge=-1,
        description="Generator layers offloaded to a GPU (-1 = all); a CPU-only llama.cpp ignores it.",
    )
    llm_threads: int | None = Field(
        None, ge=1, le=512, description="CPU threads for generation; unset = all CPU cores."
    )
    llm_repack: Literal["auto", "off"] = Field(
        "auto",
        description="auto: a Q4_1 GGUF (the bundled SmolLM2's type), which llama.cpp has no fast CPU kernels for, is repacked once into Q8_0 under <data_dir>/models/repacked/ and that copy is loaded (prompts read 1.4-1.7x faster, next to no added error); off: the file as it is.",
    )
    llm_flash_attention: bool = Field(
        True,
        description="llama.cpp's fused attention kernel for the generator (llama-cpp-python leaves it off; llama.cpp's own tools turn it on where supported): prompts are read faster, the more so the longer they are. Off = the plain kernel.",
    )
    example_turn: bool = Field(
        False,
        description="Show the generator a worked example (question, evidence, cited answer) before the real question. Off: the citation grammar makes it unnecessary; any phrase an answer copies from it is removed.",
    )
    constrain_citations: bool = Field(
        True,
        description="Constrain decoding (a llama.cpp grammar) so that every answer sentence ends with a [PMID:n] tag of an article in the prompt.",
    )
    max_answer_sentences: int = Field(
        4, ge=1, le=12, description="Most sentences a constrained answer may have."
    )
    evidence_sentences: int = Field(
        6, ge=1, le=30, description="Key-evidence sentences quoted from the top articles."
    )
    evidence_per_article: int = Field(
        2, ge=1, le=10, description="Most key-evidence sentences from one article."
    )
    evidence_floor: float = Field(
        0.7,
        ge=0.0,
        le=1.0,
        description="A sentence scoring below this share of the best sentence's score is not quoted, so weaker articles do not dilute the prompt; 0 quotes from every top article up to the two limits above (longer prompts).",
    )
    prompt_passages: bool = Field(
        False,
        description="Give the generator the top passages as well as the key evidence, as the window allows (longer prompts: later first words).",
    )
    evidence_template: str = Field(
        prompts.EVIDENCE_TEMPLATE,
        description="How each evidence sentence is shown to the generator; needs {pmid} and {text}, may use {section}.",
    )
    system_prompt: str = Field(
        prompts.SYSTEM_PROMPT, description="System message given to the generator."
    )
    answer_prompt: str = Field(
        prompts.ANSWER_PROMPT,
        description="User message template; needs {evidence} and {question}, may use {passages} and {example_pmid}.",
    )
    passage_template: str = Field(
        prompts.PASSAGE_TEMPLATE,
        description="How each passage is shown to the generator; needs {pmid} and {passage}, may use {title}, {year}, {journal}.",
    )

    verdicts: str = Field(
        "",
        max_length=500,
        description="Verdict model the Ask page tallies the top articles with (yes/no/maybe): cues (model-free), biogpt or a BioGPT folder; empty = off. The CLI's `search --verdicts MODEL` works either way.",
    )
    watch_top_n: int = Field(
        20,
        ge=1,
        le=200,
        description="Top results of a saved search or question compared at each check (new PMIDs, retractions).",
    )
    watch_history: int = Field(
        20,
        ge=1,
        le=1000,
        description="Checks kept per saved search or question (older ones are dropped).",
    )
    watch_feed: Path | None = Field(
        None,
        description="Atom feed file that every `rag watch run` (also the one after an update) rewrites; unset = none (`rag watch feed PATH` writes one on demand).",
    )

    @field_validator("llm")
    @classmethod
    def _gguf_or_scheme(cls, value: str) -> str:
        value = value.strip()
        if not value.lower().endswith(".gguf") and ":" not in value.split("/")[0]:
            raise ValueError(
                f"PUBMED_RAG_LLM={value!r} is not a .gguf file: give 'org/repo/file.gguf' or a "
                "local path ending in .gguf"
            )
        return value

    @field_validator("answer_prompt")
    @classmethod
    def _answer_placeholders(cls, value: str) -> str:
        return prompts.check_template("answer_prompt", value)

    @field_validator("passage_template")
    @classmethod
    def _passage_placeholders(cls, value: str) -> str:
        return prompts.check_template("passage_template", value)

    @field_validator("evidence_template")
    @classmethod
    def _evidence_placeholders(cls, value: str) -> str:
        return prompts.check_template("evidence_template", value)

    @model_validator(mode="after")
    def _answer_fits(self) -> RagSettings:
        if self.max_answer_tokens > self.n_ctx // 2:
            raise ValueError(
                f"max_answer_tokens={self.max_answer_tokens} leaves too little of "
                f"n_ctx={self.n_ctx} for the passages; keep it at most half of n_ctx"
            )
        return self

    def threshold_for(self, embeddings_model: str) -> float:
        """The abstention threshold for an index built with ``embeddings_model``."""
        if self.abstain_threshold is not None:
            return self.abstain_threshold
        return CALIBRATED_THRESHOLDS.get(embeddings_model, FALLBACK_THRESHOLD)


def answer_shaping(rag: RagSettings) -> dict[str, object]:
    """The settings that shape ranking and generation, JSON-ready (all but :data:`NOT_SHAPING_ANSWERS`)."""
    return rag.model_dump(mode="json", exclude=set(NOT_SHAPING_ANSWERS))


@lru_cache(maxsize=1)
def get_rag_settings() -> RagSettings:
    """Settings read once from the environment (tests call ``get_rag_settings.cache_clear()``)."""
    return RagSettings()
