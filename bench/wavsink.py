"""
The WAV sink's own file work per media message, in process, for counting instructions.

20 two-track streams, ten 0.5 s blocks each (the sink's interval) through
``WavSink._write`` (inbound, outbound and stereo files), on the calling thread:
no hand-off, no event loop. Under callgrind only the loop is counted (it runs
inside ``functools.reduce``); system calls count as their user-space part.

    valgrind --tool=callgrind --collect-atstart=no --toggle-collect=functools_reduce \\
        --callgrind-out-file=/tmp/wav.out .venv/bin/python -m bench.wavsink
    # instructions per media message = "Collected" / 10,000 (20 streams x 10 blocks x 50 messages)
"""

from __future__ import annotations

import asyncio
import functools
import sys
import tempfile
import time

import numpy as np

from receiver.events import Encoding, MediaFormat, Platform, Track
from receiver.sinks import AudioBlock, StreamInfo
from receiver.sinks.wav import WavSink

STREAMS, BLOCKS, RATE = 20, 10, 8000
BLOCK = RATE // 2  # 0.5 s: the sink's interval
MESSAGES_PER_BLOCK = 2 * BLOCK // 160  # two tracks of 20 ms frames


async def run(recordings: str) -> float:
    sinks = []
    for i in range(STREAMS):
        info = StreamInfo(
            f"s{i}", f"c{i}", Platform.MINIVOICE, (Track.INBOUND, Track.OUTBOUND), MediaFormat(Encoding.MULAW, RATE)
        )
        sink = WavSink(recordings)
        await sink.open(info)
        sinks.append(sink)
    rng = np.random.default_rng(1)
    blocks = [
        AudioBlock(
            k * BLOCK,
            RATE,
            {track: rng.integers(-3000, 3000, BLOCK).astype(np.int16) for track in (Track.INBOUND, Track.OUTBOUND)},
        )
        for k in range(BLOCKS)
    ]

    def step(_: object, block: AudioBlock) -> None:
        for sink in sinks:
            sink._write(block)

    cpu = time.process_time()
    functools.reduce(step, blocks, None)
    return time.process_time() - cpu


def main() -> int:
    with tempfile.TemporaryDirectory() as recordings:
        cpu = asyncio.run(run(recordings))
    messages = STREAMS * BLOCKS * MESSAGES_PER_BLOCK
    print(f"wav sink: {messages} media messages, {cpu / messages * 1e6:.3f} µs CPU each", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
