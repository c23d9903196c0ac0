"""pytest plugin: a real PostgreSQL 16 + pgvector server for the session, and the ``backend`` fixture.

The server comes from the PyPI package ``pgserver`` (PostgreSQL and pgvector binaries in a
wheel), started once in a temporary folder. Each index a test builds gets its own database,
named after the test's data directory, so the tests' "copy the data dir" becomes
``CREATE DATABASE … TEMPLATE …`` (a file copy inside the server).

Behavioural tests run on both backends with::

    @pytest.mark.parametrize("backend", BOTH, indirect=True)

and use ``backend.settings(data_dir)``, ``backend.env(data_dir)`` and ``backend.copy(src, dst)``
instead of plain ``Settings``, environment variables and ``shutil.copytree``.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

BOTH = ["embedded", "postgres"]
# Every test URL carries a password (the server trusts local sockets and ignores it), so that
# any place that would print it can be caught.
TEST_PASSWORD = "pw-s3cret-4711"
SCHEMA = "pubmed_rag"


@dataclass
class PgServer:
    """A running server: its socket folder and an admin connection helper."""

    socket_dir: str
    server: Any  # pgserver.PostgresServer

    def url(self, database: str = "postgres", user: str = "postgres") -> str:
        """A ``postgresql://`` URL (with the test password) for a database."""
        return f"postgresql://{user}:{TEST_PASSWORD}@/{database}?host={quote(self.socket_dir, safe='')}"

    def admin(self) -> Any:
        """An autocommit superuser connection to the ``postgres`` database."""
        import psycopg

        return psycopg.connect(self.url(), autocommit=True)

    def create_database(self, name: str, template: str | None = None) -> None:
        """Create a database (a copy of ``template`` when given) unless it exists."""
        import psycopg
        from psycopg import sql

        with self.admin() as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                return
            if template is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                return
            # A template must have no other session: close what tests left open on it, and
            # retry while an autovacuum worker still visits it.
            for attempt in range(20):
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                    "AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
                    (template,),
                )
                try:
                    conn.execute(
                        sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                            sql.Identifier(name), sql.Identifier(template)
                        )
                    )
                    return
                except psycopg.errors.ObjectInUse:
                    if attempt == 19:
                        raise
                    time.sleep(0.25)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """PostgreSQL 16 with pgvector, started for the session in a temporary folder.

    The folder is not under pytest's ``tmp_path_factory``: pytest deletes old base folders
    when a new session starts, and a second session on the same machine (another checkout,
    another terminal) would then delete the data of this running server under its feet.
    """
    pgserver = pytest.importorskip("pgserver", reason="pgserver is in requirements-dev.txt")
    folder = Path(tempfile.mkdtemp(prefix="pubmed-rag-pg-"))
    server = pgserver.get_server(folder, cleanup_mode="delete")
    try:
        yield PgServer(str(folder), server)
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def database_for(data_dir: Path) -> str:
    """The database that holds the index of a test's data dir."""
    return "t_" + hashlib.sha1(str(data_dir).encode()).hexdigest()[:20]


@dataclass
class Backend:
    """How a test reaches an index: files under the data dir, or a database of the server."""

    name: str
    server: PgServer | None = None

    @property
    def postgres(self) -> bool:
        """Whether this is the PostgreSQL backend."""
        return self.server is not None

    def url(self, data_dir: Path) -> str:
        """The database URL of a data dir's index (PostgreSQL only)."""
        assert self.server is not None
        database = database_for(data_dir)
        self.server.create_database(database)
        return self.server.url(database)

    def env(self, data_dir: Path) -> dict[str, str]:
        """``PUBMED_RAG_*`` variables selecting this backend for a data dir."""
        if self.server is None:
            return {}
        return {"PUBMED_RAG_DATABASE_URL": self.url(data_dir), "PUBMED_RAG_DATABASE_SCHEMA": SCHEMA}

    def settings(self, data_dir: Path, **values: Any) -> Any:
        """Offline settings for a data dir on this backend."""
        from indexing.settings import Settings

        if self.server is not None:
            values.setdefault("database_url", self.url(data_dir))
        return Settings(data_dir=data_dir, offline=True, **values)

    def copy(self, source: Path, target: Path) -> None:
        """Copy the index of one data dir to another."""
        if source.exists():
            shutil.copytree(source, target)
        else:
            target.mkdir(parents=True)
        if self.server is not None:
            self.server.create_database(database_for(target), template=database_for(source))


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> Backend:
    """The embedded backend, or PostgreSQL when parametrized with ``"postgres"``."""
    name = getattr(request, "param", "embedded")
    if name == "postgres":
        return Backend(name, request.getfixturevalue("pg_server"))
    return Backend(name)
