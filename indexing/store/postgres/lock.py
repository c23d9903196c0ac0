"""The PostgreSQL backend's locks: session-level advisory locks, freed when the holder dies."""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from indexing.store.base import IndexLockedError, StoreLock, WriterLockLostError
from indexing.store.postgres.common import close_quietly, fetch_value, holder_text, lock_key

if TYPE_CHECKING:
    from indexing.store.postgres.store import PgStore


class AdvisoryLock(StoreLock):
    """A session-level advisory lock on its own connection, with who holds it in ``S.locks``.

    The server releases it when the connection closes — also when the holder is killed — so
    a lock is never left behind; the ``S.locks`` row only names the latest holder.
    """

    def __init__(self, store: PgStore, kind: str, wait: float, purpose: str) -> None:
        self.store = store
        self.kind = kind
        self.wait = wait
        self.purpose = purpose
        self._conn: psycopg.Connection[Any] | None = None
        self._pid = 0  # the server process of the lock's session

    def __enter__(self) -> AdvisoryLock:
        store = self.store
        # The connection idles for the whole run: keepalives notice a peer that vanished.
        conn = store.connect(autocommit=True, purpose=f"{self.kind} lock", keepalive=True)
        try:
            with store.translated("taking the lock"):
                store.check_schema(conn, create=True)
                key = lock_key(store.schema, self.kind)
                deadline = time.monotonic() + self.wait
                while not fetch_value(conn, "SELECT pg_try_advisory_lock(%s, 0)", (key,)):
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
                    (self.kind, holder_text(self.purpose)),
                )
        except BaseException:
            close_quietly(conn)
            raise
        self._conn = conn
        self._pid = int(conn.info.backend_pid)
        return self

    def verify(self, db: psycopg.Connection[Any]) -> None:
        """Raise unless the lock's session is alive and the server still counts it as holding.

        Called by the writer on its own connection ``db`` right before it publishes: a lock
        whose connection dropped (terminated, network gone) is free, and another writer may
        have taken it meanwhile.

        Raises:
            WriterLockLostError: the lock is no longer held; publish nothing.
        """
        lost = WriterLockLostError(
            f"the {self.kind} lock on {self.store.where} was lost during the run (its connection "
            "to the server dropped), so another writer may have run: nothing was published; "
            "run again"
        )
        if self._conn is None or self._conn.closed:
            raise lost
        try:
            self._conn.execute("SELECT 1")
        except psycopg.Error:
            raise lost from None
        # Advisory locks appear in pg_locks with the first key as an unsigned classid.
        key = lock_key(self.store.schema, self.kind) & 0xFFFFFFFF
        held = fetch_value(
            db,
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = %s "
            "AND classid = %s::bigint::oid AND objid = 0 AND objsubid = 2 AND granted",
            (self._pid, key),
        )
        if not held:
            raise lost

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
                    "SELECT pg_advisory_unlock(%s, 0)", (lock_key(self.store.schema, self.kind),)
                )
            close_quietly(self._conn)
            self._conn = None
