"""
``receiver worker``'s logic: plugins run on streams taken from the bus, by a pool of workers.

Every worker is a consumer in the group ``workers`` of ``{prefix}:streams``.
``XREADGROUP`` hands each new stream to one worker, which owns it while the
work-queue entry is pending under its name; it reads the stream's audio key
through the same group, feeds every block to its ``[[sinks]]`` plugins and
acknowledges the block (``XACK``) once they took it, trimming the key up to
it (``XTRIM MINID``): the bus keeps a stream's unread backlog, not its past. At the ``end`` entry it
closes the plugins with the receiver's outcome, acknowledges and deletes the
work-queue entry, and deletes the audio key.

Leases. A worker touches its streams' entries every ``claim_timeout / 3``
(an atomic script: only an entry still pending under its own name is
touched). Every worker, at the same pace, runs ``XAUTOCLAIM`` with
``min-idle-time = claim_timeout``: a stream whose worker went silent (killed,
frozen, cut off) is taken by another within ``claim_timeout`` plus one
round. The taker claims the audio blocks its predecessor had read but not
acknowledged and starts there: fresh plugin instances, fed from the first
unacknowledged block, on the stream's media clock (``PluginSink.start_at``:
no silence stands in for the audio before it). What the dead worker's
engines had taken but not yet said is lost; what they said is in the store.
A worker that finds a stream no longer its own (it was too slow to touch
it) stops feeding it and stores nothing more for it. A transcript event's
identity (stream, engine, track, span) makes an event published twice,
around a takeover, stored once.

On SIGTERM a worker takes no new streams, closes its plugins (their last
words are stored), and hands its streams back at once (their entries are
made idle for ``claim_timeout``), so another worker resumes them on its
next round instead of waiting out the lease.

Uses asyncio and redis-py's asyncio client; the plugins are ordinary sinks.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from receiver.bus import GROUP, BadEntry, BusKeys, Fields, decode_audio, decode_info, decode_outcome, kind
from receiver.logging import Logger, get_logger
from receiver.sinks import AudioBlock, Sink, SinkFactory, StreamInfo, StreamOutcome
from receiver.transcription.transcript import Transcript

WORKER_LOGGER: Final = "receiver.bus.worker"
READ_BLOCK_MS: Final = 1000
READ_COUNT: Final = 16

log = get_logger(WORKER_LOGGER)

# Touch the entries still pending under our name; return the ones that are.
_TOUCH = """
local owned = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    table.insert(owned, ARGV[i])
  end
end
return owned
"""

# Hand entries back: still ours, made idle enough for the next XAUTOCLAIM anywhere.
_RELEASE = """
for i = 4, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'IDLE', ARGV[3], 'JUSTID')
  end
