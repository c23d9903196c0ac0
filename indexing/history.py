"""Run reports: what each ingest or update did, kept as one JSON line per run.

The history lives beside the versions (``index/history.jsonl``) rather than inside them because
failed runs publish nothing but must still be reported. It is trimmed to the newest
``history_max_runs`` runs of the last ``history_max_days`` days when a run starts, and read from
its end, so neither its size nor the cost of showing the last runs grows with time.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from indexing.clock import utcnow

HISTORY = "history.jsonl"
# Bytes read per step when reading the history from its end.
TAIL_BLOCK = 64 * 1024
# Trimming rewrites the file; it waits until this share of runs more than the limit is there.
TRIM_SLACK = 0.1


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


def _parse_lines(lines: list[bytes]) -> list[dict[str, Any]]:
    reports = []
    for line in lines:
        try:
            reports.append(json.loads(line))
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue  # a torn line: a writer killed mid-write
    return reports


def _tail_lines(path: Path, count: int) -> tuple[list[bytes], bool]:
    """The last ``count`` lines of a file and whether they are all of it, read from the end."""
    with path.open("rb") as handle:
        end = handle.seek(0, os.SEEK_END)
        position, data = end, b""
        while position > 0 and data.count(b"\n") <= count:
            step = min(TAIL_BLOCK, position)
            position -= step
            handle.seek(position)
            data = handle.read(step) + data
    lines = data.splitlines()
    if position > 0:
        lines = lines[1:]  # the first line read may be cut
    return lines[-count:], position == 0 and len(lines) <= count


def read_history(
    index_dir: Path, limit: int | None = None, offset: int = 0
) -> list[dict[str, Any]]:
    """Runs, newest last; a torn last line (a writer killed mid-write) is ignored.

    Args:
        index_dir: the index root.
        limit: at most this many runs, read from the end of the file (all when None).
        offset: skip this many newest runs first (pages of ``limit`` runs going back).
    """
    path = index_dir / HISTORY
    if not path.exists():
        return []
    if not limit:
        with path.open("rb") as handle:
            runs = merge_runs(_parse_lines(handle.read().splitlines()))
        return runs[: len(runs) - offset] if offset else runs
    wanted = limit + offset
    count = 2 * wanted + 4  # a run writes two lines: "running" and its outcome
    while True:
        lines, whole = _tail_lines(path, count)
        runs = merge_runs(_parse_lines(lines))
        # The oldest run in a tail may lack its first report; one more than wanted absorbs it.
        if whole or len(runs) > wanted:
            break
        count *= 2
    runs = runs[: len(runs) - offset] if offset else runs
    return runs[-limit:]


def _moment(report: dict[str, Any]) -> datetime | None:
    text = report.get("finished_at") or report.get("started_at")
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def trim_history(index_dir: Path, max_runs: int, max_days: int = 0) -> int:
    """Keep the newest ``max_runs`` runs, none older than ``max_days`` days (0: no age limit).

    Call while holding the writer lock. The file is rewritten atomically, and only once it
    holds ``TRIM_SLACK`` more runs than allowed or a run past the age limit, so that trimming
    does not rewrite it on every run. Returns the runs dropped.
    """
    path = index_dir / HISTORY
    if not path.exists():
        return 0
    with path.open("rb") as handle:
        lines = handle.read().splitlines()
    reports = _parse_lines(lines)
    last: dict[str, int] = {}
    for position, report in enumerate(reports):
        last[str(report.get("run_id"))] = position
    order = sorted(last, key=last.__getitem__)  # runs by the place of their last report
    keep = set(order[-max_runs:])
    if max_days:
        cutoff = datetime.now(UTC) - timedelta(days=max_days)
        for run_id in list(keep):
            moment = _moment(reports[last[run_id]])
            if moment is not None and moment < cutoff:
                keep.discard(run_id)
    dropped = len(order) - len(keep)
    aged = len(keep) < len(order[-max_runs:])
    if not aged and len(order) <= max_runs * (1 + TRIM_SLACK):
        return 0
    kept = [r for r in reports if str(r.get("run_id")) in keep]
    tmp = path.with_name(f".{HISTORY}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for report in kept:
            handle.write(json.dumps(report, sort_keys=True, ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)
    return dropped


DIED = "died"
DIED_MESSAGE = (
    "the process ended without finishing (killed, or the machine stopped); nothing was "
    "published, and the next run redoes the work"
)


def _alive(report: dict[str, Any]) -> bool:
    """Whether the process (and thread) of a "running" report may still be running."""
    details = report.get("details") or {}
    pid, host = details.get("pid"), details.get("host")
    if not isinstance(pid, int) or host != socket.gethostname():
        return True  # another host's process: we cannot tell, so we do not guess
    thread = details.get("thread")
    if pid == os.getpid() and isinstance(thread, int):
        # Our own process (the app): a run whose thread ended (a page rerun stopped it) is
        # over, even though the process lives on.
        return any(t.native_id == thread for t in threading.enumerate())
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
