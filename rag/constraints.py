"""Citations by construction: what an answer may look like, enforced while it is decoded.

:class:`CitationConstraint` names the PMIDs of the prompt and the shape of an answer: one to
``max_sentences`` sentences, each ending with one to three ``[PMID:n]`` tags of those PMIDs
and a full stop. For llama.cpp it becomes a GBNF grammar (:meth:`CitationConstraint.gbnf`), so
the model cannot write a sentence without a citation or a PMID that is not in the prompt: the
tokens that would do so are masked out at every step. Generators that cannot be constrained
are held to the same shape afterwards by the answer service (see :mod:`rag.grounding`).

:func:`copied_spans` finds text an answer copied from a prompt demonstration (a worked
example), which must never reach the reader.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_PMID = re.compile(r"^\d{1,9}$")


@dataclass(frozen=True, slots=True)
class CitationConstraint:
    """The PMIDs an answer may cite and how many sentences it may have."""

    pmids: tuple[str, ...]
    max_sentences: int = 4
    max_sentence_words: int = 60
    max_tags: int = 3

    def __post_init__(self) -> None:
        if not self.pmids:
            raise ValueError("a citation constraint needs at least one PMID")
        bad = [pmid for pmid in self.pmids if not _PMID.match(pmid)]
        if bad:
            raise ValueError(f"not PMIDs: {bad[:3]}")

    def gbnf(self) -> str:
        """The constraint as a llama.cpp GBNF grammar.

        A sentence is 3 to ``max_sentence_words`` words holding no ``[``, ``]``, line break or
        sentence end (a full stop may stand between digits: ``2.5 mg``); it ends with
        ``" [PMID:n]."`` or ``". [PMID:n]"``. Words, not characters, are counted: a counted
        repetition of characters makes llama.cpp's grammar several times slower.
        """
        choices = " | ".join(f'"{pmid}"' for pmid in dict.fromkeys(self.pmids))
        more = self.max_sentences - 1
        return "\n".join(
            (
                f'root ::= sentence (" " sentence){{0,{more}}}',
                f'sentence ::= word (" " word){{2,{self.max_sentence_words - 1}}} end',
                # A full stop inside a sentence only between digits (2.5 mg): anywhere else it
                # ends the sentence, and the tags must follow it.
                r"word ::= [^\[\]\n.!? ]+ | [^\[\]\n.!? ]* [0-9] "
                + '"."'
                + r" [0-9] [^\[\]\n.!? ]*",
                'end ::= " " tags "." | "." " " tags',
                f"tags ::= tag tag{{0,{self.max_tags - 1}}}",
                'tag ::= "[PMID:" pmid "]"',
                f"pmid ::= {choices}",
            )
        )


_WORDS = re.compile(r"[a-z0-9]+")


def _shingles(text: str, size: int) -> set[tuple[str, ...]]:
    words = _WORDS.findall(text.lower())
    return {tuple(words[i : i + size]) for i in range(len(words) - size + 1)}


def copied_spans(
    answer: str, demonstrations: Sequence[str], sources: Sequence[str], size: int = 5
) -> set[tuple[str, ...]]:
    """Runs of ``size`` words that ``answer`` shares with a demonstration but not a source.

    A phrase that is also in the sources (the real passages) is not a copy of the example:
    both may say "randomized controlled trial".
    """
    demo = (
        set().union(*(_shingles(text, size) for text in demonstrations))
        if demonstrations
        else set()
    )
    if not demo:
        return set()
    real = set().union(*(_shingles(text, size) for text in sources)) if sources else set()
    return (_shingles(answer, size) & demo) - real


def is_copied(
    sentence: str, demonstrations: Sequence[str], sources: Sequence[str], size: int = 5
) -> bool:
    """Whether a sentence holds any phrase copied from a demonstration (see :func:`copied_spans`)."""
    return bool(copied_spans(sentence, demonstrations, sources, size))
