"""The saved searches and questions, and what each check found: one small JSON file.

``<data_dir>/watches.json`` holds ``{"format": 1, "watches": [...]}``. It is rewritten whole,
through a temporary file and ``os.replace``, so a reader sees the old file or the new one,
never half of one; changes are read-modify-write under an exclusive ``flock`` on a lock file
beside it, so a ``watch add`` during a run is never lost. A file that is not JSON is left as it
is and every command that needs it says so (nothing overwrites it); an entry that cannot be
read is kept, byte for byte the same JSON, and reported, while the others go on working.
The file lives under the data dir for either index backend: it is the read side's own state.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from indexing.links import pubmed_url
from rag.errors import RagError
from rag.search import Filters

FORMAT = 1
KINDS = ("search", "question")
T = TypeVar("T")


class WatchFileError(RagError):
    """The watches file cannot be read; it is left untouched."""


class UnknownWatchError(RagError):
    """No saved search or question has this id."""


@dataclass(frozen=True, slots=True)
class Item:
    """An article a check reports, with the title it had then."""

    pmid: str
    title: str = ""

    @property
    def url(self) -> str:
        """The article's PubMed page."""
        return pubmed_url(self.pmid)


@dataclass(frozen=True, slots=True)
class Check:
    """One re-run of a watch against one published version, and what it found new."""

    checked_at: str
    index_version: str
    top: tuple[str, ...] = ()  # PMIDs of the top results, best first
    retracted: tuple[str, ...] = ()  # the retracted ones among them
    cited: tuple[str, ...] = ()  # questions: the PMIDs the answer would draw on
    new: tuple[Item, ...] = ()  # in the top results for the first time
    newly_retracted: tuple[Item, ...] = ()
    cited_added: tuple[Item, ...] = ()
    cited_removed: tuple[Item, ...] = ()
    baseline: bool = False  # the first check: what it finds is the starting point, not news
    error: str = ""

    @property
    def changed(self) -> bool:
        """Whether this check found anything new."""
        return bool(self.new or self.newly_retracted or self.cited_added or self.cited_removed)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (also the ``watch list --json`` shape)."""
        data = asdict(self)
        data["changed"] = self.changed
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Check:
        """Read back :meth:`to_dict` (unknown keys are ignored)."""
        return cls(
            checked_at=str(data["checked_at"]),
            index_version=str(data.get("index_version") or ""),
            top=_pmids(data.get("top")),
            retracted=_pmids(data.get("retracted")),
            cited=_pmids(data.get("cited")),
            new=_items(data.get("new")),
            newly_retracted=_items(data.get("newly_retracted")),
            cited_added=_items(data.get("cited_added")),
            cited_removed=_items(data.get("cited_removed")),
            baseline=bool(data.get("baseline")),
            error=str(data.get("error") or ""),
        )


def _pmids(values: Any) -> tuple[str, ...]:
    return tuple(str(value) for value in values or ())


def _items(values: Any) -> tuple[Item, ...]:
    return tuple(Item(str(value["pmid"]), str(value.get("title") or "")) for value in values or ())


@dataclass(frozen=True, slots=True)
class Watch:
    """A saved search or question, its filters and its checks (oldest first, bounded)."""

    id: str
    kind: str  # "search" or "question"
    text: str
    filters: dict[str, Any] = field(default_factory=dict)  # the non-default Filters fields
    created_at: str = ""
    seen: tuple[str, ...] = ()  # PMIDs its top results have held so far (bounded)
    checks: tuple[Check, ...] = ()

    @property
    def last(self) -> Check | None:
        """The newest check that ran (a failed check keeps the one before as reference)."""
        return next((check for check in reversed(self.checks) if not check.error), None)

    @property
    def latest(self) -> Check | None:
        """The newest check, failed or not."""
        return self.checks[-1] if self.checks else None

    def search_filters(self) -> Filters:
        """The filters it was saved with (settings this version does not know are ignored)."""
        known = {item.name for item in fields(Filters)}
        return Filters(**{key: value for key, value in self.filters.items() if key in known})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "id": self.id,
            "kind": self.kind,
            "text": self.text,
            "filters": dict(self.filters),
            "created_at": self.created_at,
            "seen": list(self.seen),
            "checks": [check.to_dict() for check in self.checks],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Watch:
        """Read one entry back.

        Raises:
            KeyError, TypeError, ValueError: the entry is damaged.
        """
        kind = str(data["kind"])
        text = str(data["text"])
        if kind not in KINDS or not text.strip() or not str(data["id"]).strip():
            raise ValueError(f"not a watch: kind {kind!r}, text {text!r}")
        filters = data.get("filters") or {}
        if not isinstance(filters, dict):
            raise TypeError("filters must be an object")
        watch = cls(
            id=str(data["id"]),
            kind=kind,
            text=text,
            filters=filters,
            created_at=str(data.get("created_at") or ""),
            seen=tuple(str(p) for p in data.get("seen") or ()),
            checks=tuple(Check.from_dict(check) for check in data.get("checks") or ()),
        )
        watch.search_filters()  # filters that no longer validate make the entry damaged
        return watch


def filters_dict(filters: Filters) -> dict[str, Any]:
    """The fields of ``filters`` that constrain anything (what a watch stores)."""
    return {
        key: value
        for key, value in asdict(filters).items()
        if value not in (None, False, "", (), [])
    }


def new_id() -> str:
    """A short random id for a new watch."""
    return secrets.token_hex(4)


@dataclass
class Watches:
    """The file's content: the readable watches and the damaged entries, kept as they were."""

    watches: list[Watch] = field(default_factory=list)
    damaged: list[Any] = field(default_factory=list)

    def find(self, watch_id: str) -> Watch:
        """The watch with this id.

        Raises:
            UnknownWatchError: none has it.
        """
        for watch in self.watches:
            if watch.id == watch_id:
                return watch
        raise UnknownWatchError(
            f"no saved search or question with id {watch_id!r}; `python -m rag watch list` shows them"
        )

    def same_as(self, watch: Watch) -> Watch | None:
        """The saved watch with the kind, text and filters of ``watch``, if any."""
        key = (watch.kind, watch.text, watch.filters)
        return next((old for old in self.watches if (old.kind, old.text, old.filters) == key), None)

    def replace(self, watch: Watch) -> None:
        """Put ``watch`` where the entry with its id is (dropped if that one was removed)."""
        self.watches = [watch if old.id == watch.id else old for old in self.watches]


