"""The one place where the backend is chosen."""

from __future__ import annotations

from indexing.settings import Settings
from indexing.store.base import VersionStore


def open_store(settings: Settings) -> VersionStore:
    """The index store the settings choose: files under ``data_dir``, or PostgreSQL.

    Everything else goes through the store it returns.
    """
    if settings.database_url is not None:
        # Imported only when chosen: psycopg and SQLAlchemy are not needed for files.
        from indexing.store.postgres import PgStore

        return PgStore(settings)
    from indexing.store.files import FileStore

    return FileStore(settings)
