"""
The bare baseline receiver: what the cheapest honest Python receiver costs.

``websockets`` + uvloop + orjson, one awaited ``recv()`` per message: parse
the JSON, base64-decode the payload, mu-law-decode it (numpy table lookup)
(or read it as little-endian L16 where the format sends L16; a binary frame
is read as its opening message says, two interleaved tracks split) and
append the samples to the track's buffer (a fixed ring, so memory stays
flat). It answers AudioHook's ``open`` and ``close``, which the client
waits for. No media clock, no sinks, no files, no validation beyond what the
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
from typing import Any

import numpy as np
import orjson
import uvloop
from websockets.asyncio.server import ServerConnection, serve

from receiver.codecs import _ULAW_TO_INT16 as ULAW

RING_SECONDS = 10  # per track, as the receiver's default buffers (``buffer_seconds``), at the stream's rate


def _audiohook_reply(message: dict[str, Any], seq: int) -> str:
    """AudioHook's answer to ``open`` and ``close`` (the client waits for it)."""
    kind = "opened" if message["type"] == "open" else "closed"
    parameters: dict[str, Any] = {}
    if kind == "opened":
        parameters = {"media": [message["parameters"]["media"][0]], "startPaused": False}
    reply = {"version": "2", "type": kind, "seq": seq, "clientseq": message["seq"], "id": message["id"]}
    return orjson.dumps({**reply, "parameters": parameters}).decode()


async def handle(ws: ServerConnection) -> None:
    rings: dict[str, np.ndarray] = {}  # made at a track's first frame, as the receiver's are at start
    heads = {"inbound": 0, "outbound": 0}
    # Binary frames (the opening text says what they hold): Vonage, jambonz and audio_fork send
    # L16, Asterisk and AudioHook mu-law; jambonz stereo and AudioHook interleave two tracks.
    binary_rate, binary_ulaw, binary_stereo = 16000, False, False
    linear = False  # JSON payloads are L16, not mu-law (Exotel)
    replies = 0
    async for text in ws:
        if type(text) is bytes:
            samples = ULAW[np.frombuffer(text, np.uint8)] if binary_ulaw else np.frombuffer(text, "<i2")
            if binary_stereo:  # two interleaved tracks
                for track, part in (("inbound", samples[0::2]), ("outbound", samples[1::2])):
                    ring = rings.get(track)
                    if ring is None:
                        ring = rings[track] = np.zeros(binary_rate * RING_SECONDS, np.int16)
                    head = heads[track]
                    n = len(part)
                    if head + n > len(ring):
                        head = 0
                    ring[head : head + n] = part
                    heads[track] = head + n
                continue
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
        if text.startswith("MEDIA_START"):  # Asterisk: plain text, then the channel's codec
            binary_rate, binary_ulaw = 8000, "format:ulaw" in text
            continue
        message = orjson.loads(text)
        event = message.get("event")
        if event == "media":
            media = message["media"]
            track = media.get("track", "inbound")
            payload = binascii.a2b_base64(media["payload"])
            samples = np.frombuffer(payload, "<i2") if linear else ULAW[np.frombuffer(payload, np.uint8)]
            ring = rings.get(track)
            if ring is None:
                ring = rings[track] = np.zeros(8000 * RING_SECONDS, np.int16)
            head = heads[track]
            n = len(samples)
            if head + n > len(ring):
                head = 0
            ring[head : head + n] = samples
            heads[track] = head + n
        elif event == "start":
            start = message.get("start") or {}
            media_format = start.get("media_format") or start.get("mediaFormat") or {}
            encoding = str(media_format.get("encoding", "")).lower()
            linear = "l16" in encoding or "raw" in encoding
        elif event == "websocket:connected":  # Vonage
            binary_rate = int(str(message.get("content-type", "")).partition("rate=")[2] or binary_rate)
        elif event == "stop":
            await ws.close(1000)
            return
        elif event is None and message.get("type") in ("open", "close"):  # AudioHook
            replies += 1
            await ws.send(_audiohook_reply(message, replies))
            binary_rate, binary_ulaw, binary_stereo = 8000, True, True
            if message["type"] == "close":
                await ws.close(1000)
                return
        elif event is None:  # jambonz or audio_fork metadata
            binary_rate = int(message.get("sampleRate", 8000))
            binary_stereo = message.get("mixType") == "stereo"


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
