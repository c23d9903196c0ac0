"""Library: what is indexed, with which models, the tracked queries, the runs, adding records."""

from __future__ import annotations

import streamlit as st

from app_pages.context import Context
from app_pages.ingest_form import add_records
from app_pages.widgets import html
from rag import display

HISTORY_ROWS = 20


def page(ctx: Context) -> None:
    """What is indexed, with which models, the tracked queries, the runs, and adding records."""
    from indexing.history import read_history

    st.title("Library")
    message = st.session_state.pop("ingest_message", None)
    if message:
        st.success(message)
    info = ctx.info
    if not ctx.has_index:
        st.info(
            "The index is empty. Add records below: a PubMed query (needs access to NCBI) or "
            "a folder of PubMed XML files."
        )
    else:
        columns = st.columns(4)
        columns[0].metric("Articles", f"{info.articles:,}")
        columns[1].metric("Passages", f"{info.passages:,}")
        columns[2].metric("Index version", info.index_version)
        published = str(info.published_at)
        columns[3].metric("Published", published[:10], help=f"{published} (UTC)")
    embedder = info.embeddings_model or "(chosen at the first ingest)"
    tagger = (
        f" · <b>Entities (NER):</b> <code>{display.escape(info.ner_model)}</code>"
        if info.ner_model
        else ""
    )
    html(
        f"<b>Embedder:</b> <code>{display.escape(embedder)}</code>{tagger} · <b>Generator:</b> "
        f"<code>{display.escape(ctx.service.model_name)}</code> · <b>Data:</b> "
        f"<code>{display.escape(info.data_dir)}</code>"
    )
    with st.expander("Settings in use", icon=":material/tune:"):
        st.caption("Set with PUBMED_RAG_* environment variables (see the README).")
        shown = ctx.settings.model_dump(mode="json", exclude={"ncbi_api_key"})
        shown["ncbi_api_key"] = "set" if ctx.settings.ncbi_api_key else "unset"
        shown |= ctx.rag.model_dump(
            mode="json", exclude={"system_prompt", "answer_prompt", "passage_template"}
        )
        st.json(shown, expanded=True)
    add_records(ctx, expanded=not ctx.has_index)
    st.subheader("Tracked queries")
    if info.queries:
        st.dataframe(
            [
                {
                    "Query": term,
                    "From": query.mindate or "",
                    "Max records": query.max_records,
                    "Added": query.added_at or "",
                    "Last update": query.last_success or "",
                    "Records": query.last_count,
                }
                for term, query in info.queries.items()
            ],
            hide_index=True,
        )
        st.caption("`python -m indexing update` (or `schedule`) fetches what is new for each.")
    else:
        st.caption("No tracked query: records added from a PubMed query are kept up to date.")
    st.subheader("Update history")
    history = read_history(ctx.settings.index_dir, HISTORY_ROWS)
    if history:
        st.dataframe(
            [
                {
                    "Started (UTC)": str(run.get("started_at", "")).replace("T", " ")[:19],
                    "Run": run.get("kind"),
                    "Status": run.get("status"),
                    "Added": run.get("added"),
                    "Revised": run.get("revised"),
                    "Deleted": run.get("deleted"),
                    "Skipped": run.get("skipped"),
                    "Seconds": run.get("duration_s"),
                    "Version": run.get("index_version"),
                    "Error": run.get("error", ""),
                }
                for run in reversed(history)
            ],
            hide_index=True,
        )
    else:
        st.caption("No run yet.")
    if info.versions_on_disk:
        st.caption("Versions on disk: " + ", ".join(info.versions_on_disk))
