"""Search: ranked articles for some search terms, with filters and a chart by year."""

from __future__ import annotations

import streamlit as st

from app_pages.context import Context
from app_pages.watch_button import watch_button
from app_pages.widgets import (
    downloads,
    no_index_guidance,
    search_error,
    show_sources,
    sidebar_filters,
)
from rag import display, export
from rag.errors import RagError
from rag.search import SearchResult


def page(ctx: Context) -> None:
    """Ranked articles for some search terms, with filters and a chart by year."""
    st.title("Search")
    filters, limit = sidebar_filters(with_limit=True)
    if not ctx.has_index:
        no_index_guidance(ctx)
    query = st.text_input(
        "Search terms",
        key="search_query",
        placeholder="e.g. proton pump inhibitor dementia",
        persist_state="session",
    )
    if not query.strip():
        st.caption("Type some search terms and press Enter. Filters are in the sidebar.")
        return
    try:
        result = ctx.service.search(query, filters, limit)
    except RagError as exc:
        search_error(ctx, exc)
        return
    st.session_state["last_search"] = result
    watch_button(ctx, "search", query, filters)
    show_search(result)


def show_search(result: SearchResult) -> None:
    """A search's hits: count, chart by year, downloads, cards."""
    for notice in result.notices:
        st.info(notice, icon=":material/info:")
    hits = result.hits
    st.caption(
        f"{len(hits)} articles · {result.elapsed_ms:.0f} ms · index {result.index_version}"
        + (" · filtered" if result.filters.active else "")
    )
    if not hits:
        st.info("No article matches. Loosen the filters in the sidebar or change the terms.")
        return
    counts = display.year_counts(hits)
    if counts:
        st.bar_chart(
            {"year": [str(year) for year in counts], "articles": list(counts.values())},
            x="year",
            y="articles",
            x_label="Publication year",
            y_label="Articles",
            height=180,
        )
    downloads(hits, export.file_stem(result.query), key="search")
    show_sources(hits, display.query_terms(result.query), ())
