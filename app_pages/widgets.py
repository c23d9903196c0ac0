"""Widgets several pages share: sidebar filters, source cards, downloads, error messages."""

from __future__ import annotations

import streamlit as st
from streamlit.navigation.page import StreamlitPage

from app_pages.context import Context
from indexing.evidence_level import LEVEL_IDS, label
from rag import display, export
from rag.bundle import AnswerBundle, bundle_zip
from rag.errors import EmptyIndexError, EmptyQueryError, IndexMissingError, RagError
from rag.evidence import Evidence
from rag.search import Filters, Hit

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
        evidence = st.multiselect(
            "Study design",
            LEVEL_IDS,
            key="f_evidence",
            format_func=label,
            placeholder="any",
            help="From each record's publication types and MeSH (strongest design first).",
            persist_state="session",
        )
        humans = st.checkbox(
            "Only studies in humans",
            key="f_humans",
            help="MeSH check tag Humans.",
            persist_state="session",
        )
        entity = st.text_input(
            "Substance, gene or concept",
            key="f_entity",
            placeholder="e.g. Metformin",
            help="One whole name from the record's ChemicalList, GeneSymbolList or SupplMeshList "
            "(indexed by NLM; the newest records have none yet), or a chemical, disease or gene "
            "tagged in its text at ingest when the index was built with PUBMED_RAG_NER_MODEL.",
            persist_state="session",
        ).strip()
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
                evidence=tuple(evidence),
                humans=humans,
                entity=entity or None,
            )
        except RagError as exc:
            st.error(str(exc))
            st.stop()
    return filters, limit


def sidebar_ranking(ctx: Context) -> bool:
    """The "rank stronger designs higher" switch (default: PUBMED_RAG_EVIDENCE_BOOST)."""
    with st.sidebar:
        return st.toggle(
            "Rank stronger designs higher",
            value=ctx.rag.evidence_boost,
            key="f_rank_evidence",
            help="A small boost: meta-analyses and systematic reviews first among near-equals.",
        )


SIMILAR_KEY = "similar_pmid"  # the PMID whose similar articles the Search page shows


def show_similar_of(pmid: str, page: StreamlitPage | None) -> None:
    """Switch the Search page to "similar to ``pmid``" (``page``: the Search page, to go to)."""
    st.session_state[SIMILAR_KEY] = pmid
    if page is None:
        st.rerun()
    st.switch_page(page)


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


def bundle_downloads(bundle: str, stem: str, key: str) -> None:
    """ "Save answer bundle": the bundle's JSON, and JSON + Markdown as a zip."""
    with st.container(horizontal=True):
        st.download_button(
            "Save answer bundle",
            bundle,
            file_name=f"{stem}.bundle.json",
            mime="application/json",
            key=f"{key}-bundle-json",
            on_click="ignore",
            icon=":material/inventory_2:",
            help="Question, filters, index version, models and their hashes, settings, "
            "evidence, checked answer and sources: `python -m rag replay FILE` re-runs it",
        )
        st.download_button(
            "Answer bundle (zip: JSON + Markdown)",
            lambda: bundle_zip(AnswerBundle.model_validate_json(bundle), f"{stem}.bundle"),
            file_name=f"{stem}.bundle.zip",
            mime="application/zip",
            key=f"{key}-bundle-zip",
            on_click="ignore",
            icon=":material/folder_zip:",
        )


def show_sources(
    hits: tuple[Hit, ...],
    terms: tuple[str, ...],
    cited: tuple[str, ...],
    similar: tuple[str, StreamlitPage | None] | None = None,
) -> None:
    """Numbered source cards, best first.

    ``similar`` = ``(key, search page)`` adds a "Similar articles" button to each card that
    opens the Search page in similar mode (``None`` as the page: this is the Search page).
    """
    for number, hit in enumerate(hits, start=1):
        with st.container(border=True):
            html(display.source_html(number, hit, terms, hit.pmid in cited))
            if similar is not None:
                key, page = similar
                if st.button(
                    "Similar articles",
                    key=f"similar-{key}-{number}-{hit.pmid}",
                    icon=":material/hub:",
                    help=f"Articles like PMID {hit.pmid}",
                ):
                    show_similar_of(hit.pmid, page)


def show_evidence(evidence: tuple[Evidence, ...], hits: tuple[Hit, ...]) -> None:
    """The key evidence: quoted sentences of the top articles, each linked to its source."""
    if not evidence:
        return
    st.markdown("**Key evidence** · quoted from the abstracts")
    html(display.evidence_html(evidence, hits))


def offline_notice(ctx: Context) -> None:
    """A warning on every page while the weak bundled models are in use."""
    if ctx.settings.offline:
        st.warning(
            "Offline mode: the bundled MiniLM embedder and SmolLM2-135M generator are in use. "
            "Answers are far weaker than with PubMedBERT and a 1.5B model; check every "
            "citation.",
            icon=":material/wifi_off:",
        )


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
