"""Prompts as named constants, and the context budget that decides which passages fit.

Passages are tagged with their PMID (``[PMID:12345] Title (2021). passage``) so that the model
cites the identifier the user can open, and the citation check can map it back.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from string import Formatter

from rag.search import Hit

SYSTEM_PROMPT = (
    "You are a careful biomedical research assistant. You answer only from the PubMed "
    "passages you are given, never from memory. Every sentence that states a finding ends "
    "with the PMID tag of the passage it comes from, written exactly like [PMID:12345]. "
    "If the passages do not answer the question, say so in one sentence."
)

ANSWER_PROMPT = (
    "Passages from PubMed:\n\n{passages}\n\n"
    "Question: {question}\n\n"
    "Answer in at most five sentences, using only these passages. Cite each claim with the "
    "PMID tag of its passage, e.g. [PMID:{example_pmid}]."
)

PASSAGE_TEMPLATE = "[PMID:{pmid}] {title}{year}\n{passage}"

ABSTAIN_TEXT = (
    "The indexed literature does not answer this question: no passage was relevant enough "
    "to ground an answer. The closest articles are listed below."
)

NO_HITS_TEXT = (
    "The indexed literature does not answer this question: the search found no matching "
    "articles (check the filters)."
)

# A worked example shown to the generator as a previous turn. Small models (SmolLM2-135M in
# offline mode) ignore a citation instruction but copy a demonstrated pattern. Its PMID is not
# a real record and is never in the context, so a copied example citation is removed.
EXAMPLE_PMID = "10000001"
EXAMPLE_PASSAGE = (
    f"[PMID:{EXAMPLE_PMID}] Vitamin D supplementation and fractures in older women (2019)\n"
    "In a randomized trial of 2,000 women over 70, daily vitamin D did not reduce fractures "
    "compared with placebo."
)
EXAMPLE_QUESTION = "Does vitamin D prevent fractures in older women?"
EXAMPLE_ANSWER = (
    "No. In a randomized trial of older women, daily vitamin D did not reduce fractures "
    f"compared with placebo [PMID:{EXAMPLE_PMID}]."
)

# Where a model that has stopped answering starts to echo the prompt's own structure (small
# models do: the next passage block, the question line): generation stops there.
STOP_STRINGS = ("\n\n[PMID:", "\nQuestion:", "\nPassages from PubMed")

# Placeholders each template must contain; checked when settings load.
REQUIRED_PLACEHOLDERS: dict[str, frozenset[str]] = {
    "answer_prompt": frozenset({"passages", "question"}),
    "passage_template": frozenset({"pmid", "passage"}),
}
ALLOWED_PLACEHOLDERS: dict[str, frozenset[str]] = {
    "answer_prompt": frozenset({"passages", "question", "example_pmid"}),
    "passage_template": frozenset({"pmid", "title", "year", "journal", "passage"}),
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


@dataclass(frozen=True, slots=True)
class Context:
    """The passages chosen for a prompt, and what the budget left out."""

    hits: tuple[Hit, ...]
    blocks: tuple[str, ...]
    dropped: tuple[Hit, ...]
    truncated: bool
    prompt_tokens: int


def fit_context(
    question: str,
    hits: Sequence[Hit],
    count_tokens: Callable[[str], int],
    n_ctx: int,
    max_answer_tokens: int,
    system_prompt: str = SYSTEM_PROMPT,
    answer_prompt: str = ANSWER_PROMPT,
    passage_template: str = PASSAGE_TEMPLATE,
    example: bool = True,
) -> Context:
    """Choose the passages that fit ``n_ctx`` with the question and the answer.

    Hits come best first; the weakest are dropped first. If even the best passage does not
    fit, it is cut on word bounds rather than answering without context.

    Raises:
        ValueError: the question and the answer alone do not fit the window.
    """
    fixed = (
        count_tokens(system_prompt)
        + count_tokens(render_prompt(answer_prompt, question, [], "0"))
        + 2 * MESSAGE_OVERHEAD_TOKENS
        + SAFETY_TOKENS
        + (
            sum(
                count_tokens(m["content"]) + MESSAGE_OVERHEAD_TOKENS
                for m in example_turn(answer_prompt)
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
    chosen: list[Hit] = []
    blocks: list[str] = []
    truncated = False
    used = 0
    for rank, hit in enumerate(hits):
        block = format_passage(hit, template=passage_template)
        cost = count_tokens(block) + 2  # the blank line between blocks
        if used + cost <= budget:
            chosen.append(hit)
            blocks.append(block)
            used += cost
        elif rank == 0:
            block = _shorten(hit, budget, count_tokens, passage_template)
            if block:
                chosen.append(hit)
                blocks.append(block)
                used += count_tokens(block) + 2
                truncated = True
            break
        else:
            break  # ranks are monotone: a weaker passage after one that did not fit is dropped
    dropped = tuple(hit for hit in hits if hit not in chosen)
    return Context(tuple(chosen), tuple(blocks), dropped, truncated, fixed + used)


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


def render_prompt(answer_prompt: str, question: str, blocks: Sequence[str], example: str) -> str:
    """The user message: passages, question and instructions."""
    return answer_prompt.format(
        passages="\n\n".join(blocks), question=question.strip(), example_pmid=example
    )


def example_turn(answer_prompt: str = ANSWER_PROMPT) -> list[Message]:
    """The worked example as a user turn and the assistant's cited answer."""
    return [
        {
            "role": "user",
            "content": render_prompt(
                answer_prompt, EXAMPLE_QUESTION, [EXAMPLE_PASSAGE], EXAMPLE_PMID
            ),
        },
        {"role": "assistant", "content": EXAMPLE_ANSWER},
    ]


def build_messages(
    question: str,
    context: Context,
    system_prompt: str = SYSTEM_PROMPT,
    answer_prompt: str = ANSWER_PROMPT,
    example: bool = True,
) -> list[Message]:
    """Chat messages: the system rules, the worked example (optional), passages and question."""
    example_pmid = context.hits[0].pmid if context.hits else "12345"
    return [
        {"role": "system", "content": system_prompt},
        *(example_turn(answer_prompt) if example else []),
        {
            "role": "user",
            "content": render_prompt(answer_prompt, question, context.blocks, example_pmid),
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
