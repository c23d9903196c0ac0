"""txtai's PostgreSQL content store, with typed metadata columns.

txtai's ``Client`` database reads every JSON metadata column as text, so a filter such as
``year >= :year_from`` compares text with an integer, which PostgreSQL refuses (SQLite compares
the numbers). This subclass reads the numeric columns of our documents as integers, so the same
bound-parameter SQL runs on both backends. txtai loads it by name from the index configuration
(``"content": "indexing.store.postgres.content.PgContent"``, with the URL under ``"pgcontent"``;
indexes published before the store package name ``indexing.pgcontent.PgContent``), so it is only
imported where txtai and SQLAlchemy already are.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import StaticPool, create_engine
from sqlalchemy.orm import Session
from txtai.database.client import Client

# The integer fields of indexing.article.article_documents.
INTEGER_COLUMNS = frozenset({"year", "retracted", "has_abstract", "passages", "passage"})


class PgContent(Client):
    """txtai's SQLAlchemy content store, with its URL under ``pgcontent.url`` and typed columns."""

    def connect(self, path: Any = None) -> Session:
        """Open the session on ``config["pgcontent"]["url"]`` (search_path comes with the URL)."""
        self.engine = create_engine(
            self.config["pgcontent"]["url"],
            poolclass=StaticPool,
            echo=False,
            json_serializer=lambda x: x,  # txtai hands over JSON text already
        )
        self.dbconnection = self.engine.connect()
        return Session(self.dbconnection)

    def jsoncolumn(self, name: str) -> str:
        """SQL reading metadata column ``name`` (lower-case ``cast(``: txtai's resolved marker)."""
        key = name.replace("'", "''")
        return f"cast(d.data ->> '{key}' as {'integer' if name in INTEGER_COLUMNS else 'text'})"
