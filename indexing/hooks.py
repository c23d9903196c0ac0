"""What runs after an update published a new version: never part of the update itself.

The update job calls :func:`after_publish` once its run is recorded and the writer lock is
released. Each hook's failure is logged as a warning and swallowed: the run's status, its exit
code and the published index are already final. The one hook by default re-runs the saved
searches and questions (``python -m rag watch run``) in a separate process — ``indexing``
never imports the read side, and a crash or a hang there (bounded by ``watch_timeout_s``)
cannot reach the job.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from indexing.history import RunReport
from indexing.settings import Settings

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
# Lines of the watch run's stderr repeated in the warning when it fails.
TAIL_LINES = 5

AfterPublish = Callable[[Settings, RunReport], None]


def run_watches(settings: Settings, report: RunReport) -> None:
    """Re-run the saved searches and questions against the new version, in a child process.

    Raises:
        RuntimeError: the child failed or ran past ``watch_timeout_s`` (the caller logs it).
    """
    if not settings.watch_after_publish or not settings.watches_path.is_file():
        return
    env = dict(os.environ)
    # The run may have been given settings that are not in the environment (tests, callers
    # of update_queries): the child must read the same index.
    env["PUBMED_RAG_DATA_DIR"] = str(settings.data_dir)
    env["PUBMED_RAG_OFFLINE"] = "1" if settings.offline else "0"
    env["PUBMED_RAG_DATABASE_SCHEMA"] = settings.database_schema
    env.pop("PUBMED_RAG_DATABASE_URL", None)
    if settings.database_url is not None:
        env["PUBMED_RAG_DATABASE_URL"] = settings.database_url.get_secret_value()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(ROOT), env.get("PYTHONPATH"))))
    command = [sys.executable, "-m", "rag", "watch", "run", "--quiet"]
    try:
        done = subprocess.run(
            command,
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=settings.watch_timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(
            f"stopped after {settings.watch_timeout_s:g} s (PUBMED_RAG_WATCH_TIMEOUT_S)"
        ) from None
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-TAIL_LINES:])
        raise RuntimeError(f"exit code {done.returncode}: {tail or 'no message'}")
    for line in done.stderr.strip().splitlines():
        log.info("watch run: %s", line)


# Called in order after every update that published a new version.
AFTER_PUBLISH: list[AfterPublish] = [run_watches]


def after_publish(settings: Settings, report: RunReport, previous: str | None) -> None:
    """Run the hooks when ``report`` published a version other than ``previous``; never raises.

    Args:
        settings: the settings the run used.
        report: the finished run (its ``index_version`` is the published one).
        previous: the version published before the run.
    """
    if report.status not in ("ok", "partial") or not report.index_version:
        return
    if report.index_version == previous:
        return  # nothing changed, nothing was published
    for hook in list(AFTER_PUBLISH):
        name = getattr(hook, "__name__", repr(hook))
        try:
            hook(settings, report)
        except Exception as exc:  # the update is done and published: nothing here may undo it
            log.warning(
                "after publishing %s: %s failed: %s (the update and its published index are "
                "unaffected)",
                report.index_version,
                name,
                exc,
            )