def parse(text: str, where: Path) -> Watches:
    """The watches in a file's text.

    Raises:
        WatchFileError: the text is not a watches file.
    """
    try:
        data = json.loads(text) if text.strip() else {"watches": []}
    except json.JSONDecodeError as exc:
        raise _damaged(where, f"not JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(data, dict) or not isinstance(data.get("watches"), list):
        raise _damaged(where, "no 'watches' list in it")
    found = Watches()
    for entry in data["watches"]:
        try:
            if not isinstance(entry, dict):
                raise TypeError("an entry must be an object")
            found.watches.append(Watch.from_dict(entry))
        except (KeyError, TypeError, ValueError, RagError):
            found.damaged.append(entry)
    return found


def _damaged(where: Path, why: str) -> WatchFileError:
    return WatchFileError(
        f"the watches file {where} is damaged: {why}; it was left as it is — repair it, or move "
        "it away to start again"
    )


def load(path: Path) -> Watches:
    """The watches saved in ``path`` (none when it does not exist).

    Raises:
        WatchFileError: the file cannot be read as a watches file.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Watches()
    except (OSError, UnicodeDecodeError) as exc:
        raise _damaged(path, str(exc)) from None
    return parse(text, path)


def save(path: Path, content: Watches) -> None:
    """Write the file whole and atomically (temporary file, fsync, ``os.replace``)."""
    entries = [watch.to_dict() for watch in content.watches] + list(content.damaged)
    payload = json.dumps({"format": FORMAT, "watches": entries}, ensure_ascii=False, indent=1)
    write_atomically(path, payload.encode("utf-8"))


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` so that readers see the old file or the new one only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        Path(temporary).replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            Path(temporary).unlink()
        raise


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_name(path.name + ".lock").open("a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def change(path: Path, edit: Callable[[Watches], T]) -> T:
    """Read, ``edit`` in place and write back the file, excluding other writers meanwhile.

    Raises:
        WatchFileError: the file is damaged (it is not written).
    """
    with _locked(path):
        content = load(path)
        outcome = edit(content)
        save(path, content)
        return outcome
