"""The PostgreSQL writer: a staging copy of the published version's schema, inside the server."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from indexing.article import Article, join_list
from indexing.models import ModelChoice
from indexing.store.base import (
    Catalog,
    CatalogEntry,
    CatalogRow,
    Writer,
    version_name,
    version_number,
)
from indexing.store.postgres.common import DatabaseError, close_quietly, commit_sessions
from indexing.store.postgres.urls import strip_urls
from indexing.store.records import Manifest, UpsertCounts

if TYPE_CHECKING:
    from indexing.store.postgres.store import PgStore

log = logging.getLogger(__name__)

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


class PgWriter(Writer):
    """Changes a staging copy of the published version inside the server, then publishes it."""

    store: PgStore

    def __init__(self, store: PgStore, choice: ModelChoice | None = None) -> None:
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
            version = version_name(int(row[0] if row else 0) + 1)
            schema = store.version_schema(version)
            db.execute(
                sql.SQL("INSERT INTO {} (name, number, state) VALUES (%s, %s, 'staging')").format(
                    store.ident("versions")
                ),
                (version, version_number(version)),
            )
            db.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
            db.commit()  # registered before any work: a killed writer's copy gets dropped
            self.staging_version = version
            self.deferred_indexes = []
            if self.base_version:
                self.deferred_indexes = copy_schema(
                    db, store.version_schema(self.base_version), schema
                )
            db.execute(sql.SQL(_CATALOG_DDL).format(t=sql.Identifier(schema, "articles")))
            db.commit()
        self.catalog_table = sql.Identifier(schema, "articles")
        self.embeddings = store.load_embeddings(
            version, self.base_manifest, self.choice, writing=True
        )

    def close(self) -> None:
        """Drop unpublished work (the staging schema)."""
        with contextlib.suppress(Exception):
            self.embeddings.close()
        if self.db is not None:
            with contextlib.suppress(Exception):
                self.db.rollback()
                if self.staging_version is not None:
                    self.store.drop_version(
                        self.db, self.staging_version, version_number(self.staging_version)
                    )
                    self.db.commit()
            close_quietly(self.db)
            self.db = None
        self.staging_version = None

    # -- the catalog -----------------------------------------------------------------------------

    def _run(self, query: sql.Composed, params: Any = None) -> list[tuple[Any, ...]]:
        assert self.db is not None
        with self.store.translated("updating the catalog"):
            cursor = self.db.execute(query, params)
            return cursor.fetchall() if cursor.description else []

    def known(self, pmids: Iterable[str]) -> Catalog:
        """``pmid -> (fingerprint, passages, sources)`` for the given PMIDs already indexed."""
        rows = self._run(
            sql.SQL(
                "SELECT pmid, fingerprint, passages, sources FROM {} WHERE pmid = ANY(%s)"
            ).format(self.catalog_table),
            (list(pmids),),
        )
        return {pmid: CatalogEntry(fp, passages, sources) for pmid, fp, passages, sources in rows}

    def pmids_from_source(self, source: str) -> set[str]:
        """PMIDs whose records came (among others) from ``source``."""
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

    def _put_catalog(self, rows: list[CatalogRow]) -> None:
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

    def _delete_catalog(self, pmids: list[str]) -> None:
        self._run(
            sql.SQL("DELETE FROM {} WHERE pmid = ANY(%s)").format(self.catalog_table), (pmids,)
        )

    # -- changes: txtai's errors become DatabaseError ------------------------------------------

    def upsert_articles(
        self,
        articles: Iterable[Article],
        source: str = "",
        on_tagged: Callable[[int], None] | None = None,
    ) -> UpsertCounts:
        """See :meth:`Writer.upsert_articles`; driver errors become :class:`DatabaseError`."""
        with self.store.translated("indexing"):
            self._defer_hnsw()
            return super().upsert_articles(articles, source, on_tagged)

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
        """See :meth:`Writer.delete_pmids`; driver errors become :class:`DatabaseError`."""
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
            commit_sessions(self.embeddings)
            manifest = self._new_manifest(version, articles, passages, run_id)
            manifest = replace(manifest, embeddings_config=strip_urls(manifest.embeddings_config))
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
            if store.write_lock is not None:
                # Last moment to find that the lock was lost; the pointer below has not moved.
                store.write_lock.verify(db)
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


def copy_schema(db: psycopg.Connection[Any], source: str, target: str) -> list[str]:
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
