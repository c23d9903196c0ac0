"""Key evidence: the sentences of the top articles that answer the question, before generation.

Evidence is quoted, never written: every item is a sentence of an indexed abstract, with its
PMID and the section it stands in (``RESULTS``, ``CONCLUSIONS``…). It is shown as soon as the
search is done, it is what the generator is given to write from, and the support check of an
answer (:mod:`rag.support`) compares each answer sentence with these same sentences.

Scoring (per sentence of the top ``top_k`` articles)::

    score = 0.70 * cosine(question, sentence)      the index's own encoder
          + 0.30 * overlap(question terms, sentence)
          + section prior (conclusions > results > unlabelled > methods, background)
          + 0.10 * the article's retrieval score relative to the best article

then greedy selection best first, at most ``per_article`` sentences per article, no near
duplicate of a sentence already chosen (same words, or cosine ≥ 0.92), and none scoring below
70% of the best sentence (``PUBMED_RAG_EVIDENCE_FLOOR``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

# A structured abstract's label at the start of a line or sentence: "RESULTS:", "Methods:".
_LABEL = re.compile(r"^([A-Z][A-Za-z][A-Za-z ,/&\-]{1,48}):\s+(?=\S)")
# Sentence ends: a full stop (or ! ?) then space and a capital, digit or bracket; not after
# the abbreviations biomedical abstracts are full of.
_BOUNDARY = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[\"'])")
_ABBREVIATIONS = (
    "et al.",
    "e.g.",
    "i.e.",
    "vs.",
    "Fig.",
    "Figs.",
    "approx.",
    "Dr.",
    "No.",
    "resp.",
    "ca.",
    "cf.",
    "Ref.",
    "St.",
)
_TERM = re.compile(r"[A-Za-z][A-Za-z0-9\-]+|\d+(?:\.\d+)?")
_STOPWORDS = """a an and are as at be been being between both but by can could did do does doing
during each for from had has have having how if in into is it its may might more most much no
nor not of on or other our out over should so some such than that the their them then there
these they this those through to too under up very was we were what when where which while who
whom why will with would you your also among any after before versus vs use used using whether
patients patient study studies"""
STOPWORDS = frozenset(_STOPWORDS.split())

# Canonical sections and the prior each adds to a sentence's score. Conclusions state the
# answer, results the finding; background and methods rarely answer a question.
SECTION_PRIOR: dict[str, float] = {
    "CONCLUSIONS": 0.08,
    "RESULTS": 0.05,
    "": 0.0,
    "OBJECTIVE": -0.08,
    "BACKGROUND": -0.10,
    "METHODS": -0.10,
}
_SECTION_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("CONCLUSIONS", ("conclusion", "interpretation", "implication", "summary", "significance")),
    ("RESULTS", ("result", "finding", "outcome", "observation")),
    ("METHODS", ("method", "design", "setting", "participant", "material", "measure")),
    ("OBJECTIVE", ("objective", "aim", "purpose", "goal", "question")),
    ("BACKGROUND", ("background", "introduction", "context", "rationale")),
)
LAST_SENTENCE_PRIOR = 0.04  # unlabelled abstracts usually end on their conclusion
W_COSINE, W_OVERLAP, W_ARTICLE = 0.70, 0.30, 0.10
DUPLICATE_COSINE = 0.92
# A sentence scoring below this share of the best sentence's score is not evidence: it is
# what a weaker article happens to say, and would only dilute the prompt.
RELATIVE_FLOOR = 0.7
DUPLICATE_WORDS = 0.7  # Jaccard of content words

Encode = Callable[[Sequence[str], str], np.ndarray]


@dataclass(frozen=True, slots=True)
class Sentence:
    """One sentence of an abstract, with its place in it."""

    pmid: str
    text: str
    section: str  # canonical section (see SECTION_PRIOR), "" when unlabelled
    label: str  # the label as printed in the abstract ("CONCLUSIONS AND RELEVANCE")
    position: int  # 0-based index among the article's sentences
    last: bool  # the article's last sentence


@dataclass(frozen=True, slots=True)
class Evidence:
    """A quoted sentence that bears on the question."""

    pmid: str
    text: str
    section: str
    score: float
    cosine: float = 0.0

    def to_dict(self) -> dict[str, object]:
        """The ``--json`` shape: ``{"pmid", "text", "section", "score"}``."""
        return {
            "pmid": self.pmid,
            "text": self.text,
            "section": self.section,
            "score": round(self.score, 4),
        }


@dataclass(frozen=True, slots=True)
class ArticleSentences:
    """The sentences of the articles considered, with their unit vectors (row per sentence)."""

    sentences: tuple[Sentence, ...]
    vectors: np.ndarray

    def of(self, pmids: Iterable[str]) -> list[int]:
        """Row numbers of the sentences of ``pmids``."""
        wanted = set(pmids)
        return [row for row, sentence in enumerate(self.sentences) if sentence.pmid in wanted]


def canonical_section(label: str) -> str:
    """``"CONCLUSIONS AND RELEVANCE"`` → ``"CONCLUSIONS"``; unknown labels → ``""``."""
    lower = label.lower()
    for section, words in _SECTION_WORDS:
        if any(word in lower for word in words):
            return section
    return ""


def split_sentences(text: str) -> list[str]:
    """Sentences of one paragraph, not cut after common abbreviations (``et al.``)."""
    parts: list[str] = []
    for piece in _BOUNDARY.split(text.strip()):
        if parts and _ends_with_abbreviation(parts[-1]):
            parts[-1] = f"{parts[-1]} {piece}"
        elif piece:
            parts.append(piece)
    return [part.strip() for part in parts if part.strip()]


def _ends_with_abbreviation(text: str) -> bool:
    # The whole word only: "South Africa." ends with "ca." but also ends its sentence.
    return any(
        text.endswith(abbreviation) and not text[: -len(abbreviation)][-1:].isalnum()
        for abbreviation in _ABBREVIATIONS
    )


def abstract_sentences(pmid: str, text: str) -> list[Sentence]:
    """An abstract's sentences with their sections.

    ``text`` is the abstract as indexed: structured sections are lines (or sentences) that
    start with their label (``RESULTS: …``), as :attr:`indexing.article.Article.abstract_text`
    writes them; passages join those lines with spaces, so labels are found inside lines too.
    """
    found: list[tuple[str, str]] = []
    label = ""
    for line in text.splitlines():
        for sentence in split_sentences(line):
            match = _LABEL.match(sentence)
            body = sentence
            if match and _is_label(match.group(1)):
                label = match.group(1).strip()
                body = sentence[match.end() :].strip()
            if len(_TERM.findall(body)) >= 3:  # not a stray "n = 12)." fragment
                found.append((label, body))
    return [
        Sentence(pmid, sentence, canonical_section(label), label, number, number == len(found) - 1)
        for number, (label, sentence) in enumerate(found)
    ]


def _is_label(candidate: str) -> bool:
    # "RESULTS", "Conclusions and relevance": short, and either all capitals or a known word.
    words = candidate.split()
    return len(words) <= 5 and (candidate.isupper() or bool(canonical_section(candidate)))


def terms(text: str) -> set[str]:
    """Content words of a text, lower case, crudely stemmed (plural and -ed/-ing endings)."""
    out = set()
    for word in _TERM.findall(text.lower()):
        if word in STOPWORDS or (len(word) < 3 and not word.isdigit()):
            continue
        out.add(stem(word))
    return out


def stem(word: str) -> str:
    """A light stem: enough that "mutations" meets "mutation" and "treated" meets "treat"."""
    for suffix in ("ations", "ation", "ings", "ing", "ies", "es", "ed", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def overlap(query_terms: set[str], text_terms: set[str]) -> float:
    """Share of the query's content words that the text contains (0 without query terms)."""
    if not query_terms:
        return 0.0
    return len(query_terms & text_terms) / len(query_terms)


