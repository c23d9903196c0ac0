"""BioGPT fine-tuned on PubMedQA as a verdict model: which of yes/no/maybe the model finds likeliest.

``microsoft/BioGPT-Large-PubMedQA`` was fine-tuned (Luo et al. 2022, the BioGPT repository's
PubMedQA recipe) on sources ``question: <q> context: <abstract>`` followed by the target
``the answer to the question given the context is <label>.``. Rather than generate and parse,
we score each of the three continuations after that prefix (the sum of its tokens'
log-probabilities) and report the softmax over the three: the argmax is the verdict, its
share the score. The abstract is cut (never the question) so that prompt and label fit the
model's positions. The real tokenizer (``BioGptTokenizer``) needs ``sacremoses``.
"""

from __future__ import annotations

from typing import Any

from rag.verdicts import LABELS, Verdict

ANSWER_PREFIX = "the answer to the question given the context is"


def biogpt_prompt(question: str, abstract: str) -> str:
    """The fine-tuning format: question, context, then the answer sentence up to the label."""
    return f"question: {question.strip()} context: {abstract.strip()} {ANSWER_PREFIX}"


class BioGptVerdicts:
    """A BioGPT causal LM (loaded from a folder) judging one abstract at a time, on CPU."""

    def __init__(self, path: str, name: str | None = None, max_positions: int | None = None):
        from transformers import AutoTokenizer, BioGptForCausalLM

        self.name = name or path
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = BioGptForCausalLM.from_pretrained(path).eval()
        self.max_positions = max_positions or int(self.model.config.max_position_embeddings)
        self.labels = [self._ids(f" {label}") for label in LABELS]

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prefix_ids(self, question: str, abstract: str) -> list[int]:
        """Token ids of the prompt, the abstract cut so that the longest label still fits."""
        start = list(self.tokenizer("", add_special_tokens=True)["input_ids"])  # BioGPT: </s>
        head = self._ids(f"question: {question.strip()} context:")
        body = self._ids(f" {abstract.strip()}")
        tail = self._ids(f" {ANSWER_PREFIX}")
        room = self.max_positions - len(start) - len(head) - len(tail) - max(map(len, self.labels))
        return start + head + body[: max(room, 0)] + tail

    def judge(self, question: str, abstract: str) -> Verdict:
        """The likeliest of yes/no/maybe after the prompt, with its share of the three."""
        import torch

        prefix = self.prefix_ids(question, abstract)
        scores = []
        with torch.no_grad():
            for label in self.labels:
                ids = torch.tensor([prefix + label])
                logits = self.model(input_ids=ids).logits[0, len(prefix) - 1 : -1]
                logprobs = torch.log_softmax(logits.float(), dim=-1)
                scores.append(logprobs[torch.arange(len(label)), torch.tensor(label)].sum())
        shares: Any = torch.softmax(torch.stack(scores), dim=0)
        best = int(shares.argmax())
        return Verdict(LABELS[best], float(shares[best]))
