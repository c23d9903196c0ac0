"""How ``python -m rag watch`` shows a watch: lines for the terminal, a dict for ``--json``."""

from __future__ import annotations

from typing import Any

from rag.watch.store import Watch


def watch_json(watch: Watch) -> dict[str, Any]:
    """The ``watch list --json`` shape: the watch, its checks and ``last_check``."""
    data = watch.to_dict()
    data.pop("seen")  # bookkeeping of the checks, long and of no use to a reader
    latest = watch.latest
    data["last_check"] = latest.to_dict() if latest is not None else None
    return data


def watch_lines(watch: Watch) -> list[str]:
    """The watch and what its last check found, one line per change."""
    filters = ", ".join(f"{key}={value}" for key, value in watch.filters.items())
    lines = [f"{watch.id}  {watch.kind:<8} {watch.text}" + (f"  [{filters}]" if filters else "")]
    check = watch.latest
    if check is None:
        return [*lines, "    not checked yet"]
    where = f"    checked {check.checked_at} at index {check.index_version}"
    if check.error:
        return [*lines, f"{where}: failed: {check.error}"]
    if check.baseline or not check.changed:
        return [*lines, f"{where}: {'baseline' if check.baseline else 'nothing new'}"]
    lines.append(f"{where}:")
    for label, items in (
        ("new", check.new),
        ("retracted", check.newly_retracted),
        ("now cited", check.cited_added),
        ("no longer cited", check.cited_removed),
    ):
        lines.extend(f"    {label}: {item.title or '(no title)'}  {item.url}" for item in items)
    return lines
