"""The "Watch this search" / "Watch this question" button of the Search and Ask pages."""

from __future__ import annotations

import streamlit as st

from app_pages.context import Context
from indexing.clock import utcnow
from rag.errors import RagError
from rag.search import Filters
from rag.watch.check import add_watch
from rag.watch.store import Watch, filters_dict, new_id


def watch_button(ctx: Context, kind: str, text: str, filters: Filters) -> None:
    """Save ``text`` (a search or a question) with its filters, to re-run after every update."""
    label = "Watch this question" if kind == "question" else "Watch this search"
    if not st.button(
        label,
        key=f"watch_{kind}",
        icon=":material/notifications:",
        help="Re-run it after every index update; what is new shows on the What's new page.",
    ):
        return
    watch = Watch(new_id(), kind, text.strip(), filters_dict(filters), utcnow())
    try:
        saved = add_watch(
            ctx.service,
            ctx.settings.watches_path,
            watch,
            top_n=ctx.rag.watch_top_n,
            history=ctx.rag.watch_history,
        )
    except RagError as exc:
        st.error(str(exc))
        return
    word = "question" if kind == "question" else "search"
    if saved.id != watch.id:
        st.info(f"This {word} is already watched.", icon=":material/notifications:")
    else:
        st.success(f"Watching this {word}.", icon=":material/notifications_active:")
    if "whats_new" in ctx.pages:
        st.page_link(ctx.pages["whats_new"], label="What's new", icon=":material/new_releases:")