def unit(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors[None, :]
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


def collect_sentences(
    abstracts: Mapping[str, str], encode: Encode, order: Sequence[str] | None = None
) -> ArticleSentences:
    """Split the abstracts (``{pmid: text}``) into sentences and encode them all at once."""
    sentences: list[Sentence] = []
    for pmid in order or list(abstracts):
        sentences.extend(abstract_sentences(pmid, abstracts.get(pmid, "")))
    if not sentences:
        return ArticleSentences((), np.zeros((0, 1), dtype=np.float32))
    vectors = unit(encode([sentence.text for sentence in sentences], "data"))
    return ArticleSentences(tuple(sentences), vectors)


def select_evidence(
    question: str,
    question_vector: np.ndarray,
    pool: ArticleSentences,
    article_scores: Mapping[str, float],
    *,
    limit: int = 6,
    per_article: int = 2,
    floor: float = RELATIVE_FLOOR,
) -> list[Evidence]:
    """The sentences of ``pool`` that best answer ``question``, best first.

    Args:
        question: the user's question (its terms count in the score).
        question_vector: the question encoded as a query by the index's encoder.
        pool: the candidate sentences and their vectors (see :func:`collect_sentences`).
        article_scores: each article's retrieval score; the best article's sentences get a
            small lift, so that a tie goes to the article the search ranked first.
        limit: most sentences returned.
        per_article: most sentences from one article.
        floor: a sentence scoring below this share of the best sentence's score is left out
            (0 = every sentence with a positive score may be quoted, up to the limits).
    """
    if not pool.sentences:
        return []
    cosines = pool.vectors @ unit(question_vector)[0]
    wanted = terms(question)
    best_article = max(article_scores.values(), default=0.0) or 1.0
    scored: list[tuple[float, int]] = []
    for row, sentence in enumerate(pool.sentences):
        prior = SECTION_PRIOR.get(sentence.section, 0.0)
        if not sentence.section and sentence.last:
            prior += LAST_SENTENCE_PRIOR
        relative = article_scores.get(sentence.pmid, 0.0) / best_article
        score = (
            W_COSINE * float(cosines[row])
            + W_OVERLAP * overlap(wanted, terms(sentence.text))
            + prior
            + W_ARTICLE * relative
        )
        scored.append((score, row))
    scored.sort(key=lambda item: (-item[0], item[1]))
    chosen: list[int] = []
    evidence: list[Evidence] = []
    counts: dict[str, int] = {}
    lowest = floor * scored[0][0] if scored[0][0] > 0 else float("-inf")
    for score, row in scored:
        if score < lowest:
            break
        sentence = pool.sentences[row]
        if counts.get(sentence.pmid, 0) >= per_article or _duplicate(pool, row, chosen):
            continue
        chosen.append(row)
        counts[sentence.pmid] = counts.get(sentence.pmid, 0) + 1
        evidence.append(
            Evidence(sentence.pmid, sentence.text, sentence.label, score, float(cosines[row]))
        )
        if len(evidence) >= limit:
            break
    return evidence


def _duplicate(pool: ArticleSentences, row: int, chosen: Sequence[int]) -> bool:
    if not chosen:
        return False
    if float(np.max(pool.vectors[list(chosen)] @ pool.vectors[row])) >= DUPLICATE_COSINE:
        return True
    words = terms(pool.sentences[row].text)
    for other in chosen:
        theirs = terms(pool.sentences[other].text)
        union = words | theirs
        if union and len(words & theirs) / len(union) >= DUPLICATE_WORDS:
            return True
    return False
