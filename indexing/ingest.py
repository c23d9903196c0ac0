"""Ingestion runs: PubMed XML files or an NCBI query → parsed articles → a published index.

A run holds the writer lock, works on a private copy of the index and publishes complete
checkpoints (every ``checkpoint_records`` records) and a final version. Killed at any point, it
leaves the last published version intact; rerun, it redoes the unpublished remainder, and
unchanged records are recognised by fingerprint instead of being embedded again.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import socket
import stat
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from tqdm import tqdm

from indexing.article import Article, Deletion, Skipped
from indexing.clock import utcnow
from indexing.history import RunReport
from indexing.pubmed import PubmedXMLError, iter_xml_files, open_xml, parse_pubmed_xml
from indexing.settings import Settings
from indexing.store import Writer as IndexWriter
from indexing.store import open_store

log = logging.getLogger(__name__)

# Articles per txtai upsert: large enough to amortise txtai's per-call overhead, small enough
# to keep memory flat.
UPSERT_BATCH = 256
XML_SOURCE = "xml"
# Shown while the last batch is embedded: all records are read, the slow part is not done.
EMBED_LABEL = "embedding the last batch"


def query_source(term: str) -> str:
    """The source label of records that a tracked query returned."""
    return f"query:{term}"


def check_xml_files(files: Iterable[Path], max_bytes: int) -> None:
    """Refuse, before any lock is taken, files that are not regular or larger than allowed.

    Raises:
        PubmedXMLError: a file is a device, FIFO or socket, or larger than ``max_bytes``.
    """
    for path in files:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise PubmedXMLError(
                f"{path} is not a regular file (a device, FIFO or socket); give a PubMed XML file"
            )
        if info.st_size > max_bytes:
            raise PubmedXMLError(
                f"{path} is {info.st_size} bytes, more than the {max_bytes} allowed "
                "(PUBMED_RAG_MAX_XML_FILE_BYTES)"
            )


class ImportPathError(PubmedXMLError):
    """A path the app was asked to ingest lies outside the configured import folder."""


def check_import_path(path: str | Path, import_dir: Path) -> Path:
    """The real location of ``path`` if it lies inside ``import_dir``, else refuse it.

    A relative path is taken relative to the import folder. Symlinks and ``..`` are resolved
    before the check, so neither can lead out of the folder.

    Raises:
        ImportPathError: the path is empty, does not exist, or resolves outside ``import_dir``.
    """
    text = str(path).strip()
    if not text:
        raise ImportPathError(f"No file or folder given; put PubMed XML files under {import_dir}")
    given = Path(text).expanduser()
    root = import_dir.expanduser().resolve()
    resolved = (given if given.is_absolute() else root / given).resolve()
    if not resolved.is_relative_to(root):
        raise ImportPathError(
            f"{text} is outside the import folder {root}: the app ingests files only from there "
            "(PUBMED_RAG_IMPORT_DIR; the command line `python -m indexing ingest --xml` is not limited)"
        )
    if not resolved.exists():
        raise ImportPathError(f"No such file or folder: {text} (in the import folder {root})")
    return resolved


def file_md5(path: Path) -> str:
    """MD5 of a file, the checksum NLM publishes beside its update files."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Applier:
    """Feeds parsed records to a writer in batches, in stream order, with checkpoints.

    It holds at most one upsert batch of records, never a set of every PMID seen: a full
    baseline run has tens of millions of them.
    """

    writer: IndexWriter
    report: RunReport
    settings: Settings
    source: str
    checkpoints: bool = True
    progress: Any = None

    def __post_init__(self) -> None:
        self.pending: list[Article] = []
        self.since_checkpoint = 0

    def feed(self, items: Iterable[Article | Deletion | Skipped]) -> None:
        for item in items:
            if isinstance(item, Article):
                self.pending.append(item)
                if self.progress is not None:
                    self.progress.update(1)
                if len(self.pending) >= UPSERT_BATCH:
                    self.flush()
            elif isinstance(item, Deletion):
                self.flush()  # deletions apply in file order, after the records before them
                self.report.deleted += self.writer.delete_pmids(item.pmids)
            else:
                self.report.skipped += 1
                log.info("skipped %s: %s", item.pmid or "a record", item.reason)

    def flush(self) -> None:
        if not self.pending:
            return
        on_tagged = self.progress.tagged if self.progress is not None else None
        counts = self.writer.upsert_articles(self.pending, source=self.source, on_tagged=on_tagged)
        self.report.added += counts.added
        self.report.revised += counts.revised
        self.report.unchanged += counts.unchanged
        self.since_checkpoint += len(self.pending)
        self.pending = []
        if self.checkpoints and self.since_checkpoint >= self.settings.checkpoint_records:
            manifest = self.writer.publish(self.report.run_id, reopen=True)
            self.report.index_version = manifest.version
            self.since_checkpoint = 0


