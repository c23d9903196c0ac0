"""An Atom feed (RFC 4287) of what the saved searches and questions found new.

One entry per change: an article new in a watch's top results, a newly retracted one, a
question's changed cited set. Entry ids are stable (watch, index version, change, PMID), so a
feed reader shows each change once however often the file is rewritten. Built with
``xml.etree``, which escapes every text and attribute: titles from records stay text.
"""

from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from indexing.clock import utcnow
from indexing.links import PUBMED_BASE
from rag.watch.store import Check, Item, Watch, write_atomically

ATOM = "http://www.w3.org/2005/Atom"
# Entries in one feed file, newest first; older ones have long been read.
MAX_ENTRIES = 500
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass(frozen=True, slots=True)
class Entry:
    """One change, as a feed entry."""

    id: str
    title: str
    updated: str
    link: str
    summary: str


def _label(watch: Watch) -> str:
    return f"{'question' if watch.kind == 'question' else 'search'} \u201c{watch.text}\u201d"


def _titled(item: Item) -> str:
    return f"{item.title or 'PMID ' + item.pmid} (PMID {item.pmid})"


def entries(watches: Iterable[Watch]) -> list[Entry]:
    """Every change the watches' recorded checks found, newest first."""
    found: list[Entry] = []
    for watch in watches:
        for check in watch.checks:
            found.extend(_check_entries(watch, check))
    found.sort(key=lambda entry: entry.updated, reverse=True)
    return found[:MAX_ENTRIES]


def _check_entries(watch: Watch, check: Check) -> Iterator[Entry]:
    base = f"urn:pubmed-rag:watch:{watch.id}:{check.index_version}"
    version = f"index {check.index_version}"
    for item in check.new:
        yield Entry(
            f"{base}:new:{item.pmid}",
            f"New: {_titled(item)}",
            check.checked_at,
            item.url,
            f"New in the top results of the {_label(watch)} ({version}).",
        )
    for item in check.newly_retracted:
        yield Entry(
            f"{base}:retracted:{item.pmid}",
            f"Retracted: {_titled(item)}",
            check.checked_at,
            item.url,
            f"Now retracted, among the results of the {_label(watch)} ({version}).",
        )
    if check.cited_added or check.cited_removed:
        parts = []
        if check.cited_added:
            parts.append(f"now drawn on: {', '.join(map(_titled, check.cited_added))}")
        if check.cited_removed:
            parts.append(f"no longer: {', '.join(map(_titled, check.cited_removed))}")
        first = (check.cited_added or check.cited_removed)[0]
        yield Entry(
            f"{base}:cited",
            f"Sources changed for the {_label(watch)}",
            check.checked_at,
            first.url,
            f"The articles its answer would cite changed ({version}): " + "; ".join(parts) + ".",
        )


def build_feed(
    watches: Iterable[Watch], feed_id: str, title: str = "pubmed-rag: what's new"
) -> bytes:
    """The Atom document (UTF-8 bytes, with its XML declaration)."""
    found = entries(watches)
    ET.register_namespace("", ATOM)
    root = ET.Element(f"{{{ATOM}}}feed")
    _text(root, "id", feed_id)
    _text(root, "title", title)
    _text(root, "updated", found[0].updated if found else utcnow())
    ET.SubElement(root, f"{{{ATOM}}}link", href=PUBMED_BASE)
    author = ET.SubElement(root, f"{{{ATOM}}}author")
    _text(author, "name", "pubmed-rag")
    for entry in found:
        node = ET.SubElement(root, f"{{{ATOM}}}entry")
        _text(node, "id", entry.id)
        _text(node, "title", entry.title)
        _text(node, "updated", entry.updated)
        if entry.link:
            ET.SubElement(node, f"{{{ATOM}}}link", href=entry.link, rel="alternate")
        _text(node, "summary", entry.summary)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _text(parent: ET.Element, tag: str, text: str) -> None:
    # XML 1.0 has no way to write most control characters, escaped or not.
    ET.SubElement(parent, f"{{{ATOM}}}{tag}").text = _CONTROL.sub("", text)


def feed_id(watches_path: Path) -> str:
    """A stable id for the feed of one watches file."""
    digest = hashlib.sha256(str(watches_path.resolve()).encode("utf-8")).hexdigest()[:16]
    return f"urn:pubmed-rag:watches:{digest}"


def write_feed(path: Path, watches: Iterable[Watch], watches_path: Path) -> int:
    """Write the feed to ``path`` atomically; return the number of entries."""
    watches = list(watches)
    write_atomically(path, build_feed(watches, feed_id(watches_path)))
    return len(entries(watches))
