"""Generated answers for the evaluation: one question asked, and a resumable log of the answers."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from evaluation.errors import EvalDataError
from rag.service import AnswerService


def answer_one(service: AnswerService, question: str) -> dict[str, Any]:
    """Ask ``question`` and reduce the final event to what the scores need."""
    from rag.service import Answer, Failed

    failed = {"text": "", "abstained": False, "citations": [], "removed": [], "failed": True}
    for event in service.ask(question):
        if isinstance(event, Answer):
            return {
                "text": event.text,
                "raw_text": event.raw_text,
                "abstained": event.abstained,
                "citations": list(event.citations),
                "removed": list(event.removed_citations),
                "context": [hit.pmid for hit in event.context],
                "sentences": [
                    {"citations": list(s.citations), "support": s.support, "text": s.text}
                    for s in event.sentences
                ],
                "dropped_sentences": list(event.uncited),
                "evidence_pmids": [item.pmid for item in event.evidence],
                "evidence_ms": event.timings.evidence_ms,
                "first_token_ms": event.timings.first_token_ms,
                "tokens_per_s": event.timings.tokens_per_s,
                "prompt_tokens": event.timings.prompt_tokens,
                "failed": False,
            }
        if isinstance(event, Failed):
            return failed
    return failed


def parse_answers(
    path: Path, text: str
) -> tuple[dict[str, Any], dict[tuple[str, str], dict[str, Any]]]:
    """What made an answers file (its first line) and its answers by ``(setting, pmid)``.

    Raises:
        EvalDataError: not an answers file of ``rag eval``.
    """
    try:
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        recorded = rows[0]["made_by"]
        pairs = [((row["setting"], row["pmid"]), row["answer"]) for row in rows[1:]]
    except (json.JSONDecodeError, KeyError, TypeError, IndexError) as exc:
        raise EvalDataError(f"{path}: not an answers file of `rag eval` ({exc})") from None
    return recorded, dict(pairs)


def read_answers(path: Path) -> tuple[dict[str, Any], dict[tuple[str, str], dict[str, Any]]]:
    """:func:`parse_answers` of a file on disk (read only: a cut-off last line is skipped).

    Raises:
        EvalDataError: the file cannot be read or is not an answers file.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise EvalDataError(f"cannot read the answers file {path}: {exc}") from exc
    if raw and not raw.endswith(b"\n"):
        raw = raw[: raw.rfind(b"\n") + 1]
    return parse_answers(path, raw.decode("utf-8"))


class AnswerLog:
    """Generated answers as JSON lines, appended one by one: a run cut short resumes from it.

    The first line records what made the answers (generator, answer settings, embedder); a
    file made under other settings is refused, never mixed in. A last line cut off by a
    killed run is dropped, and its answer generated again.
    """

    def __init__(self, path: Path | None, made_by: Mapping[str, Any]) -> None:
        self.path = path
        self.made_by = json.loads(json.dumps(made_by))  # as it reads back from the file
        self.done: dict[tuple[str, str], dict[str, Any]] = {}
        if path is None:
            return
        raw = path.read_bytes() if path.exists() else b""
        if raw and not raw.endswith(b"\n"):
            raw = raw[: raw.rfind(b"\n") + 1]  # the line a killed run was writing
            path.write_bytes(raw)
        if not raw.strip():
            self._append({"made_by": self.made_by})
            return
        recorded, done = parse_answers(path, raw.decode("utf-8"))
        if recorded != self.made_by:
            changed = sorted(
                key
                for key in {*recorded, *self.made_by}
                if recorded.get(key) != self.made_by.get(key)
            )
            raise EvalDataError(
                f"{path} holds answers made with other settings ({', '.join(changed)}); "
                "delete it or name another answers file"
            )
        self.done = done

    def answer(self, setting: str, pmid: str, make: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The recorded answer of ``pmid`` in ``setting``, else ``make()``'s, recorded."""
        if (setting, pmid) not in self.done:
            self.done[setting, pmid] = make()
            self._append({"setting": setting, "pmid": pmid, "answer": self.done[setting, pmid]})
        return self.done[setting, pmid]

    def _append(self, row: Mapping[str, Any]) -> None:
        if self.path is None:
            return
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            out.flush()
            os.fsync(out.fileno())