@dataclass(frozen=True, slots=True)
class IngestProgress:
    """Where a running ingest stands, for a progress display other than the terminal's."""

    records: int  # records read so far
    total: int | None = None  # records expected, when known (a query's count)
    files_done: int = 0
    files_total: int = 0
    label: str = ""  # what is being read: a file name or the stage
    tagged: int = 0  # records whose entities were tagged (PUBMED_RAG_NER_MODEL), if any

    @property
    def fraction(self) -> float | None:
        """Share of the work done (0..1) when it can be known, else None."""
        if self.total:
            return min(1.0, self.records / self.total)
        if self.files_total:
            return min(1.0, self.files_done / self.files_total)
        return None


ProgressCallback = Callable[[IngestProgress], None]


class _Progress:
    """The terminal bars (tqdm, off when quiet) and an optional callback, fed together.

    The second bar, of records tagged with entities, appears only when a tagger runs.
    """

    def __init__(
        self,
        quiet: bool,
        total: int | None,
        desc: str,
        callback: ProgressCallback | None = None,
        files_total: int = 0,
    ) -> None:
        self.bar = tqdm(
            total=total, unit="rec", desc=desc, disable=quiet, dynamic_ncols=True, leave=False
        )
        self.quiet = quiet
        self.tag_bar: Any = None
        self.callback = callback
        self.state = IngestProgress(0, total, 0, files_total, desc)

    def __enter__(self) -> _Progress:
        self._notify()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()
        if self.tag_bar is not None:
            self.tag_bar.close()

    def update(self, records: int = 1) -> None:
        self.bar.update(records)
        self._change(records=self.state.records + records)

    def tagged(self, records: int) -> None:
        if self.tag_bar is None:
            self.tag_bar = tqdm(
                unit="rec",
                desc="tagging entities",
                disable=self.quiet,
                dynamic_ncols=True,
                leave=False,
                position=1,
            )
        self.tag_bar.update(records)
        self._change(tagged=self.state.tagged + records)

    def set_description(self, label: str) -> None:
        self.bar.set_description(label)
        self._change(label=label)

    def file_done(self) -> None:
        self._change(files_done=self.state.files_done + 1)

    def _change(self, **changes: Any) -> None:
        self.state = replace(self.state, **changes)
        self._notify()

    def _notify(self) -> None:
        if self.callback is not None:
            self.callback(self.state)


def run_with_writer(
    settings: Settings,
    report: RunReport,
    work: Any,
    wait: float = 0.0,
) -> RunReport:
    """Run ``work(writer)`` under the lock, publish if it changed anything, record the report.

    Any exception leaves the published index untouched (the staging copy is dropped), is
    recorded in the history with its message, and is raised again for the caller to present.
    """
    store = open_store(settings)
    report.started_at = utcnow()
    try:
        with store.lock(wait=wait, purpose=report.kind):
            store.trim_history(settings.history_max_runs, settings.history_max_days)
            # Recorded before the work, so that a run killed on the way still shows up.
            report.details.update(
                pid=os.getpid(), host=socket.gethostname(), thread=threading.get_native_id()
            )
            store.append_report(report)
            with store.open_writer() as writer:
                work(writer)
                if writer.dirty or writer.base_version is None:
                    report.index_version = writer.publish(report.run_id).version
                else:
                    report.index_version = writer.base_version or ""
    except KeyboardInterrupt:
        report.finish("interrupted", "interrupted before publishing; rerun to finish")
        store.append_report(report)
        store.close()
        raise
    except Exception as exc:
        report.finish("failed", f"{type(exc).__name__}: {exc}")
        store.append_report(report)
        store.close()
        raise
    except BaseException:
        # Not an error of the run but its caller stopping it: Streamlit stops a page's script
        # with a BaseException when the page reruns. Without this the run stayed "running".
        report.finish("interrupted", "stopped by its caller before publishing; rerun to finish")
        store.append_report(report)
        store.close()
        raise
    # A run whose failures were contained (one tracked query of several) still published.
    report.finish("partial" if report.failed else "ok", report.error)
    store.append_report(report)
    store.close()
    return report


