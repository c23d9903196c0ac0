"""The PostgreSQL + pgvector backend: the same versioned index, held by a database server.

Chosen by ``PUBMED_RAG_DATABASE_URL`` (see :func:`indexing.index.open_store`). txtai keeps the
passages and metadata (``PgContent``, its SQLAlchemy content store), the vectors (``pgvector``
backend, HNSW index) and the keyword index (``pgtext`` scoring, a GIN-indexed tsvector) in
PostgreSQL; this module adds what the embedded backend keeps in files. With ``S`` the
``database_schema`` setting (``pubmed_rag`` by default)::

    S.meta           schema_version (migrations), set when the schema is created on first use
    S.versions       one row per version: number, state (staging | published), manifest
    S.current        one row: the name of the published version — the pointer readers follow
    S.history        one run report per row (failed runs publish nothing but are reported)
    S.locks          who holds the writer / scheduler lock (the lock itself is advisory)
    S.instr()        SQLite's instr(), so that the search filters run unchanged
    S_v000007        one version: txtai's tables and the catalog (``articles``)

The guarantees are the embedded ones, across hosts:

* A version schema never changes once published. A writer copies the published version into
  a staging schema inside the server (``INSERT … SELECT``, indexes rebuilt in bulk), changes
  the copy, commits it, and publishes by switching ``S.current`` in one transaction. Readers
  only follow the pointer, so they never see a half-applied update; a writer killed at any
  instant leaves a staging schema that the next writer drops.
* The writer and scheduler locks are session-level advisory locks held on a dedicated
  connection: the server releases them when the holder's connection dies (``kill -9``,
  a lost host), with no stale lock to clear.
* A reader pins the version it has open with a shared advisory lock; cleanup drops an old
  version only if it can take that lock exclusively, so a version is never dropped under a
  reader (the embedded backend gets this from open files surviving their unlinking).

Credentials: the URL's password reaches only the drivers. Manifests store txtai's configuration
without URLs, messages and ``info`` show :func:`mask_url`, and errors are scrubbed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import tempfile
import threading
import time
import weakref
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from indexing.index import (
    IndexCorruptError,
    IndexLockedError,
    IndexStore,
    IndexStoreError,
    IndexWriter,
    Manifest,
    PublishedIndex,
    _version_name,
    _version_number,
    embeddings_config,
    utcnow,
)
from indexing.models import ModelChoice, locate_model

if TYPE_CHECKING:
    from indexing.history import RunReport
    from indexing.settings import Settings

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
CONTENT_CLASS = "indexing.pgcontent.PgContent"
# Dense candidates one HNSW scan can return (pgvector's hnsw.ef_search, at most 1000). txtai
# asks for 10x the candidate pool in hybrid mode; the product's default pool is 100.
EF_SEARCH = 1000
CONNECT_TIMEOUT_S = 10
# How long cleanup waits for a table lock before leaving an old version for the next run.
DROP_LOCK_TIMEOUT = "5s"

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

_CATALOG_DDL = """
CREATE TABLE IF NOT EXISTS {t} (
    pmid text PRIMARY KEY,
    fingerprint text NOT NULL,
    passages integer NOT NULL,
    sources text NOT NULL DEFAULT '',
    edat text NOT NULL DEFAULT '',
    mdat text NOT NULL DEFAULT '',
    updated_at text NOT NULL
)
"""


class DatabaseError(IndexStoreError):
    """The PostgreSQL server is unreachable, lacks pgvector, or refused an operation."""


# --- URLs and credentials -------------------------------------------------------------------


def mask_url(url: str) -> str:
    """The URL with its password (in the user part or a ``password=`` parameter) as ``***``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostinfo = netloc.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}:***@{hostinfo}" if colon else f"{user}@{hostinfo}"
    query = [
        (key, "***" if key.lower() == "password" else value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(
        (parts.scheme, netloc, parts.path, urlencode(query, safe="/*,:"), parts.fragment)
    )


def _secrets(url: str) -> list[str]:
    """The URL's password in every form it may be printed in (longest first)."""
    parts = urlsplit(url)
    found = [url]
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    if ":" in userinfo:
        found.append(userinfo.partition(":")[2])
    found += [
        v for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() == "password"
    ]
    found += [unquote(value) for value in found]
    return sorted({value for value in found if value}, key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """``text`` with the URL masked and its password replaced by ``***``."""
    for secret in _secrets(url):
        text = text.replace(secret, mask_url(url) if secret == url else "***")
    return text


def _libpq_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(("postgresql", parts.netloc, parts.path, parts.query, parts.fragment))


def _sqlalchemy_url(url: str, search_path: list[str]) -> str:
    """The URL txtai's SQLAlchemy engines connect with: psycopg 3, our search_path, ef_search."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = f"-c search_path={','.join(search_path)} -c hnsw.ef_search={EF_SEARCH}"
    options = [value for key, value in query if key == "options"]
    query = [(key, value) for key, value in query if key != "options"]
    query.append(("options", " ".join([*options, ours])))
    return urlunsplit(
        ("postgresql+psycopg", parts.netloc, parts.path, urlencode(query), parts.fragment)
    )


def _strip_urls(config: dict[str, Any]) -> dict[str, Any]:
    """txtai's configuration without the connection URLs (what a manifest may store)."""
    clean = {key: value for key, value in config.items() if key not in ("path", "pgcontent")}
    for key in ("pgvector", "scoring"):
        if isinstance(clean.get(key), dict):
            clean[key] = {k: v for k, v in clean[key].items() if k != "url"}
    return clean


def _with_urls(config: dict[str, Any], url: str) -> dict[str, Any]:
    """The URL-bearing keys of a configuration (merged over a stored one when loading)."""
    return {
        "pgcontent": {"url": url},
        "pgvector": {**(config.get("pgvector") or {}), "url": url},
        "scoring": {**(config.get("scoring") or {"method": "pgtext"}), "url": url},
    }


def _lock_key(schema: str, kind: str) -> int:
    """A signed 32-bit advisory-lock key for one kind of lock of one index."""
    value = zlib.crc32(f"pubmed-rag:{schema}:{kind}".encode())
    return value - 2**32 if value >= 2**31 else value


def _holder(purpose: str) -> str:
    return f"pid {os.getpid()} ({purpose}, since {utcnow()}, host {socket.gethostname()})"


def _commit(embeddings: Any) -> None:
    """Commit txtai's three PostgreSQL sessions (what its ``save`` does, without files)."""
    for part in (embeddings.ann, embeddings.database, embeddings.scoring):
        if part is not None:
            part.save(None)


def _fetch_value(conn: psycopg.Connection[Any], query: str, params: Any = None) -> Any:
    row = conn.execute(query, params).fetchone()
    return row[0] if row else None


def _close_quietly(*things: Any) -> None:
    for thing in things:
        if thing is not None:
            with contextlib.suppress(Exception):
                thing.close()


# --- the store ------------------------------------------------------------------------------


class PgIndexStore(IndexStore):
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

    # -- connections ---------------------------------------------------------------------------

    @property
    def where(self) -> str:
        """The server (password masked) and schema, for messages."""
        return f"{mask_url(self.url)} (schema {self.schema})"

    def scrub(self, text: str) -> str:
        """``text`` without this store's credentials."""
        return scrub(text, self.url)

    def connect(self, *, autocommit: bool = False, purpose: str = "") -> psycopg.Connection[Any]:
        """A new connection to the server.

        Raises:
            DatabaseError: the server cannot be reached or refused the login.
        """
        params: dict[str, Any] = {"application_name": f"pubmed-rag {purpose}".strip()[:63]}
        if "connect_timeout" not in self.url:
            params["connect_timeout"] = CONNECT_TIMEOUT_S
        try:
            return psycopg.connect(_libpq_url(self.url), autocommit=autocommit, **params)
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
                _close_quietly(self._conn)
                self._conn = self.connect(autocommit=True, purpose="store")
                self._checked = False
            if not self._checked:
                self.check_schema(self._conn, create=False)
                self._checked = True
            yield self._conn

    def close(self) -> None:
        """Close the store's connection."""
        with self._mutex:
            _close_quietly(self._conn)
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
            conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (_lock_key(self.schema, "ddl"),))
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
            return super().manifest(None)  # raises IndexNotFoundError with the usual hint
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

    def catalog(self, version: str | None = None) -> dict[str, tuple[str, int, str]]:
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
        return {pmid: (fp, passages, sources) for pmid, fp, passages, sources in rows}

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
        from indexing.history import merge_runs

        with self.db() as conn:
            if not self._schema_exists(conn):
                return []
            rows = conn.execute(
                sql.SQL("SELECT report FROM {} ORDER BY id").format(self.ident("history"))
            ).fetchall()
        return merge_runs([dict(report) for (report,) in rows], limit)

    # -- locks -----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, wait: float = 0.0, purpose: str = "write") -> Iterator[None]:
        """Hold the writer lock (across hosts); the server frees it if this process dies."""
        with AdvisoryLock(self, "write", wait, purpose):
            yield

    @contextlib.contextmanager
    def scheduler_lock(self, wait: float = 0.0) -> Iterator[None]:
        """Be the only scheduler of this index, across hosts."""
        with AdvisoryLock(self, "schedule", wait, "schedule"):
            yield

    # -- versions --------------------------------------------------------------------------------

    def open_writer(self, choice: ModelChoice | None = None) -> IndexWriter:
        """A writer on a staging copy of the published version; hold :meth:`lock`."""
        return PgIndexWriter(self, choice)

    def open_version(self, version: str) -> PublishedIndex:
        """A read-only handle on a published version, pinned against cleanup."""
        return PgPublishedIndex(self, version)

    def load_embeddings(self, version: str, manifest: Manifest | None, choice: ModelChoice) -> Any:
        """txtai on one version's schema: loaded from a manifest, or new when there is none."""
        from txtai import Embeddings

        url = _sqlalchemy_url(self.url, self.search_path(version))
        if manifest is None or not manifest.embeddings_config.get("dimensions"):
            config = embeddings_config(choice, self.settings)
            config.update(content=CONTENT_CLASS, backend="pgvector", **_with_urls({}, url))
            with self.translated("opening the index"):
                return Embeddings(config)
        stored = dict(manifest.embeddings_config)
        # txtai loads from a folder holding config.json: give it one without credentials and
        # pass the URLs (and the local model path) as overrides.
        with tempfile.TemporaryDirectory(prefix="pubmed-rag-config-") as folder:
            (Path(folder) / "config.json").write_text(json.dumps(stored), encoding="utf-8")
            overrides = {"path": locate_model(manifest.embeddings_model, allow_download=False)}
            overrides.update(_with_urls(stored, url))
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
                if self._drop_version(conn, name, number):
                    removed.append(name)
        return removed

    def current_version_on(self, conn: psycopg.Connection[Any]) -> str | None:
        """:meth:`current_version` on a connection the caller holds."""
        row = conn.execute(
            sql.SQL("SELECT version FROM {}").format(self.ident("current"))
        ).fetchone()
        return str(row[0]) if row and row[0] else None

    def _drop_version(self, conn: psycopg.Connection[Any], name: str, number: int) -> bool:
        try:
            with conn.transaction():
                pinned = conn.execute(
                    "SELECT pg_try_advisory_xact_lock(%s, %s)",
                    (_lock_key(self.schema, "pin"), number),
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


class AdvisoryLock:
    """A session-level advisory lock on its own connection, with who holds it in ``S.locks``.

    The server releases it when the connection closes — also when the holder is killed — so
    a lock is never left behind; the ``S.locks`` row only names the latest holder.
    """

    def __init__(self, store: PgIndexStore, kind: str, wait: float, purpose: str) -> None:
        self.store = store
        self.kind = kind
        self.wait = wait
        self.purpose = purpose
        self._conn: psycopg.Connection[Any] | None = None

    def __enter__(self) -> AdvisoryLock:
        store = self.store
        conn = store.connect(autocommit=True, purpose=f"{self.kind} lock")
        try:
            with store.translated("taking the lock"):
                store.check_schema(conn, create=True)
                key = _lock_key(store.schema, self.kind)
                deadline = time.monotonic() + self.wait
                while not _fetch_value(conn, "SELECT pg_try_advisory_lock(%s, 0)", (key,)):
                    if time.monotonic() >= deadline:
                        row = conn.execute(
                            sql.SQL("SELECT holder FROM {} WHERE name = %s").format(
                                store.ident("locks")
                            ),
                            (self.kind,),
                        ).fetchone()
                        holder = str(row[0]) if row else "another process"
                        raise IndexLockedError(self._message(holder), holder)
                    time.sleep(min(0.2, max(0.01, deadline - time.monotonic())))
                conn.execute(
                    sql.SQL(
                        "INSERT INTO {} (name, holder, since) VALUES (%s, %s, now()) "
                        "ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, since = now()"
                    ).format(store.ident("locks")),
                    (self.kind, _holder(self.purpose)),
                )
        except BaseException:
            _close_quietly(conn)
            raise
        self._conn = conn
        return self

    def _message(self, holder: str) -> str:
        if self.kind == "schedule":
            return f"another scheduler already runs on {self.store.where} ({holder})"
        return (
            f"the index in {self.store.where} is being updated by {holder}; "
            "wait for it to finish (or pass --wait SECONDS)"
        )

    def __exit__(self, *exc: object) -> None:
        # Closing the session releases the lock, even if the unlock below cannot run.
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.execute(
                    "SELECT pg_advisory_unlock(%s, 0)", (_lock_key(self.store.schema, self.kind),)
                )
            _close_quietly(self._conn)
            self._conn = None


# --- the writer -----------------------------------------------------------------------------


class PgIndexWriter(IndexWriter):
    """Changes a staging copy of the published version inside the server, then publishes it."""

    store: PgIndexStore

    def __init__(self, store: PgIndexStore, choice: ModelChoice | None = None) -> None:
        self.db: psycopg.Connection[Any] | None = None
        self.staging_version: str | None = None
        # HNSW indexes of the staging schema, dropped while the writer inserts and built in
        # bulk at publish: inserting into an HNSW graph row by row is what made large ingests
        # crawl (hundreds of passages/s, slowing as the graph grew).
        self.deferred_indexes: list[str] = []
        with store.translated("opening a writer"):
            super().__init__(store, choice)

    # -- staging -----------------------------------------------------------------------------

    def _open_staging(self) -> None:
        store = self.store
        if self.db is None or self.db.closed:
            self.db = store.connect(purpose="writer")
        db = self.db
        with store.translated("copying the index"):
            row = db.execute(
                sql.SQL("SELECT coalesce(max(number), 0) FROM {}").format(store.ident("versions"))
            ).fetchone()
            version = _version_name(int(row[0] if row else 0) + 1)
            schema = store.version_schema(version)
            db.execute(
                sql.SQL("INSERT INTO {} (name, number, state) VALUES (%s, %s, 'staging')").format(
                    store.ident("versions")
                ),
                (version, _version_number(version)),
            )
            db.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
            db.commit()  # registered before any work: a killed writer's copy gets dropped
            self.staging_version = version
            self.deferred_indexes = []
            if self.base_version:
                self.deferred_indexes = _copy_schema(
                    db, store.version_schema(self.base_version), schema
                )
            db.execute(sql.SQL(_CATALOG_DDL).format(t=sql.Identifier(schema, "articles")))
            db.commit()
        self.catalog_table = sql.Identifier(schema, "articles")
        self.embeddings = store.load_embeddings(version, self.base_manifest, self.choice)

    def close(self) -> None:
        """Drop unpublished work (the staging schema)."""
        with contextlib.suppress(Exception):
            self.embeddings.close()
        if self.db is not None:
            with contextlib.suppress(Exception):
                self.db.rollback()
                if self.staging_version is not None:
                    self.store._drop_version(
                        self.db, self.staging_version, _version_number(self.staging_version)
                    )
                    self.db.commit()
            _close_quietly(self.db)
            self.db = None
        self.staging_version = None

    # -- the catalog -----------------------------------------------------------------------------

    def _run(self, query: sql.Composed, params: Any = None) -> list[tuple[Any, ...]]:
        assert self.db is not None
        with self.store.translated("updating the catalog"):
            cursor = self.db.execute(query, params)
            return cursor.fetchall() if cursor.description else []

    def known(self, pmids: Iterable[str]) -> dict[str, tuple[str, int, str]]:
        """``pmid -> (fingerprint, passages, sources)`` for the given PMIDs already indexed."""
        rows = self._run(
            sql.SQL(
                "SELECT pmid, fingerprint, passages, sources FROM {} WHERE pmid = ANY(%s)"
            ).format(self.catalog_table),
            (list(pmids),),
        )
        return {pmid: (fp, passages, sources) for pmid, fp, passages, sources in rows}

    def pmids_from_source(self, source: str) -> set[str]:
        """PMIDs whose records came (among others) from ``source``."""
        from indexing.article import join_list

        rows = self._run(
            sql.SQL("SELECT pmid FROM {} WHERE strpos(sources, %s) > 0").format(self.catalog_table),
            (join_list([source]),),
        )
        return {pmid for (pmid,) in rows}

    def article_count(self) -> int:
        """Articles in the working copy."""
        rows = self._run(sql.SQL("SELECT count(*) FROM {}").format(self.catalog_table))
        return int(rows[0][0])

    def _set_sources(self, pmid: str, sources: str) -> None:
        self._run(
            sql.SQL("UPDATE {} SET sources = %s WHERE pmid = %s").format(self.catalog_table),
            (sources, pmid),
        )

    def _put_articles(self, rows: list[tuple[str, str, int, str, str, str, str]]) -> None:
        assert self.db is not None
        with self.store.translated("updating the catalog"), self.db.cursor() as cursor:
            cursor.executemany(
                sql.SQL(
                    "INSERT INTO {} VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (pmid) DO UPDATE "
                    "SET fingerprint = EXCLUDED.fingerprint, passages = EXCLUDED.passages, "
                    "sources = EXCLUDED.sources, edat = EXCLUDED.edat, mdat = EXCLUDED.mdat, "
                    "updated_at = EXCLUDED.updated_at"
                ).format(self.catalog_table),
                rows,
            )

    def _delete_articles(self, pmids: list[str]) -> None:
        self._run(
            sql.SQL("DELETE FROM {} WHERE pmid = ANY(%s)").format(self.catalog_table), (pmids,)
        )

    # -- changes: txtai's errors become DatabaseError ------------------------------------------

    def upsert_articles(self, articles: Any, source: str = "") -> Any:
        """See :meth:`IndexWriter.upsert_articles`."""
        with self.store.translated("indexing"):
            self._defer_hnsw()
            return super().upsert_articles(articles, source)

    def _defer_hnsw(self) -> None:
        """Drop the staging schema's HNSW indexes (txtai builds one with a new index).

        Through txtai's own session: its uncommitted inserts hold the table, so a DROP on
        another connection would wait for them forever.
        """
        from sqlalchemy import text

        session = getattr(getattr(self.embeddings, "ann", None), "database", None)
        if session is None or self.staging_version is None:
            return
        schema = self.store.version_schema(self.staging_version)
        rows = session.execute(text(_HNSW_INDEXES), {"schema": schema}).fetchall()
        for name, definition in rows:
            self.deferred_indexes.append(str(definition))
            session.execute(text(f'DROP INDEX "{schema}"."{name}"'))

    def delete_pmids(self, pmids: Iterable[str]) -> int:
        """See :meth:`IndexWriter.delete_pmids`."""
        with self.store.translated("deleting"):
            return super().delete_pmids(pmids)

    # -- publishing ------------------------------------------------------------------------------

    def publish(self, run_id: str = "", reopen: bool = False) -> Manifest:
        """Commit the staging schema and switch the pointer to it in one transaction."""
        store, db = self.store, self.db
        assert db is not None and self.staging_version is not None
        version = self.staging_version
        with store.translated("publishing"):
            articles = self.article_count()
            passages = int(self.embeddings.count()) if articles else 0
            _commit(self.embeddings)
            manifest = self._manifest(version, articles, passages, run_id)
            manifest = replace(manifest, embeddings_config=_strip_urls(manifest.embeddings_config))
            self.embeddings.close()
            for definition in dict.fromkeys(self.deferred_indexes):
                db.execute(definition)
            self.deferred_indexes = []
            for (table,) in db.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s",
                (store.version_schema(version),),
            ).fetchall():
                db.execute(
                    sql.SQL("ANALYZE {}").format(
                        sql.Identifier(store.version_schema(version), table)
                    )
                )
            db.execute(
                sql.SQL(
                    "UPDATE {} SET state = 'published', manifest = %s, published_at = now() "
                    "WHERE name = %s"
                ).format(store.ident("versions")),
                (manifest.to_json(), version),
            )
            db.execute(
                sql.SQL("UPDATE {} SET version = %s").format(store.ident("current")), (version,)
            )
            db.commit()
        self.staging_version = None
        log.info(
            "published index version %s (%d articles, %d passages)", version, articles, passages
        )
        self.base_version, self.base_manifest, self.dirty = version, manifest, False
        store.cleanup()
        if reopen:
            self._open_staging()
        return manifest


_HNSW_INDEXES = (
    "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_class i "
    "JOIN pg_am a ON a.oid = i.relam JOIN pg_namespace n ON n.oid = i.relnamespace "
    "WHERE a.amname = 'hnsw' AND n.nspname = :schema"
)


def _copy_schema(db: psycopg.Connection[Any], source: str, target: str) -> list[str]:
    """Copy every table of ``source`` into ``target``: rows first, then indexes in bulk.

    Returns:
        The definitions of the HNSW indexes, which are not built here: the writer builds
        them when it publishes, after its inserts.
    """
    tables = [
        str(name)
        for (name,) in db.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY tablename", (source,)
        ).fetchall()
    ]
    for table in tables:
        src, dst = sql.Identifier(source, table), sql.Identifier(target, table)
        db.execute(
            sql.SQL(
                "CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING GENERATED "
                "INCLUDING CONSTRAINTS INCLUDING STORAGE)"
            ).format(dst, src)
        )
        columns = [
            sql.Identifier(str(name))
            for (name,) in db.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
                "AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
                (f'"{source}"."{table}"',),
            ).fetchall()
        ]
        names = sql.SQL(", ").join(columns)
        db.execute(sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(dst, names, names, src))
    # Indexes after the rows: an HNSW or GIN index builds far faster in bulk than row by row.
    indexes = db.execute(
        "SELECT t.relname, pg_get_indexdef(i.indexrelid), c.conname, pg_get_constraintdef(c.oid) "
        "FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid "
        "JOIN pg_namespace n ON n.oid = t.relnamespace "
        "LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.contype IN ('p', 'u') "
        "WHERE n.nspname = %s",
        (source,),
    ).fetchall()
    deferred = []
    for table, indexdef, constraint, condef in indexes:
        if constraint:
            db.execute(
                sql.SQL(
                    "ALTER TABLE {} ADD CONSTRAINT {} "
                    + condef.replace("{", "{{").replace("}", "}}")
                ).format(sql.Identifier(target, table), sql.Identifier(constraint))
            )
        else:
            # Version schemas are plain lower-case names, which PostgreSQL never quotes.
            prefix = f" ON {source}."
            if prefix not in indexdef:
                raise DatabaseError(f"cannot copy index definition {indexdef!r}")
            copied = indexdef.replace(prefix, f" ON {target}.", 1)
            if " USING hnsw " in copied:
                deferred.append(copied)
            else:
                db.execute(copied)
    return deferred


