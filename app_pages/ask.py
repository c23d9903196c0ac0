"""Ask: a question in, a streamed answer with checked citations and its sources out."""

from __future__ import annotations

import streamlit as st

from app_pages.answer import (
    AskOutcome,
    answer_bundle,
    answer_caption,
    keep_answer,
    last_answer,
    show_outcome,
)
from app_pages.context import Context
from app_pages.watch_button import watch_button
from app_pages.widgets import (
    html,
    no_index_guidance,
    search_error,
    show_evidence,
    show_sources,
    sidebar_filters,
    sidebar_ranking,
)
from rag import display
from rag.errors import RagError
from rag.evidence import Evidence
from rag.search import Filters, Hit
from rag.service import Answer, Failed, KeyEvidence, Queued, Sources, Token
from rag.verdicts import VerdictModel, load_verdict_model, tally_verdicts

QUESTION_EXAMPLE = "Is long-term use of proton pump inhibitors safe?"


def page(ctx: Context) -> None:
    """A question in, a streamed answer with checked citations and its sources out."""
    st.title("Ask the literature")
    filters, _ = sidebar_filters()
    rank_by_evidence = sidebar_ranking(ctx)
    if not ctx.has_index:
        no_index_guidance(ctx)
    with st.form("ask"):
        question = st.text_area(
            "Your question",
            key="question",
            placeholder=f"e.g. {QUESTION_EXAMPLE}",
            height=90,
        )
        asked = st.form_submit_button("Ask", type="primary", icon=":material/send:")
    if asked:
        if not question.strip():
            st.info(f"Type a question first, for example: *{QUESTION_EXAMPLE}*")
            return
        if filters.active:
            st.caption("Searching with the filters set in the sidebar.")
        stream_answer(ctx, question, filters, rank_by_evidence)
    outcome = last_answer()
    if outcome is not None:
        show_outcome(outcome, ctx.pages.get("search"))
        if ctx.rag.verdicts and outcome.sources:
            show_verdicts(ctx.rag.verdicts, outcome.question, outcome.sources)
        watch_button(ctx, "question", outcome.question, filters)


@st.cache_resource(show_spinner=False)
def _verdict_model(spec: str) -> VerdictModel:
    return load_verdict_model(spec)


def show_verdicts(spec: str, question: str, sources: tuple[Hit, ...]) -> None:
    """What each top article says to the question (yes/no/maybe), tallied, each linked."""
    key = ("verdicts", spec, question, tuple(hit.pmid for hit in sources))
    tally = st.session_state.get("verdict_tally")
    if tally is None or st.session_state.get("verdict_key") != key:
        try:
            with st.spinner("Reading the top articles for their verdicts…"):
                tally = tally_verdicts(question, sources, _verdict_model(spec))
        except RagError as exc:
            st.warning(str(exc))
            return
        st.session_state["verdict_tally"], st.session_state["verdict_key"] = tally, key
    with st.container(border=True):
        html(display.verdicts_html(tally))


def stream_answer(
    ctx: Context, question: str, filters: Filters, rank_by_evidence: bool = False
) -> None:
    """Run the question, streaming the answer as it is written; keep the outcome."""
    events = ctx.service.ask(question, filters, rank_by_evidence)
    try:
        with st.spinner("Searching the index (the first question also loads the model)…"):
            first = next(events)
    except RagError as exc:
        search_error(ctx, exc)
        st.stop()
    assert isinstance(first, Sources)
    hits = first.hits
    for notice in first.notices:
        st.info(notice, icon=":material/info:")
    evidence_box = st.container().empty()
    box = st.container(border=True).empty()
    if not first.abstaining:
        box.caption(f"Writing the answer with {ctx.service.model_name}…")
    with st.expander(f"Sources ({len(hits)})", expanded=False):
        show_sources(hits, display.query_terms(question), ())
    text = ""
    evidence: tuple[Evidence, ...] = ()
    outcome = AskOutcome(question, "", hits)
    for event in events:
        if isinstance(event, KeyEvidence):
            evidence = event.evidence
            with evidence_box.container():
                show_evidence(evidence, hits)
        elif isinstance(event, Queued):
            box.info(
                f"Busy: {event.position} question(s) ahead of yours…",
                icon=":material/hourglass_top:",
            )
        elif isinstance(event, Token):
            text += event.text
            box.markdown(display.answer_html(text + " ▌", hits), unsafe_allow_html=True)
        elif isinstance(event, Failed):
            outcome = AskOutcome(
                question,
                text.strip(),
                event.sources,
                error=event.message,
                notices=first.notices,
                evidence=event.evidence,
            )
        elif isinstance(event, Answer):
            outcome = AskOutcome(
                question=question,
                text=event.text,
                sources=event.sources,
                cited=event.citations,
                abstained=event.abstained,
                notices=first.notices,
                notes=tuple(note for note in event.notices if note not in first.notices),
                caption=answer_caption(event),
                evidence=event.evidence,
                sentences=event.sentences,
                bundle=answer_bundle(event, filters, ctx.service),
            )
    keep_answer(outcome)
    st.rerun()  # draw the finished answer from the session, as every later rerun does
