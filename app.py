"""The web app: ask the indexed literature, search it, export references, manage the library.

Run it with ``make run`` (or ``streamlit run app.py``). Thin by design: each page reads its
widgets, makes one call into ``rag`` or ``indexing``, and renders the result. Everything that
comes from an abstract or a model is escaped by :mod:`rag.display` before it is shown.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import streamlit as st
from pydantic import ValidationError
from streamlit.navigation.page import StreamlitPage

from indexing import ingest
from indexing.history import RunReport
from indexing.settings import Settings
from indexing.store import IndexInfo
from rag import display, export
from rag.errors import EmptyIndexError, EmptyQueryError, IndexMissingError, RagError
from rag.evidence import Evidence
from rag.grounding import AnswerSentence
from rag.search import Filters, Hit, SearchResult
from rag.service import Answer, AnswerService, Failed, KeyEvidence, Queued, Sources, Token
from rag.settings import RagSettings

QUESTION_EXAMPLE = "Is long-term use of proton pump inhibitors safe?"
# Common PubMed publication types; the box also takes any other type typed in.
PUBTYPES = (
    "Review",
    "Systematic Review",
    "Meta-Analysis",
    "Randomized Controlled Trial",
    "Clinical Trial",
    "Observational Study",
    "Comparative Study",
    "Case Reports",
    "Practice Guideline",
    "Journal Article",
)
LANGUAGES = {"eng": "English", "fre": "French", "ger": "German", "spa": "Spanish", "ita": "Italian"}
LANGUAGES |= {"por": "Portuguese", "chi": "Chinese", "jpn": "Japanese", "rus": "Russian"}
PROGRESS_EVERY_S = 0.25  # redraw the ingest progress bar at most this often
HISTORY_ROWS = 20


@dataclass
class Context:
    """What every page needs: settings, the shared service, what is indexed, the pages."""

    settings: Settings
    rag: RagSettings
    service: AnswerService
    info: IndexInfo
    pages: dict[str, StreamlitPage] = field(default_factory=dict)

    @property
    def has_index(self) -> bool:
        """Whether a published index holds articles."""
        return self.info.has_index


@dataclass(frozen=True)
class AskOutcome:
    """A finished question, kept in the session so that reruns and Export can show it.

    Stored as a dict: Streamlit re-executes this file on every rerun, so a class defined here
    is a new class each time and ``isinstance`` would fail on the stored object.
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


# -- shared resources ----------------------------------------------------------------------------


@st.cache_resource(show_spinner=False)
def _shared_service(key: str, _settings: Settings, _rag: RagSettings) -> AnswerService:
    """One service (index reader + generator) per configuration, shared by all sessions.

    The reader inside switches to a newly published index version on the next search, so
    the app never needs a restart after an update.
    """
    return AnswerService(_settings, _rag)


def load_context() -> Context:
    """Settings from the environment and the shared service; a bad setting stops the page."""
    from indexing.store import index_info

    try:
        settings, rag = Settings(), RagSettings()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "settings"
        st.error(f"Invalid setting {where}: {first['msg']}. Fix it and reload the page.")
        st.stop()
    key = settings.model_dump_json() + rag.model_dump_json()
    service = _shared_service(key, settings, rag)
    return Context(settings, rag, service, index_info(settings))


# -- widgets shared by pages ---------------------------------------------------------------------


