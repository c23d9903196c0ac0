"""The app's pages, one module each: widgets, then one call into ``rag`` or ``indexing``, then render.

``app.py`` builds the navigation and the shared service; :mod:`app_pages.widgets` holds what
several pages show (the sidebar filters, source cards, downloads, error messages). Named
``app_pages`` rather than ``pages``: Streamlit turns a ``pages/`` folder beside the entry script
into a page list of its own.
"""
