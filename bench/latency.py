"""
The receiver with an instrumented sink: how long a frame takes from arrival to a sink.

    python -m bench.latency --port P --recordings-dir DIR --out latency.json

Runs the real ``ReceiverServer`` with its default sinks (the WAV sink) plus a
``LatencySink`` with ``interval = 0`` (woken as soon as audio is committed).
The generator puts each call's send schedule in the ``start`` message
(``custom_parameters.bench_t0``: the ``time.monotonic()`` at which the
frame with timestamp 0 is due; frame ``k`` is due 20 ms later per frame).
``time.monotonic()`` is CLOCK_MONOTONIC, shared by every process on the
machine. Two figures per 20 ms frame of each track:

- **arrival to sink** (the target): each stream's session is a subclass whose
  ``receive_text`` notes when each frame left the parser for the pipeline (microseconds after
  its bytes were read); the sink records ``now - arrival`` for every frame of every
  track in each block. It includes the time a frame waited for the other
  track (sinks see audio once every track is committed up to it).
- **scheduled send to sink**: ``now - due``, which adds the generator's own
  lateness (large on a loaded machine).

On SIGTERM the percentiles are written to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import uvloop

from receiver.app import ReceiverServer, default_sinks, settle_heap
from receiver.config import Settings
from receiver.events import Event, MediaReceived, StreamStopped, Track
from receiver.logging import configure
from receiver.session import StreamSession
from receiver.sinks import AudioBlock, StreamInfo, StreamOutcome
from receiver.stream.handler import StreamHandler
from receiver.stream.server import StreamServer

FRAME = 160  # samples in a 20 ms frame at 8 kHz


ARRIVALS: dict[tuple[str, Track, int], float] = {}  # (stream, track, first sample) -> arrival


class _TimedSession(StreamSession):
    """A session that notes when each media frame leaves the parser, on its way to the pipeline.

    A subclass, not a patch: the session may be compiled (a compiled class takes no patch), and
    its ``receive_text`` is a ``cpdef`` method, which still calls a Python subclass's override.
    """

    def receive_text(self, text: str | bytes) -> Event | None:
        event = super().receive_text(text)
        if type(event) is MediaReceived and event.timestamp_ms is not None and self.started is not None:
            pos = event.timestamp_ms * (self.started.media_format.sample_rate // 1000)
            ARRIVALS[(self.started.stream_id, event.track, pos)] = time.monotonic()
        return event


def _instrument() -> None:
    """Give every stream a ``_TimedSession`` before its first message is read."""
    message_handler = StreamServer.message_handler

    def timed(self: StreamServer, stream: StreamHandler) -> Callable[[str | bytes], StreamStopped | None]:
        # The fast path asks for the stream's callback before it reads the stream's first message.
        assert stream.session.stats.messages == 0
        stream.session = _TimedSession(route=stream.session._route, subprotocol=stream.ws.subprotocol)
        return message_handler(self, stream)

    StreamServer.message_handler = timed  # type: ignore[method-assign]


class LatencySink:
    name = "latency"
    interval = 0.0

    def __init__(self, samples: list[float], scheduled: list[float]) -> None:
        self._samples = samples
        self._scheduled = scheduled
        self._t0 = 0.0
        self._rate = 8000
        self._stream = ""
        self._tracks: tuple[Track, ...] = ()

    async def open(self, stream: StreamInfo) -> None:
        self._t0 = float(stream.custom_parameters.get("bench_t0", "nan"))
        self._rate = stream.sample_rate
        self._stream = stream.stream_id
        self._tracks = stream.tracks

    async def write(self, block: AudioBlock) -> None:
        now = time.monotonic()
        first = -(-block.start // FRAME) * FRAME
        for start in range(first, block.end - FRAME + 1, FRAME):
            self._scheduled.append(now - (self._t0 + start / self._rate))
            for track in self._tracks:
                arrived = ARRIVALS.pop((self._stream, track, start), None)
                if arrived is not None:
                    self._samples.append(now - arrived)

    async def close(self, outcome: StreamOutcome) -> None:
        return None


async def main_async(args: argparse.Namespace) -> None:
    settings = Settings(
        host="127.0.0.1",
        port=args.port,
        recordings_dir=args.recordings_dir,
        log_format="json",
        repair_on_start=False,
        # as `receiver serve` reads it: RECEIVER_READ_PACING_MS=0 measures the receiver unpaced
        read_pacing_ms=float(os.environ.get("RECEIVER_READ_PACING_MS", Settings().read_pacing_ms)),
    )
    samples: list[float] = []
    scheduled: list[float] = []
    _instrument()
    factories = [*default_sinks(settings), lambda info: LatencySink(samples, scheduled)]
    server = ReceiverServer(settings, sinks=factories)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()
        values = np.array(samples) * 1e3
        sched = np.array([s for s in scheduled if s == s]) * 1e3
        result = {
            "frames": int(values.size),
            "p50_ms": float(np.percentile(values, 50)) if values.size else None,
            "p99_ms": float(np.percentile(values, 99)) if values.size else None,
            "max_ms": float(values.max()) if values.size else None,
            "scheduled_p50_ms": float(np.percentile(sched, 50)) if sched.size else None,
            "scheduled_p99_ms": float(np.percentile(sched, 99)) if sched.size else None,
            "reorder_window_ms": settings.reorder_window_ms,
        }
        Path(args.out).write_text(json.dumps(result))  # noqa: ASYNC240 - once, at exit


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.latency")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--recordings-dir", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    configure(fmt="json", level="info")
    settle_heap()  # as receiver.app.run does before serving
    uvloop.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