def ingest_files(
    paths: Iterable[Path],
    settings: Settings,
    *,
    quiet: bool = False,
    only_new: bool = False,
    kind: str = "ingest-xml",
    wait: float = 0.0,
    progress: ProgressCallback | None = None,
    within: Path | None = None,
) -> RunReport:
    """Index PubMed XML files (baseline, update or efetch output; .xml/.xml.gz; folders).

    Files are applied in the given order (folders sorted by name). With ``only_new`` a file
    whose name and MD5 were applied before is skipped: update files apply at most once.
    ``progress`` is called as records are read and files finish (the terminal bar is
    unaffected by it). With ``within`` every file, once folders are expanded and symlinks
    resolved, must lie inside that folder (the app's import folder), or nothing is read.
    """
    files = list(iter_xml_files([Path(p) for p in paths]))
    if within is not None:
        # A symlink inside the import folder must not lead out of it.
        files = [check_import_path(f, within) for f in files]
    if not files:
        raise FileNotFoundError(f"no .xml or .xml.gz files in {', '.join(map(str, paths))}")
    check_xml_files(files, settings.max_xml_file_bytes)
    report = RunReport(kind=kind, details={"files": [str(f) for f in files]})

    def work(writer: IndexWriter) -> None:
        with _Progress(quiet, None, "indexing", progress, len(files)) as bar:
            applier = Applier(writer, report, settings, XML_SOURCE, progress=bar)
            for path in files:
                md5 = file_md5(path)
                if only_new and writer.applied_files.get(path.name) == md5:
                    report.details.setdefault("already_applied", []).append(path.name)
                    bar.file_done()
                    continue
                bar.set_description(path.name)
                with open_xml(path) as stream:
                    applier.feed(parse_pubmed_xml(stream))
                # Records still pending are flushed before any publish, so marking the file
                # now is safe; batching across files keeps txtai's per-upsert cost low.
                writer.mark_file_applied(path.name, md5)
                bar.file_done()
            bar.set_description(EMBED_LABEL)
            applier.flush()

    return run_with_writer(settings, report, work, wait)


# PMIDs kept per query in a report's details (the count is always complete).
MAX_REPORTED_PMIDS = 100


def record_gaps(report: RunReport, term: str, gaps: Any) -> None:
    """Put what short batches lacked (an :class:`indexing.entrez.FetchGaps`) in the report."""
    report.refetched += len(gaps.refetched)
    report.unfetched += len(gaps.missing)
    if gaps.missing:
        missing = sorted(gaps.missing, key=int)
        report.details.setdefault("unfetched", {})[term] = missing[:MAX_REPORTED_PMIDS]
        log.warning(
            "query %r: %d records could not be fetched (%s); its watermark stays",
            term,
            len(missing),
            ", ".join(missing[:5]) + ("…" if len(missing) > 5 else ""),
        )


# E-utilities' own open lower bound for a date range.
EARLIEST_DATE = date(1000, 1, 1)


@dataclass(frozen=True, slots=True)
class DateWindow:
    """One part of a search, bounded by dates, that PubMed can serve whole.

    ``term`` and ``datetype`` are the window's own: a day too large for PubMed is pinned into
    the term and split on another date type.
    """

    mindate: str | date | None
    maxdate: str | date | None
    result: Any  # indexing.entrez.SearchResult
    term: str = ""
    datetype: str = "edat"


# The date type a day too large for PubMed is split on next, in this order of preference.
SPLIT_ORDER = ("edat", "pdat", "mdat")


def pin_day(term: str, day: date, datetype: str) -> str:
    """``term`` restricted to one day of ``datetype``, in PubMed's range syntax."""
    stamp = day.strftime("%Y/%m/%d")
    return f'({term}) AND ("{stamp}"[{datetype}] : "{stamp}"[{datetype}])'


def date_bound(value: str | date | None, *, upper: bool) -> date | None:
    """``YYYY[/MM[/DD]]`` (or a date) as the first or last day it covers."""
    if value is None or isinstance(value, date):
        return value
    parts = [int(part) for part in value.split("/")]
    if len(parts) == 3:
        return date(parts[0], parts[1], parts[2])
    if len(parts) == 2:
        first = date(parts[0], parts[1], 1)
        return (first + timedelta(days=31)).replace(day=1) - timedelta(days=1) if upper else first
    return date(parts[0], 12, 31) if upper else date(parts[0], 1, 1)


# A part of a search still to cut: term, datetype, date types pinned into the term, low, high.
_Part = tuple[str, str, tuple[str, ...], str | date | None, str | date | None]


