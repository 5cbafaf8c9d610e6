"""Fanout: each sink at its own pace; slow sinks lose (counted), failing sinks are disabled."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from structlog.testing import capture_logs

from receiver.events import Encoding, MediaFormat, Platform, Track
from receiver.logging import get_logger
from receiver.ringbuffer import TrackBuffer
from receiver.sinks import AudioBlock, StreamInfo, StreamOutcome
from receiver.stream.fanout import Fanout
from receiver.testing import RecordingSink

IN, OUT = Track.INBOUND, Track.OUTBOUND
INFO = StreamInfo("s1", "c1", Platform.MINIVOICE, (IN, OUT), MediaFormat(Encoding.MULAW, 8000))
OUTCOME = StreamOutcome(reason="stop_stream", close_code=1000, duration_seconds=0.0, samples=0)


class Stream:
    """Two tracks written in lockstep, as the media clock commits them."""

    def __init__(self, capacity: int = 1000) -> None:
        self.buffers = {IN: TrackBuffer(capacity), OUT: TrackBuffer(capacity)}

    def write(self, n: int) -> None:
        for track, buf in self.buffers.items():
            start = buf.head
            base = 1 if track is IN else 10000
            buf.write((np.arange(start, start + n) % 9000 + base).astype(np.int16))

    def committed(self) -> int:
        return min(b.head for b in self.buffers.values())

    def expected(self, track: Track, end: int) -> np.ndarray[Any, Any]:
        base = 1 if track is IN else 10000
        return (np.arange(end) % 9000 + base).astype(np.int16)


class GatedSink(RecordingSink):
    """Writes only when the test opens the gate: a sink that falls behind."""

    def __init__(self, name: str) -> None:
        super().__init__(name=name)
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    async def write(self, block: AudioBlock) -> None:
        self.entered.set()
        await self.gate.wait()
        await super().write(block)


class SignallingSink(RecordingSink):
    """Sets ``wrote`` after every block it takes."""

    def __init__(self, name: str, interval: float = 0.0) -> None:
        super().__init__(name=name, interval=interval)
        self.wrote = asyncio.Event()

    async def write(self, block: AudioBlock) -> None:
        await super().write(block)
        self.wrote.set()


class FailingSink(RecordingSink):
    def __init__(self, name: str, fail_in: str) -> None:
        super().__init__(name=name)
        self.fail_in = fail_in

    async def open(self, stream: StreamInfo) -> None:
        await super().open(stream)
        if self.fail_in == "open":
            raise OSError("no space left on device")

    async def write(self, block: AudioBlock) -> None:
        await super().write(block)
        if self.fail_in == "write":
            raise RuntimeError("engine crashed")


async def test_every_sink_gets_every_sample_in_order() -> None:
    stream = Stream()
    a, b = RecordingSink(name="a"), RecordingSink(name="b", interval=0.005)
    fanout = Fanout(INFO, stream.buffers, stream.committed, [a, b], get_logger("test"))
    fanout.start()
    for _ in range(20):
        stream.write(37)
        fanout.notify()
        await asyncio.sleep(0)  # let the sinks run between writes, as the receive loop does

    await fanout.close(OUTCOME, grace=5)

    for sink in (a, b):
        assert sink.calls[0] == "open" and sink.calls[-1] == "close"
        assert np.array_equal(sink.audio(IN), stream.expected(IN, 740))
        assert np.array_equal(sink.audio(OUT), stream.expected(OUT, 740))
        assert all(not blk.channels[IN].flags.writeable for blk in sink.blocks)
        assert sink.outcome is not None and sink.outcome.sink_losses == {"a": 0, "b": 0}


async def test_a_sink_is_woken_again_after_every_read() -> None:
    """``notify`` skips sinks whose wake-up is set already: a sink that has read and cleared
    its own is woken by the next frame, so audio reaches it while the stream goes on."""
    stream = Stream()
    a, b = SignallingSink(name="a"), SignallingSink(name="b", interval=0.001)
    fanout = Fanout(INFO, stream.buffers, stream.committed, [a, b], get_logger("test"))
    fanout.start()
    for k in range(1, 6):
        stream.write(40)
        fanout.notify()
        fanout.notify()  # a second frame before the sinks ran
        for sink in (a, b):
            async with asyncio.timeout(30):  # a hang guard: a sink not woken never sees the frame
                while len(sink.audio(IN)) < 40 * k:
                    await sink.wrote.wait()
                    sink.wrote.clear()

    await fanout.close(OUTCOME, grace=5)

    for sink in (a, b):
        assert np.array_equal(sink.audio(IN), stream.expected(IN, 200))


async def test_a_slow_sink_loses_overwritten_audio_counted_for_it_alone() -> None:
    stream = Stream(capacity=100)
    slow, fast = GatedSink("slow"), RecordingSink(name="fast")
    fanout = Fanout(INFO, stream.buffers, stream.committed, [slow, fast], get_logger("test"))
    fanout.start()
    stream.write(50)
    fanout.notify()
    await slow.entered.wait()
    for _ in range(10):  # the slow sink is stuck in write(); 500 more samples arrive
        stream.write(50)
        fanout.notify()
        await asyncio.sleep(0)
    slow.gate.set()

    await fanout.close(OUTCOME, grace=5)

    assert fanout.losses["fast"] == 0
    assert fanout.losses["slow"] > 0
    received = sum(len(b) for b in slow.blocks)
    assert received + fanout.losses["slow"] == 550
    assert np.array_equal(fast.audio(IN), stream.expected(IN, 550))
    # What the slow sink did receive is still exact, at its place on the clock.
    last = slow.blocks[-1]
    assert np.array_equal(last.channels[IN], stream.expected(IN, 550)[last.start : last.end])


@pytest.mark.parametrize("fail_in", ["open", "write"])
async def test_a_failing_sink_is_disabled_logged_once_and_the_others_go_on(fail_in: str) -> None:
    stream = Stream()
    bad, good = FailingSink("bad", fail_in), RecordingSink(name="good")
    fanout = Fanout(INFO, stream.buffers, stream.committed, [bad, good], get_logger("test"))
    with capture_logs() as logs:
        fanout.start()
        for _ in range(5):
            stream.write(10)
            fanout.notify()
            await asyncio.sleep(0)
        await fanout.close(OUTCOME, grace=5)

    failures = [entry for entry in logs if entry["event"] == "sink_failed"]
    assert len(failures) == 1
    assert failures[0]["sink"] == "bad" and failures[0]["phase"] == fail_in
    assert fanout.disabled == ("bad",)
    assert np.array_equal(good.audio(IN), stream.expected(IN, 50))
    assert good.outcome is not None and good.outcome.disabled_sinks == ("bad",)


async def test_a_sink_that_never_finishes_is_cancelled_at_close() -> None:
    stream = Stream()
    stuck = GatedSink("stuck")
    fanout = Fanout(INFO, stream.buffers, stream.committed, [stuck], get_logger("test"))
    fanout.start()
    stream.write(10)
    fanout.notify()
    with capture_logs() as logs:
        await fanout.close(OUTCOME, grace=0.05)

    assert fanout.disabled == ("stuck",)
    assert [e["event"] for e in logs] == ["sink_close_timeout"]
