"""
Call records: one per call id, tying webhooks, streams and recordings together.

``CallStore`` is the interface the listener, the stream observer and the
answer endpoint use; ``SqliteCallStore`` implements it on the embedded
SQLite file of ``db.py`` (WAL mode). A server database could replace it
behind the same interface.

No SQLite call ever runs on the event loop. Writes go through one writer
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
import collections
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

from receiver.calls.db import (
    AnswerRecord,
    Outcome,
    StreamEnd,
    StreamStart,
    apply_answer,
    apply_stream_end,
    apply_stream_start,
    apply_webhook,
    connect,
    read_call,
    read_calls,
    read_events,
)
from receiver.calls.webhooks import StoreUnavailable, WebhookEvent
from receiver.logging import get_logger

STORE_LOGGER: Final = "receiver.calls.store"
BACKLOG_LIMIT: Final = 10_000  # stream lifecycle writes kept while the store is down

log = get_logger(STORE_LOGGER)

T = TypeVar("T")

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

    async def flush(self) -> None:
        """Wait until every write enqueued so far has been attempted."""

    async def get_call(self, call_id: str) -> dict[str, Any] | None: ...

    async def list_calls(
        self, *, status: str | None = None, since: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]: ...

    async def call_events(self, call_id: str) -> list[dict[str, Any]] | None: ...


# -- the threads ---------------------------------------------------------------------------

_Job = tuple[Callable[[sqlite3.Connection], Any], "asyncio.AbstractEventLoop | None", "asyncio.Future[Any] | None"]


class _Worker:
    """One thread, one connection, a FIFO queue of jobs (blocking calls stay here)."""

    def __init__(self, name: str, open_connection: Callable[[], sqlite3.Connection]) -> None:
        self._open = open_connection
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._conn: sqlite3.Connection | None = None
        self._backlog: collections.deque[Callable[[sqlite3.Connection], Any]] = collections.deque(maxlen=BACKLOG_LIMIT)
        self._failing = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((fn, loop, future))
        return future

    def enqueue(self, fn: Callable[[sqlite3.Connection], Any]) -> None:
        """Fire and forget; a failed job goes to the backlog and is replayed later."""
        self._queue.put((fn, None, None))

    def stop(self) -> None:
        self._queue.put(None)

    async def join(self) -> None:
        await asyncio.to_thread(self._thread.join)

    @property
    def backlog(self) -> int:
        return len(self._backlog)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = self._open()
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):  # closing a broken connection
                self._conn.close()
            self._conn = None

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                break
            fn, loop, future = job
            if future is None:
                self._backlog.append(fn)
                self._replay()
                continue
            try:
                self._replay()
                result: Any = fn(self._connection())
            except sqlite3.Error as exc:
                self._drop_connection()
                error: BaseException = StoreUnavailable(f"store unavailable: {exc}")
                assert loop is not None
                loop.call_soon_threadsafe(_resolve, future, None, error)
            except BaseException as exc:  # a bug: let the caller see it as a 500
                assert loop is not None
                loop.call_soon_threadsafe(_resolve, future, None, exc)
            else:
                assert loop is not None
                loop.call_soon_threadsafe(_resolve, future, result, None)
        self._drop_connection()

    def _replay(self) -> None:
        """Run the backlog of fire-and-forget writes, oldest first, until one fails."""
        while self._backlog:
            fn = self._backlog[0]
            try:
                fn(self._connection())
            except sqlite3.Error as exc:
                self._drop_connection()
                if not self._failing:
                    self._failing = True
                    log.error("store_write_failed", error=str(exc)[:200], backlog=len(self._backlog))
                return
            except Exception as exc:  # a bug in one job must not wedge the others
                log.error("store_write_dropped", error=repr(exc)[:200])
            self._backlog.popleft()
            if self._failing:
                self._failing = False
                log.info("store_recovered")


def _resolve(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the caller gave up waiting
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class SqliteCallStore:
    """``CallStore`` on a SQLite file (WAL), one writer thread and one reader thread.

    Args:
        path: The database file (created with its schema when missing).
        timeout: Seconds a webhook write or a read may take before it is
            answered as unavailable (also SQLite's busy timeout).
    """

    def __init__(self, path: str | Path, *, timeout: float = 5.0) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self._writer: _Worker | None = None
        self._reader: _Worker | None = None

    async def start(self) -> None:
        """Start the threads and try to open the database (a failure is logged; each request retries)."""
        if self.path.parent != Path():
            await asyncio.to_thread(self.path.parent.mkdir, parents=True, exist_ok=True)
        self._writer = _Worker("store-writer", lambda: connect(self.path, timeout=self.timeout))
        self._reader = _Worker("store-reader", lambda: connect(self.path, timeout=self.timeout, read_only=True))
        try:
            await self._write(lambda conn: None)
        except StoreUnavailable as exc:
            log.error("store_unavailable", path=str(self.path), error=exc.message[:200])

    async def close(self) -> None:
        for worker in (self._writer, self._reader):
            if worker is not None:
                worker.stop()
                await worker.join()
        if self._writer is not None and self._writer.backlog:
            log.error("store_backlog_lost", count=self._writer.backlog)
        self._writer = self._reader = None

    async def __aenter__(self) -> SqliteCallStore:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        assert self._writer is not None, "store not started"
        return await self._wait(self._writer.submit(fn))

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        assert self._reader is not None, "store not started"
        return await self._wait(self._reader.submit(fn))

    async def _wait(self, future: asyncio.Future[T]) -> T:
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.timeout)
        except TimeoutError:
            raise StoreUnavailable(f"store did not answer within {self.timeout} s") from None

    async def record_webhook(self, event: WebhookEvent) -> Outcome:
        return await self._write(lambda conn: apply_webhook(conn, event))

    def stream_started(self, start: StreamStart) -> None:
        if self._writer is not None:
            self._writer.enqueue(lambda conn: apply_stream_start(conn, start))

    def stream_ended(self, end: StreamEnd) -> None:
        if self._writer is not None:
            self._writer.enqueue(lambda conn: apply_stream_end(conn, end))

    def answer_returned(self, answer: AnswerRecord) -> None:
        if self._writer is not None:
            self._writer.enqueue(lambda conn: apply_answer(conn, answer))

    async def flush(self) -> None:
        assert self._writer is not None, "store not started"
        future = self._writer.submit(lambda conn: None)
        # Not bounded by the timeout: callers (tests, shutdown) want the queue drained.
        with contextlib.suppress(StoreUnavailable):
            await future

    @property
    def backlog(self) -> int:
        """Stream lifecycle writes waiting for the store to work again."""
        return self._writer.backlog if self._writer is not None else 0

    async def get_call(self, call_id: str) -> dict[str, Any] | None:
        return await self._read(lambda conn: read_call(conn, call_id))

    async def list_calls(
        self, *, status: str | None = None, since: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        return await self._read(lambda conn: read_calls(conn, status=status, since=since, limit=limit))

    async def call_events(self, call_id: str) -> list[dict[str, Any]] | None:
        return await self._read(lambda conn: read_events(conn, call_id))
