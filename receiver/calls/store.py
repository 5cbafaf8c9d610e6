"""
Call records: one per call id, tying webhooks, streams and recordings together.

``CallStore`` is the interface the listener, the stream observer, the
answer endpoint and the transcript outputs use. ``SqliteCallStore``
implements it on the embedded SQLite file of ``db.py`` (WAL mode), the
default; ``pg.PostgresCallStore`` on a PostgreSQL server that every host of a
deployment shares. ``open_store`` picks one from the ``database`` setting (a
path, or a ``postgresql://`` URL). Both run the same functions of ``db.py``
on the same threads, so they answer alike.

No database call ever runs on the event loop. Writes go through one writer
thread fed by a queue (in order, one transaction each); reads go through a
reader thread with its own connection (WAL lets it read while the writer
writes). The stream side only enqueues (``stream_started`` / ``stream_ended``
return at once), so a slow or failing store never delays a media frame. A
stream write that fails is kept in a bounded backlog and replayed when the
store works again, since nobody else would send it twice; a webhook write
that fails raises ``StoreUnavailable`` (a 503), and the platform retries it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any, Protocol

from receiver.calls.db import (
    AnswerRecord,
    Connection,
    Outcome,
    StreamControlRecord,
    StreamEnd,
    StreamStart,
    connect,
)
from receiver.calls.threads import STORE_LOGGER as STORE_LOGGER
from receiver.calls.threads import ThreadedCallStore
from receiver.calls.webhooks import StoreUnavailable, WebhookEvent
from receiver.errors import ConfigError
from receiver.security.auth import redact_url
from receiver.transcription.transcript import Transcript

# -- the interface ----------------------------------------------------------------


class CallStore(Protocol):
    """Where call records live. Async for callers on the loop; never blocks it."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def record_webhook(self, event: WebhookEvent) -> Outcome:
        """Apply one webhook; ``duplicate`` when this body was stored before.

        Raises:
            StoreUnavailable: The store cannot take it now (the platform should retry).
        """
        ...

    def stream_started(self, start: StreamStart) -> None:
        """Enqueue a stream start; returns at once, never raises."""

    def stream_ended(self, end: StreamEnd) -> None:
        """Enqueue a stream end; returns at once, never raises."""

    def answer_returned(self, answer: AnswerRecord) -> None:
        """Enqueue an answer_url response for the timeline; returns at once, never raises."""

    def transcript_published(self, transcript: Transcript) -> None:
        """Enqueue a transcript event (stored once per identity); returns at once, never raises."""

    def stream_controlled(self, change: StreamControlRecord) -> None:
        """Enqueue a pause, resume or stop of a live stream for the timeline; returns at once, never raises."""

    async def flush(self) -> None:
        """Wait until every write enqueued so far has been attempted."""

    async def get_call(self, call_id: str) -> dict[str, Any] | None: ...

    async def list_calls(
        self,
        *,
        status: str | None = None,
        since: str | None = None,
        until: str | None = None,
        search: str | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]: ...

    async def call_events(self, call_id: str) -> list[dict[str, Any]] | None: ...

    async def transcripts(self, call_id: str) -> list[Transcript]: ...


def is_postgres(database: str) -> bool:
    """Whether the ``database`` setting names a PostgreSQL server rather than a SQLite file."""
    return database.startswith(("postgresql://", "postgres://"))


def open_store(database: str, *, timeout: float = 5.0) -> CallStore:
    """The store the ``database`` setting names (not started).

    Raises:
        ConfigError: A PostgreSQL URL without the ``postgres`` extra installed.
    """
    if not is_postgres(database):
        return SqliteCallStore(database, timeout=timeout)
    try:
        from receiver.calls.pg import PostgresCallStore
    except ImportError as exc:
        raise ConfigError(
            f"database {redact_url(database)} needs psycopg: pip install 'receiver[postgres]' ({exc})"
        ) from None
    return PostgresCallStore(database, timeout=timeout)


def connect_database(
    database: str, *, read_only: bool = False, upgrade: bool = True, timeout: float = 5.0
) -> Connection:
    """A blocking connection to the ``database`` setting's store, migrated unless ``read_only`` (for commands).

    Raises:
        StoreUnavailable: It cannot be opened or migrated (the message says why).
        ConfigError: A PostgreSQL URL without the ``postgres`` extra installed.
    """
    if not is_postgres(database):
        try:
            return connect(database, timeout=timeout, read_only=read_only, upgrade=upgrade)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open {database}: {exc}") from None
    try:
        import psycopg

        from receiver.calls import pg
    except ImportError as exc:
        raise ConfigError(
            f"database {redact_url(database)} needs psycopg: pip install 'receiver[postgres]' ({exc})"
        ) from None
    try:
        return pg.connect(database, timeout=timeout, read_only=read_only, upgrade=upgrade)
    except psycopg.Error as exc:
        raise StoreUnavailable(f"cannot open {redact_url(database)}: {str(exc).strip()}") from None


class SqliteCallStore(ThreadedCallStore):
    """``CallStore`` on a SQLite file (WAL), one writer thread and one reader thread.

    Args:
        path: The database file (created with its schema when missing).
        timeout: Seconds a webhook write or a read may take before it is
            answered as unavailable (also SQLite's busy timeout).
    """

    def __init__(self, path: str | Path, *, timeout: float = 5.0) -> None:
        super().__init__(timeout=timeout)
        self.path = Path(path)

    @property
    def where(self) -> str:
        return str(self.path)

    async def _prepare(self) -> None:
        if self.path.parent != Path():
            await asyncio.to_thread(self.path.parent.mkdir, parents=True, exist_ok=True)

    def _open(self, *, read_only: bool) -> Connection:
        return connect(self.path, timeout=self.timeout, read_only=read_only)
