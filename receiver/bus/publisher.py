"""
The receiver's side of the bus: a sink per stream, one publisher per process.

``BusSink`` is an ordinary sink: the fan-out hands it ``bus_block_ms`` of
every track at a time, from its own task, so the receive loop never sees
Redis. The sink only appends entries to the process's ``BusPublisher``, which
sends them in batches (one pipelined round trip) on its own task.

Bounded, never blocking: entries are at most ``bus_block_ms`` long (a longer
block is split), and audio entries waiting for Redis are capped at
``bus_queue``; past that a new audio entry is dropped and counted (a worker
sees the gap on the media clock, and its plugins get silence for it, as the
in-process fan-out does for a sink that fell behind). Lifecycle entries
(started, end) are never dropped: a worker must learn that a stream began
and ended. While Redis is unreachable the batch in hand is lost (counted),
the publisher retries with back-off, and logs once per outage.

Uses asyncio and redis-py's asyncio client; never touches the media socket.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from typing import Any, Final

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from receiver.bus import BusKeys, audio_entry, end_entry, started_entry
from receiver.logging import get_logger
from receiver.security.auth import redact_url
from receiver.sinks import AudioBlock, StreamInfo, StreamOutcome

BUS_LOGGER: Final = "receiver.bus"
BATCH: Final = 256  # entries per pipelined round trip
BACKOFF_MAX: Final = 2.0
SEND_TIMEOUT: Final = 5.0  # seconds a batch may take before Redis counts as unreachable
_EXPIRY_EVERY: Final = 30.0  # seconds between EXPIREs of one stream's audio key

log = get_logger(BUS_LOGGER)

# key, fields, MAXLEN (or None), trim by age (bool), audio (bool: may be dropped)
_Op = tuple[str, dict[bytes, bytes], int | None, bool, bool]


class BusPublisher:
    """Sends bus entries to Redis from one task; ``offer`` never waits.

    Args:
        url: ``redis://host:port/db``.
        keys: The deployment's key names.
        block_seconds: Audio per entry (to turn ``max_seconds`` into a MAXLEN).
        max_seconds: Audio a stream keeps on the bus (MAXLEN ~).
        queue: Audio entries that may wait for Redis before new ones are dropped.
        retention_seconds: Lifecycle entries are trimmed after this; a stream's
            audio key expires this long after its last entry.
    """

    def __init__(
        self,
        url: str,
        *,
        keys: BusKeys,
        block_seconds: float = 0.2,
        max_seconds: float = 120.0,
        queue: int = 2000,
        retention_seconds: float = 18_000.0,
    ) -> None:
        self.url = url
        self.keys = keys
        self.maxlen = max(10, int(max_seconds / block_seconds))
        self.queue_limit = queue
        self.retention = retention_seconds
        self._redis: aioredis.Redis | None = None
        self._pending: collections.deque[_Op] = collections.deque()
        self._audio_pending = 0
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()  # set while nothing waits to be sent
        self._idle.set()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self.published = 0
        self.dropped = 0  # audio entries refused because the queue was full
        self.failed = 0  # entries lost in a batch Redis did not take
        self._down_since: float | None = None
        self._expiry_set: dict[str, float] = {}  # audio key → when its expiry was last moved on

    # -- what the sinks call (on the loop, never waiting) ------------------------------

    def stream_started(self, info: StreamInfo) -> None:
        entry = started_entry(info)
        self._offer((self.keys.streams, entry, None, True, False))
        self._offer((self.keys.events, entry, None, True, False))

    def audio(self, info: StreamInfo, block: AudioBlock) -> bool:
        """Queue one block; False (and counted) when the queue is full."""
        if self._audio_pending >= self.queue_limit:
            self.dropped += 1
            return False
        self._audio_pending += 1
        self._offer((self.keys.audio(info), audio_entry(block), self.maxlen, False, True))
        return True

    def stream_ended(self, info: StreamInfo, outcome: StreamOutcome) -> None:
        self._offer((self.keys.audio(info), end_entry(outcome), self.maxlen, False, False))
        self._offer((self.keys.events, end_entry(outcome, kind=b"ended", info=info), None, True, False))

    def _offer(self, op: _Op) -> None:
        self._pending.append(op)
        self._idle.clear()
        self._wake.set()

    async def flush(self) -> None:
        """Wait until everything offered so far was sent (or lost to a Redis that is down)."""
        await self._idle.wait()

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        # One deadline for a whole batch (in _send), not one per reply: a timer per reply costs
        # more than reading it.
        self._redis = client(self.url, socket_connect_timeout=SEND_TIMEOUT)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="bus-publisher")
        log.info("bus_publisher_started", url=redact_url(self.url), prefix=self.keys.prefix, maxlen=self.maxlen)

    async def close(self, grace: float = 5.0) -> None:
        """Send what is queued (waiting at most ``grace`` seconds), then disconnect."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            _done, pending = await asyncio.wait([self._task], timeout=grace)
            for task in pending:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._redis is not None:
            await self._redis.aclose()
        log.info(
            "bus_publisher_stopped",
            published=self.published,
            dropped=self.dropped,
            failed=self.failed,
            unsent=len(self._pending),
        )

    async def __aenter__(self) -> BusPublisher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def queued(self) -> int:
        return len(self._pending)

    # -- the task -----------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            if not self._pending:
                self._idle.set()
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = [self._pending.popleft() for _ in range(min(BATCH, len(self._pending)))]
            self._audio_pending -= sum(1 for op in batch if op[4])
            try:
                await self._send(batch)
            except (RedisError, OSError, TimeoutError) as exc:
                self.failed += len(batch)
                if self._down_since is None:
                    self._down_since = time.monotonic()
                    log.error("bus_unavailable", error=str(exc)[:200], lost=len(batch))
                if self._closing:
                    self.failed += len(self._pending)
                    self._pending.clear()
                    self._idle.set()
                    return
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            backoff = 0.1
            self.published += len(batch)
            if self._down_since is not None:
                log.info("bus_recovered", down_seconds=round(time.monotonic() - self._down_since, 3))
                self._down_since = None

    async def _send(self, batch: list[_Op]) -> None:
        assert self._redis is not None
        now = time.monotonic()
        minid = f"{int((time.time() - self.retention) * 1000)}-0"
        expire = max(1, int(self.retention))
        touched: set[str] = set()
        pipe: Any = self._redis.pipeline(transaction=False)
        for key, fields, maxlen, by_age, audio in batch:
            if by_age:
                pipe.xadd(key, fields, minid=minid, approximate=True)
                continue
            pipe.xadd(key, fields, maxlen=maxlen, approximate=True)
            # The expiry moves on with the stream, but once in a while is enough: it only has to
            # outlive a stream whose end never comes (its receiver died).
            if not audio or now - self._expiry_set.get(key, -_EXPIRY_EVERY) >= _EXPIRY_EVERY:
                touched.add(key)
        for key in touched:
            pipe.expire(key, expire)
            self._expiry_set[key] = now
        for key, fields, _maxlen, _by_age, audio in batch:
            if not audio and fields.get(b"t") == b"end":
                self._expiry_set.pop(key, None)  # the stream ended: forget its key
        async with asyncio.timeout(SEND_TIMEOUT):
            await pipe.execute()


