"""The update run and its schedule: idempotent, watermark-driven, invisible to readers.

An update re-runs every tracked query (``ingest --query``) over a date window: what entered
PubMed (edat) or was revised (mdat) since the query's last successful update, minus
``update_overlap_days``. Records are upserted (fingerprints make unchanged ones free), and
records the full query no longer returns lose the query as a source (and leave the index when
no other source keeps them). The whole run is one staging copy and one publish: a run that
fails or is killed publishes nothing, its watermarks do not move, and the next run redoes the
same window. A query failing with an E-utilities error is contained: the others publish and
move their watermarks, the run is "partial", and that query's window is redone next time; a
query with records that could not be fetched keeps its watermark as well. A run that changes
no record publishes no version either (readers keep their loaded index); its watermarks then
stay where they were, which only widens the next window.

``update --xml`` applies PubMed's daily update files, each at most once, after checking NLM's
``.md5`` files. ``schedule`` runs updates on a cron expression in the foreground; SIGTERM or
SIGINT abandons a run in progress (nothing is published) and exits 0. The two commands live in
:mod:`indexing.__main__` with the others; this module holds the runs.

An update that published a new version then runs :mod:`indexing.hooks` (the saved searches
and questions are re-run), after the writer lock is released and the run is recorded; a hook
that fails is logged and changes nothing of the run.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from types import FrameType
from typing import Any

from indexing.clock import utcnow
from indexing.errors import UserError
from indexing.history import RunReport
from indexing.hooks import after_publish
from indexing.settings import Settings
from indexing.store import IndexLockedError, IndexNotFoundError, open_store
from indexing.store import Writer as IndexWriter

log = logging.getLogger(__name__)

# NCBI dates records on US Eastern time; UTC-5 (EST) never gives a later day than Eastern time
# does, so a window computed on it cannot start after the day a record was dated.
NCBI_CLOCK = timezone(timedelta(hours=-5))
_NLM_MD5 = re.compile(r"^MD5\((?P<name>[^)]+)\)\s*=\s*(?P<md5>[0-9a-fA-F]{32})\s*$")


class ChecksumError(UserError, ValueError):
    """A file does not match the MD5 that NLM published beside it."""


# --- stopping on signals --------------------------------------------------------------------


class GracefulStop:
    """Turns SIGTERM and SIGINT into ``KeyboardInterrupt``, except while a run publishes.

    ``KeyboardInterrupt`` is what the ingestion runner already treats as "abandon": the staging
    copy is dropped and the run is recorded as interrupted. Once a run's work is done it is
    about to publish, which takes a moment and is atomic; a signal then only sets
    :attr:`requested` and the caller stops after the publish.
    """

    def __init__(self) -> None:
        self.requested = False
        self.deferred = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> GracefulStop:
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.requested = True
        name = signal.Signals(signum).name
        if self.deferred:
            log.warning("%s received while publishing: stopping after the publish", name)
            return
        log.warning("%s received: stopping (a run in progress publishes nothing)", name)
        raise KeyboardInterrupt(name)

    def defer(self) -> None:
        """Hold signals until :meth:`resume` (a run's work is done; it publishes now)."""
        self.deferred = True

    def resume(self) -> None:
        """Let signals interrupt again."""
        self.deferred = False


# --- the query update -----------------------------------------------------------------------


@dataclass(slots=True)
class QueryUpdate:
    """What the update did for one tracked query (kept in the run report's details)."""

    since: str | None
    added: int = 0
    revised: int = 0
    unchanged: int = 0
    deleted: int = 0
    skipped: int = 0
    count: int = 0
    refetched: int = 0
    unfetched: int = 0  # records not fetched: the query's watermark stays where it was
    notes: list[str] = field(default_factory=list)


def window_start(last_success: str | None, overlap_days: int) -> date | None:
    """First day an update must re-read, on NCBI's clock; None when there is no watermark.

    Args:
        last_success: ISO timestamp of the query's last successful update (or ingest).
        overlap_days: days re-read before it (``settings.update_overlap_days``).
    """
    if not last_success:
        return None
    moment = datetime.fromisoformat(last_success)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment.astimezone(NCBI_CLOCK) - timedelta(days=overlap_days)).date()


def fetch_all_ids(
    client: Any, term: str, mindate: str | None = None, maxdate: str | None = None
) -> set[str]:
    """Every PMID a query returns now, split by entrez date when PubMed would not list them all."""
    from indexing.ingest import search_windows

    pmids: set[str] = set()
    for window in search_windows(client, term, mindate, maxdate, "edat"):
        pmids.update(client.fetch_ids(window.term, window.mindate, window.maxdate, window.datetype))
    return pmids


