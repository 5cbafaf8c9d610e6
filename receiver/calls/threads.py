"""
The call store's threads: one writer thread fed by a queue, one reader thread, each with its own connection.

``ThreadedCallStore`` is ``CallStore`` over any engine that gives a blocking
connection answering ``db.py``'s functions: ``store.SqliteCallStore`` and
``pg.PostgresCallStore`` say how to open one and which errors mean the
database is unavailable. No database call runs on the event loop; the stream
side only enqueues, and a failed stream write waits in a bounded backlog
(``BACKLOG_LIMIT``) until the store works again.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, Final, Self, TypeVar

from receiver.calls.db import (
    AnswerRecord,
    Connection,
    Outcome,
    StreamControlRecord,
    StreamEnd,
    StreamStart,
    apply_answer,
    apply_stream_control,
    apply_stream_end,
    apply_stream_start,
    apply_transcript,
    apply_webhook,
    read_call,
    read_calls,
    read_events,
    read_transcripts,
)
from receiver.calls.webhooks import StoreUnavailable, WebhookEvent
from receiver.logging import get_logger
from receiver.metrics import STORE_SECONDS
from receiver.transcription.transcript import Transcript

STORE_LOGGER: Final = "receiver.store"
BACKLOG_LIMIT: Final = 10_000  # stream lifecycle writes kept while the store is down

log = get_logger(STORE_LOGGER)

T = TypeVar("T")
A = TypeVar("A")

_Job = tuple[Callable[[Connection], Any], "asyncio.AbstractEventLoop | None", "asyncio.Future[Any] | None"]


class _Worker:
    """One thread, one connection, a FIFO queue of jobs (blocking calls stay here).

    ``errors`` are the engine's exceptions that mean "the database cannot do it
    now" (a 503, a backlogged write); anything else is a bug.
    """

    def __init__(
        self,
        name: str,
        open_connection: Callable[[], Connection],
        errors: tuple[type[BaseException], ...] = (sqlite3.Error,),
        op: str = "write",
    ) -> None:
        self._open = open_connection
        self._seconds = STORE_SECONDS.labels(op)  # receiver_store_seconds: each job's time on this thread
        self._errors = errors
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._conn: Connection | None = None
        self._backlog: collections.deque[Callable[[Connection], Any]] = collections.deque(maxlen=BACKLOG_LIMIT)
        self._failing = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[Connection], T]) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((fn, loop, future))
        return future

    def enqueue(self, fn: Callable[[Connection], Any]) -> None:
        """Fire and forget; a failed job goes to the backlog and is replayed later."""
        self._queue.put((fn, None, None))

    def stop(self) -> None:
        self._queue.put(None)

    async def join(self) -> None:
        await asyncio.to_thread(self._thread.join)

    @property
    def backlog(self) -> int:
        return len(self._backlog)

    def _connection(self) -> Connection:
        if self._conn is None:
            self._conn = self._open()
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(*self._errors):  # closing a broken connection
                self._conn.close()
            self._conn = None

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                break
            fn, loop, future = job
            started = time.perf_counter()
            try:
                self._job(fn, loop, future)
            finally:
                self._seconds.observe(time.perf_counter() - started)
        self._drop_connection()

    def _job(
        self,
        fn: Callable[[Connection], Any],
        loop: asyncio.AbstractEventLoop | None,
        future: asyncio.Future[Any] | None,
    ) -> None:
        if future is None:
            self._backlog.append(fn)
            self._replay()
            return
        try:
            self._replay()
            result: Any = fn(self._connection())
        except self._errors as exc:
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

    def _replay(self) -> None:
        """Run the backlog of fire-and-forget writes, oldest first, until one fails."""
        while self._backlog:
            fn = self._backlog[0]
            try:
                fn(self._connection())
            except self._errors as exc:
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


class ThreadedCallStore:
    """``CallStore`` on one writer thread and one reader thread, each with its own connection.

    Subclasses say how to open a connection (``_open``) and which errors mean
    the database is unavailable (``_errors``).

    Args:
        timeout: Seconds a webhook write or a read may take before it is
            answered as unavailable.
    """

    _errors: tuple[type[BaseException], ...] = (sqlite3.Error,)

    def __init__(self, *, timeout: float = 5.0) -> None:
        self.timeout = timeout
        self._writer: _Worker | None = None
        self._reader: _Worker | None = None

    def _open(self, *, read_only: bool) -> Connection:
        raise NotImplementedError

    @property
    def where(self) -> str:
        """The database, for logs (no password)."""
        raise NotImplementedError

    async def _prepare(self) -> None:
        """Anything to do before the threads open their connections."""

    async def start(self) -> None:
        """Start the threads and open (and migrate) the database; a failure is logged, each request retries."""
        await self._prepare()
        self._writer = _Worker("store-writer", lambda: self._open(read_only=False), self._errors, "write")
        self._reader = _Worker("store-reader", lambda: self._open(read_only=True), self._errors, "read")
        try:
            await self._write(lambda conn: None)
        except StoreUnavailable as exc:
            log.error("store_unavailable", database=self.where, error=exc.message[:200])

    async def close(self) -> None:
        for worker in (self._writer, self._reader):
            if worker is not None:
                worker.stop()
                await worker.join()
        if self._writer is not None and self._writer.backlog:
            log.error("store_backlog_lost", count=self._writer.backlog)
        self._writer = self._reader = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _write(self, fn: Callable[[Connection], T]) -> T:
        assert self._writer is not None, "store not started"
        return await self._wait(self._writer.submit(fn))

    async def _read(self, fn: Callable[[Connection], T]) -> T:
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
        self._enqueue(apply_stream_start, start)

    def stream_ended(self, end: StreamEnd) -> None:
        self._enqueue(apply_stream_end, end)

    def answer_returned(self, answer: AnswerRecord) -> None:
        self._enqueue(apply_answer, answer)

    def transcript_published(self, transcript: Transcript) -> None:
        self._enqueue(apply_transcript, transcript)

    def stream_controlled(self, change: StreamControlRecord) -> None:
        self._enqueue(apply_stream_control, change)

    def _enqueue(self, apply: Callable[[Connection, A], object], item: A) -> None:
        """A lifecycle write for the writer thread, in order; none before ``start`` (nothing to write to)."""
        if self._writer is not None:
            self._writer.enqueue(lambda conn: apply(conn, item))

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
        self,
        *,
        status: str | None = None,
        since: str | None = None,
        until: str | None = None,
        search: str | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        return await self._read(
            lambda conn: read_calls(conn, status=status, since=since, until=until, search=search, limit=limit)
        )

    async def call_events(self, call_id: str) -> list[dict[str, Any]] | None:
        return await self._read(lambda conn: read_events(conn, call_id))

    async def transcripts(self, call_id: str) -> list[Transcript]:
        return await self._read(lambda conn: read_transcripts(conn, call_id))
