"""Run history: one entry per run, and runs that died on the way shown as such."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from indexing import history as history_module
from indexing.history import DIED, RunReport, append_report, read_history, trim_history
from tests.fixtures_pg import BOTH, Backend


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


def test_a_run_of_this_process_whose_thread_ended_died(tmp_path: Path) -> None:
    # The app runs ingests in a page's thread; a rerun stops that thread, the process lives on.
    ended = threading.Thread(target=lambda: None)
    ended.start()
    ended.join()
    gone = _running("ingest-query", os.getpid())
    gone.details["thread"] = ended.native_id
    append_report(tmp_path, gone)

    assert read_history(tmp_path)[-1]["status"] == DIED

    live = _running("ingest-query", os.getpid())
    live.details["thread"] = threading.get_native_id()
    append_report(tmp_path, live)

    assert [run["status"] for run in read_history(tmp_path)] == [DIED, "running"]


def _finished(kind: str, days_ago: float = 0.0) -> RunReport:
    report = _running(kind, os.getpid()).finish("ok")
    moment = datetime.now(UTC) - timedelta(days=days_ago)
    report.started_at = report.finished_at = moment.isoformat(timespec="seconds")
    return report


def test_history_is_trimmed_to_the_newest_runs_and_the_age_limit(tmp_path: Path) -> None:
    for n in range(40):
        append_report(tmp_path, _finished(f"old-{n}", days_ago=400))
    for n in range(30):
        append_report(tmp_path, _finished(f"new-{n}", days_ago=1))

    assert trim_history(tmp_path, max_runs=1000, max_days=365) == 40
    assert [run["kind"] for run in read_history(tmp_path)] == [f"new-{n}" for n in range(30)]
    assert trim_history(tmp_path, max_runs=10, max_days=0) == 20
    assert [run["kind"] for run in read_history(tmp_path)] == [f"new-{n}" for n in range(20, 30)]
    assert trim_history(tmp_path, max_runs=10, max_days=0) == 0  # nothing more to drop
    assert list(tmp_path.glob(".*.tmp")) == []


def test_ingest_trims_the_history_when_it_starts(tmp_path: Path) -> None:
    from indexing.ingest import run_with_writer
    from indexing.settings import Settings

    settings = Settings(data_dir=tmp_path / "data", offline=True, history_max_runs=5)
    for n in range(20):
        append_report(settings.index_dir, _finished(f"old-{n}"))

    run_with_writer(settings, RunReport(kind="check"), lambda _writer: None)

    kinds = [run["kind"] for run in read_history(settings.index_dir)]
    assert kinds == [f"old-{n}" for n in range(15, 20)] + ["check"]


def test_the_last_runs_are_read_from_the_end_and_paged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(800):
        report = _running(f"run-{n}", os.getpid())
        append_report(tmp_path, report)
        append_report(tmp_path, report.finish("ok"))
    everything = read_history(tmp_path)

    def whole_file(*_args: object, **_kwargs: object) -> str:
        raise AssertionError("the whole history was read for a few runs")

    monkeypatch.setattr(Path, "read_text", whole_file)
    monkeypatch.setattr(Path, "read_bytes", whole_file)
    parsed: list[int] = []
    parse = history_module._parse_lines

    def counting(lines: list[bytes]) -> list[dict[str, object]]:
        parsed.append(len(lines))
        return parse(lines)

    monkeypatch.setattr(history_module, "_parse_lines", counting)
    assert read_history(tmp_path, limit=5) == everything[-5:]
    assert parsed == [14]  # 2 lines per run for 5 runs and a few more, not 1,600
    assert read_history(tmp_path, limit=5, offset=5) == everything[-10:-5]
    assert read_history(tmp_path, limit=2, offset=799) == everything[:1]


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_both_backends_trim_the_history_and_read_only_the_last_runs(
    backend: Backend, tmp_path: Path
) -> None:
    """The PostgreSQL history table is trimmed like ``history.jsonl`` and read in pages."""
    from indexing.store import open_store

    store = open_store(backend.settings(tmp_path / "data"))
    for n in range(12):
        report = _finished(f"run-{n}")
        store.append_report(report)
        store.append_report(report)  # a run has several rows: one run, not two

    assert [run["kind"] for run in store.read_history(limit=3)] == ["run-9", "run-10", "run-11"]
    assert store.trim_history(max_runs=5) == 7
    assert [run["kind"] for run in store.read_history()] == [f"run-{n}" for n in range(7, 12)]
    assert store.trim_history(max_runs=100, max_days=365) == 0
    store.close()