def _within(edat: str, low: date | None, high: date | None) -> bool:
    """Whether an ISO edat lies in a query's date range (unknown dates are kept)."""
    if not edat or (low is None and high is None):
        return True
    day = date.fromisoformat(edat[:10])
    return (low is None or low <= day) and (high is None or day <= high)


def _update_query(
    writer: IndexWriter,
    client: Any,
    term: str,
    state: dict[str, Any],
    settings: Settings,
    report: RunReport,
) -> QueryUpdate:
    """Apply one query's new, revised and vanished records to the writer's working copy."""
    from indexing.article import Article
    from indexing.entrez import FetchGaps
    from indexing.ingest import Applier, date_bound, query_source, record_gaps, search_windows
    from indexing.pubmed import parse_pubmed_xml

    source = query_source(term)
    low = date_bound(state.get("mindate"), upper=False)
    high = date_bound(state.get("maxdate"), upper=True)
    since = window_start(state.get("last_success"), settings.update_overlap_days)
    outcome = QueryUpdate(since=since.isoformat() if since else None)
    before = (report.added, report.revised, report.unchanged, report.skipped)

    # Deletions compare what was indexed before this run with a snapshot of the full result
    # taken first: a record entering PubMed while we fetch is then simply picked up, never
    # mistaken for a deletion (it is in neither set).
    indexed = writer.pmids_from_source(source)
    current = fetch_all_ids(client, term, state.get("mindate"), state.get("maxdate"))
    outcome.count = len(current)

    applier = Applier(writer, report, settings, source, checkpoints=False)
    new_from = max(filter(None, (since, low)), default=None)
    searches: list[tuple[str, date | None, date | None]] = []
    if new_from is None or high is None or new_from <= high:
        searches.append(("edat", new_from, high))
    if since is not None:
        # Revisions of records outside the query's entrez-date range are not ours; they are
        # dropped after parsing because esearch filters on one date type at a time.
        searches.append(("mdat", since, None))
    gaps = FetchGaps()
    for datetype, first, last in searches:
        for window in search_windows(client, term, first, last, datetype):
            for _start, payload in client.fetch_batches(window.result, gaps=gaps):
                applier.feed(
                    item
                    for item in parse_pubmed_xml(io.BytesIO(payload))
                    if not isinstance(item, Article) or _within(item.edat, low, high)
                )
    applier.flush()
    record_gaps(report, term, gaps)
    outcome.refetched, outcome.unfetched = len(gaps.refetched), len(gaps.missing)

    gone = indexed - current
    if gone and not current:
        # An empty answer for a query that used to return records is far likelier an NCBI
        # hiccup than every record being withdrawn: keep them, and say so.
        note = f"query returned no records now; kept the {len(gone)} indexed ones"
        log.warning("query %r: %s", term, note)
        outcome.notes.append(note)
    elif gone:
        outcome.deleted = writer.remove_source(gone, source)
        report.deleted += outcome.deleted
        if len(gone) > outcome.deleted:
            outcome.notes.append(f"{len(gone) - outcome.deleted} kept by another source")
    outcome.added = report.added - before[0]
    outcome.revised = report.revised - before[1]
    outcome.unchanged = report.unchanged - before[2]
    outcome.skipped = report.skipped - before[3]
    return outcome


