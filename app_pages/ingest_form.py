"""The Library's "Add records" form: a PubMed query or XML files, ingested with a progress bar."""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from functools import partial

import streamlit as st

from app_pages.context import Context
from indexing import ingest
from indexing.errors import USER_ERRORS
from indexing.history import RunReport

PROGRESS_EVERY_S = 0.25  # redraw the ingest progress bar at most this often


def add_records(ctx: Context, expanded: bool) -> None:
    """Ingest a PubMed query or XML files, with a progress bar and the equivalent command."""
    with st.expander("Add records", expanded=expanded, icon=":material/add:"):
        source = st.radio(
            "From", ["PubMed query", "PubMed XML files"], horizontal=True, key="ingest_source"
        )
        if source == "PubMed query":
            term = st.text_input(
                "PubMed query",
                key="ingest_term",
                placeholder="e.g. metformin AND colorectal cancer",
            )
            left, right = st.columns(2)
            mindate = left.text_input("Entered since (YYYY/MM/DD, optional)", key="ingest_mindate")
            most = right.number_input("At most (records)", 1, 100000, 500, key="ingest_max")
            command = ["python", "-m", "indexing", "ingest", "--query", term or "QUERY"]
            command += ["--mindate", mindate] if mindate.strip() else []
            command += ["--max", str(int(most))]
            st.caption("The same from a terminal:")
            st.code(shlex.join(command), language="bash")
            if st.button("Fetch and index", type="primary", key="ingest_query_go"):
                if not term.strip():
                    st.info("Type a PubMed query first.")
                    return
                run_ingest(
                    partial(
                        ingest.ingest_query,
                        term.strip(),
                        ctx.settings,
                        mindate=mindate.strip() or None,
                        max_records=int(most),
                    ),
                    "Searching PubMed (NCBI E-utilities)…",
                )
        else:
            folder = st.text_input(
                f"File or folder in {ctx.settings.app_import_dir} (.xml, .xml.gz)",
                key="ingest_path",
                placeholder="e.g. baseline (a folder in it) or a full path inside it",
            )
            st.caption("The same from a terminal:")
            command = ["python", "-m", "indexing", "ingest", "--xml", folder or "PATH"]
            st.code(shlex.join(command), language="bash")
            if st.button("Index the files", type="primary", key="ingest_xml_go"):
                root = ctx.settings.app_import_dir
                try:
                    path = ingest.check_import_path(folder, root)
                except ingest.ImportPathError as exc:
                    st.error(str(exc))
                    return
                run_ingest(
                    partial(ingest.ingest_files, [path], ctx.settings, within=root),
                    "Reading files…",
                )
        st.caption(
            "Stay on this page until it finishes; the app keeps answering from the published "
            "index meanwhile, and switches to the new version when it is published."
        )


def run_ingest(run: Callable[..., RunReport], starting: str) -> None:
    """Run an ingest in this session with a progress bar; errors become one line."""
    bar = st.progress(0.0, text=starting)
    last = [0.0]

    def progress(state: ingest.IngestProgress) -> None:
        now = time.monotonic()
        if now - last[0] < PROGRESS_EVERY_S and state.fraction != 1.0:
            return
        last[0] = now
        total = f" of {state.total:,}" if state.total else ""
        files = f" · file {state.files_done} of {state.files_total}" if state.files_total else ""
        tagged = f" · {state.tagged:,} tagged" if state.tagged else ""
        text = f"{state.records:,}{total} records read{files}{tagged} · {state.label}"
        bar.progress(state.fraction or 0.0, text=text)

    try:
        report = run(quiet=True, progress=progress)
    except USER_ERRORS as exc:
        bar.empty()
        st.error(f"Nothing was added: {exc}")
        return
    st.session_state["ingest_message"] = report.summary()
    st.rerun()
