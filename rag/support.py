"""A support verdict per answer sentence: does what it says stand in the articles it cites?

Each answer sentence is compared with every sentence of the abstracts it cites (and with each
pair of neighbouring sentences, since a claim often joins two)::

    support = 0.75 * cosine(claim, quote) + 0.25 * share of the claim's words in the quote

with the index's own encoder. The best-matching quote is kept, to be shown beside the claim.
``supported`` / ``weak`` / ``unsupported`` come from two thresholds calibrated per embedder on
PubMedQA (each question's own conclusion, ``LONG_ANSWER``, against its own abstract as
supported and against other abstracts as unsupported; ``make eval`` reports the AUC and the
precision/recall of the thresholds, see :func:`calibrate`).

A similar quote can say the opposite: "No, BQT does not work" is close, by cosine and by
words, to "BQT is the preferred regimen". So a claim that would be ``supported`` or ``weak``
is also checked for **polarity** (:func:`polarity`), by rule, without a model:

1. **Only findings count.** Sentences of the background, objective and methods sections, and
   sentences that state an aim, a question, a hypothesis or a belief ("To determine whether…",
   "We hypothesised…", "It is generally believed…", "?"), or a method in the passive with no
   difference stated ("were divided into two groups"), say what was asked, assumed or done:
   they neither agree nor disagree. The same holds for a claim's aims and questions.
2. **Clauses.** Both texts are cut into sentences and clauses: at ``;`` ``:``, contrast words
   (but, however, whereas, while, although, despite, ", yet", rather than), ", with" and
   "because"; "Although A, B" is cut at its comma; "without …", "with no …",
   "(in the) absence of …", "lack of …" up to the next comma is a clause of its own, so
   "improved Y without increasing Z" does not negate the improvement.
3. **Negated clauses.** A clause is negated when it holds a negation cue (not, n't, no, never,
   none, neither, nor, cannot, without, unlikely, fail(s/ed) to, lack(s), absence, absent, no
   longer, un-/in-/ir- adjectives such as unreliable, ineffective, irrelevant, insufficient)
   or a null finding ("were similar", "was comparable", "as effective as", "non-inferior",
   "unaffected"): "no significant difference" and "mortality was similar" agree. Phrases that
   negate nothing are taken out first ("not only", "whether or not", "not necessarily", "not
   always", "cannot be ruled out", "not un…", "presence or absence", a relative clause such as
   "children who never ate"). A clause saying the source is silent ("does not provide
   information", "unclear", "not established") has no polarity. An answer's leading "No,"
   negates its first clause; a leading "Yes," adds nothing.
4. **Compared.** The claim clause and the quote clause that share the most content words (no
   numbers, cue words or words about the evidence itself — evidence, suggest, found) are
   compared, if they share two words or half of the claim clause's. Opposite polarity is a
   conflict only if the affirmative clause asserts something — a difference, an effect, an
   association or a judgement (higher, increased, associated, predicts, p <, feasible,
   effective, preferred…): "IHC found p53 in 40% of tumours" contradicts no "p53 is not a
   useful predictor" — and a null finding only by a stated difference or association. Where
   several pairs share as many words, one that agrees wins, and all must conflict.

Which quote decides: the candidate quotes are read best first, down to the "weak"
threshold, skipping those without a finding. If the first with a finding does not conflict
with the claim, the label is the best quote's, as before. If it conflicts, the next ones
are read on and the first that agrees gives the label and the quote; without one the claim
is ``contradicted``, shown with the quote that says otherwise and ``conflict``, the cues that
disagree ("claim “not”; quote affirms"). A distinct label rather than "weak": the quote is
about the claim and says the opposite, which a reader must see at once — a weak badge would
read as "partly right".

It is a rule, not a reader: it sees no scope beyond clauses, no antonyms ("did not prevent"
vs "increased"), no numbers. On the stored PubMedQA answers of the offline models, 31 of the
42 sentences it calls contradicted really are, by hand (README, "Support labels"), and it
calls 3.4% of PubMedQA's own conclusion sentences contradicted by their own abstract
(``make eval``, support section: ``own_abstract_per_sentence``), its false-alarm rate.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rag.evidence import (
    ArticleSentences,
    Sentence,
    overlap,
    split_sentences,
    stem,
    terms,
    unit,
)

W_COSINE, W_OVERLAP = 0.75, 0.25
SUPPORTED, WEAK, UNSUPPORTED = "supported", "weak", "unsupported"
CONTRADICTED = "contradicted"
LABELS = (SUPPORTED, WEAK, UNSUPPORTED, CONTRADICTED)

# Calibrated on PubMedQA PQA-L (`make eval`, support section): thresholds chosen on the first
# 500 questions, checked on the other 500. "supported" keeps precision >= 0.95 against hard
# negatives (each conclusion against the most similar *other* abstract), "weak" keeps recall
# >= 0.97. MiniLM, 2026-12-01: AUC 0.9997 against random, 0.975 against hard negatives; on the
# held-out half "supported" has precision 0.95 / recall 0.92 (hard), "weak" recall 0.99.
# PubMedBERT is not calibrated here (no weights): it falls back to the MiniLM values.
CALIBRATED: dict[str, tuple[float, float]] = {
    "offline:sentence-transformers/all-MiniLM-L6-v2": (0.55, 0.45),
}
FALLBACK = (0.55, 0.45)

_TAGS = re.compile(r"\s*\[PMID:\d+\]")


@dataclass(frozen=True, slots=True)
class Verdict:
    """How well one answer sentence is supported, and by which quote."""

    support: str  # supported | weak | unsupported | contradicted
    score: float
    quote: str  # the best-matching sentence(s) of the cited abstracts ("" if none); when
    # contradicted, the sentence(s) that say otherwise
    quote_pmid: str
    conflict: str = ""  # contradicted: the cues that disagree ("claim “not”; quote affirms")


def claim_text(sentence: str) -> str:
    """An answer sentence without its citation tags."""
    return _TAGS.sub("", sentence).strip()


def thresholds_for(embeddings_model: str) -> tuple[float, float]:
    """``(supported, weak)`` thresholds for an index built with ``embeddings_model``."""
    return CALIBRATED.get(embeddings_model, FALLBACK)


def _spans(pool: ArticleSentences, rows: Sequence[int]) -> list[tuple[int, int]]:
    """Candidate quotes: each row, and each pair of neighbouring rows of one article."""
    spans = [(row, row) for row in rows]
    spans += [
        (row, nxt)
        for row, nxt in itertools.pairwise(rows)
        if nxt == row + 1 and pool.sentences[row].pmid == pool.sentences[nxt].pmid
    ]
    return spans


def span_scores(
    claim_vectors: np.ndarray, claims: Sequence[str], pool: ArticleSentences, rows: Sequence[int]
) -> tuple[list[tuple[int, int]], np.ndarray]:
    """The candidate quotes among ``rows`` (``(first row, last row)``) and each claim's score
    against each of them (claims x quotes)."""
    spans = _spans(pool, list(rows))
    if not spans or not claims:
        return spans, np.zeros((len(claims), len(spans)), dtype=np.float64)
    span_vectors = unit(np.stack([pool.vectors[a : b + 1].sum(axis=0) for a, b in spans]))
    span_terms = [
        set().union(*(terms(pool.sentences[r].text) for r in range(a, b + 1))) for a, b in spans
    ]
    cosines = unit(claim_vectors) @ span_vectors.T
    scores = np.empty((len(claims), len(spans)), dtype=np.float64)
    for number, claim in enumerate(claims):
        words = terms(claim)
        for index, quote_terms in enumerate(span_terms):
            cosine = float(cosines[number, index])
            scores[number, index] = W_COSINE * cosine + W_OVERLAP * overlap(words, quote_terms)
    return spans, scores


def support_scores(
    claim_vectors: np.ndarray, claims: Sequence[str], pool: ArticleSentences, rows: Sequence[int]
) -> list[tuple[float, int, int]]:
    """Per claim: ``(score, first row, last row)`` of its best quote among ``rows`` of ``pool``.

    A quote is one sentence or two neighbouring sentences of the same article. Without
    ``rows`` the score is 0 and the rows are -1. Polarity plays no part (see :func:`judge`).
    """
    spans, scores = span_scores(claim_vectors, claims, pool, rows)
    if not spans:
        return [(0.0, -1, -1) for _ in claims]
    out = []
    for number in range(len(claims)):
        best = int(np.argmax(scores[number]))
        out.append((float(scores[number, best]), spans[best][0], spans[best][1]))
    return out


def label(score: float, thresholds: tuple[float, float]) -> str:
    """``supported`` at or above the first threshold, ``weak`` at or above the second."""
    supported, weak = thresholds
    if score >= supported:
        return SUPPORTED
    return WEAK if score >= weak else UNSUPPORTED


def quote_of(pool: ArticleSentences, span: tuple[int, int]) -> str:
    """The text of a candidate quote."""
    return " ".join(pool.sentences[row].text for row in range(span[0], span[1] + 1))


def findings_of(pool: ArticleSentences, span: tuple[int, int]) -> str:
    """The sentences of a candidate quote that state a finding (:func:`states_a_finding`)."""
    rows = range(span[0], span[1] + 1)
    return " ".join(pool.sentences[r].text for r in rows if states_a_finding(pool.sentences[r]))


def judge(
    claim: str,
    scores: np.ndarray,
    spans: Sequence[tuple[int, int]],
    pool: ArticleSentences,
    thresholds: tuple[float, float],
) -> Verdict:
    """The verdict of one claim from its score against each candidate quote.

    The best quote gives the label (and is the quote shown), unless the first quote that
    states a finding, reading them best first down to the "weak" threshold, contradicts the
    claim (:func:`polarity`): then the first quote after it that agrees gives the label and
    the quote, and without one the claim is ``contradicted``, shown with the quote that
    contradicts it (module docstring).
    """
    if not len(spans):
        return Verdict(UNSUPPORTED, 0.0, "", "")
    order = [int(index) for index in np.argsort(-scores, kind="stable")]
    best = order[0]

    def verdict(index: int, support: str = "", conflict: str = "") -> Verdict:
        score = float(scores[index])
        where = pool.sentences[spans[index][0]].pmid
        found = support or label(score, thresholds)
        return Verdict(found, score, quote_of(pool, spans[index]), where, conflict)

    if label(float(scores[best]), thresholds) == UNSUPPORTED:
        return verdict(best)
    contradiction: tuple[int, Polarity] | None = None
    for index in order:
        if float(scores[index]) < thresholds[1]:
            break
        findings = findings_of(pool, spans[index])
        if not findings:
            continue  # an aim, a method, a background: it neither agrees nor disagrees
        found = polarity(claim, findings)
        if contradiction is None and found.state != CONFLICT:
            return verdict(best)  # the best finding does not contradict the claim
        if contradiction is None:
            contradiction = (index, found)
        elif found.state == AGREE:
            return verdict(index)  # a weaker quote that agrees: the claim stands on it
    if contradiction is None:
        return verdict(best)
    index, found = contradiction
    return verdict(index, CONTRADICTED, found.explain())


def verdicts(
    claims: Sequence[str],
    claim_vectors: np.ndarray,
    cited: Sequence[Sequence[str]],
    pool: ArticleSentences,
    thresholds: tuple[float, float],
) -> list[Verdict]:
    """One verdict per claim, against the sentences of the articles that claim cites."""
    out = []
    for number, claim in enumerate(claims):
        spans, scores = span_scores(
            claim_vectors[number : number + 1], [claim], pool, pool.of(cited[number])
        )
        out.append(judge(claim, scores[0], spans, pool, thresholds))
    return out


# -- polarity ----------------------------------------------------------------------------------

# "n't" is a "not": "can't" → "can not", "won't" → "will not", "doesn't" → "does not".
_CONTRACTIONS = (
    (re.compile(r"\bcan[’']t\b", re.IGNORECASE), "can not"),
    (re.compile(r"\bwon[’']t\b", re.IGNORECASE), "will not"),
    (re.compile(r"n[’']t\b", re.IGNORECASE), " not"),
)
# An answer's own yes / no / maybe, its first word.
_LEAD = re.compile(r"^\W*(yes|no|maybe)(?:\s*[,.;:!-]+\s*|\s*$)", re.IGNORECASE)
# Phrases holding a negation word that negate nothing: taken out before cues are looked for.
_NOT_NEGATIONS = re.compile(
    r"\b(?:not only|not the only|whether or not|if not|not necessarily|not always|not all"
    r"|not least|no doubt|presence or absence|not \w+ all"
    # a negation inside a relative clause describes who, not what was found: "compared with
    # children who never ate hamburgers"
    r"|(?:who|whom|which)\s+(?:(?:did|do|does|had|have|has|were|was|are|is)\s+)?(?:not|never|no)"
    r"|no less than"
    r"|not un\w+|not without|can ?not be (?:ruled out|excluded)|no\.\s*\d+)\b",
    re.IGNORECASE,
)
# The source is silent, not the finding false ("does not provide information on", "unclear").
_SILENT = re.compile(
    r"\b(?:(?:does|do|did) not (?:provide|give|offer|mention|specify|state|address|report"
    r"|include|contain|discuss)|not (?:available|specified|mentioned|stated|provided|addressed"
    r"|discussed|reported|known|clear)|no (?:information|data|details|mention)"
    r"|not (?:yet )?(?:been )?(?:well |fully |clearly )?(?:established|proven|determined"
    r"|elucidated|understood|defined)"
    r"|unclear|unknown|uncertain)\b",
    re.IGNORECASE,
)
# A null finding reads as a negation: "X did not improve Y" and "Y was similar" agree.
_NULL = re.compile(
    r"\b(?:(?:is|are|was|were|be|been|being|remains?|remained|appears?|appeared|seems?|seemed)"
    r"\s+(?:\w+\s+)?(?:similar|comparable|equivalent|unchanged|unaltered|equal|the same)"
    r"|as (?:effective|safe|good|accurate|efficacious|reliable) as|non-?inferior"
    r"|unaffected|unrelated|insignificant|non-?significant)\b",
    re.IGNORECASE,
)
_NEGATION = re.compile(
    r"\b(?:no longer|not|no|never|none|neither|nor|cannot|nothing|nobody|without|unlikely"
    r"|fail(?:s|ed|ing)? to|lack(?:s|ed|ing)?|absence|absent|useless"
    # the adjectives that negate: "unreliable", "ineffective", "irrelevant", "unable"
    r"|(?:un|in|ir|im)(?:reliable|relevant|effective|suitable|accurate|sufficient|adequate"
    r"|valid|possible|able|necessary|safe|feasible|appropriate|helpful|acceptable|justified"
    r"|justifiable|predictable|predictive|beneficial|useful))\b",
    re.IGNORECASE,
)
# Where one clause ends and the next begins: contrast words, a condition ("X is preferred
# when testing is not available": the condition's own negation says nothing about X), and a
# negating phrase that negates only what follows it ("improved Y without increasing Z").
_CLAUSE = re.compile(
    r"[;:]"
    r"|(?:^|\s)(?=(?:but|however|whereas|while|although|though|despite|rather than)\b)"
    r"|\s(?=(?:when|whenever|if|unless)\b)"
    r"|,\s+(?=yet\b)"
    r"|\s(?=because\b)"
    r"|,\s+(?=with\s)"
    r"|\s(?=(?:without|with no|in the absence of|(?:the |an? )?(?:absence|lack) of)\b)",
    re.IGNORECASE,
)
# A negating phrase that is a clause of its own ends at the next comma.
_NEGATING_PHRASE = re.compile(
    r"^(?:without|with no|in the absence of|(?:the |an? )?(?:absence|lack) of)\b[^,]*,",
    re.IGNORECASE,
)
# "Although A, B": the subordinate clause ends at its first comma.
_SUBORDINATE = re.compile(
    r"^(?:although|though|while|whereas|despite|because)\b[^,]*,", re.IGNORECASE
)
# Cue words and words about the evidence itself: shared, they say nothing about the topic.
_IGNORED = """not never none neither nor cannot nothing nobody without unlikely fail fails
    failed failing lack lacks lacked lacking absence absent longer similar comparable equivalent
    unchanged unaltered equal same significant significantly statistically evidence pubmed
    provided provide suggests suggest suggested shows show showed shown found find finding
    findings indicates indicate indicated result results answer question article data"""
_IGNORED_WORDS = frozenset(stem(word) for word in _IGNORED.split())
# A denial that is a null finding: "no significant difference", "not associated", "no effect".
_NULL_DENIAL = re.compile(
    r"\b(?:no|not|nor|without)\s+(?:\w+\s+){0,2}?(?:differ\w*|associat\w*|correlat\w*"
    r"|relat\w*|effect\w*|chang\w*|impact\w*|influenc\w*|significant\w*)",
    re.IGNORECASE,
)
# What an affirmative clause must say to contradict a denial: a difference, an effect, an
# association or a judgement ("increased", "associated", "feasible", "preferred"). A clause
# that only describes ("40% of tumours", "the average age was 21 years") contradicts nothing.
_ASSERTION = re.compile(
    r"\b(?:higher|lower|greater|smaller|larger|fewer|more|less|increas\w*|decreas\w*"
    r"|reduc\w*|improv\w*|better|worse|superior|inferior|differ(?:s|ed|ing|ences?)"
    r"|associat\w*|correlat\w*|predict\w*|significant\w*|benefi\w*|elevat\w*|prolong\w*"
    r"|shorter|longer|odds|hazard|effective\w*|efficac\w*|affect\w*|influenc\w*|impact\w*"
    r"|prefer\w*|feasib\w*|useful|safe|safety|accura\w*|reliab\w*|valid\w*|recommend\w*"
    r"|success\w*|sufficient|adequate\w*|appropriate|suitable|able|possible|necessary|helpful"
    r"|important|works?|worked|cur(?:e|ed|es)|heal\w*|prevent\w*|protect\w*|caus\w*|lead\w*|led"
    r"|risk\w*|discriminat\w*|sensitiv\w*|specific\w*|resolv\w*|stimulat\w*|promot\w*"
    r"|enhanc\w*|impair\w*|worsen\w*|rais\w*|drop\w*|fell|rose|declin\w*|changed?"
    r"|alter(?:s|ed|ing)?)\b"
    r"|\bp\s*[<=]",
    re.IGNORECASE,
)
# What contradicts a null finding: a stated difference, effect or association.
_DIFFERENCE = re.compile(
    r"\b(?:higher|lower|greater|smaller|larger|fewer|more|less|increas\w*|decreas\w*"
    r"|reduc\w*|improv\w*|better|worse|superior|inferior|differ(?:s|ed|ing|ences?)"
    r"|associat\w*|correlat\w*|predict\w*|significant\w*|benefi\w*|elevat\w*|prolong\w*"
    r"|shorter|longer|odds|hazard|effective|affect\w*|influenc\w*|impact\w*)\b|\bp\s*[<=]",
    re.IGNORECASE,
)
# Sections that say what was asked, assumed or done, never what was found.
_NO_FINDING_SECTIONS = frozenset({"BACKGROUND", "OBJECTIVE", "METHODS"})
# Sentences that state an aim, a question, a hypothesis or a belief (in any section).
_NOT_A_FINDING = re.compile(
    r"^(?:to|in order to)\s+(?:\w+\s+)?(?:determine|evaluate|assess|investigate|examine"
    r"|compare|identify|clarify|describe|explore|test|analy[sz]e|establish|study|characteri[sz]e"
    r"|quantify|measure|review|report|estimate|define|ascertain|validate|find out|address)\b"
    r"|^we\b[\s,]+(?:\w+[\s,]+){0,2}?(?:sought|aimed|investigated|examined|evaluated|assessed"
    r"|tested|studied|compared|analy[sz]ed|explored|reviewed|describe|described|wanted|set out"
    r"|hypothesi[sz]ed|undertook|conducted|performed|asked|present|presented|designed|enrolled"
    r"|recruited|included|searched|used|measured|collected|surveyed|interviewed|selected"
    r"|determined|divided|identified|retrospectively|prospectively"
    r"|ranked|calculated|followed|randomi[sz]ed|report)\b"
    r"|^(?:this|the present|the current|our)\s+(?:\w+\s+){0,2}?(?:study|trial|analysis|paper|review"
    r"|work|research|survey|audit|report)\s+(?:\w+\s+)?(?:aims?|aimed|sought|was designed"
    r"|investigat\w*|examin\w*|evaluat\w*|assess\w*|tests?|tested|compar\w*|explor\w*"
    r"|describ\w*|review\w*|analy[sz]\w*|reports?|presents?|measur\w*)\b"
    r"|\b(?:the|our|this|its|primary|main|secondary)\s+(?:aims?|purposes?|objectives?|goals?)"
    r"\s+(?:of|was|were|is|are)\b"
    r"|\bhypothes\w*|^whether\b|\b(?:investigat|examin|evaluat|assess|determin|stud|test"
    r"|explor|ask|establish|clarif|analy[sz]|know|unclear|unknown|question|see|address|compar)"
    r"\w*\s+(?:\w+\s+)?whether\b"
    r"|\b(?:is|are|was|were|been)\s+(?:\w+\s+)?(?:believed|assumed|thought|proposed"
    r"|considered|expected|debated|controversial|presumed)\b"
    r"|\b(?:believe[sd]?|beliefs?|reports have suggested|has yet to be)\b|\?\s*$"
    # a structured abstract's label inside a passage: "Intervention: …", "Main outcome measures: …"
    r"|^(?:main |primary |secondary )?(?:interventions?|outcome measures?|measurements?|design"
    r"|setting|participants|patients|subjects|methods?|materials?)(?: and \w+)?\s*:"
    # a question without its question mark: "but does EBP produce better outcomes"
    r"|^(?:but\s+|and\s+)?(?:does|do|did|is|are|can|could|should|will|would)\s+(?!not\b)\w+"
    r"\s+\w+",
    re.IGNORECASE,
)
# What was done, in the passive ("were divided into two groups", "was assessed"): a method,
# unless the sentence also states a difference.
_METHOD_PASSIVE = re.compile(
    r"\b(?:was|were)\s+(?:\w+\s+)?(?:assessed|measured|evaluated|recorded|collected"
    r"|analy[sz]ed|examined|calculated|obtained|reviewed|administered|randomi[sz]ed|enrolled"
    r"|included|recruited|interviewed|surveyed|divided|allocated|assigned|treated|studied"
    r"|compared|investigated|determined|estimated|performed|used|inserted)\b",
    re.IGNORECASE,
)
AGREE, CONFLICT, UNRELATED = "agree", "conflict", "unrelated"
# Clauses are compared when they share this many content words, or half the claim clause's.
MIN_SHARED_TERMS = 2


@dataclass(frozen=True, slots=True)
class Clause:
    """One clause of a claim or a quote: its content words and its negation cue, if any."""

    text: str
    terms: frozenset[str]
    cue: str  # the negation cue or null finding ("not", "No,", "were similar"); "" if none
    null: bool = False  # the denial is a null finding ("no difference", "not associated")

    @property
    def negated(self) -> bool:
        """Whether the clause denies (or finds nothing) rather than asserts."""
        return bool(self.cue)


@dataclass(frozen=True, slots=True)
class Polarity:
    """How a claim and a quote compare: ``agree``, ``conflict`` or ``unrelated``, and the
    clauses compared (``None`` when unrelated)."""

    state: str
    claim: Clause | None = None
    quote: Clause | None = None

    def explain(self) -> str:
        """The disagreement in words: ``claim “not”; quote affirms``."""
        if self.claim is None or self.quote is None:
            return ""

        def side(name: str, clause: Clause) -> str:
            return f"{name} “{clause.cue}”" if clause.cue else f"{name} affirms"

        return f"{side('claim', self.claim)}; {side('quote', self.quote)}"


def clauses(text: str, answer: bool = False) -> list[Clause]:
    """The clauses of ``text`` that carry polarity (see the module docstring).

    With ``answer``, a leading "No" negates the first clause and a leading "Yes" is dropped.
    """
    text = claim_text(text)
    lead = ""
    if answer and (found := _LEAD.match(text)):
        lead, text = found.group(1).lower(), text[found.end() :]
    for pattern, replacement in _CONTRACTIONS:
        text = pattern.sub(replacement, text)
    if subordinate := _SUBORDINATE.match(text):
        text = f"{subordinate.group(0)[:-1]}; {text[subordinate.end() :]}"
    pieces = []
    for part in (part for sentence in split_sentences(text) for part in _CLAUSE.split(sentence)):
        piece = part.strip(" ,.")
        if phrase := _NEGATING_PHRASE.match(piece):
            pieces += [phrase.group(0)[:-1], piece[phrase.end() :].strip(" ,.")]
        else:
            pieces.append(piece)
    out = []
    for number, piece in enumerate(pieces):
        bare = _NOT_NEGATIONS.sub(" ", piece)
        if not piece or _SILENT.search(bare) or _NOT_A_FINDING.search(piece):
            continue
        null = _NULL.search(bare)
        cue = null or _NEGATION.search(bare)
        found_cue = cue.group(0).lower() if cue else ""
        if number == 0 and lead == "no" and not found_cue:
            found_cue = "No,"
        is_null = bool(null) or (bool(found_cue) and bool(_NULL_DENIAL.search(bare)))
        # Numbers are left out of the words compared: "10 km" and "94 ± 10" share no topic.
        words = frozenset(w for w in terms(piece) if not w.replace(".", "").isdigit())
        out.append(Clause(piece, words - _IGNORED_WORDS, found_cue, is_null))
    return out


def states_a_finding(sentence: Sentence) -> bool:
    """Whether an abstract's sentence says what was found (not asked, assumed or done)."""
    if sentence.section in _NO_FINDING_SECTIONS or _NOT_A_FINDING.search(sentence.text):
        return False
    return not (_METHOD_PASSIVE.search(sentence.text) and not _DIFFERENCE.search(sentence.text))