def update_queries(
    settings: Settings,
    *,
    wait: float = 0.0,
    client: Any = None,
    before_publish: Callable[[], None] | None = None,
) -> RunReport:
    """Bring every tracked query up to date, in one all-or-nothing run.

    Args:
        settings: where the index lives and how to reach E-utilities.
        wait: seconds to wait for another writer to finish.
        client: an :class:`indexing.entrez.EntrezClient` (one from settings by default).
        before_publish: called when the work is done, right before publishing (the scheduler
            uses it to stop signals from interrupting the publish).

    Returns:
        The run's report, also appended to the history.

    A query that fails with an :class:`EntrezError` (one day beyond what PubMed serves on
    every date type, NCBI refusing it) does not stop the others: they are applied and move
    their watermarks, the run ends ``partial`` with the failure in its report, and the failed
    query's window is redone by the next run. A query with records that could not be fetched
    is applied but keeps its watermark.

    Raises:
        IndexNotFoundError: nothing has been published yet.
        EntrezError: every tracked query failed; nothing was published.
    """
    from indexing.entrez import EntrezClient, EntrezError
    from indexing.ingest import run_with_writer

    store = open_store(settings)
    try:
        previous = store.current_version()
        if previous is None:
            raise IndexNotFoundError(
                f"no index to update in {store.where}; build one first with "
                "`python -m indexing ingest --query TERM`"
            )
    finally:
        store.close()
    client = client or EntrezClient.from_settings(settings)
    report = RunReport(kind="update")
    started = utcnow()  # the watermark: everything before this instant is in the run's windows

    def work(writer: IndexWriter) -> None:
        queries = dict(sorted(writer.queries.items()))
        if not queries:
            log.warning("no tracked queries to update; track one with `ingest --query TERM`")
        report.details["queries"] = {}
        watermarks: dict[str, dict[str, Any]] = {}
        failures: dict[str, str] = {}
        for term, state in queries.items():
            log.info("updating query %r", term)
            try:
                outcome = _update_query(writer, client, term, state, settings, report)
            except EntrezError as exc:
                # Records this query already applied stay (upserts are idempotent); its
                # watermark does not move, so the next run redoes its window.
                report.failed += 1
                failures[term] = str(exc)
                report.details["failed_queries"] = failures
                log.error("query %r failed: %s (the other queries go on)", term, exc)
                continue
            except Exception:
                report.failed += 1
                report.details["failed_query"] = term
                raise
            report.details["queries"][term] = asdict(outcome)
            if not outcome.unfetched:
                watermarks[term] = {"last_success": started, "last_count": outcome.count}
        if failures and len(failures) == len(queries):
            first = next(iter(failures))
            report.details["failed_query"] = first
            raise EntrezError(failures[first])
        if failures:
            report.error = "; ".join(f"query {term!r}: {error}" for term, error in failures.items())
        # Only watermarks would change: publishing a copy of the index just for them would
        # make every reader reload it for nothing. The next window starts earlier instead.
        if writer.dirty:
            for term, state in watermarks.items():
                writer.set_query(term, **state)
        if before_publish is not None:
            before_publish()

    report = run_with_writer(settings, report, work, wait)
    # After the lock is released and the run recorded: nothing there can change either.
    after_publish(settings, report, previous)
    return report


# --- PubMed update files --------------------------------------------------------------------


def read_nlm_md5(path: Path) -> tuple[str, str]:
    """``(file name, md5)`` from an NLM checksum file (``MD5(pubmed26n1335.xml.gz)= 88b7…``).

    Raises:
        ChecksumError: the file is not in NLM's format.
    """
    text = path.read_text(encoding="ascii", errors="replace").strip()
    match = _NLM_MD5.match(text)
    if match is None:
        raise ChecksumError(f"{path} is not an NLM checksum file (expected 'MD5(name)= hash')")
    return match["name"], match["md5"].lower()


def verify_nlm_md5(files: Iterable[Path]) -> dict[str, str]:
    """Check every file that has an NLM ``.md5`` file beside it; all must match.

    Returns:
        ``{file name: md5}`` of the files that were checked.

    Raises:
        ChecksumError: a file differs from its published checksum (or the checksum file names
            another file); nothing should be applied.
    """
    from indexing.ingest import file_md5

    checked: dict[str, str] = {}
    for path in files:
        sidecar = path.with_name(path.name + ".md5")
        if not sidecar.is_file():
            continue
        name, expected = read_nlm_md5(sidecar)
        if name != path.name:
            raise ChecksumError(f"{sidecar} is the checksum of {name}, not of {path.name}")
        actual = file_md5(path)
        if actual != expected:
            raise ChecksumError(
                f"{path} is damaged or incomplete: MD5 {actual} differs from NLM's {expected} "
                f"in {sidecar.name}; download it again (nothing was applied)"
            )
        checked[path.name] = actual
    return checked


def update_from_xml(
    paths: Iterable[Path], settings: Settings, *, quiet: bool = False, wait: float = 0.0
) -> RunReport:
    """Apply PubMed update files in name order, each at most once, after checking their MD5.

    Raises:
        ChecksumError: a file does not match its ``.md5`` file; nothing was applied.
        FileNotFoundError: no PubMed XML file among ``paths``.
    """
    from indexing.ingest import check_xml_files, ingest_files
    from indexing.pubmed import iter_xml_files

    # NLM numbers its files in publication order, and deletions must apply in that order.
    files = sorted(iter_xml_files([Path(p) for p in paths]), key=lambda path: path.name)
    check_xml_files(files, settings.max_xml_file_bytes)  # before hashing: /dev/zero never ends
    try:
        checked = verify_nlm_md5(files)
    except ChecksumError as exc:
        report = RunReport(kind="update-xml", details={"files": [str(f) for f in files]})
        report.started_at = utcnow()
        store = open_store(settings)
        store.append_report(report.finish("failed", str(exc)))
        store.close()
        raise
    if checked:
        log.info("MD5 verified for %d file(s)", len(checked))
    previous = _published_version(settings)
    report = ingest_files(files, settings, quiet=quiet, only_new=True, kind="update-xml", wait=wait)
    after_publish(settings, report, previous)
    return report


