"""Prompts as named constants, and the context budget that decides which passages fit.

The generator writes from the key evidence (:mod:`rag.evidence`): quoted sentences, each
tagged with its PMID (``- sentence [PMID:12345]``), so that the model cites the identifier the
user can open and the citation check can map it back. Whole passages can follow
(``PUBMED_RAG_PROMPT_PASSAGES``) when the window allows.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from string import Formatter

from rag.evidence import Evidence
from rag.search import Hit

# The system message comes first and never changes between questions, so llama.cpp reuses its
# evaluated tokens from one answer to the next (prompt caching of the fixed prefix).
SYSTEM_PROMPT = (
    "You are a careful biomedical research assistant. Answer the question only from the "
    "PubMed evidence you are given, never from memory, in one to three sentences. When the "
    "question asks yes or no, begin with Yes, No or Maybe. End every sentence with the PMID "
    "tag of the evidence it rests on, written like [PMID:12345]. If the evidence does not "
    "answer the question, say so."
)

ANSWER_PROMPT = "Evidence from PubMed:\n{evidence}\n\n{passages}Question: {question}"

# One quoted evidence sentence. The tag comes last, where an answer sentence puts it.
EVIDENCE_TEMPLATE = "- {text} [PMID:{pmid}]"

# Whole passages, when PUBMED_RAG_PROMPT_PASSAGES is on and the budget allows.
PASSAGE_TEMPLATE = "[PMID:{pmid}] {title}{year}\n{passage}"
PASSAGES_HEADING = "Abstracts:\n\n"

ABSTAIN_TEXT = (
    "The indexed literature does not answer this question: no passage was relevant enough "
    "to ground an answer. The closest evidence and articles are listed below."
)

UNGROUNDED_TEXT = (
    "The generated answer could not be grounded in the sources, so it is not shown. The key "
    "evidence above is what the indexed articles say."
)

NO_HITS_TEXT = (
    "The indexed literature does not answer this question: the search found no matching "
    "articles (check the filters)."
)

# An optional worked example shown to the generator as a previous turn
# (PUBMED_RAG_EXAMPLE_TURN, off by default: the citation grammar makes it unnecessary). Its
# PMID is not a real record and is never in the context, and any phrase an answer copies
# from it is removed before the reader sees it (rag.constraints.copied_spans).
EXAMPLE_PMID = "10000001"
EXAMPLE_EVIDENCE = (
    "In a randomized trial of 2,000 women over 70, daily vitamin D did not reduce fractures "
    "compared with placebo"
)
EXAMPLE_QUESTION = "Does vitamin D prevent fractures in older women?"
EXAMPLE_ANSWER = (
    "No. In a randomized trial of older women, daily vitamin D did not reduce fractures "
    f"compared with placebo [PMID:{EXAMPLE_PMID}]."
)

# Where a model that has stopped answering starts to echo the prompt's own structure (small
# models do: the next passage block, the question line): generation stops there.
STOP_STRINGS = ("\n\n[PMID:", "\nQuestion:", "\nEvidence from PubMed", "\nAbstracts:")

# Placeholders each template must contain; checked when settings load.
REQUIRED_PLACEHOLDERS: dict[str, frozenset[str]] = {
    "answer_prompt": frozenset({"evidence", "question"}),
    "passage_template": frozenset({"pmid", "passage"}),
    "evidence_template": frozenset({"pmid", "text"}),
}
ALLOWED_PLACEHOLDERS: dict[str, frozenset[str]] = {
    "answer_prompt": frozenset({"evidence", "passages", "question", "example_pmid"}),
    "passage_template": frozenset({"pmid", "title", "year", "journal", "passage"}),
    "evidence_template": frozenset({"pmid", "text", "section"}),
}

# Tokens a chat template adds around each message, plus slack for the generation prompt;
# generous on purpose, since overflowing n_ctx fails the whole request.
MESSAGE_OVERHEAD_TOKENS = 16
SAFETY_TOKENS = 32

Message = dict[str, str]


def placeholders(template: str) -> set[str]:
    """Names of the ``{placeholders}`` in a ``str.format`` template.

    Raises:
        ValueError: the template is not a valid format string.
    """
    return {name for _, name, _, _ in Formatter().parse(template) if name}


def check_template(kind: str, template: str) -> str:
    """Validate a template's placeholders against what :func:`build_messages` fills in.

    Raises:
        ValueError: a required placeholder is missing or an unknown one is present.
    """
    try:
        names = placeholders(template)
    except ValueError as exc:
        raise ValueError(f"{kind} is not a valid format string: {exc}") from exc
    missing = REQUIRED_PLACEHOLDERS[kind] - names
    unknown = names - ALLOWED_PLACEHOLDERS[kind]
    if missing:
        raise ValueError(f"{kind} lacks the placeholder(s) {{{'}, {'.join(sorted(missing))}}}")
    if unknown:
        raise ValueError(f"{kind} has unknown placeholder(s) {{{'}, {'.join(sorted(unknown))}}}")
    return template


def format_passage(hit: Hit, passage: str | None = None, template: str = PASSAGE_TEMPLATE) -> str:
    """One PMID-tagged context block for a hit (``passage`` overrides a shortened text)."""
    return template.format(
        pmid=hit.pmid,
        title=hit.title.strip() or "(no title)",
        year=f" ({hit.year})" if hit.year else "",
        journal=hit.journal,
        passage=(hit.passage if passage is None else passage).strip(),
    )


def format_evidence(item: Evidence, template: str = EVIDENCE_TEMPLATE) -> str:
    """One evidence line of the prompt."""
    text = item.text.strip().rstrip(".")
    return template.format(pmid=item.pmid, text=text, section=item.section)


@dataclass(frozen=True, slots=True)
class Context:
    """What the prompt holds: evidence lines, passages that fit, and what the budget left out."""

    hits: tuple[Hit, ...]  # the articles the prompt names (the only PMIDs an answer may cite)
    blocks: tuple[str, ...]  # whole passages (only with prompt_passages)
    dropped: tuple[Hit, ...]
    truncated: bool
    prompt_tokens: int
    evidence: tuple[str, ...] = ()  # formatted evidence lines, grouped by article


def group_evidence(evidence: Sequence[Evidence], hits: Sequence[Hit]) -> list[Evidence]:
    """Evidence grouped by article in ranking order, best sentence first within an article."""
    rank = {hit.pmid: number for number, hit in enumerate(hits)}
    return sorted(evidence, key=lambda item: (rank.get(item.pmid, len(rank)), -item.score))


def fit_context(
    question: str,
    hits: Sequence[Hit],
    count_tokens: Callable[[str], int],
    n_ctx: int,
    max_answer_tokens: int,
    system_prompt: str = SYSTEM_PROMPT,
    answer_prompt: str = ANSWER_PROMPT,
    passage_template: str = PASSAGE_TEMPLATE,
    example: bool = False,
    evidence: Sequence[Evidence] = (),
    evidence_template: str = EVIDENCE_TEMPLATE,
    passages: bool = False,
) -> Context:
    """Choose what fits ``n_ctx`` with the question and the answer.

    The evidence always goes in (it is a few sentences); without evidence, or with
    ``passages``, whole passages follow, best first, the weakest dropped first. If even the
    best passage does not fit, it is cut on word bounds rather than answering without context.

    Raises:
        ValueError: the question and the answer alone do not fit the window.
    """
    grouped = group_evidence(evidence, hits)
    lines = tuple(format_evidence(item, evidence_template) for item in grouped)
    fixed = (
        count_tokens(system_prompt)
        + count_tokens(render_prompt(answer_prompt, question, [], "0", lines))
        + 2 * MESSAGE_OVERHEAD_TOKENS
        + SAFETY_TOKENS
        + (
            sum(
                count_tokens(m["content"]) + MESSAGE_OVERHEAD_TOKENS
                for m in example_turn(answer_prompt, evidence_template)
            )
            if example
            else 0
        )
    )
    budget = n_ctx - max_answer_tokens - fixed
    if budget <= 0:
        raise ValueError(
            f"the question and a {max_answer_tokens}-token answer do not fit n_ctx={n_ctx}; "
            "raise PUBMED_RAG_N_CTX or lower PUBMED_RAG_MAX_ANSWER_TOKENS"
        )
    in_evidence = {item.pmid for item in grouped}
    chosen: list[Hit] = []
    blocks: list[str] = []
    truncated = False
    used = count_tokens(PASSAGES_HEADING) if passages or not lines else 0
    for rank, hit in enumerate(hits if passages or not lines else ()):
        block = format_passage(hit, template=passage_template)
        cost = count_tokens(block) + 2  # the blank line between blocks
        if used + cost <= budget:
            chosen.append(hit)
            blocks.append(block)
            used += cost
        elif rank == 0:
            block = _shorten(hit, budget - used, count_tokens, passage_template)
            if block:
                chosen.append(hit)
                blocks.append(block)
                used += count_tokens(block) + 2
                truncated = True
            break
        else:
            break  # ranks are monotone: a weaker passage after one that did not fit is dropped
    named = [hit for hit in hits if hit.pmid in in_evidence or hit in chosen]
    dropped = tuple(hit for hit in hits if hit not in named)
    return Context(tuple(named), tuple(blocks), dropped, truncated, fixed + used, lines)


def _shorten(
    hit: Hit, budget: int, count_tokens: Callable[[str], int], passage_template: str
) -> str:
    words = hit.passage.split()
    low, high = 0, len(words)
    while low < high:  # the longest word prefix that fits
        middle = (low + high + 1) // 2
        block = format_passage(hit, " ".join(words[:middle]) + " …", passage_template)
        if count_tokens(block) + 2 <= budget:
            low = middle
        else:
            high = middle - 1
    return format_passage(hit, " ".join(words[:low]) + " …", passage_template) if low else ""


def render_prompt(
    answer_prompt: str,
    question: str,
    blocks: Sequence[str],
    example: str,
    evidence: Sequence[str] = (),
) -> str:
    """The user message: evidence, passages (if any), question."""
    passages = PASSAGES_HEADING + "\n\n".join(blocks) + "\n\n" if blocks else ""
    return answer_prompt.format(
        evidence="\n".join(evidence) if evidence else "(none)",
        passages=passages,
        question=question.strip(),
        example_pmid=example,
    )


def example_turn(
    answer_prompt: str = ANSWER_PROMPT, evidence_template: str = EVIDENCE_TEMPLATE
) -> list[Message]:
    """The worked example as a user turn and the assistant's cited answer."""
    line = evidence_template.format(pmid=EXAMPLE_PMID, text=EXAMPLE_EVIDENCE, section="RESULTS")
    return [
        {
            "role": "user",
            "content": render_prompt(answer_prompt, EXAMPLE_QUESTION, [], EXAMPLE_PMID, [line]),
        },
        {"role": "assistant", "content": EXAMPLE_ANSWER},
    ]


