"""What differs between an answer bundle and its replay: a structured diff and its report.

Compared: the question as searched (a trim can change it), the index (version, publication time), the models and their hashes, the settings,
the filters, the sources (added, removed, reordered, rescored), the key evidence, the answer
sentences, their citations and their support labels. Not compared: timings and the time the
bundle was made, which differ on every run.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from rag.bundle import AnswerBundle

_TAG = re.compile(r"\s*\[PMID:[0-9]+\]")
# Scores are stored with 4 decimals; a replay on the same index gives the same ones.
SCORE_TOLERANCE = 5e-4
_SECTIONS = (
    ("question", "question"),
    ("index", "index"),
    ("models", "models"),
    ("settings", "settings"),
    ("filters", "filters"),
    ("sources", "sources"),
    ("evidence", "key evidence"),
    ("answer", "answer sentences"),
    ("citations", "citations"),
    ("support", "support labels"),
)


@dataclass(frozen=True)
class BundleDiff:
    """The differences, by section; a section is absent when nothing in it changed."""

    old: AnswerBundle
    new: AnswerBundle
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def identical(self) -> bool:
        """Whether the replay reproduced the bundle (timings aside)."""
        return not self.sections

    def to_dict(self) -> dict[str, Any]:
        """The ``replay --json`` shape: ``identical``, both index versions, ``differences``."""
        return {
            "identical": self.identical,
            "question": self.old.question,
            "bundle": {"index_version": self.old.index.version, "created_at": self.old.created_at},
            "replay": {"index_version": self.new.index.version, "created_at": self.new.created_at},
            "differences": self.sections,
        }


def _changed(pairs: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
    return {name: {"old": old, "new": new} for name, (old, new) in pairs.items() if old != new}


def _plain(text: str) -> str:
    # No control or invisible characters (ESC, bidi) of a hostile file reach a terminal.
    return "".join(" " if unicodedata.category(char)[0] == "C" else char for char in text)


def _claim(text: str) -> str:
    return " ".join(_TAG.sub("", text).split())


def diff_bundles(old: AnswerBundle, new: AnswerBundle) -> BundleDiff:
    """What differs between ``old`` (the bundle) and ``new`` (its replay)."""
    sections: dict[str, dict[str, Any]] = {
        "question": _changed({"text": (old.question, new.question)}),
        "index": _changed(
            {
                "version": (old.index.version, new.index.version),
                "published_at": (old.index.published_at, new.index.published_at),
            }
        ),
        "models": _changed(
            {
                "embedder": (old.embedder.name, new.embedder.name),
                "embedder_sha256": (old.embedder.sha256, new.embedder.sha256),
                "generator": (old.generator.name, new.generator.name),
                "generator_sha256": (old.generator.sha256, new.generator.sha256),
            }
        ),
        "settings": _changed(
            {
                name: (old.settings.get(name), new.settings.get(name))
                for name in dict.fromkeys([*old.settings, *new.settings])
            }
        ),
        "filters": _changed(
            {
                name: (value, getattr(new.filters, name))
                for name, value in old.filters.model_dump().items()
            }
        ),
        "sources": _sources(old, new),
        "evidence": _evidence(old, new),
        "answer": _answer(old, new),
        "citations": _citations(old, new),
        "support": _support(old, new),
    }
    return BundleDiff(old, new, {name: items for name, items in sections.items() if items})


def _sources(old: AnswerBundle, new: AnswerBundle) -> dict[str, Any]:
    before = [source.pmid for source in old.sources]
    after = [source.pmid for source in new.sources]
    found: dict[str, Any] = {}
    if added := [pmid for pmid in after if pmid not in before]:
        found["added"] = added
    if removed := [pmid for pmid in before if pmid not in after]:
        found["removed"] = removed
    kept_before = [pmid for pmid in before if pmid in after]
    kept_after = [pmid for pmid in after if pmid in before]
    if kept_before != kept_after:
        found["reordered"] = {"old": kept_before, "new": kept_after}
    scores = {source.pmid: source.score for source in new.sources}
    rescored = {
        source.pmid: {"old": source.score, "new": scores[source.pmid]}
        for source in old.sources
        if source.pmid in scores and abs(source.score - scores[source.pmid]) > SCORE_TOLERANCE
    }
    if rescored:
        found["rescored"] = rescored
    return found


def _evidence(old: AnswerBundle, new: AnswerBundle) -> dict[str, Any]:
    before = [(item.pmid, item.text) for item in old.evidence]
    after = [(item.pmid, item.text) for item in new.evidence]
    found: dict[str, Any] = {}
    if added := [{"pmid": p, "text": t} for p, t in after if (p, t) not in before]:
        found["added"] = added
    if removed := [{"pmid": p, "text": t} for p, t in before if (p, t) not in after]:
        found["removed"] = removed
    if not found and before != after:
        found["reordered"] = True
    return found


def _answer(old: AnswerBundle, new: AnswerBundle) -> dict[str, Any]:
    found: dict[str, Any] = _changed({"abstained": (old.abstained, new.abstained)})
    before = [_claim(sentence.text) for sentence in old.sentences] or [_claim(old.answer)]
    after = [_claim(sentence.text) for sentence in new.sentences] or [_claim(new.answer)]
    if added := [text for text in after if text not in before]:
        found["added"] = added
    if removed := [text for text in before if text not in after]:
        found["removed"] = removed
    return found


def _citations(old: AnswerBundle, new: AnswerBundle) -> dict[str, Any]:
    found = _changed({"answer": (old.citations, new.citations)})
    cited = {_claim(sentence.text): sentence.citations for sentence in new.sentences}
    sentences = [
        {"sentence": _claim(s.text), "old": s.citations, "new": cited[_claim(s.text)]}
        for s in old.sentences
        if _claim(s.text) in cited and cited[_claim(s.text)] != s.citations
    ]
    if sentences:
        found["sentences"] = sentences
    return found


def _support(old: AnswerBundle, new: AnswerBundle) -> dict[str, Any]:
    labels = {_claim(sentence.text): sentence.support for sentence in new.sentences}
    changed = [
        {"sentence": _claim(s.text), "old": s.support, "new": labels[_claim(s.text)]}
        for s in old.sentences
        if _claim(s.text) in labels and labels[_claim(s.text)] != s.support
    ]
    return {"sentences": changed} if changed else {}


def render_diff(diff: BundleDiff) -> str:
    """The readable report of ``replay``: one block per section that changed."""
    old, new = diff.old, diff.new
    lines = [
        f"Replayed “{_plain(old.question)}” on index {_plain(new.index.version)} "
        f"(the bundle: {_plain(old.index.version)}, made {_plain(old.created_at)})."
    ]
    if diff.identical:
        lines.append(
            "Identical: same index, models, settings, sources, evidence, answer, citations "
            "and support labels."
        )
        return "\n".join(lines) + "\n"
    for key, title in _SECTIONS:
        if key in diff.sections:
            lines += ["", f"{title}:"]
            lines += [f"  {line}" for line in _section_lines(key, diff.sections[key])]
    return "\n".join(lines) + "\n"


def _short(value: Any, most: int = 100) -> str:
    text = _plain(", ".join(map(str, value)) if isinstance(value, list) else str(value))
    return text if len(text) <= most else text[: most - 1] + "…"


def _section_lines(key: str, changes: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for name, change in changes.items():
        if isinstance(change, dict) and set(change) == {"old", "new"}:
            lines.append(f"{_plain(name)}: {_short(change['old'])} → {_short(change['new'])}")
        elif key in ("citations", "support") and name == "sentences":
            for item in change:
                lines.append(f"“{_short(item['sentence'], 80)}”: ")
                lines[-1] += f"{_short(item['old']) or '-'} → {_short(item['new']) or '-'}"
        elif key == "evidence" and isinstance(change, list):
            sign = "+" if name == "added" else "-"
            lines += [f"{sign} [PMID:{item['pmid']}] “{_short(item['text'])}”" for item in change]
        elif key == "answer" and isinstance(change, list):
            sign = "+" if name == "added" else "-"
            lines += [f"{sign} {_short(text, 160)}" for text in change]
        elif name == "rescored":
            scores = ", ".join(f"{p} {c['old']:.4f} → {c['new']:.4f}" for p, c in change.items())
            lines.append(f"rescored: {_short(scores, 300)}")
        else:
            lines.append(f"{name}: {_short(change, 300)}")
    return lines
