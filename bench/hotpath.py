"""
The per-message path in process, for counting instructions: the stream handler's ``on_message``.

No sockets, no frame cutting, no WAV sink: what the receiver does with one
unmasked text message (session, typed parser, base64, G.711, media clock,
ring buffers, fan-out). Under callgrind only the loop is counted (it runs
inside ``functools.reduce``), so the figure does not depend on the load of
a shared machine: use it for before/after of a change to that path.

    valgrind --tool=callgrind --collect-atstart=no --toggle-collect=functools_reduce \\
        --callgrind-out-file=/tmp/hot.out .venv/bin/python -m bench.hotpath --format twilio
    # instructions per message = "Collected" / (messages a tick x streams x ticks): 2 x 50 x 10,
    # 1 x 50 x 10 for the formats that send one message per 20 ms (bench/README.md's table)

``--fast-path K`` starts from the masked frames instead, K to a read, through the
fast path's ``data_received`` (frame cutting, unmasking, UTF-8, the callback):
1 is real time, 20 a flood's reads. ``--wav`` attaches the WAV sink (its file
work runs between ticks, outside the count; the count has what a sink costs
the receive path).

Without valgrind it prints the CPU time per message (noisy on a shared machine).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import sys
import tempfile
import time
from types import SimpleNamespace
from typing import Any

import structlog
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.speedups import apply_mask

from receiver.app import ReceiverServer
from receiver.config import Settings
from receiver.stream.fastpath import FrameReader
from receiver.stream.handler import StreamHandler

from .messages import FORMATS, frames_per_tick, make_call


def unmask(frame: bytes) -> str | bytes:
    """One masked client frame's message as the fast path hands it on (text as str, binary as bytes)."""
    n = frame[1] & 0x7F
    i = 4 if n == 126 else 2
    payload = apply_mask(frame[i + 4 :], frame[i : i + 4])
    return payload.decode() if frame[0] & 0x0F == 0x1 else payload


def split(frames: bytes) -> list[bytes]:
    """Back-to-back masked client frames (a call's opening) one by one."""
    out = []
    while frames:
        n = frames[1] & 0x7F
        i = 4 if n == 126 else 10 if n == 127 else 2
        if n >= 126:
            n = int.from_bytes(frames[2:i], "big")
        out.append(frames[: i + 4 + n])
        frames = frames[i + 4 + n :]
    return out


def _fast_reader(server: ReceiverServer, stream: Any) -> FrameReader:
    """A fast-path reader without a socket, attached to ``stream`` as the server does."""
    # websockets' own protocol object, open: its ``state`` is a property, as in the server
    protocol = ServerProtocol(max_size=2**20)
    protocol.state = State.OPEN
    reader = FrameReader(protocol, _refuse)
    reader.on_text = server.message_handler(stream)
    reader.dispatching = True
    return reader


def _refuse(data: bytes) -> None:
    raise RuntimeError("a frame left the fast path")


async def run(fmt: str, streams: int, ticks: int, recordings: str | None = None, per_read: int = 0) -> float:
    settings = Settings(
        wav=recordings is not None, recordings_dir=recordings or "recordings", max_messages_per_second=0
    )
    server = ReceiverServer(settings)
    calls = [make_call(i, fmt=fmt, run="h") for i in range(streams)]
    live: list[Any] = []
    for call in calls:
        # No peer: AudioHook's replies are not sent (the server sends nothing to a closed connection).
        peer = SimpleNamespace(state=State.CLOSED)
        ws: Any = SimpleNamespace(subprotocol=call.subprotocol, request=None, remote_address=None, protocol=peer)
        stream = StreamHandler(ws, structlog.get_logger(), server.guard.new_limits(), None, None)
        for opening in split(call.connected() + call.start()):
            server._on_message(stream, unmask(opening))
        live.append(stream)
    for _ in range(3):  # first media, first writes
        for stream, call in zip(live, calls, strict=True):
            for message in call.pair():
                server._on_message(stream, unmask(message))
    if per_read:
        # From the socket's bytes: each stream's masked frames through the fast path's
        # data_received, ``per_read`` frames a read (a flood reads many at once).
        readers = [_fast_reader(server, stream) for stream in live]
        frames = [[m for _ in range(ticks) for m in call.pair()] for call in calls]
        reads = [[b"".join(f[i : i + per_read]) for i in range(0, len(f), per_read)] for f in frames]
        rounds = [[(reader, r[j]) for reader, r in zip(readers, reads, strict=True)] for j in range(len(reads[0]))]

        def feed(_: object, batch: list[tuple[Any, bytes]]) -> None:
            for reader, data in batch:
                reader.feed(data)  # what the event loop calls for a read

        cpu = time.process_time()
        functools.reduce(feed, rounds, None)
    else:
        # Each message to its stream's handler, as the fast path hands it on.
        handlers = [server.message_handler(stream) for stream in live]
        batches = [
            [(on_message, unmask(m)) for on_message, call in zip(handlers, calls, strict=True) for m in call.pair()]
            for _ in range(ticks)
        ]

        def tick(_: object, batch: list[tuple[Any, str | bytes]]) -> None:
            for on_message, text in batch:
                on_message(text)

        cpu = time.process_time()
        functools.reduce(tick, batches, None)
    cpu = time.process_time() - cpu
    tracks = len(calls[0].pair())
    if any(s.session.stats.media_messages != tracks * (ticks + 3) for s in live):
        raise RuntimeError("not every media message was taken")
    return cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hotpath", description=__doc__.split("\n\n")[0])
    parser.add_argument("--format", choices=list(FORMATS), default="minivoice")
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--ticks", type=int, default=10, help="20 ms frames per track per stream")
    parser.add_argument(
        "--wav",
        action="store_true",
        help="with the WAV sink attached (its writes run between ticks, outside the count: this "
        "counts what the receive path pays for having a sink, its wake-up per frame)",
    )
    parser.add_argument(
        "--fast-path",
        type=int,
        default=0,
        metavar="K",
        help="start from the masked frames: K a read through the fast path's data_received "
        "(frame cutting, unmasking, UTF-8 and the callback counted too); 0: from unmasked messages",
    )
    args = parser.parse_args(argv)
    logging.disable(logging.CRITICAL)
    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())
    with tempfile.TemporaryDirectory() as recordings:
        cpu = asyncio.run(run(args.format, args.streams, args.ticks, recordings if args.wav else None, args.fast_path))
    messages = frames_per_tick(args.format) * args.streams * args.ticks
    print(f"{args.format}: {messages} media messages, {cpu / messages * 1e6:.2f} µs CPU each", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
