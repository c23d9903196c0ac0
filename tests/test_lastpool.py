"""BMRetriever's path (last-token pooling over text + EOS, query/passage instructions).

BMRetriever-410M's weights cannot be downloaded here, so the model is a tiny GPT-NeoX (random
weights, the real architecture class) with a word-level tokenizer built in the test and saved
as a Hugging Face folder; txtai loads it by path as it would load the real snapshot.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from indexing.lastpool import EosLastPooling
from indexing.model_profiles import (
    BMRETRIEVER_PASSAGE,
    BMRETRIEVER_QUERY,
    LAST_TOKEN_METHOD,
    choose_profile,
)
from indexing.settings import Settings
from indexing.store.files import FileStore
from tests.fixtures_index import SampleIndex, build_index, sample_index

__all__ = ["sample_index"]

EOS, PAD, UNK = "<|endoftext|>", "<|padding|>", "[UNK]"


def save_tiny_neox(folder: Path, texts: list[str], padding_side: str = "right") -> Path:
    """A 2-layer GPT-NeoX with a word-level tokenizer over ``texts``, saved to ``folder``."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPTNeoXConfig, GPTNeoXModel, PreTrainedTokenizerFast

    words = sorted({word for text in texts for word in text.replace("\n", " ").split()})
    vocab = {token: i for i, token in enumerate([UNK, PAD, EOS, *words])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token=EOS, pad_token=PAD, unk_token=UNK,
        padding_side=padding_side, model_max_length=512,
    )  # fmt: skip
    torch.manual_seed(0)
    config = GPTNeoXConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=600, eos_token_id=vocab[EOS],
        pad_token_id=vocab[PAD], bos_token_id=vocab[EOS],
    )  # fmt: skip
    GPTNeoXModel(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def sample_texts(sample_index: SampleIndex, count: int) -> list[str]:
    articles = list(sample_index.articles.values())[:count]
    return [f"{a.title} {a.abstract}" for a in articles] + [BMRETRIEVER_QUERY, BMRETRIEVER_PASSAGE]


def reference_vector(folder: Path, text: str) -> np.ndarray:
    """BMRetriever's recipe written out: ids + EOS, the last hidden state, L2-normalised."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    ids = tokenizer(text, truncation=True, max_length=511)["input_ids"] + [tokenizer.eos_token_id]
    with torch.no_grad():
        hidden = model(input_ids=torch.tensor([ids])).last_hidden_state[0, -1].numpy()
    return hidden / np.linalg.norm(hidden)


def test_profile_is_chosen_by_name_or_setting() -> None:
    assert choose_profile("BMRetriever/BMRetriever-410M").name == "bmretriever"
    assert choose_profile("/models/BMRetriever-410M").name == "bmretriever"
    assert choose_profile("/models/tiny-neox").name == "sentence-transformers"
    assert choose_profile("/models/tiny-neox", "bmretriever").name == "bmretriever"
    assert choose_profile("neuml/pubmedbert-base-embeddings-matryoshka").matryoshka


def test_bmretriever_index_builds_searches_and_applies_instructions(
    tmp_path: Path, sample_index: SampleIndex
) -> None:
    model = save_tiny_neox(tmp_path / "tiny-neox", sample_texts(sample_index, 6))
    data_dir = tmp_path / "data"
    # fp32: the reference below runs in fp32 (bf16 would differ in the third decimal)
    settings = Settings(
        data_dir=data_dir,
        embeddings=str(model),
        embeddings_profile="bmretriever",
        encoder_precision="fp32",
    )
    build_index(data_dir, dict(list(sample_index.articles.items())[:6]), settings)
    # no profile setting: the reader takes it from the manifest
    store = FileStore(Settings(data_dir=data_dir, embeddings=str(model), encoder_precision="fp32"))
    version = store.current_version()
    assert version is not None
    index = store.open_version(version)
    try:
        manifest = index.manifest
        assert manifest.profile == "bmretriever" and manifest.dimensions == 32
        assert manifest.embeddings_config["method"] == LAST_TOKEN_METHOD
        assert manifest.embeddings_config["instructions"] == {
            "query": BMRETRIEVER_QUERY,
            "data": BMRETRIEVER_PASSAGE,
        }
        title = next(iter(sample_index.articles.values())).title
        as_query, as_passage = np.asarray(
            [index.embeddings.transform(title, "query"), index.embeddings.transform(title, "data")]
        )
        assert not np.allclose(as_query, as_passage)  # each side gets its own instruction
        np.testing.assert_allclose(
            as_query, reference_vector(model, BMRETRIEVER_QUERY + title), atol=1e-5
        )
        np.testing.assert_allclose(
            as_passage, reference_vector(model, BMRETRIEVER_PASSAGE + title), atol=1e-5
        )
        hits = index.search(title, 3)
        assert hits
    finally:
        index.close()


@pytest.mark.parametrize("side", ["right", "left"])
def test_padding_never_changes_a_vector(
    tmp_path: Path, sample_index: SampleIndex, side: str
) -> None:
    texts = sample_texts(sample_index, 3)
    model = save_tiny_neox(tmp_path / "tiny-neox", texts, padding_side=side)
    pooling = EosLastPooling(str(model), -1, None, 512, False, {})
    assert pooling.tokenizer.padding_side == side
    short, long = "proton pump inhibitors", texts[0]
    inputs = pooling.tokenize([short, long])
    assert int(inputs["attention_mask"][0].sum()) < inputs["input_ids"].shape[1]  # padded
    ends = inputs["input_ids"][0][inputs["attention_mask"][0].bool()]
    assert int(ends[-1]) == pooling.tokenizer.eos_token_id
    alone = pooling.encode([short], batch=1)[0]
    batched = pooling.encode([short, long], batch=2)
    np.testing.assert_allclose(batched[0], alone, atol=1e-5)
    np.testing.assert_allclose(batched[1], pooling.encode([long], batch=1)[0], atol=1e-5)
