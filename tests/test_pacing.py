"""Read pacing (receiver/stream/pacing.py): the loop's turns topped up to the period under load, left alone otherwise."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from receiver.app import ReceiverServer
from receiver.config import Settings
from receiver.events import Track
from receiver.stream.pacing import ReadPacer
from receiver.testing import MiniVoiceMessages

from .conftest import recording_sinks, wait_streams_done


class Counter:
    """The streams' message count as the pacer reads it; sets ``read`` after ``reads`` readings."""

    def __init__(self, step: int, reads: int) -> None:
        self.value = 0
        self.step = step
        self.calls = 0
        self.reads = reads
        self.read = asyncio.Event()

    def __call__(self) -> int:
        self.calls += 1
        self.value += self.step
        if self.calls >= self.reads:
            self.read.set()
        return self.value


async def _run_until(pacer: ReadPacer, done: asyncio.Event) -> None:
    task = asyncio.create_task(pacer.run())
    try:
        await done.wait()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_busy_streams_top_each_turn_up_to_the_period() -> None:
    # 1,000,000 messages between two readings: far over the busy rate.
    slept: list[float] = []
    enough = asyncio.Event()

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) >= 20:
            enough.set()

    pacer = ReadPacer(0.002, Counter(step=1_000_000, reads=1), sleep=sleep)

    await _run_until(pacer, enough)

    assert pacer.pacing
    assert slept and all(0 < s <= 0.002 for s in slept)
    assert pacer.slept == pytest.approx(sum(slept))


async def test_what_a_turn_read_runs_before_the_loop_sleeps_again() -> None:
    """The pacer's turn is queued behind the reads of the same poll and what they woke
    (a sink's wake-up), so a frame's way to the sinks never waits for the sleep."""
    loop = asyncio.get_running_loop()
    peer_r, peer_w = socket.socketpair()
    peer_r.setblocking(False)
    log: list[str] = []
    done = asyncio.Event()

    def on_read() -> None:  # a connection's read, waking a sink as the fan-out does
        peer_r.recv(64)
        loop.call_soon(log.append, "woken")

    def sleep(seconds: float) -> None:
        log.append("sleep")
        if log.count("sleep") < 5:
            peer_w.send(b"x")  # a frame arrives while the loop sleeps
        else:
            done.set()

    loop.add_reader(peer_r.fileno(), on_read)
    try:
        await _run_until(ReadPacer(0.005, Counter(step=1_000_000, reads=1), sleep=sleep), done)
    finally:
        loop.remove_reader(peer_r.fileno())
        peer_r.close()
        peer_w.close()

    assert log[:8] == ["sleep", "woken"] * 4


async def test_calm_streams_are_not_paced_and_the_loop_sleeps_as_it_would() -> None:
    slept: list[float] = []
    count = Counter(step=1, reads=3)  # 1 message a check: 10 a second
    pacer = ReadPacer(0.002, count, sleep=slept.append)

    await _run_until(pacer, count.read)

    assert not pacer.pacing
    assert (pacer.turns, slept) == (0, [])


async def test_a_long_turn_is_not_topped_up() -> None:
    """A loaded loop (each turn longer than the period) runs unpaced: pacing costs no throughput."""
    now = [0.0]
    enough = asyncio.Event()

    def clock() -> float:
        now[0] += 0.005  # every reading 5 ms later: each turn takes longer than the 2 ms period
        if now[0] > 0.2:  # 40 readings: many turns
            enough.set()
        return now[0]

    slept: list[float] = []
    pacer = ReadPacer(0.002, Counter(step=1_000_000, reads=1), sleep=slept.append, clock=clock)

    await _run_until(pacer, enough)

    assert pacer.pacing and pacer.turns >= 10
    assert slept == []


async def test_pacing_goes_on_at_the_busy_rate_and_off_below_half_of_it() -> None:
    # Messages at 10,000 a second for the first check, 6,000 for the next two, then 3,000;
    # the busy rate is 8,000: on at 10,000, still on at 6,000 (over half), off at 3,000.
    clock = time.monotonic
    seen: list[bool] = []
    state = {"value": 0.0, "at": clock()}
    sixth = asyncio.Event()

    def messages() -> int:
        now = clock()
        rate = 10_000 if len(seen) < 2 else 6_000 if len(seen) < 4 else 3_000
        state["value"] += rate * (now - state["at"])
        state["at"] = now
        seen.append(pacer.pacing)  # as it stood before this reading
        if len(seen) >= 6:
            sixth.set()
        return int(state["value"])

    pacer = ReadPacer(0.002, messages, busy_rate=8_000, sleep=lambda s: None)
    await _run_until(pacer, sixth)

    assert seen[:6] == [False, False, True, True, True, False]


def test_a_period_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        ReadPacer(0, lambda: 0)


async def test_a_paced_server_records_every_frame_and_stops_cleanly(tmp_path: Path) -> None:
    settings = Settings(
        host="127.0.0.1",
        port=0,
        recordings_dir=str(tmp_path / "rec"),
        log_format="json",
        read_pacing_ms=1.0,
        max_media_lead_seconds=0,  # frames sent as fast as the socket takes them
    )
    sinks, factory = recording_sinks()

    mv = MiniVoiceMessages()
    frame = bytes(range(96, 256))
    async with ReceiverServer(settings, sinks=[factory]) as server:
        pacer = server.pacer
        assert pacer is not None
        pacer.busy_rate = 1.0  # one stream is enough to pace here
        async with connect(f"ws://127.0.0.1:{server.port}/s") as ws:
            await ws.send(mv.connected())
            await ws.send(mv.start())
            i = 0
            while not pacer.pacing or pacer.turns < 10:  # media flows while the pacer paces
                await ws.send(mv.media("inbound", i + 1, 20 * i, frame))
                await ws.send(mv.media("outbound", i + 1, 20 * i, frame))
                await (await ws.ping())
                i += 1
            await ws.send(mv.stop())
        await wait_streams_done(server)

    assert server.outcomes[-1].reason == "stop_stream"
    assert len(sinks[0].audio(Track.INBOUND)) == i * 160
    assert pacer.slept > 0


def test_the_service_paces_by_default_and_zero_turns_it_off(tmp_path: Path) -> None:
    assert Settings().read_pacing_ms == 1.0
    config = tmp_path / "c.toml"
    config.write_text("[media]\nread_pacing_ms = 0\n")
    assert Settings.load(config, env={}).read_pacing_ms == 0
