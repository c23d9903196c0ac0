"""What's new: for each saved search or question, what the checks after updates found."""

from __future__ import annotations

from functools import partial

import streamlit as st

from app_pages.context import Context
from app_pages.widgets import html
from rag import display
from rag.errors import RagError
from rag.watch import store
from rag.watch.store import Check, Item, Watch

# Checks with news shown per watch, newest first.
SHOWN_CHECKS = 5
_RETRACTED = "rgba(220,40,40,0.35)"


def page(ctx: Context) -> None:
    """Per watch: the time and index version of its last check, and what is new since."""
    st.title("What's new")
    path = ctx.settings.watches_path
    try:
        saved = store.load(path)
    except RagError as exc:
        st.error(str(exc))
        return
    if saved.damaged:
        st.warning(
            f"{len(saved.damaged)} damaged entr{'y is' if len(saved.damaged) == 1 else 'ies are'} "
            "in the watches file: kept as they are, not checked."
        )
    if not saved.watches:
        st.info(
            "Nothing is watched yet. Press **Watch this search** on the Search page or "
            '**Watch this question** on the Ask page (or run `python -m rag watch add "…"`); '
            "after every index update, what is new for each shows here."
        )
        return
    st.caption(
        "Each saved search and question is re-run after every update that publishes a new "
        "index version; `python -m rag watch run` re-runs them now."
    )
    for watch in saved.watches:
        with st.container(border=True):
            show_watch(watch)
            if st.button("Stop watching", key=f"unwatch_{watch.id}", icon=":material/close:"):
                store.change(path, partial(_drop, watch_id=watch.id))
                st.rerun()


def _drop(content: store.Watches, watch_id: str) -> None:
    content.watches = [watch for watch in content.watches if watch.id != watch_id]


def show_watch(watch: Watch) -> None:
    """One watch: what it is, its last check, and the checks that found something."""
    html(watch_header_html(watch))
    latest = watch.latest
    if latest is None:
        html("<small>Not checked yet: the first update after saving it is its baseline.</small>")
        return
    html(f"<small>{display.escape(_checked(latest))}</small>")
    if latest.error:
        html(f"<small>The last check failed: {display.escape(latest.error)}</small>")
    news = [check for check in reversed(watch.checks) if check.changed][:SHOWN_CHECKS]
    if not news:
        html("<small>Nothing new since it was saved.</small>")
    for check in news:
        html(check_html(check))


def _checked(check: Check) -> str:
    return f"Last checked {check.checked_at} (UTC) against index {check.index_version}"


def watch_header_html(watch: Watch) -> str:
    """The watch's kind, text and filters, escaped."""
    kind = "Question" if watch.kind == "question" else "Search"
    filters = ", ".join(f"{key.replace('_', ' ')}: {value}" for key, value in watch.filters.items())
    text = f"{display.badge(kind)}<b>{display.escape(watch.text)}</b>"
    if filters:
        text += f" <small>({display.escape(filters)})</small>"
    return text


def check_html(check: Check) -> str:
    """What one check found: linked articles under a heading per kind of change."""
    parts = [f"<div><b>{display.escape(f'Index {check.index_version}')}</b> "]
    parts.append(f"<small>{display.escape(check.checked_at)}</small></div><ul>")
    for label, items, flag in (
        ("New", check.new, ""),
        ("Retracted", check.newly_retracted, "RETRACTED"),
        ("Now among the sources", check.cited_added, ""),
        ("No longer among the sources", check.cited_removed, ""),
    ):
        for item in items:
            badge = display.badge(flag, _RETRACTED) if flag else display.badge(label)
            parts.append(f"<li>{badge}{_item_html(item)}</li>")
    parts.append("</ul>")
    return "".join(parts)


def _item_html(item: Item) -> str:
    title = item.title or f"PMID {item.pmid}"
    link = display.link(item.url, title) if item.url else display.escape(title)
    return f"{link} <small>{display.escape(f'PMID {item.pmid}')}</small>"