def _published_version(settings: Settings) -> str | None:
    store = open_store(settings)
    try:
        return store.current_version()
    finally:
        store.close()


def new_xml_files(directory: Path, settings: Settings) -> list[Path]:
    """Update files in ``directory`` whose names the published index has not applied yet.

    Names only, so that an idle tick does not hash hundreds of files; ``update_from_xml``
    still checks each file's MD5 before applying it.
    """
    from indexing.pubmed import iter_xml_files

    store = open_store(settings)
    try:
        applied = store.manifest().applied_files if store.current_version() else {}
    finally:
        store.close()
    return [path for path in iter_xml_files([directory]) if path.name not in applied]


# --- the schedule ---------------------------------------------------------------------------


def next_tick(cron: str, now: datetime | None = None) -> datetime:
    """The next time ``cron`` fires after ``now`` (local time, like cron and systemd)."""
    from croniter import croniter

    now = now or datetime.now().astimezone()
    moment: datetime = croniter(cron, now).get_next(datetime)
    return moment


@contextlib.contextmanager
def scheduler_lock(settings: Settings, wait: float) -> Iterator[None]:
    """Be the only scheduler of an index (the writer lock is held only while a run runs).

    Raises:
        IndexLockedError: another scheduler runs (after waiting ``wait`` seconds).
    """
    store = open_store(settings)
    lock = store.scheduler_lock(wait=wait)
    try:
        lock.__enter__()
    except IndexLockedError as exc:
        store.close()
        raise IndexLockedError(
            f"another scheduler already runs on {store.where} ({exc.holder or 'another process'}); "
            "stop it first, or pass --wait SECONDS",
            exc.holder,
        ) from None
    try:
        yield
    finally:
        lock.__exit__(None, None, None)
        store.close()


def run_scheduled_update(
    settings: Settings, stop: GracefulStop, xml_dir: Path | None, wait: float
) -> list[RunReport]:
    """One tick: new update files (with ``xml_dir``), then the tracked queries.

    Failures are logged (and recorded in the history by the run), never raised, so that the
    schedule goes on; only ``KeyboardInterrupt`` (a stop signal) escapes.
    """
    reports: list[RunReport] = []
    steps: list[tuple[str, Callable[[], RunReport]]] = []
    if xml_dir is not None:
        steps.append(("update-xml", lambda: _apply_new_files(xml_dir, settings, wait)))
    steps.append(("update", lambda: _update_tracked(settings, stop, xml_dir is None, wait)))
    for kind, step in steps:
        try:
            report = step()
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            log.error("%s failed: %s (the published index is unchanged)", kind, exc)
            continue
        finally:
            stop.resume()
        if report.status != "skipped":
            log.info("%s", report.summary())
            reports.append(report)
        if stop.requested:
            break
    return reports


def _apply_new_files(xml_dir: Path, settings: Settings, wait: float) -> RunReport:
    files = new_xml_files(xml_dir, settings)
    if not files:
        log.info("no new update files in %s", xml_dir)
        return RunReport(kind="update-xml", status="skipped")
    return update_from_xml(files, settings, quiet=True, wait=wait)


def _update_tracked(settings: Settings, stop: GracefulStop, always: bool, wait: float) -> RunReport:
    store = open_store(settings)
    try:
        idle = store.current_version() is None or not store.manifest().queries
    finally:
        store.close()
    if not always and idle:
        # With --xml-dir only: no tracked query, so no need to copy the index for nothing.
        return RunReport(kind="update", status="skipped")
    return update_queries(settings, wait=wait, before_publish=stop.defer)


def run_schedule(
    settings: Settings,
    cron: str,
    *,
    xml_dir: Path | None = None,
    max_runs: int | None = None,
    wait: float = 0.0,
) -> int:
    """Run updates on ``cron`` in the foreground until stopped; return the ticks run.

    SIGTERM and SIGINT end the loop (also while waiting for the scheduler lock): a run in
    progress is abandoned without publishing. A tick that comes while a run still goes on
    is skipped; the next one is computed when the run ends.

    Raises:
        IndexLockedError: another scheduler runs on this index.
    """
    runs = 0
    with GracefulStop() as stop:
        try:
            with scheduler_lock(settings, wait):
                while max_runs is None or runs < max_runs:
                    tick = next_tick(cron)
                    log.info("next update at %s", tick.isoformat(timespec="seconds"))
                    time.sleep(max(0.0, (tick - datetime.now().astimezone()).total_seconds()))
                    run_scheduled_update(settings, stop, xml_dir, wait)
                    runs += 1
                    if stop.requested:
                        break
        except KeyboardInterrupt:
            log.warning("scheduler stopped after %d run(s); the published index is intact", runs)
            return runs
    log.info("scheduler finished after %d run(s)", runs)
    return runs
