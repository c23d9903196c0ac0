"""Per-article verdicts: does each top abstract answer the question yes, no or maybe?

A verdict model is anything with ``name`` and ``judge(question, abstract) -> Verdict``. Two
ship: :class:`CueVerdicts`, a model-free baseline that reads negation and hedging cues, and
:class:`rag.biogpt.BioGptVerdicts` (``microsoft/BioGPT-Large-PubMedQA``). :func:`tally_verdicts`
asks one of them about each of the top articles and counts the answers ("4 say yes, 1 no,
1 maybe"), each verdict linked to its PMID, so a reader sees whether the literature agrees
instead of trusting one generated sentence.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from indexing.links import pubmed_url
from indexing.models import locate_model
from rag.errors import VerdictModelError
from rag.search import Hit

LABELS = ("yes", "no", "maybe")
BIOGPT_PUBMEDQA = "microsoft/BioGPT-Large-PubMedQA"


@dataclass(frozen=True, slots=True)
class Verdict:
    """One abstract's answer to a question and how sure the model is (0..1)."""

    label: str
    score: float


class VerdictModel(Protocol):
    """What a tally needs: a name, and a yes/no/maybe judgement of one abstract."""

    name: str

    def judge(self, question: str, abstract: str) -> Verdict:
        """The abstract's answer to ``question``."""
        ...


@dataclass(frozen=True, slots=True)
class ArticleVerdict:
    """A verdict about one article, with what links it to PubMed."""

    pmid: str
    title: str
    label: str
    score: float

    @property
    def url(self) -> str:
        """The PubMed page of the article."""
        return pubmed_url(self.pmid)


@dataclass(frozen=True, slots=True)
class VerdictTally:
    """The verdicts of the top articles, in rank order."""

    model: str
    articles: tuple[ArticleVerdict, ...]

    def counts(self) -> dict[str, int]:
        """``{label: articles}`` for every label, zeros included."""
        found = Counter(article.label for article in self.articles)
        return {label: found[label] for label in LABELS}

    def majority(self) -> str | None:
        """The label most articles give; ``maybe`` on a tie between yes and no; None when empty."""
        counts = self.counts()
        if not self.articles:
            return None
        best = max(counts.values())
        leaders = [label for label in LABELS if counts[label] == best]
        return leaders[0] if len(leaders) == 1 else "maybe"

    def summary(self) -> str:
        """``"4 say yes, 1 no, 1 maybe"`` (labels no article gives are left out)."""
        parts = [f"{n} {label}" for label, n in self.counts().items() if n]
        if not parts:
            return "no articles judged"
        first, *rest = parts
        count, label = first.split(" ")
        return ", ".join([f"{count} {'says' if count == '1' else 'say'} {label}", *rest])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``--json`` output)."""
        return {
            "model": self.model,
            "summary": self.summary(),
            "counts": self.counts(),
            "majority": self.majority(),
            "articles": [
                {
                    "pmid": a.pmid,
                    "title": a.title,
                    "label": a.label,
                    "score": round(a.score, 4),
                    "url": a.url,
                }
                for a in self.articles
            ],
        }


def tally_verdicts(
    question: str, hits: Sequence[Hit], model: VerdictModel, top: int = 6
) -> VerdictTally:
    """Ask ``model`` about each of the first ``top`` hits (title + best passage) and count."""
    judged = []
    for hit in hits[:top]:
        text = f"{hit.title} {hit.passage}".strip()
        verdict = model.judge(question, text)
        judged.append(ArticleVerdict(hit.pmid, hit.title, verdict.label, verdict.score))
    return VerdictTally(model.name, tuple(judged))


# Cues of an abstract that answers "no" or leaves the question open. Whole words, lower case.
_NO_CUES = re.compile(
    r"\b(no (significant|difference|association|evidence|effect|benefit|correlation|relationship)"
    r"|not (significantly|associated|related|correlated|improve|reduce|increase|affect|predict)"
    r"|did not|does not|do not|was not|were not|failed to|neither|nor|unrelated|"
    r"no longer|none of|absence of)\b"
)
_MAYBE_CUES = re.compile(
    r"\b(may|might|could|unclear|uncertain|inconclusive|controversial|remains to be|"
    r"further (studies|research|investigation)|limited evidence|warrant|possibly|suggests?)\b"
)


class CueVerdicts:
    """Model-free baseline: count negation and hedging cues in the abstract's last sentences.

    Conclusions sit at the end of an abstract, so the last three sentences are read. More
    negation cues than one → ``no``; else two hedging cues or more → ``maybe``; else ``yes``
    (PubMedQA's majority label). The score is a rough share of cues, not a probability.
    """

    name = "cues"

    def judge(self, question: str, abstract: str) -> Verdict:
        """The abstract's answer to ``question`` from its last sentences' cues."""
        sentences = re.split(r"(?<=[.!?])\s+", abstract.strip().lower())
        ending = " ".join(sentences[-3:])
        no = len(_NO_CUES.findall(ending))
        maybe = len(_MAYBE_CUES.findall(ending))
        if no > 1 or (no == 1 and maybe == 0):
            return Verdict("no", min(1.0, 0.5 + 0.1 * no))
        if maybe >= 2:
            return Verdict("maybe", min(1.0, 0.4 + 0.1 * maybe))
        return Verdict("yes", 0.55 if no or maybe else 0.6)


def load_verdict_model(spec: str) -> VerdictModel:
    """``cues``, ``biogpt`` (``microsoft/BioGPT-Large-PubMedQA``, cached or downloaded), or a
    local BioGPT folder.

    Raises:
        VerdictModelError: the model is not available.
    """
    if spec == "cues":
        return CueVerdicts()
    from indexing.models import ModelUnavailableError
    from rag.biogpt import BioGptVerdicts

    name = BIOGPT_PUBMEDQA if spec == "biogpt" else spec
    try:
        return BioGptVerdicts(locate_model(name), name=name)
    except ModelUnavailableError as exc:
        raise VerdictModelError(f"verdict model {name!r} is not available: {exc}") from exc
