"""
The call store on PostgreSQL (psycopg 3), shared by every host of a deployment.

``PostgresCallStore`` is ``SqliteCallStore``'s twin: the same writer and
reader threads, the same ``db.py`` functions. ``PgConnection`` makes a
psycopg connection answer those functions as sqlite3 does: ``?``
placeholders, ``BEGIN IMMEDIATE``, rows read by column name. What SQLite
gets from its single-writer lock, PostgreSQL gets from its own rules: a
duplicate webhook taken by two listeners at once meets the unique
``dedupe_key`` (the second insert waits for the first and stores nothing),
and the read-merge-write of a call's row holds a transaction advisory lock
on that call id (``lock_call``), so events of one call arriving on different
hosts are merged one after another.

Blocking: runs on the store's threads or in a command, never on the event loop.
"""

from __future__ import annotations

import functools
from typing import Any, Final

import psycopg
from psycopg.rows import dict_row

from receiver.calls.migrations import migrate
from receiver.calls.threads import ThreadedCallStore
from receiver.security.auth import redact_url

APPLICATION_NAME: Final = "receiver"


@functools.lru_cache(maxsize=256)
def _translate(sql: str) -> str:
    """sqlite3's placeholders to psycopg's: ``?`` → ``%s``, a literal ``%`` doubled."""
    return sql.replace("%", "%%").replace("?", "%s")


class PgConnection:
    """A psycopg connection (autocommit, dict rows) with sqlite3's calling conventions."""

    def __init__(self, conn: psycopg.Connection[dict[str, Any]]) -> None:
        self.raw = conn

    def execute(self, sql: str, parameters: Any = None, /) -> psycopg.Cursor[dict[str, Any]]:
        if parameters is None:  # no placeholders: psycopg takes the text as it is
            return self.raw.execute("BEGIN" if sql == "BEGIN IMMEDIATE" else sql)
        return self.raw.execute(_translate(sql), parameters)

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE

    def lock_call(self, call_id: str) -> None:
        """Serialise writers of one call until this transaction ends (any host)."""
        self.raw.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (call_id,))

    def close(self) -> None:
        self.raw.close()


def connect(url: str, *, timeout: float = 5.0, read_only: bool = False, upgrade: bool = True) -> PgConnection:
    """Open a connection to ``url`` (autocommit; transactions are explicit), migrated unless ``read_only``.

    Raises:
        psycopg.Error: The server cannot be reached, refuses us, or a migration fails.
    """
    raw = psycopg.connect(
        url,
        autocommit=True,
        row_factory=dict_row,
        connect_timeout=max(1, round(timeout)),
        application_name=APPLICATION_NAME,
    )
    conn = PgConnection(raw)
    try:
        # A statement that takes longer than the store waits is abandoned, not left holding locks.
        raw.execute(f"SET statement_timeout = {int(timeout * 1000)}")
        if read_only:
            raw.execute("SET default_transaction_read_only = on")
        elif upgrade:
            migrate(conn, "postgresql")
    except BaseException:
        raw.close()
        raise
    return conn


class PostgresCallStore(ThreadedCallStore):
    """``CallStore`` on a PostgreSQL server: one writer connection and one reader connection.

    Args:
        url: ``postgresql://user[:password]@host[:port]/database`` (libpq's URL form).
        timeout: Seconds a webhook write or a read may take before it is
            answered as unavailable (also the connect and statement timeouts).
    """

    _errors = (psycopg.Error,)

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        super().__init__(timeout=timeout)
        self.url = url

    @property
    def where(self) -> str:
        return redact_url(self.url)

    def _open(self, *, read_only: bool) -> PgConnection:
        return connect(self.url, timeout=self.timeout, read_only=read_only)
