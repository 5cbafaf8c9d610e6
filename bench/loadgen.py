"""
The load generator: N calls over real WebSockets, in any wire format the receiver speaks (MiniVoice by default).

Run by the driver as ``python -m bench.loadgen --port P --calls N ...``; it
prints one JSON object per line on stdout (phases, progress, the result) for
the driver to read, and nothing else.

Why Python with pre-encoded frames, not a Python WebSocket client: a client
library spends about 9 µs per message (more than the receiver it measures).
This generator is a bare ``asyncio.Protocol`` on uvloop: the handshake is one
hand-written request, frames are built by byte formatting and one XOR (about
2 µs, ``bench/messages.py``), and nothing is parsed on the way back but pings
(answered: the receiver's keepalive closes silent clients), pongs and close
frames. It reports its own CPU per message so every run shows it
stayed cheaper than the receiver.

Modes:

- ``realtime``: every call sends one frame per track every 20 ms, each message
  its own ``transport.write``. Calls are spread over the 20 ms period (1 ms
  slots) as real calls would be. How late each slot ran is recorded.
- ``flood``: every call writes batches of 100 frames (one second of audio) per
  ``writelines``, as fast as the socket takes them (it waits when the
  transport pauses writing): the receiver's ceiling.

A sample of connections is pinged every 250 ms: a growing round trip means the
receiver fell behind its sockets.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import time
from typing import Any

from .messages import FORMATS, FRAME_MS, Call, WireCall, frame, make_call

PING_EVERY = 0.25
PING_SAMPLE = 8


def emit(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


class Client(asyncio.Protocol):
    """One call's connection: the handshake, then raw frames out, pongs and close in."""

    def __init__(self, host: str, port: int, path: str, subprotocol: str | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        offer = f"Sec-WebSocket-Protocol: {subprotocol}\r\n" if subprotocol else ""
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\nSec-WebSocket-Version: 13\r\n"
            f"{offer}User-Agent: MiniVoice/1.0\r\nX-MiniVoice-Call-Id: bench\r\n\r\n"
        ).encode()
        self.transport: asyncio.Transport | None = None
        self.handshake: asyncio.Future[None] = self.loop.create_future()
        self.closed: asyncio.Future[int | None] = self.loop.create_future()
        self.buf = bytearray()
        self.upgraded = False
        self.can_write = asyncio.Event()
        self.can_write.set()
        self.pings: dict[bytes, float] = {}
        self.rtts: list[tuple[float, float]] = []
        self.close_code: int | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport subclass
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.upgraded:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(self.buf[:end]).split(b"\r\n", 1)[0]
            del self.buf[: end + 4]
            if b" 101 " not in status + b" ":
                if not self.handshake.done():
                    self.handshake.set_exception(ConnectionError(status.decode(errors="replace")))
                return
            self.upgraded = True
            self.handshake.set_result(None)
        buf = self.buf
        while len(buf) >= 2:
            opcode = buf[0] & 0x0F
            n = buf[1] & 0x7F
            i = 2
            if n == 126:
                if len(buf) < 4:
                    return
                n, i = int.from_bytes(buf[2:4], "big"), 4
            elif n == 127:
                if len(buf) < 10:
                    return
                n, i = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < i + n:
                return
            payload = bytes(buf[i : i + n])
            del buf[: i + n]
            if opcode == 0xA:
                sent = self.pings.pop(payload, None)
                if sent is not None:
                    now = time.monotonic()
                    self.rtts.append((now, now - sent))
            elif opcode == 0x9:  # the server's keepalive: answer, or it closes us after ping_timeout
                if self.transport is not None and not self.transport.is_closing():
                    self.transport.write(frame(payload, opcode=0xA))
            elif opcode == 0x8:
                self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
                if self.transport is not None:
                    self.transport.close()

    def pause_writing(self) -> None:
        self.can_write.clear()

    def resume_writing(self) -> None:
        self.can_write.set()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.handshake.done():
            self.handshake.set_exception(exc or ConnectionError("closed during the handshake"))
        if not self.closed.done():
            self.closed.set_result(self.close_code)
        self.can_write.set()


