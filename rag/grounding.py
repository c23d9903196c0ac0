"""Every sentence of an answer cited, checked and labelled, whatever wrote it.

The citation grammar (:mod:`rag.constraints`) makes llama.cpp end every sentence with a PMID of
the prompt. :func:`ground_answer` holds any generator to the same promise after the fact and
adds what no grammar can: a support verdict per sentence (:mod:`rag.support`).

- a sentence that copies a phrase of a prompt demonstration is dropped;
- a sentence that cites nothing gets the article that supports it best among those in the
  prompt, if that support is at least "weak" (marked ``attributed``); otherwise it is dropped
  (also when the closest quote of the prompt says the opposite);
- a sentence whose citations do not support it, while another article of the prompt does
  ("supported"), is re-cited to that article (``attributed`` too): a citation must point to
  where the claim stands. A sentence its citation contradicts is not re-cited: that the cited
  abstract says otherwise is what the reader must see;
- every remaining sentence is labelled supported / weak / unsupported / contradicted against
  the sentences of the articles it cites, with the quote it rests on (or contradicts).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from rag.citations import split_sentences
from rag.constraints import is_copied
from rag.evidence import ArticleSentences
from rag.support import (
    CONTRADICTED,
    SUPPORTED,
    UNSUPPORTED,
    claim_text,
    judge,
    span_scores,
    verdicts,
)

_TAG = re.compile(r"\[PMID:(\d+)\]")
_WORD = re.compile(r"[A-Za-z0-9]{2,}")
_END = re.compile(r"([.!?]+)\s*$")
MIN_CLAIM_WORDS = 3

Encode = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True, slots=True)
class AnswerSentence:
    """One sentence of a checked answer."""

    text: str  # as shown, with its [PMID:n] tags
    citations: tuple[str, ...]
    support: str  # supported | weak | unsupported | contradicted
    quote: str  # the sentence(s) of a cited abstract it rests on (or that contradict it)
    quote_pmid: str
    score: float
    attributed: bool = False  # the citation was added by the check, not by the generator
    conflict: str = ""  # contradicted: the cues that disagree (rag.support.Polarity.explain)

    def to_dict(self) -> dict[str, object]:
        """The ``--json`` shape: ``{"text", "citations", "support", "quote", …}``."""
        return {
            "text": self.text,
            "citations": list(self.citations),
            "support": self.support,
            "quote": self.quote,
            "quote_pmid": self.quote_pmid,
            "score": round(self.score, 4),
            "attributed": self.attributed,
            "conflict": self.conflict,
        }


@dataclass(frozen=True, slots=True)
class Grounded:
    """The answer as shown: its sentences, and what was taken out and why."""

    sentences: tuple[AnswerSentence, ...]
    dropped: tuple[tuple[str, str], ...]  # (sentence, reason)

    @property
    def text(self) -> str:
        """The answer's text: its sentences, in order."""
        return " ".join(sentence.text for sentence in self.sentences)

    @property
    def citations(self) -> tuple[str, ...]:
        """PMIDs cited, in order of first citation."""
        return tuple(dict.fromkeys(p for s in self.sentences for p in s.citations))


def split_claims(text: str) -> list[str]:
    """Answer sentences; a fragment too short to state anything ("Yes.") joins the next."""
    out: list[str] = []
    carry = ""
    for sentence in split_sentences(text):
        if not _TAG.search(sentence) and len(_WORD.findall(sentence)) < MIN_CLAIM_WORDS:
            carry = f"{carry} {sentence}".strip()
            continue
        out.append(f"{carry} {sentence}".strip() if carry else sentence)
        carry = ""
    if carry and out:
        out[-1] = f"{out[-1]} {carry}"
    elif carry:
        out.append(carry)
    return out


def _with_tag(sentence: str, pmid: str) -> str:
    """``"Claim."`` → ``"Claim [PMID:1]."``."""
    match = _END.search(sentence)
    if not match:
        return f"{sentence} [PMID:{pmid}]"
    return f"{sentence[: match.start()].rstrip()} [PMID:{pmid}]{match.group(1)}"


def ground_answer(
    text: str,
    context_pmids: Sequence[str],
    pool: ArticleSentences,
    encode: Encode,
    thresholds: tuple[float, float],
    demonstrations: Sequence[str] = (),
) -> Grounded:
    """Check an answer's sentences (citations already filtered to ``context_pmids``).

    Args:
        text: the answer, with ``[PMID:n]`` tags.
        context_pmids: the PMIDs of the articles in the prompt.
        pool: the sentences of those articles, encoded (the key-evidence step made them).
        encode: encodes answer sentences with the index's encoder.
        thresholds: ``(supported, weak)`` of :mod:`rag.support`.
        demonstrations: texts of prompt demonstrations no answer may copy.
    """
    allowed = set(context_pmids)
    sources = [sentence.text for sentence in pool.sentences]
    dropped: list[tuple[str, str]] = []
    kept: list[tuple[str, tuple[str, ...]]] = []
    for sentence in split_claims(text):
        cited = tuple(dict.fromkeys(p for p in _TAG.findall(sentence) if p in allowed))
        if demonstrations and is_copied(claim_text(sentence), demonstrations, sources):
            dropped.append((sentence, "copied from the prompt's worked example"))
            continue
        kept.append((sentence, cited))
    if not kept:
        return Grounded((), tuple(dropped))
    claims = [claim_text(sentence) for sentence, _ in kept]
    vectors = np.asarray(encode(claims), dtype=np.float32)
    context_rows = pool.of(allowed)
    checked = verdicts(claims, vectors, [cited for _, cited in kept], pool, thresholds)
    out: list[AnswerSentence] = []
    for number, ((sentence, cited), verdict) in enumerate(zip(kept, checked, strict=True)):
        spans, scores = span_scores(
            vectors[number : number + 1], [claims[number]], pool, context_rows
        )
        best = judge(claims[number], scores[0], spans, pool, thresholds)
        # A contradicted sentence keeps its citation: the reader must see the abstract that
        # says otherwise, whatever another article seems to say.
        better = best.support == SUPPORTED and verdict.support not in (SUPPORTED, CONTRADICTED)
        if cited and not better:
            out.append(
                AnswerSentence(
                    sentence,
                    cited,
                    verdict.support,
                    verdict.quote,
                    verdict.quote_pmid,
                    verdict.score,
                    conflict=verdict.conflict,
                )
            )
            continue
        if best.support == UNSUPPORTED:
            dropped.append((sentence, "cites no source and no source supports it"))
            continue
        if best.support == CONTRADICTED:
            dropped.append((sentence, "cites no source and the closest source says the opposite"))
            continue
        # Uncited, or cited where it does not stand while another article of the prompt
        # supports it: the citation goes to the article it stands on.
        pmid = best.quote_pmid
        bare = _TAG.sub("", sentence).replace(" .", ".").strip()
        out.append(
            AnswerSentence(
                _with_tag(bare, pmid), (pmid,), best.support, best.quote, pmid, best.score, True
            )
        )
    return Grounded(tuple(out), tuple(dropped))
