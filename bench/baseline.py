"""
The bare baseline receiver: what the cheapest honest Python receiver costs.

``websockets`` + uvloop + orjson, one awaited ``recv()`` per message: parse
the JSON, base64-decode the payload, mu-law-decode it (numpy table lookup)
(or, for a binary frame, read it as little-endian L16)
and append the samples to the track's buffer (a fixed ring, so memory stays
flat). No media clock, no sinks, no files, no validation beyond what the
decoders do. The benchmark measures it in the same run as the receiver, so
results are ratios as well as absolute times.

    python -m bench.baseline --port 8090
"""

from __future__ import annotations

import argparse
import asyncio
import binascii
import signal
import sys

import numpy as np
import orjson
import uvloop
from websockets.asyncio.server import ServerConnection, serve

from receiver.codecs import _ULAW_TO_INT16 as ULAW

RING_SECONDS = 10  # per track, as the receiver's default buffers (``buffer_seconds``), at the stream's rate


async def handle(ws: ServerConnection) -> None:
    rings: dict[str, np.ndarray] = {}  # made at a track's first frame, as the receiver's are at start
    heads = {"inbound": 0, "outbound": 0}
    binary_rate = 16000  # Vonage: its websocket:connected message says the L16 rate
    async for text in ws:
        if type(text) is bytes:  # Vonage: raw little-endian L16, one track
            samples = np.frombuffer(text, "<i2")
            ring = rings.get("inbound")
            if ring is None:
                ring = rings["inbound"] = np.zeros(binary_rate * RING_SECONDS, np.int16)
            head = heads["inbound"]
            n = len(samples)
            if head + n > len(ring):
                head = 0
            ring[head : head + n] = samples
            heads["inbound"] = head + n
            continue
        message = orjson.loads(text)
        event = message.get("event")
        if event == "media":
            media = message["media"]
            track = media["track"]
            samples = ULAW[np.frombuffer(binascii.a2b_base64(media["payload"]), np.uint8)]
            ring = rings.get(track)
            if ring is None:
                ring = rings[track] = np.zeros(8000 * RING_SECONDS, np.int16)
            head = heads[track]
            n = len(samples)
            if head + n > len(ring):
                head = 0
            ring[head : head + n] = samples
            heads[track] = head + n
        elif event == "websocket:connected":
            binary_rate = int(str(message.get("content-type", "")).partition("rate=")[2] or binary_rate)
        elif event == "stop":
            await ws.close(1000)
            return


async def main_async(port: int) -> None:
    async with serve(handle, "127.0.0.1", port, compression=None, max_size=65536):
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        print(f"baseline listening on {port}", flush=True)
        await stop.wait()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvloop.run(main_async(args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
