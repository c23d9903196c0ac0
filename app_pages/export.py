"""Export: the sources of the last answer or search as RIS, BibTeX or CSV."""

from __future__ import annotations

import streamlit as st

from app_pages.answer import last_answer
from app_pages.context import Context
from app_pages.widgets import downloads
from rag import export
from rag.search import Hit, SearchResult


def page(ctx: Context) -> None:
    """The sources of the last answer or search as RIS, BibTeX or CSV."""
    st.title("Export references")
    outcome = last_answer()
    result = st.session_state.get("last_search")
    choices: dict[str, tuple[tuple[Hit, ...], tuple[str, ...], str]] = {}
    if outcome is not None and outcome.sources:
        label = f"Sources of the answer to “{outcome.question[:80]}”"
        choices[label] = (outcome.sources, outcome.cited, outcome.question)
    if isinstance(result, SearchResult) and result.hits:
        label = f"Results of the search “{result.query[:80]}”"
        choices[label] = (result.hits, (), result.query)
    if not choices:
        st.info("Ask a question or run a search first: their articles can be exported here.")
        st.page_link(ctx.pages["ask"], label="Ask", icon=":material/chat:")
        st.page_link(ctx.pages["search"], label="Search", icon=":material/search:")
        return
    choice = st.radio("What to export", list(choices), key="export_choice")
    hits, cited, title = choices[choice]
    if cited and st.checkbox("Only the cited articles", key="export_cited_only"):
        hits = tuple(hit for hit in hits if hit.pmid in cited)
    st.dataframe(
        [
            {
                "PMID": hit.pmid,
                "Title": hit.title,
                "Journal": hit.journal,
                "Year": hit.year,
                "Cited": hit.pmid in cited,
                "Retracted": hit.retracted,
            }
            for hit in hits
        ],
        hide_index=True,
    )
    downloads(hits, export.file_stem(title), cited, key="export")
    st.caption(
        "RIS and BibTeX import into Zotero, EndNote, Mendeley and LaTeX; CSV opens in a "
        "spreadsheet. Cells that a spreadsheet would run as a formula are prefixed with '."
    )
