"""Run reports: what each ingest or update did, kept as one JSON line per run.

The history lives beside the versions (``index/history.jsonl``) rather than inside them because
failed runs publish nothing but must still be reported.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HISTORY = "history.jsonl"


@dataclass(slots=True)
class RunReport:
    """Counts and outcome of one run."""

    kind: str  # "ingest-xml", "ingest-query", "update", "update-xml"
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    started_at: str = ""
    finished_at: str = ""
    duration_s: float = 0.0
    # "ok", "partial" (some tracked queries failed; the others were applied), "failed",
    # "interrupted"; "died" when read back unfinished.
    status: str = "running"
    added: int = 0
    revised: int = 0
    unchanged: int = 0
    deleted: int = 0
    skipped: int = 0
    failed: int = 0
    refetched: int = 0  # records missing from a short efetch batch, then fetched by id
    unfetched: int = 0  # records missing from a short batch and from the by-id fetch too
    index_version: str = ""
    error: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    _t0: float = field(default_factory=time.monotonic, repr=False)

    def finish(self, status: str, error: str = "") -> RunReport:
        """Stamp the outcome and duration."""
        from indexing.index import utcnow

        self.status = status
        self.error = error
        self.finished_at = utcnow()
        self.duration_s = round(time.monotonic() - self._t0, 3)
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (without private fields)."""
        data = asdict(self)
        data.pop("_t0", None)
        return data

    def summary(self) -> str:
        """One line for logs and the CLI."""
        text = (
            f"{self.kind} {self.status}: {self.added} added, {self.revised} revised, "
            f"{self.unchanged} unchanged, {self.deleted} deleted, {self.skipped} skipped, "
            f"{self.failed} failed in {self.duration_s:.1f}s"
        )
        if self.refetched or self.unfetched:
            text += f"; {self.refetched} refetched by id, {self.unfetched} not fetched"
        if self.index_version:
            text += f" (index {self.index_version})"
        if self.error:
            text += f" — {self.error}"
        return text


def append_report(index_dir: Path, report: RunReport) -> None:
    """Append a report durably (one line, fsynced)."""
    index_dir.mkdir(parents=True, exist_ok=True)
    line = json.dumps(report.to_dict(), sort_keys=True, ensure_ascii=False) + "\n"
    with (index_dir / HISTORY).open("a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


def read_history(index_dir: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """Runs, newest last; a torn last line (a writer killed mid-write) is ignored."""
    path = index_dir / HISTORY
    if not path.exists():
        return []
    reports = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            reports.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return merge_runs(reports, limit)


DIED = "died"
DIED_MESSAGE = (
    "the process ended without finishing (killed, or the machine stopped); nothing was "
    "published, and the next run redoes the work"
)


def _alive(report: dict[str, Any]) -> bool:
    """Whether the process of a "running" report may still be running."""
    details = report.get("details") or {}
    pid, host = details.get("pid"), details.get("host")
    if not isinstance(pid, int) or host != socket.gethostname():
        return True  # another host's process: we cannot tell, so we do not guess
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def merge_runs(reports: list[dict[str, Any]], limit: int | None = None) -> list[dict[str, Any]]:
    """One entry per run, newest last: a run's last report wins and sets its place.

    A run reports ``running`` once it holds the writer lock and its outcome when it ends; a run
    refused the lock reports only its failure. A run still ``running`` is shown as ``died`` once
    a later run has taken the lock (the lock is exclusive, so the earlier run no longer held
    it) or once its process is gone.
    """
    last: dict[str, int] = {}
    latest_running = -1  # where the newest run to take the lock reported it
    for position, report in enumerate(reports):
        last[str(report.get("run_id"))] = position
        if report.get("status") == "running":
            latest_running = position
    merged = []
    for position, report in enumerate(reports):
        if last[str(report.get("run_id"))] != position:
            continue
        # A run whose last report is "running" was overtaken if a later run took the lock.
        died = report.get("status") == "running" and (
            position < latest_running or not _alive(report)
        )
        merged.append({**report, "status": DIED, "error": DIED_MESSAGE} if died else report)
    return merged[-limit:] if limit else merged