def demonstrations(example: bool) -> tuple[str, ...]:
    """Texts of the prompt's demonstrations, which no answer may copy from."""
    return (EXAMPLE_ANSWER, EXAMPLE_EVIDENCE, EXAMPLE_QUESTION) if example else ()


def build_messages(
    question: str,
    context: Context,
    system_prompt: str = SYSTEM_PROMPT,
    answer_prompt: str = ANSWER_PROMPT,
    example: bool = False,
    evidence_template: str = EVIDENCE_TEMPLATE,
) -> list[Message]:
    """Chat messages: the system rules, the worked example (optional), evidence and question."""
    example_pmid = context.hits[0].pmid if context.hits else "12345"
    return [
        {"role": "system", "content": system_prompt},
        *(example_turn(answer_prompt, evidence_template) if example else []),
        {
            "role": "user",
            "content": render_prompt(
                answer_prompt, question, context.blocks, example_pmid, context.evidence
            ),
        },
    ]


_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def estimate_tokens(text: str) -> int:
    """A cautious estimate of subword tokens when no tokenizer is at hand.

    Punctuation marks count one each, digits one each (Qwen and Llama 3 split numbers), and
    words one per three characters: BPE tokenizers of small models mostly stay below this on
    English and biomedical text.
    """
    total = 0
    for piece in _WORD.findall(text):
        total += len(piece) if piece.isdigit() else max(1, (len(piece) + 2) // 3)
    return total