def _compare(ours: Clause, theirs: Clause) -> str:
    """One pair of clauses: ``agree``, ``conflict`` or ``unrelated`` (a null finding beside a
    clause that states no difference)."""
    if ours.negated == theirs.negated:
        return AGREE
    denial, assertion = (ours, theirs) if ours.negated else (theirs, ours)
    if not _ASSERTION.search(assertion.text):
        return UNRELATED
    if denial.null and not _DIFFERENCE.search(assertion.text):
        return UNRELATED
    return CONFLICT


def polarity(claim: str, quote: str) -> Polarity:
    """Whether ``quote`` says what ``claim`` says or the opposite (module docstring)."""
    shared, pairs = 0, []
    for ours in clauses(claim, answer=True):
        for theirs in clauses(quote):
            count = len(ours.terms & theirs.terms)
            if count < MIN_SHARED_TERMS and 2 * count < max(len(ours.terms), 1):
                continue
            if count > shared:
                shared, pairs = count, [(ours, theirs)]
            elif count == shared and count:
                pairs.append((ours, theirs))
    outcomes = [_compare(ours, theirs) for ours, theirs in pairs]
    if AGREE in outcomes:
        return Polarity(AGREE, *pairs[outcomes.index(AGREE)])
    if pairs and all(outcome == CONFLICT for outcome in outcomes):
        return Polarity(CONFLICT, *pairs[0])
    return Polarity(UNRELATED)