def sidebar_filters(with_limit: bool = False) -> tuple[Filters, int | None]:
    """The metadata filters in the sidebar (kept across pages); an impossible range stops."""
    with st.sidebar:
        st.subheader("Filters")
        year_from = st.number_input(
            "From year", 1800, 2100, None, 1, key="f_year_from", persist_state="session"
        )
        year_to = st.number_input(
            "To year", 1800, 2100, None, 1, key="f_year_to", persist_state="session"
        )
        journal = st.text_input(
            "Journal contains", key="f_journal", placeholder="e.g. Lancet", persist_state="session"
        )
        pubtype = st.selectbox(
            "Publication type",
            PUBTYPES,
            index=None,
            key="f_pubtype",
            placeholder="any (or type one)",
            accept_new_options=True,
            persist_state="session",
        )
        mesh = st.text_input(
            "MeSH term", key="f_mesh", placeholder="e.g. Humans", persist_state="session"
        )
        lang = st.selectbox(
            "Language",
            list(LANGUAGES),
            index=None,
            format_func=lambda code: f"{LANGUAGES.get(code, code)} ({code})",
            key="f_lang",
            placeholder="any",
            accept_new_options=True,
            persist_state="session",
        )
        has_abstract = st.checkbox(
            "Only articles with an abstract", key="f_has_abstract", persist_state="session"
        )
        exclude_retracted = st.checkbox(
            "Leave out retracted articles", key="f_exclude_retracted", persist_state="session"
        )
        limit = None
        if with_limit:
            limit = st.slider("Articles shown", 5, 200, 20, 5, key="f_limit")
        try:
            filters = Filters(
                year_from=None if year_from is None else int(year_from),
                year_to=None if year_to is None else int(year_to),
                journal=journal or None,
                pubtype=pubtype or None,
                mesh=mesh or None,
                lang=lang or None,
                has_abstract=has_abstract,
                exclude_retracted=exclude_retracted,
            )
        except RagError as exc:
            st.error(str(exc))
            st.stop()
    return filters, limit


def no_index_guidance(ctx: Context) -> None:
    """Tell a new user where to start, and stop the page."""
    st.info(
        "Nothing is indexed yet. Add PubMed records on the **Library** page (a PubMed query or "
        "a folder of PubMed XML files), or from a terminal with `python -m indexing ingest`."
    )
    st.page_link(ctx.pages["library"], label="Open the Library", icon=":material/library_books:")
    st.stop()


def search_error(ctx: Context, exc: RagError) -> None:
    """A search error as the user needs to read it."""
    if isinstance(exc, EmptyQueryError):
        st.info("Type a question or some search terms first.")
    elif isinstance(exc, IndexMissingError | EmptyIndexError):
        no_index_guidance(ctx)
    else:
        st.error(str(exc))


def html(fragment: str) -> None:
    """Show a fragment built by :mod:`rag.display` (escaped text in fixed markup only)."""
    st.markdown(fragment, unsafe_allow_html=True)


def downloads(
    hits: tuple[Hit, ...],
    stem: str,
    cited: tuple[str, ...] = (),
    key: str = "",
    markdown: str = "",
) -> None:
    """One download button per reference format (and the answer as Markdown, if given)."""
    if not hits:
        return
    with st.container(horizontal=True):
        for fmt in export.FORMATS:
            st.download_button(
                fmt.label,
                fmt.write(hits, cited),
                file_name=f"{stem}.{fmt.extension}",
                mime=fmt.mime,
                key=f"{key}-{fmt.extension}",
                on_click="ignore",
                icon=":material/download:",
                help=f"The {len(hits)} articles as {fmt.label}",
            )
        if markdown:
            st.download_button(
                "Answer (Markdown)",
                markdown,
                file_name=f"{stem}.md",
                mime="text/markdown",
                key=f"{key}-md",
                on_click="ignore",
                icon=":material/description:",
                help="Question, answer and numbered references",
            )


def show_sources(hits: tuple[Hit, ...], terms: tuple[str, ...], cited: tuple[str, ...]) -> None:
    """Numbered source cards, best first."""
    for number, hit in enumerate(hits, start=1):
        with st.container(border=True):
            html(display.source_html(number, hit, terms, hit.pmid in cited))


# -- Ask -------------------------------------------------------------------------------------------


def ask_page(ctx: Context) -> None:
    """A question in, a streamed answer with checked citations and its sources out."""
    st.title("Ask the literature")
    filters, _ = sidebar_filters()
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
        stream_answer(ctx, question, filters)
    outcome = last_answer()
    if outcome is not None:
        show_outcome(outcome)


def stream_answer(ctx: Context, question: str, filters: Filters) -> None:
    """Run the question, streaming the answer as it is written; keep the outcome."""
    events = ctx.service.ask(question, filters)
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
            )
    st.session_state["last_answer"] = dict(vars(outcome))  # shallow: hits stay Hit objects
    st.rerun()  # draw the finished answer from the session, as every later rerun does


