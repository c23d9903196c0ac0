"""Search: ranked articles for some search terms, with filters and a chart by year.

In similar mode (a source's "Similar articles" button, here or on Ask) it lists the articles
like one PMID instead, with the same filters, until "Back to search".
"""

from __future__ import annotations

import streamlit as st

from app_pages.context import Context
from app_pages.watch_button import watch_button
from app_pages.widgets import (
    SIMILAR_KEY,
    downloads,
    html,
    no_index_guidance,
    search_error,
    show_sources,
    sidebar_filters,
    sidebar_ranking,
)
from rag import display, export
from rag.errors import RagError
from rag.search import Filters, SearchResult, entity_counts


def page(ctx: Context) -> None:
    """Ranked articles for some search terms, with filters and a chart by year."""
    st.title("Search")
    filters, limit = sidebar_filters(with_limit=True)
    rank_by_evidence = sidebar_ranking(ctx)
    if not ctx.has_index:
        no_index_guidance(ctx)
    pmid = st.session_state.get(SIMILAR_KEY)
    if pmid:
        show_similar(ctx, str(pmid), filters, limit)
        return
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
        result = ctx.service.search(query, filters, limit, rank_by_evidence=rank_by_evidence)
    except RagError as exc:
        search_error(ctx, exc)
        return
    st.session_state["last_search"] = result
    watch_button(ctx, "search", query, filters)
    show_search(result)


def show_similar(ctx: Context, pmid: str, filters: Filters, limit: int | None) -> None:
    """The articles like ``pmid``, with a way back to the search."""
    if st.button("Back to search", key="similar-back", icon=":material/arrow_back:"):
        del st.session_state[SIMILAR_KEY]
        st.rerun()
    try:
        result = ctx.service.similar(pmid, filters, limit)
    except RagError as exc:
        search_error(ctx, exc)
        return
    st.subheader(f"Similar to PMID {pmid}")
    st.caption(
        "Nearest neighbours of the article's own passages in the index, nudged by shared MeSH "
        "descriptors; the filters in the sidebar apply."
    )
    st.session_state["last_search"] = result
    show_search(result, highlight=False)


def show_search(result: SearchResult, highlight: bool = True) -> None:
    """A search's hits: count, chart by year, downloads, cards (query terms highlighted)."""
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
    facets = display.facets_html(entity_counts(hits))
    if facets:
        html(facets)
    downloads(hits, export.file_stem(result.query), key="search")
    terms = display.query_terms(result.query) if highlight else ()
    show_sources(hits, terms, (), similar=("search", None))