def search_windows(
    client: Any,
    term: str,
    mindate: str | date | None = None,
    maxdate: str | date | None = None,
    datetype: str = "edat",
    max_records: int | None = None,
) -> Iterator[DateWindow]:
    """Searches that together cover ``term`` between two dates, each small enough to fetch.

    PubMed serves only the first 9,999 records of a search, so a larger one is bisected by
    date until every part fits. A single day still too large (a mass revision by NLM gives one
    mdat day hundreds of thousands of records) is pinned into the term and split again on
    another date type (:data:`SPLIT_ORDER`). Parts come newest first, PubMed's own order, so
    ``max_records`` keeps the most recent records, as an unsplit search would. Empty parts
    are left out.

    Args:
        client: an :class:`indexing.entrez.EntrezClient`.
        term: PubMed query.
        mindate: first day (``YYYY[/MM[/DD]]`` or a date), inclusive; None for open.
        maxdate: last day, inclusive; None for open.
        datetype: ``edat``, ``mdat`` or ``pdat``.
        max_records: stop once this many records are covered.

    Raises:
        EntrezError: when a single day of every date type holds more records than PubMed
            serves.
    """
    from indexing.entrez import PUBMED_RETRIEVAL_LIMIT, EntrezError

    limit = getattr(client, "retrieval_limit", PUBMED_RETRIEVAL_LIMIT)
    remaining = max_records
    pending: list[_Part] = [(term, datetype, (), mindate, maxdate)]
    while pending and (remaining is None or remaining > 0):
        part_term, part_type, pinned, low, high = pending.pop()
        result = client.esearch(part_term, mindate=low, maxdate=high, datetype=part_type)
        wanted = result.count if remaining is None else min(result.count, remaining)
        if wanted <= limit:
            if wanted:
                yield DateWindow(low, high, result, part_term, part_type)
            remaining = None if remaining is None else remaining - wanted
            continue
        first = date_bound(low, upper=False) or EARLIEST_DATE
        # No record has a future edat or mdat; pdat can run a little ahead (issues in press).
        ahead = timedelta(days=1 if part_type != "pdat" else 3 * 366)
        last = date_bound(high, upper=True) or datetime.now(UTC).date() + ahead
        if first >= last:
            done = (*pinned, part_type)
            following = [kind for kind in SPLIT_ORDER if kind not in done]
            if not following:
                raise EntrezError(
                    f"query {term!r} matches {result.count} records on {first} ({part_type}) "
                    f"alone, more than the {limit} PubMed serves, on every date type: narrow "
                    "the query"
                )
            log.info(
                "query %r: %d records on %s (%s) alone; splitting that day by %s",
                term,
                result.count,
                first,
                part_type,
                following[0],
            )
            pending.append((pin_day(part_term, first, part_type), following[0], done, None, None))
            continue
        middle = first + (last - first) // 2
        pending.append((part_term, part_type, pinned, first, middle))  # older half, searched last
        pending.append((part_term, part_type, pinned, middle + timedelta(days=1), last))


def fetch_query_articles(
    client: Any,
    term: str,
    *,
    mindate: str | None,
    maxdate: str | None,
    max_records: int | None,
    datetype: str = "edat",
    gaps: Any = None,
) -> tuple[int, Iterator[Article | Deletion | Skipped]]:
    """esearch with the history server, then stream the efetch batches as parsed records.

    A search larger than PubMed serves is split by date (:func:`search_windows`). ``gaps``
    (an :class:`indexing.entrez.FetchGaps`) collects records short batches lacked.
    """
    windows = list(search_windows(client, term, mindate, maxdate, datetype, max_records))
    total = sum(window.result.count for window in windows)
    total = total if max_records is None else min(total, max_records)

    def records() -> Iterator[Article | Deletion | Skipped]:
        remaining = total
        for window in windows:
            take = min(window.result.count, remaining)
            batches = client.fetch_batches(window.result, max_records=take, gaps=gaps)
            for _start, payload in batches:
                yield from parse_pubmed_xml(io.BytesIO(payload))
            remaining -= take

    return total, records()


def ingest_query(
    term: str,
    settings: Settings,
    *,
    mindate: str | None = None,
    maxdate: str | None = None,
    max_records: int | None = None,
    quiet: bool = False,
    wait: float = 0.0,
    client: Any = None,
    progress: ProgressCallback | None = None,
) -> RunReport:
    """Index what an NCBI query returns and track the query for later updates.

    ``progress`` is called as records arrive (the terminal bar is unaffected by it).
    """
    from indexing.entrez import EntrezClient, FetchGaps

    client = client or EntrezClient.from_settings(settings)
    report = RunReport(kind="ingest-query", details={"query": term})
    started = utcnow()

    def work(writer: IndexWriter) -> None:
        gaps = FetchGaps()
        total, records = fetch_query_articles(
            client, term, mindate=mindate, maxdate=maxdate, max_records=max_records, gaps=gaps
        )
        report.details["count"] = total
        with _Progress(quiet, total, "fetching + indexing", progress) as bar:
            applier = Applier(writer, report, settings, query_source(term), progress=bar)
            applier.feed(records)
            bar.set_description(EMBED_LABEL)
            applier.flush()
        previous = writer.queries.get(term, {})
        record_gaps(report, term, gaps)
        writer.set_query(
            term,
            mindate=mindate,
            maxdate=maxdate,
            max=max_records,
            added_at=previous.get("added_at", started),
            # A watermark never passes a record that was not fetched: the next update then
            # re-reads from the previous one (or, for a new query, everything).
            last_success=previous.get("last_success") if gaps.missing else started,
            last_count=total,
        )

    return run_with_writer(settings, report, work, wait)