def last_answer() -> AskOutcome | None:
    """The session's last finished question, if any."""
    stored = st.session_state.get("last_answer")
    return AskOutcome(**stored) if isinstance(stored, dict) else None


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


def show_evidence(evidence: tuple[Evidence, ...], hits: tuple[Hit, ...]) -> None:
    """The key evidence: quoted sentences of the top articles, each linked to its source."""
    if not evidence:
        return
    st.markdown("**Key evidence** · quoted from the abstracts")
    html(display.evidence_html(evidence, hits))


def show_outcome(outcome: AskOutcome) -> None:
    """A finished answer (or abstention, or failure) with its evidence, sources and downloads."""
    html(f"<h4>{display.escape(outcome.question)}</h4>")
    show_answer(outcome)
    for notice in outcome.notices:
        st.info(notice, icon=":material/info:")
    for note in outcome.notes:
        st.caption(f"Note: {note}.")
    if outcome.caption:
        st.caption(outcome.caption)
    if outcome.sources:
        show_outcome_sources(outcome)


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


def show_outcome_sources(outcome: AskOutcome) -> None:
    """The heading, downloads and cards of an answer's sources."""
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
    downloads(outcome.sources, export.file_stem(outcome.question), cited, "answer", markdown)
    show_sources(outcome.sources, display.query_terms(outcome.question), cited)


# -- Search ----------------------------------------------------------------------------------------


def search_page(ctx: Context) -> None:
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


# -- Export ----------------------------------------------------------------------------------------


def export_page(ctx: Context) -> None:
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


# -- Library ---------------------------------------------------------------------------------------


def library_page(ctx: Context) -> None:
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
    html(
        f"<b>Embedder:</b> <code>{display.escape(embedder)}</code> · <b>Generator:</b> "
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
    from indexing.cli import user_errors

    bar = st.progress(0.0, text=starting)
    last = [0.0]

    def progress(state: ingest.IngestProgress) -> None:
        now = time.monotonic()
        if now - last[0] < PROGRESS_EVERY_S and state.fraction != 1.0:
            return
        last[0] = now
        total = f" of {state.total:,}" if state.total else ""
        files = f" · file {state.files_done} of {state.files_total}" if state.files_total else ""
        text = f"{state.records:,}{total} records read{files} · {state.label}"
        bar.progress(state.fraction or 0.0, text=text)

    try:
        report = run(quiet=True, progress=progress)
    except user_errors() as exc:
        bar.empty()
        st.error(f"Nothing was added: {exc}")
        return
    st.session_state["ingest_message"] = report.summary()
    st.rerun()


# -- frame -----------------------------------------------------------------------------------------


def sidebar_status(ctx: Context) -> None:
    """Which index and models are in use, under the page list."""
    info = ctx.info
    with st.sidebar:
        if ctx.has_index:
            st.caption(
                f"Index {info.index_version}: {info.articles:,} articles, "
                f"{info.passages:,} passages"
            )
        else:
            st.caption("Index: empty")
        st.caption(
            f"Embedder: {info.embeddings_model or '—'}  \nGenerator: {ctx.service.model_name}"
        )


def main(default: str = "ask") -> None:
    """Build the pages and run the one the user is on (``default`` opens first)."""
    st.set_page_config(page_title="pubmed-rag", page_icon=":material/biotech:", layout="wide")
    ctx = load_context()
    specs = (
        ("ask", ask_page, "Ask", ":material/chat:"),
        ("search", search_page, "Search", ":material/search:"),
        ("export", export_page, "Export", ":material/download:"),
        ("library", library_page, "Library", ":material/library_books:"),
    )
    pages = {
        name: st.Page(
            partial(page, ctx), title=title, icon=icon, url_path=name, default=name == default
        )
        for name, page, title, icon in specs
    }
    ctx.pages = pages
    current = st.navigation(list(pages.values()))
    if ctx.settings.offline:
        st.warning(
            "Offline mode: the bundled MiniLM embedder and SmolLM2-135M generator are in use. "
            "Answers are far weaker than with PubMedBERT and a 1.5B model; check every "
            "citation.",
            icon=":material/wifi_off:",
        )
    sidebar_status(ctx)
    current.run()


if __name__ == "__main__":
    main()
