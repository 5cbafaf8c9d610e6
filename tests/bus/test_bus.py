"""The audio bus on a real redis-server: entries, the publisher's bounds, workers sharing streams, takeover."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis.asyncio as aioredis

from receiver.app import ReceiverServer, default_sinks
from receiver.bus import (
    GROUP,
    BusKeys,
    audio_entry,
    decode_audio,
    decode_info,
    decode_outcome,
    end_entry,
    started_entry,
)
from receiver.bus.publisher import BusPublisher
from receiver.bus.worker import BusWorker
from receiver.calls.store import SqliteCallStore
from receiver.config import Settings
from receiver.events import CallMetadata, Encoding, MediaFormat, Platform, Track
from receiver.sinks import AudioBlock, StreamInfo, StreamOutcome
from receiver.testing import RecordingSink
from receiver.transcription.plugins import plugin_sinks

from ..services import RedisServer, free_port
from ..transcription.helpers import stream_call, telephone

RATE = 8000
BLOCK = 1600  # 200 ms


def stream_info(stream_id: str = "str_bus", call_id: str = "call_bus") -> StreamInfo:
    return StreamInfo(
        stream_id=stream_id,
        call_id=call_id,
        platform=Platform.MINIVOICE,
        tracks=(Track.INBOUND, Track.OUTBOUND),
        media_format=MediaFormat(Encoding.MULAW, RATE),
        custom_parameters={"customer": "demo"},
        call=CallMetadata(customer_id="cust", direction="inbound", from_number="+1", to_number="+2"),
    )


def blocks(count: int, seed: int = 1) -> list[AudioBlock]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        channels = {t: rng.integers(-32768, 32767, BLOCK, dtype=np.int16) for t in (Track.INBOUND, Track.OUTBOUND)}
        out.append(AudioBlock(i * BLOCK, RATE, channels))
    return out


def outcome(samples: int) -> StreamOutcome:
    return StreamOutcome(reason="stop_stream", close_code=1000, duration_seconds=samples / RATE, samples=samples)


@pytest.fixture
def keys() -> BusKeys:
    return BusKeys(f"t{secrets.token_hex(4)}")  # every test its own keys on the shared server


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    c = aioredis.from_url(redis_server.url)
    try:
        yield c
    finally:
        await c.aclose()


# -- entries (pure) ------------------------------------------------------------------------


def test_entries_carry_the_stream_its_blocks_and_its_outcome_unchanged() -> None:
    info = stream_info()
    [block] = blocks(1)
    done = replace(outcome(BLOCK), sink_losses={"wav": 3}, files=("/r/a.wav",), disabled_sinks=("x",))

    back = decode_info(started_entry(info))
    assert replace(back, started_at=info.started_at) == info
    got = decode_audio(audio_entry(block), info.tracks)
    assert (got.start, got.sample_rate) == (block.start, block.sample_rate)
    for track in info.tracks:
        assert np.array_equal(got.channels[track], block.channels[track])
        assert not got.channels[track].flags.writeable
    assert decode_outcome(end_entry(done)) == done


# -- the publisher ------------------------------------------------------------------------------


async def test_a_publisher_that_cannot_reach_redis_drops_audio_counted_and_never_waits(keys: BusKeys) -> None:
    info = stream_info()
    publisher = BusPublisher(f"redis://127.0.0.1:{free_port()}/0", keys=keys, queue=5)
    await publisher.start()
    try:
        publisher.stream_started(info)
        accepted = [publisher.audio(info, b) for b in blocks(20)]
        publisher.stream_ended(info, outcome(20 * BLOCK))

        assert sum(accepted) <= 5 + 1  # the batch in hand may have left the queue already
        assert publisher.dropped == 20 - sum(accepted)
    finally:
        await publisher.close(grace=2.0)
    assert publisher.published == 0
    assert publisher.failed + publisher.queued >= 4  # nothing was sent; lifecycle entries were never refused


async def test_a_stream_through_a_receiver_reaches_redis_bounded(
    redis_server: RedisServer, client: aioredis.Redis, keys: BusKeys, settings: Settings
) -> None:
    settings = settings.replace(bus_url=redis_server.url, bus_prefix=keys.prefix, bus_max_seconds=1.0, wav=False)
    publisher = BusPublisher(settings.bus_url, keys=keys, max_seconds=1.0)
    audio = (np.sin(np.arange(3 * RATE) / 7) * 8000).astype(np.int16)  # 3 s: more than the bus keeps
    async with publisher, ReceiverServer(settings, default_sinks(settings, bus=publisher)) as server:
        await stream_call(server.port, audio, audio, call_id="call_r", stream_id="str_r")
        while server.streams_ended < 1:
            server.stream_ended.clear()
            await server.stream_ended.wait()
    [(entry_id, fields)] = await client.xrange(keys.streams)
    info = decode_info(fields)
    entries = await client.xrange(keys.audio(info))
    events = [f[b"t"] for _id, f in await client.xrange(keys.events)]

    assert (info.call_id, info.stream_id, info.sample_rate) == ("call_r", "str_r", RATE)
    assert events == [b"started", b"ended"]
    assert entries[-1][1][b"t"] == b"end"
    assert decode_outcome(entries[-1][1]).samples == 3 * RATE
    assert len(entries) < 3 * RATE / 1600  # trimmed (MAXLEN ~): the bus holds about bus_max_seconds
    assert 0 < await client.ttl(keys.audio(info)) <= settings.bus_retention_seconds
    assert publisher.dropped == 0


async def test_two_streams_with_the_same_ids_never_share_their_audio_on_the_bus(
    redis_server: RedisServer, client: aioredis.Redis, keys: BusKeys, settings: Settings
) -> None:
    settings = settings.replace(bus_url=redis_server.url, bus_prefix=keys.prefix, wav=False)
    publisher = BusPublisher(settings.bus_url, keys=keys)
    quiet, loud = np.zeros(RATE // 2, dtype=np.int16), np.full(RATE // 2, 1000, dtype=np.int16)
    async with publisher, ReceiverServer(settings, default_sinks(settings, bus=publisher)) as server:
        for n, audio in enumerate((quiet, loud)):
            await stream_call(server.port, audio, audio, call_id="call_same", stream_id="str_same")
            while server.streams_ended < n + 1:
                server.stream_ended.clear()
                await server.stream_ended.wait()
    infos = [decode_info(fields) for _id, fields in await client.xrange(keys.streams)]

    assert len({keys.audio(info) for info in infos}) == 2
    values = []
    for info in infos:
        entries = [f for _id, f in await client.xrange(keys.audio(info))]
        assert decode_outcome(entries[-1]).samples == RATE // 2
        got = np.concatenate([decode_audio(f, info.tracks).channels[Track.INBOUND] for f in entries[:-1]])
        values.append(set(got.tolist()))
    assert values[0] == {0} and len(values[1]) == 1 and 0 not in values[1]  # (mu-law: 1000 comes back as 988)


# -- workers ---------------------------------------------------------------------------------------


class GatedSink(RecordingSink):
    """A recording plugin that stops (holds its write) at a block start, until released."""

    def __init__(self, hold_at: int | None = None) -> None:
        super().__init__()
        self.hold_at = hold_at
        self.held = asyncio.Event()
        self.release = asyncio.Event()
        self.started_at: int | None = None

    def start_at(self, sample: int) -> None:
        self.started_at = sample

    async def write(self, block: AudioBlock) -> None:
        if block.start == self.hold_at:
            self.held.set()
            await self.release.wait()
        await super().write(block)


def worker(
    client: aioredis.Redis, keys: BusKeys, name: str, sinks: list[RecordingSink], **kwargs: Any
) -> tuple[BusWorker, Callable[[StreamInfo], RecordingSink]]:
    def factory(info: StreamInfo) -> RecordingSink:
        return sinks.pop(0)

    return BusWorker(client, keys=keys, factories=[factory], name=name, claim_timeout=0.6, **kwargs), factory


async def publish(publisher: BusPublisher, info: StreamInfo, parts: list[AudioBlock], *, end: bool) -> None:
    for block in parts:
        publisher.audio(info, block)
    if end:
        publisher.stream_ended(info, outcome(parts[-1].end))
    await publisher.flush()


async def test_a_killed_workers_stream_is_taken_over_from_the_first_unacknowledged_block(
    redis_server: RedisServer, client: aioredis.Redis, keys: BusKeys
) -> None:
    info = stream_info()
    audio = blocks(10)
    dying = GatedSink(hold_at=3 * BLOCK)
    taker = GatedSink()
    a, _ = worker(client, keys, "a", [dying])
    b, _ = worker(client, keys, "b", [taker])
    stop_a, stop_b = asyncio.Event(), asyncio.Event()
    async with BusPublisher(redis_server.url, keys=keys) as publisher:
        publisher.stream_started(info)
        await publish(publisher, info, audio[:6], end=False)
        run_a = asyncio.create_task(a.run(stop_a))
        await asyncio.wait_for(dying.held.wait(), 10)  # A is inside block 3: blocks 3-5 read, not acknowledged
        run_b = asyncio.create_task(b.run(stop_b))
        # A dies: nothing of it runs again, nothing is handed back (as after SIGKILL).
        a._hand_back = _nothing  # type: ignore[method-assign]
        run_a.cancel()
        for owned in list(a.owned.values()):
            assert owned.task is not None
            owned.task.cancel()
        await asyncio.gather(run_a, *(o.task for o in a.owned.values() if o.task), return_exceptions=True)
        await publish(publisher, info, audio[6:], end=True)
        await asyncio.wait_for(b.wait_finished(1), 20)
        stop_b.set()
        await run_b

    assert [blk.start for blk in dying.blocks] == [0, BLOCK, 2 * BLOCK]
    assert taker.started_at == 3 * BLOCK  # B begins at the first block A had not acknowledged
    assert [blk.start for blk in taker.blocks] == [i * BLOCK for i in range(3, 10)]
    for track in info.tracks:
        expected = np.concatenate([blk.channels[track] for blk in audio[3:]])
        assert np.array_equal(taker.audio(track)[3 * BLOCK :], expected)
    assert taker.outcome is not None and taker.outcome.samples == 10 * BLOCK
    assert await client.xlen(keys.streams) == 0  # done: acknowledged and deleted
    assert not await client.exists(keys.audio(info))
    assert (await client.xpending(keys.streams, GROUP))["pending"] == 0


async def _nothing() -> None:
    return None


async def _all_finished(workers: list[BusWorker], count: int) -> None:
    while sum(w.finished for w in workers) < count:
        waits = [asyncio.ensure_future(w.stream_done.wait()) for w in workers]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for w, waiting in zip(workers, waits, strict=True):
            waiting.cancel()
            w.stream_done.clear()


async def test_two_workers_share_streams_one_worker_per_stream(
    redis_server: RedisServer, client: aioredis.Redis, keys: BusKeys
) -> None:
    infos = [stream_info(f"str_{i}", f"call_{i}") for i in range(6)]
    sinks_a: list[RecordingSink] = [RecordingSink() for _ in infos]
    sinks_b: list[RecordingSink] = [RecordingSink() for _ in infos]
    a, _ = worker(client, keys, "a", sinks_a, max_streams=3)
    b, _ = worker(client, keys, "b", sinks_b, max_streams=3)
    used_a, used_b = list(sinks_a), list(sinks_b)
    stop = asyncio.Event()
    runs = [asyncio.create_task(a.run(stop)), asyncio.create_task(b.run(stop))]
    async with BusPublisher(redis_server.url, keys=keys) as publisher:
        for info in infos:
            publisher.stream_started(info)
        for info in infos:
            await publish(publisher, info, blocks(3, seed=hash(info.stream_id) % 100), end=True)
        await asyncio.wait_for(_all_finished([a, b], len(infos)), 20)
    stop.set()
    await asyncio.gather(*runs)

    fed = [s for s in used_a + used_b if s.info is not None]
    assert sorted(s.info.stream_id for s in fed if s.info) == sorted(i.stream_id for i in infos)  # each once
    assert all(len(s.blocks) == 3 and s.outcome is not None for s in fed)
    assert a.finished > 0 and b.finished > 0


async def test_worker_transcripts_land_in_the_call_store_once(
    redis_server: RedisServer, client: aioredis.Redis, keys: BusKeys, tmp_path: Path, settings: Settings
) -> None:
    settings = settings.replace(
        sinks=({"plugin": "pipe", "options": {"command": "wc -c", "sample_rate": RATE}},),
        recordings_dir=str(tmp_path / "worker"),
    )
    info = stream_info()
    async with SqliteCallStore(tmp_path / "calls.db") as store:
        w = BusWorker(client, keys=keys, factories=[], name="w", claim_timeout=0.6)
        w.factories = plugin_sinks(settings, on_transcript=w.transcript_filter(store.transcript_published))
        stop = asyncio.Event()
        run = asyncio.create_task(w.run(stop))
        async with BusPublisher(redis_server.url, keys=keys) as publisher:
            publisher.stream_started(info)
            await publish(publisher, info, blocks(5), end=True)
        await asyncio.wait_for(w.wait_finished(1), 20)
        stop.set()
        await run
        await store.flush()
        events = await store.transcripts(info.call_id)
        for event in events:
            store.transcript_published(event)  # published again (as around a takeover): stored once
        await store.flush()
        again = await store.transcripts(info.call_id)

    assert sorted((e.track, e.text) for e in events) == [
        ("inbound", str(5 * BLOCK * 2)),
        ("outbound", str(5 * BLOCK * 2)),
    ]
    assert again == events


async def test_a_receiver_stream_arrives_at_a_worker_sample_exact(
    redis_server: RedisServer, client: aioredis.Redis, keys: BusKeys, settings: Settings
) -> None:
    settings = settings.replace(bus_url=redis_server.url, bus_prefix=keys.prefix, wav=False)
    rng = np.random.default_rng(5)
    inbound = telephone(rng.integers(-20000, 20000, 2 * RATE + 37, dtype=np.int16))
    outbound = telephone(rng.integers(-20000, 20000, 2 * RATE + 37, dtype=np.int16))
    sink = RecordingSink()
    w, _ = worker(client, keys, "w", [sink])
    stop = asyncio.Event()
    run = asyncio.create_task(w.run(stop))
    publisher = BusPublisher(settings.bus_url, keys=keys)
    async with publisher, ReceiverServer(settings, default_sinks(settings, bus=publisher)) as server:
        await stream_call(server.port, inbound, outbound)
    await asyncio.wait_for(w.wait_finished(1), 20)
    stop.set()
    await run

    n = -(-len(inbound) // 160) * 160
    assert sink.outcome is not None and sink.outcome.samples == n
    assert np.array_equal(sink.audio(Track.INBOUND)[: len(inbound)], inbound)
    assert np.array_equal(sink.audio(Track.OUTBOUND)[: len(outbound)], outbound)


def test_a_worker_without_a_bus_or_plugins_is_a_configuration_error(tmp_path: Path) -> None:
    import subprocess
    import sys

    def worker_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "receiver", "worker", "--database", str(tmp_path / "c.db"), *args],
            capture_output=True, text=True, timeout=60, cwd=tmp_path,
        )  # fmt: skip

    config = tmp_path / "worker.toml"
    config.write_text('[bus]\nurl = "redis://127.0.0.1:1/0"\n')
    (tmp_path / "empty.toml").write_text("")

    no_plugins = worker_cli("--config", str(config))
    no_bus = worker_cli("--config", str(tmp_path / "empty.toml"))

    assert no_plugins.returncode == 2 and "give it [[sinks]]" in no_plugins.stderr
    assert no_bus.returncode == 2 and "needs a bus" in no_bus.stderr


async def test_every_stream_of_a_dead_worker_is_taken_over_and_finished(
    redis_server: RedisServer, client: aioredis.Redis, keys: BusKeys
) -> None:
    infos = [stream_info(f"str_{i}", f"call_{i}") for i in range(4)]
    dying = [GatedSink(hold_at=2 * BLOCK) for _ in infos]
    takers = [GatedSink() for _ in infos]
    a, _ = worker(client, keys, "a", list(dying))
    b, _ = worker(client, keys, "b", list(takers))
    stop_a, stop_b = asyncio.Event(), asyncio.Event()
    async with BusPublisher(redis_server.url, keys=keys) as publisher:
        for info in infos:
            publisher.stream_started(info)
            await publish(publisher, info, blocks(4), end=False)
        run_a = asyncio.create_task(a.run(stop_a))
        for sink in dying:
            await asyncio.wait_for(sink.held.wait(), 10)
        run_b = asyncio.create_task(b.run(stop_b))
        a._hand_back = _nothing  # type: ignore[method-assign]
        run_a.cancel()
        tasks = [o.task for o in a.owned.values() if o.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(run_a, *tasks, return_exceptions=True)
        for info in infos:
            await publish(publisher, info, blocks(8)[4:], end=True)
        await asyncio.wait_for(b.wait_finished(len(infos)), 20)
        stop_b.set()
        await run_b

    assert sorted(s.info.stream_id for s in takers if s.info) == sorted(i.stream_id for i in infos)
    assert all(s.started_at == 2 * BLOCK and s.outcome is not None for s in takers)
