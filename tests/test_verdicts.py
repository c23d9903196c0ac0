"""Verdicts: yes/no/maybe per top article, their tally, the cue baseline and BioGPT scoring.

BioGPT-Large-PubMedQA cannot be downloaded here: its path runs on a tiny random
``BioGptForCausalLM`` with a word-level tokenizer built in the test and loaded by path.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rag.biogpt import ANSWER_PREFIX, BioGptVerdicts, biogpt_prompt
from rag.search import search
from rag.verdicts import (
    LABELS,
    ArticleVerdict,
    CueVerdicts,
    VerdictTally,
    load_verdict_model,
    tally_verdicts,
)
from tests.fixtures_index import SampleIndex, sample_index

__all__ = ["sample_index"]

UNK, PAD, EOS = "[UNK]", "<pad>", "</s>"


def save_tiny_biogpt(folder: Path, texts: list[str], positions: int = 64) -> Path:
    """A 2-layer BioGPT causal LM with a word-level tokenizer over ``texts``."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import BioGptConfig, BioGptForCausalLM, PreTrainedTokenizerFast

    words = sorted(
        {w for text in [*texts, ANSWER_PREFIX, "question: context:"] for w in text.split()}
    )
    vocab = {token: i for i, token in enumerate([PAD, EOS, UNK, *words, *LABELS])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token=UNK, pad_token=PAD, eos_token=EOS
    ).save_pretrained(folder)
    torch.manual_seed(0)
    config = BioGptConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=positions, pad_token_id=0,
        bos_token_id=1, eos_token_id=1,
    )  # fmt: skip
    BioGptForCausalLM(config).eval().save_pretrained(folder)
    return folder


def test_cue_baseline_reads_the_conclusion() -> None:
    cues = CueVerdicts()
    assert cues.judge("q", "Methods. Statins reduced mortality.").label == "yes"
    no = "Results were mixed. The drug did not reduce mortality and was not associated with harm."
    assert cues.judge("q", no).label == "no"
    maybe = "It may help; the effect remains to be confirmed and further studies are needed."
    assert cues.judge("q", maybe).label == "maybe"


def test_tally_counts_the_top_articles_and_links_each_to_its_pmid(
    sample_index: SampleIndex,
) -> None:
    from indexing.store.files import FileStore

    store = FileStore(sample_index.settings())
    version = store.current_version()
    assert version is not None
    index = store.open_version(version)
    try:
        hits = search(index, "proton pump inhibitor risks", limit=6).hits
    finally:
        index.close()
    question = "Are proton pump inhibitors safe in the long term?"
    tally = tally_verdicts(question, hits, CueVerdicts(), top=6)

    assert [a.pmid for a in tally.articles] == [hit.pmid for hit in hits[:6]]
    assert sum(tally.counts().values()) == len(tally.articles) == len(hits[:6])
    for label, count in tally.counts().items():
        assert (f"{count} " in tally.summary() and label in tally.summary()) or not count
    data = tally.to_dict()
    assert data["articles"][0]["url"] == f"https://pubmed.ncbi.nlm.nih.gov/{hits[0].pmid}/"
    assert data["majority"] in LABELS


def test_summary_and_majority_wording() -> None:
    def tally(*labels: str) -> VerdictTally:
        return VerdictTally(
            "m", tuple(ArticleVerdict(str(n), "", label, 1.0) for n, label in enumerate(labels))
        )

    assert tally("yes", "yes", "no", "yes", "maybe", "yes").summary() == "4 say yes, 1 no, 1 maybe"
    assert tally("no").summary() == "1 says no"
    assert tally().summary() == "no articles judged" and tally().majority() is None
    assert tally("yes", "no").majority() == "maybe"  # a split literature is not a yes
    assert tally("no", "no", "yes").majority() == "no"


def test_biogpt_scores_the_three_labels_after_the_fine_tuning_prompt(
    tmp_path: Path, sample_index: SampleIndex
) -> None:
    article = next(a for a in sample_index.articles.values() if a.abstract)
    abstract = " ".join(section.text for section in article.abstract)
    question = f"Is {article.title.lower()}?"
    folder = save_tiny_biogpt(tmp_path / "tiny-biogpt", [abstract, question])
    model = BioGptVerdicts(str(folder))

    prompt = biogpt_prompt(question, "X")
    assert prompt.startswith(f"question: {question} context: X") and prompt.endswith(ANSWER_PREFIX)
    prefix = model.prefix_ids(question, abstract)
    assert len(prefix) + 1 <= 64  # the abstract was cut to fit the model's positions
    assert prefix[-len(ANSWER_PREFIX.split()) :] == model._ids(f" {ANSWER_PREFIX}")

    verdict = model.judge(question, abstract)
    assert verdict.label in LABELS and 1 / 3 <= verdict.score <= 1.0
    # the same numbers by hand: next-token log-probabilities of each (one-token) label
    with torch.no_grad():
        logits = model.model(input_ids=torch.tensor([prefix])).logits[0, -1]
    by_hand = torch.softmax(torch.log_softmax(logits, -1)[[ids[0] for ids in model.labels]], 0)
    assert LABELS[int(by_hand.argmax())] == verdict.label
    assert float(by_hand.max()) == pytest.approx(verdict.score, abs=1e-5)
    assert isinstance(load_verdict_model(str(folder)), BioGptVerdicts)
    assert isinstance(load_verdict_model("cues"), CueVerdicts)
