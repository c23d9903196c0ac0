"""Run history: one entry per run, and runs that died on the way shown as such."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from indexing.history import DIED, RunReport, append_report, read_history


def _running(kind: str, pid: int, host: str | None = None) -> RunReport:
    report = RunReport(kind=kind)
    report.details.update(pid=pid, host=host or socket.gethostname())
    return report


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_finished_run_is_one_entry_with_its_outcome(tmp_path: Path) -> None:
    report = _running("update", os.getpid())
    append_report(tmp_path, report)
    append_report(tmp_path, report.finish("ok"))

    runs = read_history(tmp_path)

    assert [(run["run_id"], run["status"]) for run in runs] == [(report.run_id, "ok")]


def test_a_run_overtaken_by_a_later_one_died(tmp_path: Path) -> None:
    killed = _running("update", os.getpid())  # even a live pid: a later run took the lock
    append_report(tmp_path, killed)
    later = _running("update", os.getpid())
    append_report(tmp_path, later)
    append_report(tmp_path, later.finish("ok"))

    runs = read_history(tmp_path)

    assert [run["status"] for run in runs] == [DIED, "ok"]
    assert "nothing was published" in runs[0]["error"]


def test_the_last_run_is_running_while_its_process_lives_and_died_after(tmp_path: Path) -> None:
    append_report(tmp_path, _running("update", os.getpid()))
    assert read_history(tmp_path)[-1]["status"] == "running"

    append_report(tmp_path, _running("update", _dead_pid()))
    assert [run["status"] for run in read_history(tmp_path)] == [DIED, DIED]


def test_a_run_on_another_host_is_not_guessed_dead(tmp_path: Path) -> None:
    append_report(tmp_path, _running("update", _dead_pid(), host="another-host.example"))
    assert read_history(tmp_path)[-1]["status"] == "running"


def test_a_torn_last_line_is_ignored_and_limit_counts_runs(tmp_path: Path) -> None:
    for _ in range(3):
        report = _running("ingest-xml", os.getpid())
        append_report(tmp_path, report)
        append_report(tmp_path, report.finish("ok"))
    with (tmp_path / "history.jsonl").open("a", encoding="utf-8") as handle:
        handle.write('{"run_id": "torn", "sta')

    runs = read_history(tmp_path, limit=2)

    assert [run["status"] for run in runs] == ["ok", "ok"]
    assert len(read_history(tmp_path)) == 3


def test_a_run_refused_the_lock_leaves_the_running_one_running_and_finished_runs_go_last(
    tmp_path: Path,
) -> None:
    holder = _running("update", os.getpid())
    append_report(tmp_path, holder)
    refused = RunReport(kind="update")  # refused the lock: reports only its failure
    append_report(tmp_path, refused.finish("failed", "being updated by another process"))

    assert [run["status"] for run in read_history(tmp_path)] == ["running", "failed"]

    append_report(tmp_path, holder.finish("interrupted"))
    runs = read_history(tmp_path)

    assert [(run["run_id"], run["status"]) for run in runs] == [
        (refused.run_id, "failed"),
        (holder.run_id, "interrupted"),
    ]
