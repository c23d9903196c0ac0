"""The PostgreSQL store: the control schema, what is published, the history, cleanup."""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from indexing.history import merge_runs
from indexing.model_profiles import recorded_profile
from indexing.models import ModelChoice
from indexing.store.base import (
    Catalog,
    CatalogEntry,
    IndexCorruptError,
    VersionStore,
    not_published,
)
from indexing.store.config import embeddings_config, encoder_overrides, trusted_config
from indexing.store.postgres.common import (
    CONNECT_TIMEOUT_S,
    CONTENT_CLASS,
    DROP_LOCK_TIMEOUT,
    KEEPALIVES,
    SCHEMA_VERSION,
    VECTORS_CLASS,
    DatabaseError,
    close_quietly,
    keyword_scoring,
    lock_key,
)
from indexing.store.postgres.lock import AdvisoryLock
from indexing.store.postgres.reader import PgPublishedIndex
from indexing.store.postgres.urls import libpq_url, mask_url, scrub, sqlalchemy_url, with_urls
from indexing.store.postgres.writer import PgWriter
from indexing.store.records import Manifest

if TYPE_CHECKING:
    from indexing.history import RunReport
    from indexing.settings import Settings

log = logging.getLogger(__name__)

_DDL_V1 = """
CREATE TABLE {s}.meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE {s}.versions (
    name text PRIMARY KEY,
    number integer NOT NULL UNIQUE,
    state text NOT NULL CHECK (state IN ('staging', 'published')),
    manifest jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE TABLE {s}.current (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version text REFERENCES {s}.versions (name)
);
INSERT INTO {s}.current (version) VALUES (NULL);
CREATE TABLE {s}.history (
    id bigserial PRIMARY KEY,
    report jsonb NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE {s}.locks (name text PRIMARY KEY, holder text NOT NULL, since timestamptz NOT NULL);
CREATE FUNCTION {s}.instr(haystack text, needle text) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT strpos(haystack, needle)';
INSERT INTO {s}.meta VALUES ('schema_version', '1');
"""
# Later releases add ``{version: ddl}`` here; the schema is migrated under the DDL lock.
MIGRATIONS: dict[int, str] = {}