end
return 0
"""


def default_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass
class _Owned:
    entry_id: str
    info: StreamInfo
    resumed: bool
    task: asyncio.Task[None] | None = None
    lost: bool = False
    finishing: bool = False  # acknowledging its end: no longer pending, and not lost either
    blocks: int = 0
    first_sample: int | None = None
    samples: int = 0
    sinks: list[Sink] = field(default_factory=list)


class BusWorker:
    """One worker of the pool.

    Args:
        redis_client: A redis-py asyncio client (bytes responses).
        keys: The deployment's bus keys.
        factories: The ``[[sinks]]`` plugins, one sink per stream each.
        name: This worker's consumer name (unique in the pool).
        max_streams: Streams it runs at once.
        claim_timeout: Seconds of silence after which a worker loses its streams.
        idle_timeout: Seconds without an entry after which a stream is closed
            (the receiver that published it died).
        sink_close_timeout: Seconds a plugin may take to close.
    """

    def __init__(
        self,
        redis_client: aioredis.Redis,
        *,
        keys: BusKeys,
        factories: Sequence[SinkFactory],
        name: str,
        max_streams: int = 16,
        claim_timeout: float = 10.0,
        idle_timeout: float = 60.0,
        sink_close_timeout: float = 10.0,
    ) -> None:
        self.redis = redis_client
        self.keys = keys
        self.factories = list(factories)
        self.name = name
        self.max_streams = max_streams
        self.claim_timeout = claim_timeout
        self.idle_timeout = idle_timeout
        self.sink_close_timeout = sink_close_timeout
        self.owned: dict[str, _Owned] = {}  # by work-queue entry id: one per stream started
        self.finished = 0
        self.stream_done = asyncio.Event()  # set each time a stream is finished (tests wait on it)
        self._slot_freed = asyncio.Event()
        self._discards: set[asyncio.Task[None]] = set()
        self._touch: Any = redis_client.register_script(_TOUCH)
        self._release: Any = redis_client.register_script(_RELEASE)

    async def wait_finished(self, count: int) -> None:
        """Wait until ``count`` streams have been finished (for tests and benches)."""
        while self.finished < count:
            self.stream_done.clear()
            await self.stream_done.wait()

    def owns(self, stream_id: str) -> bool:
        """Whether this worker still holds the stream (transcripts of lost streams are not stored)."""
        return any(o.info.stream_id == stream_id and not o.lost for o in self.owned.values())

    def transcript_filter(self, store: Callable[[Transcript], None]) -> Callable[[Transcript], None]:
        """``store``, for the events of streams this worker still owns."""

        def publish(event: Transcript) -> None:
            if self.owns(event.stream_id):
                store(event)

        return publish

    # -- the pool -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Take and process streams until ``stop`` is set, then hand the live ones back."""
        await self._create_group(self.keys.streams)
        lease = asyncio.get_running_loop().create_task(self._leases(stop), name="bus-leases")
        log.info(
            "worker_started",
            worker=self.name,
            group=GROUP,
            queue=self.keys.streams,
            max_streams=self.max_streams,
            claim_timeout=self.claim_timeout,
        )
        try:
            await self._take_new(stop)
        finally:
            lease.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lease
            await self._hand_back()
            log.info("worker_stopped", worker=self.name, finished=self.finished)

    async def _take_new(self, stop: asyncio.Event) -> None:
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                free = self.max_streams - len(self.owned)
                if free <= 0:
                    self._slot_freed.clear()
                    await asyncio.wait(
                        [stopping, asyncio.ensure_future(self._slot_freed.wait())],
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                    continue
                read = asyncio.ensure_future(
                    self.redis.xreadgroup(GROUP, self.name, {self.keys.streams: ">"}, count=free, block=READ_BLOCK_MS)
                )
                await asyncio.wait([read, stopping], return_when=asyncio.FIRST_COMPLETED)
                if not read.done():
                    # Stopping: let the read end (at most READ_BLOCK_MS; cancelling it would strand the
                    # client's own task), and hand back at once what it brought.
                    with contextlib.suppress(RedisError, OSError):
                        late: Any = await read
                        ids = [_text(entry_id) for _key, entries in late or () for entry_id, _fields in entries]
                        if ids:
                            await self._release(
                                keys=[self.keys.streams], args=[GROUP, self.name, int(self.claim_timeout * 1000), *ids]
                            )
                    break
                try:
                    response: Any = read.result()
                except (RedisError, OSError) as exc:
                    log.error("bus_read_failed", error=str(exc)[:200])
                    await asyncio.sleep(1.0)
                    with contextlib.suppress(RedisError, OSError):
                        await self._create_group(self.keys.streams)  # gone with the key (a flushed Redis)
                    continue
                for _key, entries in response or ():
                    for entry_id, fields in entries:
                        self._start(entry_id, fields, resumed=False)
        finally:
            stopping.cancel()

    async def _leases(self, stop: asyncio.Event) -> None:
        """Every claim_timeout / 3: touch our streams, take those whose worker went silent."""
        interval = self.claim_timeout / 3
        while not stop.is_set():
            try:
                await self._renew()
                await self._claim()
            except (RedisError, OSError) as exc:
                log.error("bus_lease_failed", error=str(exc)[:200])
            await asyncio.sleep(interval)

    async def _renew(self) -> None:
        live = [o for o in self.owned.values() if not o.lost and not o.finishing]
        if not live:
            return
        kept = await self._touch(keys=[self.keys.streams], args=[GROUP, self.name, *[o.entry_id for o in live]])
        kept_ids = {k.decode() if isinstance(k, bytes) else str(k) for k in kept}
        for owned in live:
            if owned.entry_id not in kept_ids and not owned.finishing:
                owned.lost = True
                pending: Any = await self.redis.xpending_range(
                    self.keys.streams, GROUP, owned.entry_id, owned.entry_id, 1
                )
                log.warning(
                    "bus_stream_lost",
                    worker=self.name,
                    stream_id=owned.info.stream_id,
                    entry_id=owned.entry_id,
                    now_with=_text(pending[0]["consumer"]) if pending else None,
                )
                if owned.task is not None:
                    owned.task.cancel()

    async def _claim(self) -> None:
        free = self.max_streams - len(self.owned)
        if free <= 0:
            return
        _next, entries, deleted = await self.redis.xautoclaim(
            self.keys.streams, GROUP, self.name, int(self.claim_timeout * 1000), "0-0", count=free
        )
        for entry_id in deleted or ():
            log.warning("bus_stream_expired", worker=self.name, entry_id=_text(entry_id))
        for entry_id, fields in entries:
            if fields:  # None: the entry was trimmed
                self._start(entry_id, fields, resumed=True)

    async def _hand_back(self) -> None:
        tasks = [o.task for o in self.owned.values() if o.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if not self.owned:
            return
        ids = [o.entry_id for o in self.owned.values()]
        with contextlib.suppress(RedisError, OSError):
            await self._release(keys=[self.keys.streams], args=[GROUP, self.name, int(self.claim_timeout * 1000), *ids])
        log.info("bus_streams_handed_back", worker=self.name, streams=[o.info.stream_id for o in self.owned.values()])
        self.owned.clear()

    async def _create_group(self, key: str) -> None:
        try:
            await self.redis.xgroup_create(key, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    # -- one stream -----------------------------------------------------------------------

    def _start(self, entry_id: Any, fields: Fields, *, resumed: bool) -> None:
        entry = _text(entry_id)
        try:
            info = decode_info(fields)
        except BadEntry as exc:
            log.error("bus_entry_rejected", worker=self.name, entry_id=entry, error=str(exc))
            task = asyncio.get_running_loop().create_task(self._discard(entry))
            self._discards.add(task)
            task.add_done_callback(self._discards.discard)
            return
        if entry in self.owned:
            return  # already ours (claimed back after a slow touch)
        owned = self.owned[entry] = _Owned(entry, info, resumed)
        owned.task = asyncio.get_running_loop().create_task(self._stream(owned), name=f"bus:{info.stream_id}")

    async def _discard(self, entry_id: str) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self.redis.xack(self.keys.streams, GROUP, entry_id)

    async def _stream(self, owned: _Owned) -> None:
        info = owned.info
        audio_key = self.keys.audio(info)
        slog = log.bind(worker=self.name, stream_id=info.stream_id, call_id=info.call_id)
        outcome: StreamOutcome | None = None
        reason = "error"
        try:
            await self._create_group(audio_key)
            owned.sinks = self._open_sinks(info, slog)
            for sink in owned.sinks:
                await self._call(sink, sink.open(info), slog, "open", owned)
            slog.info("bus_stream_taken", resumed=owned.resumed, entry_id=owned.entry_id)
            outcome = await self._feed(owned, audio_key, slog)
            reason = outcome.reason if outcome is not None else "bus_idle"
        except asyncio.CancelledError:
            reason = "lost" if owned.lost else "handed_back"
            raise
        except (RedisError, OSError) as exc:
            slog.error("bus_stream_failed", error=str(exc)[:200])
        finally:
            final = outcome or StreamOutcome(
                reason=reason, close_code=None, duration_seconds=0.0, samples=owned.samples
            )
            await self._close_sinks(owned, final, slog)
            done = reason not in ("lost", "handed_back", "error")
            if done:
                # Its entry stops being pending here: the lease round must not take that for a loss
                # (and cancel this task in the middle of finishing).
                owned.finishing = True
                with contextlib.suppress(RedisError, OSError):
                    pipe: Any = self.redis.pipeline(transaction=False)
                    pipe.xack(self.keys.streams, GROUP, owned.entry_id)
                    pipe.xdel(self.keys.streams, owned.entry_id)
                    pipe.delete(audio_key)
                    await pipe.execute()
                self.finished += 1
                self.stream_done.set()
            slog.info(
                "bus_stream_done" if done else "bus_stream_left",
                reason=reason,
                resumed=owned.resumed,
                first_sample=owned.first_sample,
                samples=owned.samples,
                blocks=owned.blocks,
            )
            if reason != "handed_back" and self.owned.get(owned.entry_id) is owned:
                self.owned.pop(owned.entry_id, None)  # (handed back: _hand_back releases it, then forgets it)
            self._slot_freed.set()

    def _open_sinks(self, info: StreamInfo, slog: Logger) -> list[Sink]:
        sinks = []
        for factory in self.factories:
            try:
                sinks.append(factory(info))
            except Exception as exc:
                slog.error("sink_failed", sink=getattr(factory, "__name__", "?"), phase="create", error=repr(exc)[:200])
        return sinks

    async def _feed(self, owned: _Owned, audio_key: str, slog: Logger) -> StreamOutcome | None:
        """Feed blocks until the ``end`` entry (its outcome) or ``idle_timeout`` without one (None)."""
        try:
            return await self._feed_entries(owned, audio_key, slog)
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            # The audio key expired or was deleted: nothing more will come.
            slog.warning("bus_stream_expired", error=str(exc)[:200])
            return StreamOutcome(reason="bus_expired", close_code=None, duration_seconds=0.0, samples=owned.samples)

    async def _feed_entries(self, owned: _Owned, audio_key: str, slog: Logger) -> StreamOutcome | None:
        claim_from: str | None = "0-0" if owned.resumed else None
        last_entry = time.monotonic()
        while True:
            if claim_from is not None:
                # The blocks the previous owner read but did not acknowledge, oldest first.
                nxt, entries, _deleted = await self.redis.xautoclaim(
                    audio_key, GROUP, self.name, 0, claim_from, count=READ_COUNT
                )
                claim_from = None if _text(nxt) == "0-0" else _text(nxt)
            else:
                response: Any = await self.redis.xreadgroup(
                    GROUP, self.name, {audio_key: ">"}, count=READ_COUNT, block=READ_BLOCK_MS
                )
                entries = [e for _key, batch in response or () for e in batch]
            if not entries:
                if claim_from is None and time.monotonic() - last_entry > self.idle_timeout:
                    slog.warning("bus_stream_idle", idle_timeout=self.idle_timeout)
                    return None
                continue
            last_entry = time.monotonic()
            for entry_id, fields in entries:
                if not fields:
                    continue  # trimmed before anyone read it: the next block's start shows the gap
                what = kind(fields)
                if what == b"audio":
                    try:
                        block = decode_audio(fields, owned.info.tracks)
                    except BadEntry as exc:
                        slog.error("bus_entry_rejected", entry_id=_text(entry_id), error=str(exc))
                    else:
                        await self._write(owned, block, slog)
                elif what == b"end":
                    try:
                        outcome = decode_outcome(fields)
                    except BadEntry as exc:
                        slog.error("bus_entry_rejected", entry_id=_text(entry_id), error=str(exc))
                        outcome = StreamOutcome(
                            reason="unknown", close_code=None, duration_seconds=0.0, samples=owned.samples
                        )
                    await self.redis.xack(audio_key, GROUP, entry_id)
                    return outcome
                # Acknowledged, and what came before it is no longer needed by anyone: the bus holds
                # each stream's unread backlog only, not its whole (bus_max_seconds) window.
                pipe: Any = self.redis.pipeline(transaction=False)
                pipe.xack(audio_key, GROUP, entry_id)
                pipe.xtrim(audio_key, minid=entry_id, approximate=False)
                await pipe.execute()

    async def _write(self, owned: _Owned, block: AudioBlock, slog: Logger) -> None:
        if owned.first_sample is None:
            owned.first_sample = block.start
            if owned.resumed:
                for sink in owned.sinks:
                    start_at = getattr(sink, "start_at", None)
                    if start_at is not None:
                        start_at(block.start)
                slog.info("bus_stream_resumed", from_sample=block.start, seconds=round(block.start_seconds, 3))
        owned.blocks += 1
        owned.samples = block.end
        for sink in list(owned.sinks):
            await self._call(sink, sink.write(block), slog, "write", owned)

    async def _call(self, sink: Sink, step: Any, slog: Logger, phase: str, owned: _Owned) -> None:
        """One plugin step; a plugin that raises is dropped for this stream (logged once), the rest go on."""
        try:
            await step
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            slog.error("sink_failed", sink=sink.name, phase=phase, error=repr(exc)[:200])
            with contextlib.suppress(ValueError):
                owned.sinks.remove(sink)

    async def _close_sinks(self, owned: _Owned, outcome: StreamOutcome, slog: Logger) -> None:
        async def close(sink: Sink) -> None:
            try:
                await asyncio.wait_for(sink.close(outcome), self.sink_close_timeout)
            except Exception as exc:
                slog.error("sink_failed", sink=sink.name, phase="close", error=repr(exc)[:200])

        # Shielded: a cancelled stream (lost, handed back) still reaps its plugins' processes.
        await asyncio.shield(asyncio.gather(*(close(s) for s in owned.sinks)))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def run_worker(settings: Any, stop: asyncio.Event, *, name: str | None = None) -> BusWorker:
    """The worker the settings describe, run until ``stop``: store, bus client, plugins.

    Raises:
        ConfigError: No bus, no ``[[sinks]]``, or a bad plugin.
    """
    from receiver.calls.store import open_store
    from receiver.errors import ConfigError
    from receiver.transcription.plugins import plugin_sinks

    if not settings.bus_url:
        raise ConfigError("receiver worker needs a bus: [bus] url, RECEIVER_BUS_URL or --bus")
    store = open_store(settings.database, timeout=settings.store_timeout)
    client = aioredis.from_url(settings.bus_url, socket_connect_timeout=5.0)
    worker = BusWorker(
        client,
        keys=BusKeys(settings.bus_prefix),
        factories=[],
        name=name or settings.worker_name or default_name(),
        max_streams=settings.worker_streams,
        claim_timeout=settings.worker_claim_timeout,
        idle_timeout=settings.worker_idle_timeout,
        sink_close_timeout=settings.sink_close_timeout,
    )
    worker.factories = plugin_sinks(settings, on_transcript=worker.transcript_filter(store.transcript_published))
    if not worker.factories:
        raise ConfigError("receiver worker has nothing to run: give it [[sinks]] in its config")
    await store.start()
    try:
        await worker.run(stop)
    finally:
        await store.flush()
        await store.close()
        await client.aclose()
    return worker