# -- calibration -------------------------------------------------------------------------------


def auc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """Area under the ROC curve: the chance a positive scores above a negative (ties 1/2)."""
    if not positives or not negatives:
        return float("nan")
    negative = np.sort(np.asarray(negatives, dtype=np.float64))
    wins = 0.0
    for score in positives:
        below = np.searchsorted(negative, score, side="left")
        ties = np.searchsorted(negative, score, side="right") - below
        wins += below + ties / 2
    return wins / (len(positives) * len(negatives))


def precision_recall(
    positives: Sequence[float], negatives: Sequence[float], threshold: float
) -> tuple[float, float]:
    """Precision and recall of "score >= threshold" as the test for a positive."""
    true = sum(1 for score in positives if score >= threshold)
    false = sum(1 for score in negatives if score >= threshold)
    precision = true / (true + false) if true + false else 1.0
    return precision, true / len(positives) if positives else 0.0


def calibrate(
    positives: Sequence[float],
    negatives: Sequence[float],
    min_precision: float = 0.95,
    min_recall: float = 0.97,
) -> tuple[float, float]:
    """``(supported, weak)`` thresholds: the lowest score with precision ≥ ``min_precision``,
    and the highest with recall ≥ ``min_recall`` (never above the first)."""
    candidates = sorted(set(positives) | set(negatives))
    supported = next(
        (t for t in candidates if precision_recall(positives, negatives, t)[0] >= min_precision),
        candidates[-1] if candidates else 1.0,
    )
    weak = max(
        (t for t in candidates if precision_recall(positives, negatives, t)[1] >= min_recall),
        default=supported,
    )
    return round(supported, 3), round(min(weak, supported), 3)