class PgStore(VersionStore):
    """The versioned index in PostgreSQL: what is published, the history and the locks."""

    backend = "postgresql"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        assert settings.database_url is not None
        self.url = settings.database_url.get_secret_value()
        self.schema = settings.database_schema
        self._conn: psycopg.Connection[Any] | None = None
        self._mutex = threading.Lock()
        self._checked = False
        self._vector_schema: str | None = None
        self.write_lock: AdvisoryLock | None = None  # while this process holds :meth:`lock`

    # -- connections ---------------------------------------------------------------------------

    @property
    def where(self) -> str:
        """The server (password masked) and schema, for messages."""
        return f"{mask_url(self.url)} (schema {self.schema})"

    def scrub(self, text: str) -> str:
        """``text`` without this store's credentials."""
        return scrub(text, self.url)

    def connect(
        self, *, autocommit: bool = False, purpose: str = "", keepalive: bool = False
    ) -> psycopg.Connection[Any]:
        """A new connection to the server (with TCP keepalives when ``keepalive``).

        Raises:
            DatabaseError: the server cannot be reached or refused the login.
        """
        params: dict[str, Any] = {"application_name": f"pubmed-rag {purpose}".strip()[:63]}
        if "connect_timeout" not in self.url:
            params["connect_timeout"] = CONNECT_TIMEOUT_S
        if keepalive:
            params.update({key: value for key, value in KEEPALIVES.items() if key not in self.url})
        try:
            return psycopg.connect(libpq_url(self.url), autocommit=autocommit, **params)
        except psycopg.Error as exc:
            reason = self.scrub(str(exc).strip().splitlines()[0] if str(exc).strip() else "")
            raise DatabaseError(
                f"cannot connect to the PostgreSQL server at {mask_url(self.url)}: {reason}"
            ) from None

    @contextlib.contextmanager
    def translated(self, doing: str) -> Iterator[None]:
        """Turn driver errors into :class:`DatabaseError` with a scrubbed one-line message."""
        from sqlalchemy.exc import SQLAlchemyError

        try:
            yield
        except (psycopg.Error, SQLAlchemyError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DatabaseError(f"{doing} failed in {self.where}: {self.scrub(first)}") from None

    @contextlib.contextmanager
    def db(self, doing: str = "reading the index") -> Iterator[psycopg.Connection[Any]]:
        """The store's own autocommit connection, reconnected when it was lost."""
        with self._mutex, self.translated(doing):
            if self._conn is None or self._conn.closed or self._conn.broken:
                close_quietly(self._conn)
                self._conn = self.connect(autocommit=True, purpose="store")
                self._checked = False
            if not self._checked:
                self.check_schema(self._conn, create=False)
                self._checked = True
            yield self._conn

    def close(self) -> None:
        """Close the store's connection."""
        with self._mutex:
            close_quietly(self._conn)
            self._conn = None

    def ident(self, *names: str) -> sql.Composable:
        """A schema-qualified name in the control schema (``S.name``)."""
        return sql.Identifier(self.schema, *names)

    def version_schema(self, version: str) -> str:
        """The schema holding one version."""
        return f"{self.schema}_{version}"

    # -- schema ----------------------------------------------------------------------------------

    def _schema_exists(self, conn: psycopg.Connection[Any]) -> bool:
        row = conn.execute(
            "SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema,)
        ).fetchone()
        return row is not None

    def check_schema(self, conn: psycopg.Connection[Any], *, create: bool) -> bool:
        """Check (and with ``create``, create or migrate) the control schema; whether it exists.

        Raises:
            DatabaseError: the schema is newer than this release, or pgvector is missing.
        """
        if create:
            self._ensure_vector(conn)
        with conn.transaction():
            # One creator or migrator at a time, also across hosts.
            conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (lock_key(self.schema, "ddl"),))
            if not self._schema_exists(conn):
                if not create:
                    return False
                conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.schema)))
                conn.execute(sql.SQL(_DDL_V1).format(s=sql.Identifier(self.schema)))
                log.info(
                    "created schema %s (version %d) in %s", self.schema, SCHEMA_VERSION, self.where
                )
                return True
            row = conn.execute(
                sql.SQL("SELECT value FROM {} WHERE key = 'schema_version'").format(
                    self.ident("meta")
                )
            ).fetchone()
            found = int(row[0]) if row else 0
            if found > SCHEMA_VERSION:
                raise DatabaseError(
                    f"the index in {self.where} has schema version {found}, newer than this "
                    f"release supports ({SCHEMA_VERSION}); upgrade pubmed-rag"
                )
            if found < SCHEMA_VERSION and create:
                for number in range(found + 1, SCHEMA_VERSION + 1):
                    conn.execute(sql.SQL(MIGRATIONS[number]).format(s=sql.Identifier(self.schema)))
                conn.execute(
                    sql.SQL("UPDATE {} SET value = %s WHERE key = 'schema_version'").format(
                        self.ident("meta")
                    ),
                    (str(SCHEMA_VERSION),),
                )
        return True

    def _ensure_vector(self, conn: psycopg.Connection[Any]) -> None:
        if self._vector_schema_of(conn) is not None:
            return
        available = conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"
        ).fetchone()
        if available is None:
            raise DatabaseError(
                f"the PostgreSQL server at {mask_url(self.url)} lacks the `vector` extension "
                "(pgvector): install pgvector on the server, then retry"
            )
        try:
            with conn.transaction():
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except psycopg.Error as exc:
            raise DatabaseError(
                f"the `vector` extension (pgvector) is installed on {mask_url(self.url)} but not "
                f"enabled in this database, and this user cannot enable it "
                f"({self.scrub(str(exc).strip().splitlines()[0])}); ask an administrator to run "
                "`CREATE EXTENSION vector;` in the database"
            ) from None

    def _vector_schema_of(self, conn: psycopg.Connection[Any]) -> str | None:
        row = conn.execute(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
            "WHERE e.extname = 'vector'"
        ).fetchone()
        return str(row[0]) if row else None

    def search_path(self, version: str) -> list[str]:
        """Where txtai's unqualified table names resolve for one version."""
        if self._vector_schema is None:
            with self.db() as conn:
                self._vector_schema = self._vector_schema_of(conn) or "public"
        path = [self.version_schema(version), self.schema, self._vector_schema]
        return list(dict.fromkeys(path))

    # -- what is published -----------------------------------------------------------------------

    def current_version(self) -> str | None:
        """Name of the published version, or None before the first publish."""
        with self.db() as conn:
            if not self._schema_exists(conn):
                return None
            row = conn.execute(
                sql.SQL("SELECT version FROM {}").format(self.ident("current"))
            ).fetchone()
        return str(row[0]) if row and row[0] else None

    def manifest(self, version: str | None = None) -> Manifest:
        """Manifest of a published version (the current one by default).

        Raises:
            IndexNotFoundError: nothing has been published yet.
            IndexCorruptError: that version is not (or no longer) published.
        """
        version = version or self.current_version()
        if version is None:
            raise not_published(self.where)
        with self.db() as conn:
            row = conn.execute(
                sql.SQL("SELECT manifest FROM {} WHERE name = %s AND state = 'published'").format(
                    self.ident("versions")
                ),
                (version,),
            ).fetchone()
        if row is None or row[0] is None:
            raise IndexCorruptError(f"version {version} is not published in {self.where}")
        return Manifest.from_json(json.dumps(row[0]))

    def published_versions(self) -> list[str]:
        """Published versions, oldest first."""
        with self.db() as conn:
            if not self._schema_exists(conn):
                return []
            rows = conn.execute(
                sql.SQL("SELECT name FROM {} WHERE state = 'published' ORDER BY number").format(
                    self.ident("versions")
                )
            ).fetchall()
        return [str(name) for (name,) in rows]

    def catalog(self, version: str | None = None) -> Catalog:
        """``pmid -> (fingerprint, passages, sources)`` of a version (the published one)."""
        version = version or self.current_version()
        if version is None:
            return {}
        with self.db() as conn:
            rows = conn.execute(
                sql.SQL("SELECT pmid, fingerprint, passages, sources FROM {}").format(
                    sql.Identifier(self.version_schema(version), "articles")
                )
            ).fetchall()
        return {pmid: CatalogEntry(fp, passages, sources) for pmid, fp, passages, sources in rows}

    # -- history ---------------------------------------------------------------------------------

    def append_report(self, report: RunReport) -> None:
        """Record a run (its error message scrubbed of credentials)."""
        report.error = self.scrub(report.error)
        with self.db("recording the run") as conn:
            self.check_schema(conn, create=True)
            conn.execute(
                sql.SQL("INSERT INTO {} (report) VALUES (%s)").format(self.ident("history")),
                (json.dumps(report.to_dict(), ensure_ascii=False),),
            )

    def read_history(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Runs, oldest first (see :func:`indexing.history.merge_runs`)."""
        with self.db() as conn:
            if not self._schema_exists(conn):
                return []
            if limit is None:
                query = sql.SQL("SELECT report FROM {h} ORDER BY id")
            else:  # only the rows of the newest ``limit`` runs, not the whole table
                query = sql.SQL(
                    "SELECT report FROM {h} WHERE report->>'run_id' IN ("
                    "SELECT report->>'run_id' FROM {h} GROUP BY 1 ORDER BY max(id) DESC LIMIT %s"
                    ") ORDER BY id"
                )
            params = () if limit is None else (limit,)
            rows = conn.execute(query.format(h=self.ident("history")), params).fetchall()
        return merge_runs([dict(report) for (report,) in rows], limit)

    def trim_history(self, max_runs: int, max_days: int = 0) -> int:
        """Delete the rows of runs past the newest ``max_runs`` or older than ``max_days``."""
        with self.db("trimming the run history") as conn:
            if not self._schema_exists(conn):
                return 0
            row = conn.execute(
                sql.SQL(
                    "WITH runs AS ("
                    " SELECT report->>'run_id' AS run_id, max(id) AS last, max(recorded_at) AS at"
                    " FROM {h} WHERE report->>'run_id' IS NOT NULL GROUP BY 1),"
                    " keep AS (SELECT run_id FROM runs"
                    "  WHERE %(days)s = 0 OR at >= now() - make_interval(days => %(days)s)"
                    "  ORDER BY last DESC LIMIT %(runs)s),"
                    " gone AS (DELETE FROM {h} WHERE report->>'run_id' NOT IN"
                    "  (SELECT run_id FROM keep) RETURNING report->>'run_id' AS run_id)"
                    " SELECT count(DISTINCT run_id) FROM gone"
                ).format(h=self.ident("history")),
                {"days": max_days, "runs": max_runs},
            ).fetchone()
        return int(row[0]) if row else 0

    # -- locks -----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, wait: float = 0.0, purpose: str = "write") -> Iterator[None]:
        """Hold the writer lock (across hosts); the server frees it if this process dies."""
        with AdvisoryLock(self, "write", wait, purpose) as held:
            self.write_lock = held
            try:
                yield
            finally:
                self.write_lock = None

    @contextlib.contextmanager
    def scheduler_lock(self, wait: float = 0.0) -> Iterator[None]:
        """Be the only scheduler of this index, across hosts."""
        with AdvisoryLock(self, "schedule", wait, "schedule"):
            yield

    # -- versions --------------------------------------------------------------------------------

    def open_writer(self, choice: ModelChoice | None = None) -> PgWriter:
        """A writer on a staging copy of the published version; hold :meth:`lock`."""
        return PgWriter(self, choice)

    def open_version(self, version: str) -> PgPublishedIndex:
        """A read-only handle on a published version, pinned against cleanup."""
        return PgPublishedIndex(self, version)

    def load_embeddings(
        self, version: str, manifest: Manifest | None, choice: ModelChoice, *, writing: bool = False
    ) -> Any:
        """txtai on one version's schema: loaded from a manifest, or new when there is none.

        A reader searches with the keyword scoring the version records (``pgtext`` for versions
        published before :data:`KEYWORDS_METHOD`); a writer's copy (``writing``) gets the
        current one, which reads the same table, and records it when it publishes.
        """
        from txtai import Embeddings

        url = sqlalchemy_url(self.url, self.search_path(version))
        if manifest is None or not manifest.embeddings_config.get("dimensions"):
            config = embeddings_config(choice, self.settings)
            config.update(content=CONTENT_CLASS, backend=VECTORS_CLASS, **with_urls({}, url))
            with self.translated("opening the index"):
                return Embeddings(config)
        # The stored configuration is data anyone with UPDATE on the control schema can edit:
        # every key that makes txtai import something is set here, from code.
        stored = trusted_config(
            dict(manifest.embeddings_config),
            {
                # a stored profile name only chooses among this program's rows
                **recorded_profile(manifest.embeddings_config).txtai_config(),
                "content": CONTENT_CLASS,
                "backend": VECTORS_CLASS,
                "scoring": keyword_scoring(
                    None if writing else manifest.embeddings_config.get("scoring")
                ),
            },
        )
        # txtai loads from a folder holding config.json: give it one without credentials and
        # pass the URLs (and the local model path) as overrides.
        with tempfile.TemporaryDirectory(prefix="pubmed-rag-config-") as folder:
            (Path(folder) / "config.json").write_text(json.dumps(stored), encoding="utf-8")
            overrides = encoder_overrides(manifest, self.settings)
            overrides.update(with_urls(stored, url))
            embeddings = Embeddings()
            with self.translated("opening the index"):
                embeddings.load(folder, config=overrides)
        return embeddings

    def cleanup(self) -> list[str]:
        """Drop staging schemas (killed writers') and versions beyond ``keep_versions``.

        Call only while holding the lock. A version a reader still has open is pinned (shared
        advisory lock) and stays until a later cleanup.
        """
        removed = []
        with self.db("cleaning up old versions") as conn:
            current = self.current_version_on(conn)
            rows = conn.execute(
                sql.SQL("SELECT name, number, state FROM {} ORDER BY number").format(
                    self.ident("versions")
                )
            ).fetchall()
            published = [name for name, _, state in rows if state == "published"]
            doomed = [(name, number) for name, number, state in rows if state != "published"]
            keep = self.settings.keep_versions
            old = set(published[:-keep]) if len(published) > keep else set()
            doomed += [
                (name, number) for name, number, _ in rows if name in old and name != current
            ]
            for name, number in doomed:
                if self.drop_version(conn, name, number):
                    removed.append(name)
        return removed

    def current_version_on(self, conn: psycopg.Connection[Any]) -> str | None:
        """:meth:`current_version` on a connection the caller holds."""
        row = conn.execute(
            sql.SQL("SELECT version FROM {}").format(self.ident("current"))
        ).fetchone()
        return str(row[0]) if row and row[0] else None

    def drop_version(self, conn: psycopg.Connection[Any], name: str, number: int) -> bool:
        try:
            with conn.transaction():
                pinned = conn.execute(
                    "SELECT pg_try_advisory_xact_lock(%s, %s)",
                    (lock_key(self.schema, "pin"), number),
                ).fetchone()
                if not (pinned and pinned[0]):
                    log.info("version %s is still open in a reader; it is removed later", name)
                    return False
                conn.execute(f"SET LOCAL lock_timeout = '{DROP_LOCK_TIMEOUT}'")
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                        sql.Identifier(self.version_schema(name))
                    )
                )
                conn.execute(
                    sql.SQL("DELETE FROM {} WHERE name = %s").format(self.ident("versions")),
                    (name,),
                )
        except psycopg.errors.LockNotAvailable:
            log.info("version %s is busy; it is removed later", name)
            return False
        return True

    def destroy(self) -> None:
        """Drop the whole index: every version, the history, the control schema."""
        with self.db("removing the index") as conn:
            rows = conn.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname = %s OR nspname ~ %s",
                (self.schema, f"^{self.schema}_v[0-9]+$"),
            ).fetchall()
            for (name,) in rows:
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name))
                )
            self._checked = False