class Generator:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.calls: list[Call | WireCall] = []
        self.clients: list[Client] = []
        self.sent = 0  # media messages
        self.lateness: list[float] = []  # per slot, seconds
        self.running = True

    async def connect(self) -> None:
        args = self.args
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(50)
        run = os.urandom(2).hex()

        async def one(i: int) -> None:
            async with gate:
                subprotocol = self.calls[i].subprotocol
                _, client = await loop.create_connection(
                    lambda: Client(args.host, args.port, f"/{args.format}/{i}", subprotocol), args.host, args.port
                )
                await asyncio.wait_for(client.handshake, 30)
            self.clients[i] = client

        self.calls = [make_call(i, run=run, fmt=args.format) for i in range(args.calls)]
        self.clients = [None] * args.calls  # type: ignore[list-item]
        await asyncio.gather(*(one(i) for i in range(args.calls)))

    async def start_streams(self, t0: float) -> None:
        period = FRAME_MS / 1000
        for i, (call, client) in enumerate(zip(self.calls, self.clients, strict=True)):
            phase = (i % 20) * period / 20
            assert client.transport is not None
            client.transport.write(call.connected() + call.start({"bench_t0": repr(t0 + phase)}))

    async def realtime(self, t0: float, ticks: int) -> None:
        """One 1 ms slot at a time: each call in the slot sends both tracks, one write each."""
        monotonic = time.monotonic
        slots: list[list[tuple[Call | WireCall, Any]]] = [[] for _ in range(20)]
        for i, (call, client) in enumerate(zip(self.calls, self.clients, strict=True)):
            slots[i % 20].append((call, client.transport.write))  # type: ignore[union-attr]
        slot_s = FRAME_MS / 1000 / 20
        lateness = self.lateness
        total = ticks * 20
        k = 0
        while k < total and self.running:
            due = t0 + k * slot_s
            delay = due - monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            lateness.append(monotonic() - due)
            sent = 0
            for call, write in slots[k % 20]:
                for message in call.pair():
                    write(message)
                    sent += 1
            self.sent += sent
            k += 1

    async def flood(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()

        async def one(call: Call | WireCall, client: Client) -> None:
            transport = client.transport
            assert transport is not None
            while loop.time() < deadline and self.running:
                await client.can_write.wait()
                frames: list[bytes] = []
                for _ in range(50):
                    frames.extend(call.pair())
                transport.writelines(frames)
                self.sent += len(frames)
                # Let the other calls and the pinger run between batches.
                await asyncio.sleep(0)

        await asyncio.gather(*(one(c, cl) for c, cl in zip(self.calls, self.clients, strict=True)))

    async def pinger(self) -> None:
        sample = self.clients[:: max(1, len(self.clients) // PING_SAMPLE)][:PING_SAMPLE]
        n = 0
        while True:
            await asyncio.sleep(PING_EVERY)
            now = time.monotonic()
            for client, call in zip(sample, self.calls, strict=False):
                if client.transport is None or client.transport.is_closing():
                    continue
                n += 1
                data = n.to_bytes(4, "big")
                client.pings[data] = now
                client.transport.write(call.ping(data))

    async def finish(self) -> None:
        for call, client in zip(self.calls, self.clients, strict=True):
            if client.transport is not None and not client.transport.is_closing():
                client.transport.write(call.stop() + call.close())
        await asyncio.wait_for(asyncio.gather(*(c.closed for c in self.clients)), self.args.drain_timeout)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def main_async(args: argparse.Namespace) -> int:
    gen = Generator(args)
    loop = asyncio.get_running_loop()
    await gen.connect()
    emit(phase="connected", calls=args.calls)
    t0 = time.monotonic() + 0.2
    await gen.start_streams(t0)
    pinger = loop.create_task(gen.pinger())
    ticks = int(args.duration * 1000 / FRAME_MS)
    emit(phase="load_start", t=time.monotonic())
    cpu0 = time.process_time()
    ru0 = os.times()
    wall0 = time.monotonic()

    async def progress() -> None:
        last, last_t = 0, time.monotonic()
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            emit(progress=True, t=round(now - wall0, 1), sent=gen.sent, rate=round((gen.sent - last) / (now - last_t)))
            last, last_t = gen.sent, now

    reporter = loop.create_task(progress())
    try:
        if args.mode == "realtime":
            await gen.realtime(t0, ticks)
        else:
            await gen.flood(loop.time() + args.duration)
    finally:
        reporter.cancel()
    wall1 = time.monotonic()
    cpu1 = time.process_time()
    ru1 = os.times()
    emit(phase="load_end", t=wall1, sent=gen.sent)
    drain_error = None
    try:
        await gen.finish()
    except TimeoutError:
        drain_error = "timeout"
    wall2 = time.monotonic()
    pinger.cancel()
    rtts = sorted((t - wall0, rtt) for c in gen.clients for t, rtt in c.rtts)
    quarter = max(1, len(rtts) // 4)
    codes: dict[str, int] = {}
    for c in gen.clients:
        codes[str(c.close_code)] = codes.get(str(c.close_code), 0) + 1
    emit(phase="drained", t=wall2)
    emit(
        result={
            "mode": args.mode,
            "calls": args.calls,
            "media_messages": gen.sent,
            "load_seconds": wall1 - wall0,
            "drain_seconds": wall2 - wall1,
            "drain_error": drain_error,
            "generator_cpu_us_per_msg": (cpu1 - cpu0) / max(1, gen.sent) * 1e6,
            "generator_sys_us_per_msg": (ru1.system - ru0.system) / max(1, gen.sent) * 1e6,
            "lateness_ms": {
                "p50": _pct(gen.lateness, 0.5) * 1e3,
                "p99": _pct(gen.lateness, 0.99) * 1e3,
                "max": max(gen.lateness, default=0.0) * 1e3,
            },
            "ping_rtt_ms": {
                "first_quarter_p50": _pct([r for _, r in rtts[:quarter]], 0.5) * 1e3,
                "last_quarter_p50": _pct([r for _, r in rtts[-quarter:]], 0.5) * 1e3,
                "p99": _pct([r for _, r in rtts], 0.99) * 1e3,
                "max": max((r for _, r in rtts), default=0.0) * 1e3,
                "count": len(rtts),
            },
            "close_codes": codes,
        }
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--mode", choices=["realtime", "flood"], default="realtime")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load")
    parser.add_argument("--format", choices=list(FORMATS), default="minivoice")
    parser.add_argument("--drain-timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    import uvloop

    return uvloop.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
