"""
What publishing to the audio bus costs the receiver, per media message (``python -m bench.bus``).

The end-to-end bench (``python -m bench --bus``) compares a receiver with and
without the bus, but on a shared 2-core machine its runs spread by ±30%.
This measures the bus's own share directly, in one process: for ``--calls``
two-track 8 kHz streams of ``--seconds``, every 200 ms block is copied out as
the fan-out does for a sink (``TrackBuffer.read``), handed to ``BusSink``,
and sent to a redis-server of its own (``tests/services.py``) by the
publisher's pipelined batches, and the process's CPU time is read. One
block carries 20 media messages (two tracks, 20 ms frames), so the cost per
message is the cost per block / 20, to be set against the receiver's
CPU µs per message from ``python -m bench`` in the same sitting.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from receiver.bus import BusKeys  # noqa: E402
from receiver.bus.publisher import BusPublisher, BusSink  # noqa: E402
from receiver.events import Encoding, MediaFormat, Platform, Track  # noqa: E402
from receiver.ringbuffer import TrackBuffer  # noqa: E402
from receiver.sinks import AudioBlock, StreamInfo, StreamOutcome  # noqa: E402
from tests.services import RedisServer  # noqa: E402

RATE = 8000
BLOCK = 1600
MESSAGES_PER_BLOCK = 20


async def run(url: str, calls: int, seconds: float) -> tuple[float, int, int]:
    keys = BusKeys("benchbus")
    rng = np.random.default_rng(2)
    rings = {t: TrackBuffer(10 * RATE) for t in (Track.INBOUND, Track.OUTBOUND)}
    for ring in rings.values():
        ring.write(rng.integers(-20000, 20000, 10 * RATE, dtype=np.int16))
    blocks = int(seconds * RATE / BLOCK)
    async with BusPublisher(url, keys=keys) as publisher:
        sinks = []
        for i in range(calls):
            info = StreamInfo(
                stream_id=f"str_{i}",
                call_id=f"call_{i}",
                platform=Platform.MINIVOICE,
                tracks=(Track.INBOUND, Track.OUTBOUND),
                media_format=MediaFormat(Encoding.MULAW, RATE),
            )
            sink = BusSink(publisher, 0.2)
            await sink.open(info)
            sinks.append(sink)
        await publisher.flush()
        cpu = time.process_time()
        for b in range(blocks):
            start = (b * BLOCK) % (9 * RATE)
            for sink in sinks:  # as the fan-out: copy the span out of the rings, hand it over
                channels = {}
                for track, ring in rings.items():
                    samples = ring.read(ring.oldest + start, ring.oldest + start + BLOCK)
                    samples.flags.writeable = False
                    channels[track] = samples
                await sink.write(AudioBlock(b * BLOCK, RATE, channels))
            await publisher.flush()  # a round is 200 ms of every call: in real time the publisher keeps up
        for sink in sinks:
            await sink.close(StreamOutcome(reason="stop", close_code=1000, duration_seconds=seconds, samples=0))
        await publisher.flush()
        used = time.process_time() - cpu
        return used, blocks * calls, publisher.dropped


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    redis = RedisServer()
    try:
        results = [asyncio.run(run(redis.url, args.calls, args.seconds)) for _ in range(args.repeat)]
    finally:
        redis.stop()
    per_block = sorted(used / n * 1e6 for used, n, _dropped in results)
    median = per_block[len(per_block) // 2]
    print(f"{args.calls} two-track calls x {args.seconds:g} s of 200 ms blocks, {args.repeat} runs")
    print(f"receiver CPU per block published: {', '.join(f'{x:.1f}' for x in per_block)} µs (median {median:.1f})")
    print(f"per media message: {median / MESSAGES_PER_BLOCK:.2f} µs; dropped: {[r[2] for r in results]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
