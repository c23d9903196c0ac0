"""A finished answer: how the session keeps it, and how it is shown (Ask and Export use it)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import streamlit as st
from streamlit.navigation.page import StreamlitPage

from app_pages.widgets import bundle_downloads, downloads, html, show_evidence, show_sources
from rag import display, export
from rag.bundle import BundleError, build_bundle, bundle_json
from rag.evidence import Evidence
from rag.grounding import AnswerSentence
from rag.search import Filters, Hit
from rag.service import Answer, AnswerService

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AskOutcome:
    """A finished question, kept in the session so that reruns and Export can show it.

    Kept in the session as a dict of its fields (see :func:`keep_answer`), not as the object:
    a class whose module runs again (the entry script on every rerun, a page module Streamlit
    reloads after an edit) is a new class, and ``isinstance`` would fail on the stored object.
    """

    question: str
    text: str  # the answer, or what had been written when the generator failed
    sources: tuple[Hit, ...]
    cited: tuple[str, ...] = ()
    abstained: bool = False
    error: str = ""
    notices: tuple[str, ...] = ()  # about the question (trimmed…): shown prominently
    notes: tuple[str, ...] = ()  # about the answer (citations removed…): shown small
    caption: str = ""
    evidence: tuple[Evidence, ...] = ()
    sentences: tuple[AnswerSentence, ...] = ()
    bundle: str = ""  # the answer bundle's JSON (see rag.bundle), "" when none was made


def keep_answer(outcome: AskOutcome) -> None:
    """Keep ``outcome`` as the session's last answer."""
    st.session_state["last_answer"] = dict(vars(outcome))  # shallow: hits stay Hit objects


def last_answer() -> AskOutcome | None:
    """The session's last finished question, if any."""
    stored = st.session_state.get("last_answer")
    return AskOutcome(**stored) if isinstance(stored, dict) else None


def answer_bundle(answer: Answer, filters: Filters, service: AnswerService) -> str:
    """The answer bundle's JSON, or "" (with a warning in the log) when it cannot be made."""
    try:
        return bundle_json(build_bundle(answer, filters, service))
    except BundleError as exc:
        log.warning("no answer bundle: %s", exc)
        return ""


def answer_caption(answer: Answer) -> str:
    """Model, index version and timings of an answer, in one line."""
    timings = answer.timings
    parts = [f"model {answer.model}", f"index {answer.index_version}"]
    parts.append(f"search {timings.retrieval_ms / 1000:.1f} s")
    if timings.first_token_ms is not None:
        parts.append(f"first words after {timings.first_token_ms / 1000:.1f} s")
    parts.append(f"total {timings.total_ms / 1000:.1f} s")
    if timings.tokens_per_s:
        parts.append(f"{timings.tokens_per_s:.1f} tokens/s")
    return " · ".join(parts)


def show_outcome(outcome: AskOutcome, search_page: StreamlitPage | None = None) -> None:
    """A finished answer (or abstention, or failure) with its evidence, sources and downloads.

    With ``search_page``, each source has a "Similar articles" button that opens it.
    """
    html(f"<h4>{display.escape(outcome.question)}</h4>")
    show_answer(outcome)
    for notice in outcome.notices:
        st.info(notice, icon=":material/info:")
    for note in outcome.notes:
        st.caption(f"Note: {note}.")
    if outcome.caption:
        st.caption(outcome.caption)
    if outcome.sources:
        show_outcome_sources(outcome, search_page)


def show_answer(outcome: AskOutcome) -> None:
    """The abstention, or the evidence and the checked answer, or the failure."""
    if outcome.abstained:
        st.info(outcome.text, icon=":material/block:")
        if outcome.evidence:
            st.caption("The closest evidence found:")
    show_evidence(outcome.evidence, outcome.sources)
    if outcome.sentences and not outcome.abstained:
        st.markdown("**Answer** · every sentence cited and checked against its sources")
        with st.container(border=True):
            html(display.sentences_html(outcome.sentences, outcome.sources))
    elif outcome.text and not outcome.abstained:
        with st.container(border=True):
            html(display.answer_html(outcome.text, outcome.sources))
            if outcome.error:
                st.caption("The answer stopped here.")
    if outcome.error:
        st.error(
            f"The generator failed: {outcome.error}. The evidence and the articles found are "
            "listed.",
            icon=":material/error:",
        )


def show_outcome_sources(outcome: AskOutcome, search_page: StreamlitPage | None = None) -> None:
    """The heading, downloads and cards of an answer's sources (see :func:`show_outcome`)."""
    cited = outcome.cited
    if outcome.abstained:
        heading = "Closest articles"
    elif cited:
        heading = f"Sources: {len(cited)} cited of {len(outcome.sources)} found"
    else:
        heading = f"Sources ({len(outcome.sources)} found, none cited)"
    st.subheader(heading)
    markdown = ""
    if not outcome.abstained and outcome.text:
        markdown = export.answer_markdown(
            outcome.question,
            outcome.text,
            outcome.sources,
            outcome.caption,
            evidence=outcome.evidence,
            sentences=outcome.sentences,
        )
    stem = export.file_stem(outcome.question)
    downloads(outcome.sources, stem, cited, "answer", markdown)
    if outcome.bundle:
        bundle_downloads(outcome.bundle, stem, "answer")
    similar = ("answer", search_page) if search_page is not None else None
    show_sources(outcome.sources, display.query_terms(outcome.question), cited, similar)