def client(url: str, **options: Any) -> aioredis.Redis:
    """A redis-py asyncio client for ``url``; on ``redis://`` with hiredis installed, commands are packed in C.

    redis-py's sync client packs commands with hiredis when it is installed, its
    asyncio client always in Python: there, packing an XADD of a block costs
    more than everything else the receiver does for it (profiled: about half
    of the bus's cost). This connection class packs as the sync client does,
    with redis-py's own serializer.
    """
    if _HiredisPacking is not None and url.startswith("redis://"):
        pool = aioredis.ConnectionPool.from_url(url, connection_class=_HiredisPacking, **options)
        return aioredis.Redis.from_pool(pool)  # the client owns the pool: aclose() closes its connections
    return aioredis.from_url(url, **options)


def _hiredis_packing() -> type[aioredis.Connection] | None:
    try:
        from redis.connection import HiredisRespSerializer
        from redis.utils import HIREDIS_AVAILABLE
    except ImportError:  # another redis-py layout: the Python packer
        return None
    if not HIREDIS_AVAILABLE:
        return None

    class HiredisPacking(aioredis.Connection):
        _packer = HiredisRespSerializer()

        def pack_command(self, *args: Any) -> list[bytes]:
            return self._packer.pack(*args)  # type: ignore[no-any-return]

    return HiredisPacking


_HiredisPacking = _hiredis_packing()


class BusSink:
    """Publishes one stream's blocks and lifecycle to the bus (a sink; see ``receiver.sinks``)."""

    name = "bus"

    def __init__(self, publisher: BusPublisher, interval: float) -> None:
        self.publisher = publisher
        self.interval = interval
        self.dropped = 0
        self._info: StreamInfo | None = None

    async def open(self, stream: StreamInfo) -> None:
        self._info = stream
        self.publisher.stream_started(stream)

    async def write(self, block: AudioBlock) -> None:
        assert self._info is not None
        # The fan-out hands over what gathered since the last write: after a burst (or a stall)
        # that can be seconds. Entries stay one interval long, so the queue's bound is a bound in bytes.
        step = max(1, round(self.interval * block.sample_rate))
        for start in range(0, len(block), step):
            piece = block if len(block) <= step else _slice(block, start, start + step)
            if not self.publisher.audio(self._info, piece):
                self.dropped += 1

    async def close(self, outcome: StreamOutcome) -> None:
        assert self._info is not None
        self.publisher.stream_ended(self._info, outcome)


def _slice(block: AudioBlock, start: int, end: int) -> AudioBlock:
    """``block[start:end]`` (offsets into the block), every track alike."""
    return AudioBlock(block.start + start, block.sample_rate, {t: s[start:end] for t, s in block.channels.items()})
