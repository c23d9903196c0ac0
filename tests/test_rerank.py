"""The second stage: a cross-encoder reorders the top articles, on a tiny model built here.

The model is a real ``BertForSequenceClassification`` (one label, MedCPT-Cross-Encoder's
shape) with random weights, the bundled MiniLM word-piece vocabulary and tokenizer, saved to a
folder and loaded by path through the product's own code (txtai's ``Similarity`` pipeline).
Its scores mean nothing; what is checked is that the product orders by them, exactly as
``transformers`` computes them on its own, and leaves everything else alone.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from indexing.settings import offline_embeddings_path
from indexing.store import IndexReader
from rag.errors import RerankerUnavailableError
from rag.rerank import LateInteraction, Reranker
from rag.search import search
from rag.service import AnswerService
from rag.settings import RagSettings
from tests.fixtures_index import SampleIndex, sample_index

__all__ = ["sample_index"]

QUERY = "proton pump inhibitors long-term safety"


@pytest.fixture(scope="module")
def cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-cross-encoder")
    tokenizer = BertTokenizerFast.from_pretrained(str(offline_embeddings_path()))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        num_labels=1,
    )
    torch.manual_seed(7)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _own_scores(folder: Path, query: str, texts: list[str]) -> list[float]:
    """The model's logits for (query, text) pairs, computed by transformers directly."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForSequenceClassification.from_pretrained(str(folder)).eval()
    scores = []
    with torch.no_grad():
        for text in texts:
            batch = tokenizer(query, text, return_tensors="pt", truncation=True, max_length=512)
            scores.append(float(model(**batch).logits[0, 0]))
    return scores


def test_the_top_articles_are_ordered_by_the_cross_encoders_own_scores(
    sample_index: SampleIndex, cross_encoder: Path
) -> None:
    reader = IndexReader(sample_index.settings())
    first = search(reader, QUERY, limit=12)
    reranker = Reranker(str(cross_encoder), depth=8, allow_download=False)
    second = search(reader, QUERY, limit=12, reranker=reranker)

    top, rest = second.hits[:8], second.hits[8:]
    assert {hit.pmid for hit in top} == {hit.pmid for hit in first.hits[:8]}
    assert [hit.pmid for hit in rest] == [hit.pmid for hit in first.hits[8:12]]
    assert all(hit.rerank_score is None for hit in (*first.hits, *rest))

    expected = _own_scores(cross_encoder, QUERY, [f"{h.title}\n{h.passage}" for h in top])
    assert [hit.rerank_score for hit in top] == pytest.approx(expected, abs=1e-4)
    assert [hit.rerank_score for hit in top] == sorted((h.rerank_score for h in top), reverse=True)
    assert [hit.pmid for hit in top] != [hit.pmid for hit in first.hits[:8]]  # it did reorder


def test_the_service_loads_the_named_reranker_once_and_uses_it(
    sample_index: SampleIndex, cross_encoder: Path
) -> None:
    service = AnswerService(
        settings=sample_index.settings(),
        rag=RagSettings(reranker=str(cross_encoder), rerank_depth=5),
    )
    result = service.search(QUERY, limit=6)

    assert [hit.rerank_score is not None for hit in result.hits] == [True] * 5 + [False]
    assert service.load_reranker() is service.load_reranker()


def test_off_by_default(sample_index: SampleIndex) -> None:
    service = AnswerService(settings=sample_index.settings(), rag=RagSettings())
    assert service.load_reranker() is None
    assert all(hit.rerank_score is None for hit in service.search(QUERY, limit=5).hits)


def test_a_missing_or_unusable_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RerankerUnavailableError, match="not in the local cache"):
        Reranker("ncbi/MedCPT-Cross-Encoder", allow_download=False)
    (tmp_path / "config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(RerankerUnavailableError, match="could not be loaded"):
        Reranker(str(tmp_path), allow_download=False)


# -- late interaction: the index's own encoder, token by token --------------------------------


def _maxsim(query: str, texts: list[str]) -> list[float]:
    """MaxSim of the query's tokens against each text's, by the MiniLM model loaded on its own."""
    import numpy as np
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(offline_embeddings_path()), device="cpu")

    def unit(tokens: torch.Tensor) -> np.ndarray:
        array = tokens.float().numpy()[1:-1]
        return array / np.linalg.norm(array, axis=1, keepdims=True)

    (query_tokens,) = [unit(t) for t in model.encode([query], output_value="token_embeddings")]
    return [
        float((query_tokens @ unit(tokens).T).max(axis=1).mean())
        for tokens in model.encode(texts, output_value="token_embeddings")
    ]


def test_late_interaction_mixes_maxsim_over_token_vectors_into_the_first_stage_score(
    sample_index: SampleIndex,
) -> None:
    reader = IndexReader(sample_index.settings())
    first = search(reader, QUERY, limit=10)
    second = search(reader, QUERY, limit=10, reranker=LateInteraction(depth=6, weight=0.6))

    top, rest = second.hits[:6], second.hits[6:]
    assert {hit.pmid for hit in top} == {hit.pmid for hit in first.hits[:6]}
    assert [hit.pmid for hit in rest] == [hit.pmid for hit in first.hits[6:]]
    maxsim = dict(
        zip(
            [h.pmid for h in top],
            _maxsim(QUERY, [f"{h.title}\n{h.passage}" for h in top]),
            strict=True,
        )
    )
    for hit in top:  # the index may encode in bf16: close to the fp32 figure, not equal
        assert hit.rerank_score == pytest.approx(0.4 * hit.score + 0.6 * maxsim[hit.pmid], abs=0.01)
    assert [hit.rerank_score for hit in top] == sorted((h.rerank_score for h in top), reverse=True)


def test_late_interaction_with_weight_zero_keeps_the_first_stage_order(
    sample_index: SampleIndex,
) -> None:
    reader = IndexReader(sample_index.settings())
    first = search(reader, QUERY, limit=8)
    second = search(reader, QUERY, limit=8, reranker=LateInteraction(depth=8, weight=0.0))

    assert [hit.pmid for hit in second.hits] == [hit.pmid for hit in first.hits]
    assert [hit.rerank_score for hit in second.hits] == pytest.approx([h.score for h in first.hits])


def test_the_service_takes_late_interaction_when_no_cross_encoder_is_named(
    sample_index: SampleIndex, cross_encoder: Path
) -> None:
    late = AnswerService(settings=sample_index.settings(), rag=RagSettings(late_interaction=4))
    assert isinstance(late.load_reranker(), LateInteraction)
    hits = late.search(QUERY, limit=6).hits
    assert [hit.rerank_score is not None for hit in hits] == [True] * 4 + [False] * 2

    both = RagSettings(late_interaction=4, reranker=str(cross_encoder))
    service = AnswerService(settings=sample_index.settings(), rag=both)
    assert isinstance(service.load_reranker(), Reranker)