# --- readers --------------------------------------------------------------------------------


class PgPublishedIndex(PublishedIndex):
    """A read-only handle on one published version in PostgreSQL.

    Holds a shared advisory lock on the version for as long as it is open, so cleanup never
    drops it under a search; it is released when the handle is closed or garbage-collected.
    """

    def __init__(self, store: PgIndexStore, version: str) -> None:
        self.version = version
        self.store = store
        self.lock = threading.Lock()
        self.broken = False
        self.embeddings = None
        pin = store.connect(autocommit=True, purpose="reader")
        try:
            with store.translated("opening the index"):
                held = pin.execute(
                    "SELECT pg_try_advisory_lock_shared(%s, %s)",
                    (_lock_key(store.schema, "pin"), _version_number(version)),
                ).fetchone()
            if not (held and held[0]):
                raise IndexCorruptError(f"version {version} is being removed from {store.where}")
            self.manifest = store.manifest(version)  # after pinning: it cannot vanish now
            if self.manifest.articles:
                self.embeddings = store.load_embeddings(
                    version, self.manifest, ModelChoice(self.manifest.embeddings_model, "")
                )
        except BaseException:
            _close_quietly(self.embeddings, pin)
            raise
        self._finalizer = weakref.finalize(self, _close_quietly, self.embeddings, pin)

    def search(
        self,
        query: str,
        limit: int,
        parameters: dict[str, Any] | None = None,
        weights: float | None = None,
    ) -> list[dict[str, Any]]:
        """Run a txtai query; keyword-only scores (``weights=0``) come back relative to the best.

        txtai's ``pgtext`` scores are raw ``ts_rank`` values (typically below 0.1), where its
        BM25 scores are normalised; dividing by the query's best keeps the fused score
        ``w·cosine + (1−w)·keyword`` of :mod:`rag.search` on the same 0..1 scale.
        """
        if self.embeddings is None:
            return []
        from sqlalchemy.exc import OperationalError
        from txtai.database.sql.error import SQLError

        with self.lock:
            try:
                rows = list(
                    self.embeddings.search(query, limit, weights=weights, parameters=parameters)
                )
                _commit(self.embeddings)  # end the read transactions: no lock or snapshot held
            except (SQLError, OperationalError, psycopg.Error) as exc:
                cause = exc.args[0] if isinstance(exc, SQLError) and exc.args else exc
                self.broken = isinstance(cause, (OperationalError, psycopg.OperationalError))
                raise DatabaseError(
                    f"search failed in {self.store.where}: "
                    f"{self.store.scrub(str(cause).strip().splitlines()[0])}"
                ) from None
        if weights == 0.0:
            best = max((float(row.get("score") or 0.0) for row in rows), default=0.0)
            if best > 0:
                for row in rows:
                    if row.get("score") is not None:
                        row["score"] = float(row["score"]) / best
        return rows

    def close(self) -> None:
        """Close txtai's connections and release the pin."""
        self._finalizer()
