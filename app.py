"""The web app: ask the literature, search it, export references, the library, what's new.

Run it with ``make run`` (or ``streamlit run app.py``). This file is the navigation and the
shared service only; each page is a module of :mod:`app_pages` that reads its widgets, makes
one call into ``rag`` or ``indexing``, and renders the result. Everything that comes from an
abstract or a model is escaped by :mod:`rag.display` before it is shown.
"""

from __future__ import annotations

import logging
import threading
from functools import partial

import streamlit as st
from pydantic import ValidationError

from app_pages import ask, export, library, search, whats_new
from app_pages.context import Context
from app_pages.widgets import offline_notice, sidebar_status
from indexing.settings import Settings
from rag.service import AnswerService
from rag.settings import RagSettings

# name (also the URL path), page, title, icon
PAGES = (
    ("ask", ask.page, "Ask", ":material/chat:"),
    ("search", search.page, "Search", ":material/search:"),
    ("export", export.page, "Export", ":material/download:"),
    ("library", library.page, "Library", ":material/library_books:"),
    ("whats_new", whats_new.page, "What's new", ":material/new_releases:"),
)


@st.cache_resource(show_spinner=False)
def _shared_service(key: str, _settings: Settings, _rag: RagSettings) -> AnswerService:
    """One service (index reader + generator) per configuration, shared by all sessions.

    The reader inside switches to a newly published index version on the next search, so
    the app never needs a restart after an update.
    """
    service = AnswerService(_settings, _rag)
    threading.Thread(target=_warm_up, args=(service,), name="warm-up", daemon=True).start()
    return service


def _warm_up(service: AnswerService) -> None:
    """Load the index, the encoder and the generator while the first page renders.

    So that the first question after a start does not wait for them; a failure here is only
    logged: the same error reaches the user, in context, when they ask.
    """
    from rag.resident import warm_up

    problem = warm_up(service)
    if problem is None:
        try:
            service.load_generator()
        except Exception as exc:
            problem = str(exc)
    if problem:
        logging.getLogger(__name__).info("warm-up incomplete: %s", problem)


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


def main(default: str = "ask") -> None:
    """Build the pages and run the one the user is on (``default`` opens first)."""
    st.set_page_config(page_title="pubmed-rag", page_icon=":material/biotech:", layout="wide")
    ctx = load_context()
    ctx.pages = {
        name: st.Page(
            partial(page, ctx), title=title, icon=icon, url_path=name, default=name == default
        )
        for name, page, title, icon in PAGES
    }
    current = st.navigation(list(ctx.pages.values()))
    offline_notice(ctx)
    sidebar_status(ctx)
    current.run()


if __name__ == "__main__":
    main()
