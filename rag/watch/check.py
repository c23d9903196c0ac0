"""Re-running saved searches and questions against the published index, and what is new.

A search is re-run as ``rag search`` runs it (same filters, the top ``watch_top_n`` articles).
A question is re-run up to its key evidence, without the generator: its **cited set** is the
set of PMIDs the answer would be written from — the articles of the key-evidence sentences in
the prompt (with ``prompt_passages`` on, also the top ``top_k`` articles whose passages the
prompt carries); an answer that would abstain draws on none. The citation grammar lets the
generator cite only those PMIDs, so a new article in this set is one the answer may now cite.

What a check reports as new, against the watch's earlier checks:

- ``new``: articles in the top results that none of its checks had in them before (so an
  article wobbling around rank N is reported once, not at every update);
- ``newly_retracted``: retracted articles among the top results that were not retracted (or
  not there) at the last check;
- ``cited_added`` / ``cited_removed``: questions only, the change of the cited set.

The first check of a watch is its baseline: it records the results and reports nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from indexing.clock import utcnow
from indexing.store import PublishedIndex
from rag.search import Hit, SearchResult, prepare_query
from rag.service import AnswerService
from rag.watch import store
from rag.watch.store import Check, Item, Watch, Watches

log = logging.getLogger(__name__)

# PMIDs a watch remembers having seen in its top results (oldest forgotten first).
SEEN_LIMIT = 2000


@dataclass
class RunSummary:
    """What one ``watch run`` did."""

    index_version: str
    checked: list[tuple[Watch, Check]] = field(default_factory=list)
    damaged: int = 0

    @property
    def failed(self) -> list[tuple[Watch, Check]]:
        """The watches whose check raised (recorded with its error)."""
        return [(watch, check) for watch, check in self.checked if check.error]

    @property
    def changed(self) -> list[tuple[Watch, Check]]:
        """The watches whose check found something new."""
        return [(watch, check) for watch, check in self.checked if check.changed]

    def summary(self) -> str:
        """One line for logs and the CLI."""
        text = (
            f"watch run: {len(self.checked)} checked against index {self.index_version}, "
            f"{len(self.changed)} with news, {len(self.failed)} failed"
        )
        if self.damaged:
            text += f", {self.damaged} damaged entr{'y' if self.damaged == 1 else 'ies'} skipped"
        return text


def search_watch(
    service: AnswerService, index: PublishedIndex, watch: Watch, top_n: int
) -> tuple[SearchResult, tuple[str, ...]]:
    """The watch's search over ``index`` and, for a question, its cited set."""
    limit = max(top_n, service.rag.top_k)
    result = service.search(watch.text, watch.search_filters(), limit, index=index)
    if watch.kind != "question":
        return result, ()
    threshold = service.rag.threshold_for(result.embeddings_model)
    if not result.hits or result.best_dense < threshold:
        return result, ()  # the answer would abstain
    _, evidence = service.evidence(index, result)
    cited = [item.pmid for item in evidence]
    if service.rag.prompt_passages:
        cited += [hit.pmid for hit in result.hits[: service.rag.top_k]]
    return result, tuple(dict.fromkeys(cited))


def compare(
    watch: Watch, result: SearchResult, cited: tuple[str, ...], top_n: int, now: str
) -> Check:
    """The check of ``watch`` that found ``result`` (and ``cited``), against its last ones."""
    hits = result.hits[:top_n]
    by_pmid: dict[str, Hit] = {hit.pmid: hit for hit in result.hits}
    top = tuple(hit.pmid for hit in hits)
    retracted = tuple(hit.pmid for hit in hits if hit.retracted)
    check = Check(now, result.index_version, top, retracted, cited)
    last = watch.last
    if last is None:
        return replace(check, baseline=True)

    def item(pmid: str) -> Item:
        return Item(pmid, by_pmid[pmid].title if pmid in by_pmid else "")

    seen = set(watch.seen) | set(last.top)
    before_retracted = set(last.retracted)
    return replace(
        check,
        new=tuple(item(pmid) for pmid in top if pmid not in seen),
        newly_retracted=tuple(item(pmid) for pmid in retracted if pmid not in before_retracted),
        cited_added=tuple(item(pmid) for pmid in cited if pmid not in last.cited),
        cited_removed=tuple(item(pmid) for pmid in last.cited if pmid not in cited),
    )


def check_watch(
    service: AnswerService, index: PublishedIndex, watch: Watch, top_n: int, now: str
) -> Check:
    """Re-run one watch; a failure becomes a check that records its error."""
    try:
        result, cited = search_watch(service, index, watch, top_n)
    except Exception as exc:  # one broken watch must not stop the others
        log.warning("watch %s (%r) failed: %s", watch.id, watch.text, exc)
        return Check(now, index.version, error=f"{type(exc).__name__}: {exc}")
    return compare(watch, result, cited, top_n, now)


def record(watch: Watch, check: Check, history: int) -> Watch:
    """``watch`` with ``check`` appended, its checks bounded to ``history``."""
    seen = watch.seen + tuple(pmid for pmid in check.top if pmid not in set(watch.seen))
    return replace(watch, seen=seen[-SEEN_LIMIT:], checks=(*watch.checks, check)[-history:])


Checker = Callable[[AnswerService, PublishedIndex, Watch, int, str], Check]


def run_watches(
    service: AnswerService,
    path: Path,
    *,
    top_n: int,
    history: int,
    checker: Checker = check_watch,
) -> RunSummary:
    """Re-run every saved watch against the published version and record what is new.

    The checks run without the file lock; their results are then merged into the file as it
    is by then, so watches added or removed meanwhile stay added or removed.

    Raises:
        WatchFileError: the watches file is damaged (nothing is written).
        IndexMissingError: nothing has been published yet.
    """
    saved = store.load(path)
    index = service.published()
    now = utcnow()
    summary = RunSummary(index.version, damaged=len(saved.damaged))
    checks = {watch.id: checker(service, index, watch, top_n, now) for watch in saved.watches}
    if saved.damaged:
        log.warning(
            "%d damaged entr%s in %s kept as they are and not checked",
            len(saved.damaged),
            "y" if len(saved.damaged) == 1 else "ies",
            path,
        )

    def merge(content: Watches) -> None:
        for watch in content.watches:
            if watch.id in checks:
                updated = record(watch, checks[watch.id], history)
                content.replace(updated)
                summary.checked.append((updated, checks[watch.id]))

    if checks:
        store.change(path, merge)
    return summary


def add_watch(
    service: AnswerService | None,
    path: Path,
    watch: Watch,
    *,
    top_n: int,
    history: int,
) -> Watch:
    """Save ``watch``, with a first check as its baseline when the index can be searched.

    A watch of the same kind, text and filters is not saved twice: that one is returned.

    Raises:
        WatchFileError: the watches file is damaged (nothing is written).
        SearchError: the text is empty.
    """
    prepare_query(watch.text)
    existing = store.load(path).same_as(watch)
    if existing is not None:
        return existing
    if service is not None:
        try:
            index = service.published()
        except Exception as exc:  # no index yet: the first run after an update is the baseline
            log.info("no baseline for the new watch: %s", exc)
        else:
            check = compare(watch, *search_watch(service, index, watch, top_n), top_n, utcnow())
            watch = record(watch, check, history)

    def append(content: Watches) -> Watch:
        saved = content.same_as(watch)  # saved meanwhile (a double click)
        if saved is None:
            content.watches.append(watch)
        return saved or watch

    return store.change(path, append)
