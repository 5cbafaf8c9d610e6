#!/usr/bin/env python3
"""
Soak: many streams opening, streaming and closing against one in-process
receiver, with random faults, then a check that nothing leaked.

Faults: abrupt disconnects (TCP abort mid-stream), garbage and binary
messages, media before start, oversize messages, unknown events, stalled
clients that never send (after the upgrade, after start, or before the HTTP
request: the server's start, idle and handshake timeouts must reap them),
and the attacks of issue #13: streams that reuse another's call and stream
ids (at once, and ids the file names used to fold together), floods of
upgrades without a credential (the unauthenticated budget refuses the
overflow with 503; signed streams keep coming in), timestamps that jump just
under ``max_gap_ms`` (closed 4425), and ping floods (closed 4429). The server
requires stream tokens: most streams carry a signed URL.
Afterwards the server's open file descriptors and asyncio tasks must be back
where they started, every budget (unauthenticated places, upgrades in
progress, authenticated streams) empty, traced Python memory within a small
margin, and the process's RSS within 64 MiB of where it started (300 s with
40 clients: about +32 MiB; before ring buffers had mappings of their own,
glibc's heap fragmentation took it +200 MiB).

With ``--cycles N`` (default 3), N rounds of ``--cycle-streams`` (200) streams
that fill their ring buffers (10 s of audio each, sent on the real-time
clock) then all close, follow; RSS after each round is reported and may not
grow more than 16 MiB from the first round to the last (before buffers were
released when their stream ended: 255 → 316 → 408 MB).

    python scripts/soak.py --seconds 300 --clients 40      # make soak
    python scripts/soak.py --seconds 10 --json              # figures as JSON

Exit status 0 when nothing leaked and the server logged no error.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import gc
import json
import logging
import os
import random
import shutil
import sys
import tempfile
import time
import tracemalloc
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import structlog

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from websockets.asyncio.client import ClientConnection, connect  # noqa: E402
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus  # noqa: E402

from receiver.app import ReceiverServer  # noqa: E402
from receiver.config import Settings  # noqa: E402
from receiver.security.auth import sign_stream_url  # noqa: E402
from receiver.testing import MiniVoiceMessages  # noqa: E402

SCENARIOS = {
    # name: weight
    "normal": 30,
    "abrupt_disconnect": 12,
    "garbage": 8,
    "binary_frame": 5,
    "media_before_start": 5,
    "unknown_events": 6,
    "oversize": 4,
    "stall_after_upgrade": 5,
    "stall_after_start": 5,
    "stall_before_request": 4,
    "partial_request": 3,
    "id_collision": 5,
    "pre_auth_flood": 2,
    "timestamp_jump": 4,
    "ping_flood": 2,
}
SECRET = "soak-secret"
_PING = b"\x89\x80\x00\x00\x00\x00"  # a masked ping frame with no payload (a zero mask key)
FLOOD = 20  # upgrades without a credential per pre_auth_flood (over the per-client budget of 16)
FRAME = b"\x55" * 160


@dataclass
class Report:
    seconds: float = 0.0
    clients: int = 0
    streams: int = 0
    faults: int = 0
    scenarios: dict[str, int] = field(default_factory=dict)
    client_close_codes: dict[str, int] = field(default_factory=dict)
    client_errors: dict[str, int] = field(default_factory=dict)
    server_counts: dict[str, int] = field(default_factory=dict)
    server_log_errors: dict[str, int] = field(default_factory=dict)
    fds_before: int = 0
    fds_after: int = 0
    tasks_before: int = 0
    tasks_after: int = 0
    traced_kib_before: float = 0.0
    traced_kib_after: float = 0.0
    rss_kib_before: int = 0
    rss_kib_after: int = 0
    cycle_rss_kib: list[int] = field(default_factory=list)  # after each round of full streams
    cycle_streams_done: list[int] = field(default_factory=list)  # streams of each round that ran to the end (1000)
    budgets_after: dict[str, int] = field(default_factory=dict)
    top_growth: list[str] = field(default_factory=list)
    leaked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.leaked


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


class _LogCounter:
    """A structlog processor that counts warning and error events and drops every line."""

    def __init__(self) -> None:
        self.errors: collections.Counter[str] = collections.Counter()

    def __call__(self, logger: Any, method: str, event: dict[str, Any]) -> Any:
        if method in ("error", "critical", "exception"):
            self.errors[str(event.get("event"))] += 1
        raise structlog.DropEvent


class _HandlerFailures(logging.Handler):
    """Counts websockets' own error records (a handler that raised: 1011)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


class Soak:
    def __init__(self, server: ReceiverServer, seed: int) -> None:
        self.server = server
        self.rng = random.Random(seed)
        self.url = f"ws://127.0.0.1:{server.port}"
        self.scenarios: collections.Counter[str] = collections.Counter()
        self.codes: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()
        self.serial = 0
        self.untried = list(SCENARIOS)

    def _messages(self) -> MiniVoiceMessages:
        self.serial += 1
        return MiniVoiceMessages(stream_id=f"soak_{self.serial}", call_id=f"call_{self.serial % 50}")

    def _signed(self, messages: MiniVoiceMessages) -> str:
        """A stream URL with a token for the stream's call (each its own: a token opens few streams)."""
        self.serial += 1
        expires = int(time.time()) + 600 + self.serial
        return sign_stream_url(self.url + "/mv", call_id=messages.call_id, secret=SECRET, expires_at=expires)

    async def worker(self, deadline: float) -> None:
        names, weights = list(SCENARIOS), list(SCENARIOS.values())
        loop = asyncio.get_running_loop()
        while loop.time() < deadline:
            # Every kind of fault at least once, then at random by weight.
            name = self.untried.pop() if self.untried else self.rng.choices(names, weights)[0]
            self.scenarios[name] += 1
            try:
                await asyncio.wait_for(getattr(self, name)(), 30)
            except (ConnectionClosed, InvalidHandshake, OSError, TimeoutError) as exc:
                self.errors[f"{name}:{type(exc).__name__}"] += 1

    async def _start(self, ws: ClientConnection, messages: MiniVoiceMessages, frames: int) -> None:
        await ws.send(messages.connected())
        await ws.send(messages.start())
        for chunk in range(1, frames + 1):
            await ws.send(messages.media("inbound", chunk, 20 * (chunk - 1), FRAME))
            await ws.send(messages.media("outbound", chunk, 20 * (chunk - 1), FRAME))
            if chunk % 25 == 0:
                await asyncio.sleep(0)

    async def _closed(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for _ in ws:
                pass
        self.codes[str(ws.close_code)] += 1

    async def normal(self, messages: MiniVoiceMessages | None = None) -> None:
        messages = messages or self._messages()
        async with connect(self._signed(messages)) as ws:
            await self._start(ws, messages, self.rng.randint(5, 150))
            await ws.send(messages.dtmf("1", 100))
            await ws.send(messages.stop())
            await self._closed(ws)

    async def abrupt_disconnect(self) -> None:
        messages = self._messages()
        async with connect(self._signed(messages)) as ws:
            await self._start(ws, messages, self.rng.randint(0, 100))
            ws.transport.abort()
            self.codes["abort"] += 1

    async def garbage(self) -> None:
        messages = self._messages()
        async with connect(self._signed(messages)) as ws:
            await self._start(ws, messages, self.rng.randint(0, 50))
            junk = self.rng.choice(
                ['{"event": "media"', "null", "[1,2]", '{"event":"media","media":{}}', "\x00\xff", ""]
            )
            await ws.send(junk)
            await self._closed(ws)

    async def binary_frame(self) -> None:
        messages = self._messages()
        async with connect(self._signed(messages)) as ws:
            await self._start(ws, messages, self.rng.randint(0, 20))
            await ws.send(os.urandom(self.rng.randint(1, 400)))
            await self._closed(ws)

    async def media_before_start(self) -> None:
        messages = self._messages()
        async with connect(self._signed(messages)) as ws:
            await ws.send(messages.connected())
            await ws.send(messages.media("inbound", 1, 0, FRAME))
            await self._closed(ws)

    async def unknown_events(self) -> None:
        messages = self._messages()
        async with connect(self._signed(messages)) as ws:
            await self._start(ws, messages, 10)
            for _ in range(self.rng.randint(1, 20)):
                await ws.send(json.dumps({"event": "surprise", "sequence_number": 0, "stream_id": messages.stream_id}))
            await ws.send(messages.stop())
            await self._closed(ws)

    async def oversize(self) -> None:
        messages = self._messages()
        async with connect(self._signed(messages), max_size=None) as ws:
            await self._start(ws, messages, 5)
            await ws.send("x" * (self.server.settings.max_message_bytes + 1))
            await self._closed(ws)

    async def stall_after_upgrade(self) -> None:
        try:  # no credential: a place in the unauthenticated budget, if one is free
            async with connect(self.url + "/mv") as ws:
                await self._closed(ws)  # the server's start timeout ends it
        except InvalidStatus as exc:
            self.codes[f"http_{exc.response.status_code}"] += 1

    async def stall_after_start(self) -> None:
        messages = self._messages()
        async with connect(self._signed(messages)) as ws:
            await self._start(ws, messages, self.rng.randint(0, 20))
            await self._closed(ws)  # the idle timeout ends it

    async def id_collision(self) -> None:
        """Two streams with the same ids at once, or two ids the file names used to fold together."""
        self.serial += 1
        if self.rng.random() < 0.5:
            ids = [(f"call_dup_{self.serial}", "str_dup")] * 2
        else:
            ids = [(f"victim/call_{self.serial}", "s"), (f"victim_call_{self.serial}", "s")]
        await asyncio.gather(*(self.normal(MiniVoiceMessages(stream_id=s, call_id=c)) for c, s in ids))

    async def pre_auth_flood(self) -> None:
        """Upgrades without a credential that never start: the overflow gets 503, the rest 4408."""

        async def one() -> None:
            try:
                async with connect(self.url + "/mv") as ws:
                    await self._closed(ws)
            except InvalidStatus as exc:
                self.codes[f"http_{exc.response.status_code}"] += 1

        await asyncio.gather(*(one() for _ in range(FLOOD)))

    async def timestamp_jump(self) -> None:
        messages = self._messages()
        async with connect(self._signed(messages)) as ws:
            await self._start(ws, messages, self.rng.randint(1, 20))
            with contextlib.suppress(ConnectionClosed):
                for n in range(1, 31):  # jumps of 29.9 s: closed 4425 at the first
                    await ws.send(messages.media("inbound", 1000 + n, n * 29_900, FRAME))
            await self._closed(ws)

    async def ping_flood(self) -> None:
        messages = self._messages()
        async with connect(self._signed(messages)) as ws:
            await self._start(ws, messages, 5)
            budget = int(self.server.settings.max_messages_per_second * self.server.settings.rate_window)
            # Masked, empty pings written straight to the socket, as a flood would: closed 4429
            # once over the budget. (The server's pongs are unsolicited to the client: ignored.)
            ws.transport.write(_PING * (budget + 100))
            await self._closed(ws)

    async def full_stream(self, seconds: float, k: int = 0) -> None:
        """Fill the ring buffers: ``seconds`` of both tracks on the real-time clock, then stop.

        ``k``: its place in the round; connections open 10 ms apart (200 upgrades at
        once would outrun the short handshake timeout on a busy machine).
        """
        await asyncio.sleep(0.01 * k)
        messages = self._messages()
        try:
            await self._full_stream(messages, seconds)
        except (ConnectionClosed, InvalidHandshake, OSError, TimeoutError) as exc:
            self.errors[f"full_stream:{type(exc).__name__}"] += 1

    async def _full_stream(self, messages: MiniVoiceMessages, seconds: float) -> None:
        async with connect(self._signed(messages)) as ws:
            await ws.send(messages.connected())
            await ws.send(messages.start())
            loop = asyncio.get_running_loop()
            began = loop.time()
            for chunk in range(1, int(seconds * 50) + 1):
                await ws.send(messages.media("inbound", chunk, 20 * (chunk - 1), FRAME))
                await ws.send(messages.media("outbound", chunk, 20 * (chunk - 1), FRAME))
                if chunk % 25 == 0:  # half a second at a time
                    await asyncio.sleep(max(0.0, began + chunk * 0.02 - loop.time()))
            await ws.send(messages.stop())
            await self._closed(ws)

    async def stall_before_request(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.server.port)
        try:
            await reader.read()  # the handshake timeout drops it
            self.codes["tcp_dropped"] += 1
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def partial_request(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.server.port)
        try:
            writer.write(b"GET /mv HTTP/1.1\r\nHost: x\r\nUpgrade: websock")
            await writer.drain()
            await reader.read()
            self.codes["tcp_dropped"] += 1
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def _janitor(root: Path, stop: asyncio.Event) -> None:
    """Delete finished recordings now and then, so a long soak does not fill the disk."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 5)
        await asyncio.to_thread(_sweep, root, time.time() - 10)


def _sweep(root: Path, cutoff: float) -> None:
    # os.scandir, not Path.glob: pathlib interns every name it parses, and the
    # interned-string table's growth would show up as the server's.
    with contextlib.suppress(OSError), os.scandir(str(root)) as entries:
        for entry in list(entries):
            with contextlib.suppress(OSError):
                if entry.stat().st_mtime < cutoff:
                    shutil.rmtree(entry.path, True)


async def _settle(server: ReceiverServer) -> None:
    for _ in range(200):
        if not server.active_streams:
            break
        await asyncio.sleep(0.05)
    for _ in range(5):
        await asyncio.sleep(0.05)
        gc.collect()


async def soak(
    seconds: float,
    clients: int,
    seed: int = 1,
    directory: Path | None = None,
    timeouts: float = 1.0,
    warmup_streams: int = 120,
    cycles: int = 0,
    cycle_streams: int = 200,
) -> Report:
    """Run the soak; return its figures (``report.ok``: nothing leaked).

    ``timeouts``: the server's handshake, start and idle timeouts (stalled clients
    wait that long). ``warmup_streams``: streams run before the baseline is taken
    (the server keeps the last 100 outcomes: fill that first). ``cycles``: rounds
    of ``cycle_streams`` streams that fill their ring buffers, then close, after
    the faults; RSS is taken after each.
    """
    report = Report(seconds=seconds, clients=clients)
    workdir = Path(tempfile.mkdtemp(prefix="receiver-soak-")) if directory is None else directory
    settings = Settings(
        host="127.0.0.1",
        port=0,
        recordings_dir=str(workdir / "recordings"),
        handshake_timeout=timeouts,
        start_timeout=timeouts,
        idle_timeout=timeouts,
        max_streams=max(clients * 2, cycle_streams if cycles else 0),
        auth_secrets=(SECRET,),
        # A ping flood is closed after 2,000 pings within 10 s; a stream here sends at most about
        # 300 messages at once, or 100 a second on the real-time clock.
        max_messages_per_second=200,
        rate_window=10.0,
        sink_close_timeout=10.0,
        media_summary_seconds=1.0,
        log_format="json",
    )
    saved = structlog.get_config()
    counter = _LogCounter()
    structlog.configure(processors=[counter], cache_logger_on_first_use=False)
    failures = _HandlerFailures()
    logging.getLogger("websockets").addHandler(failures)
    tracemalloc.start(10)
    try:
        async with ReceiverServer(settings) as server:
            run = Soak(server, seed)
            loop = asyncio.get_running_loop()
            # Warm up (imports, caches, the server's history of the last 100 outcomes) before the baseline.
            while server.streams_ended < warmup_streams:
                await asyncio.gather(*(run.worker(loop.time() + min(2.0, seconds / 4)) for _ in range(clients)))
            await _settle(server)
            report.fds_before, report.tasks_before = _fds(), len(asyncio.all_tasks())
            report.rss_kib_before = _rss_kib()
            before = tracemalloc.take_snapshot()
            report.traced_kib_before = tracemalloc.get_traced_memory()[0] / 1024
            warm = sum(run.scenarios.values())

            stop = asyncio.Event()
            janitor = asyncio.create_task(_janitor(Path(settings.recordings_dir), stop))
            await asyncio.gather(*(run.worker(loop.time() + seconds) for _ in range(clients)))
            stop.set()
            await janitor
            await _settle(server)

            report.fds_after, report.tasks_after = _fds(), len(asyncio.all_tasks())
            report.rss_kib_after = _rss_kib()
            report.traced_kib_after = tracemalloc.get_traced_memory()[0] / 1024
            after = tracemalloc.take_snapshot()
            report.top_growth = [str(s) for s in after.compare_to(before, "lineno")[:5]]
            report.streams = sum(run.scenarios.values()) - warm
            report.scenarios = dict(run.scenarios)
            report.faults = sum(n for name, n in run.scenarios.items() if name != "normal")
            report.budgets_after = {
                "unauthenticated": server.guard.unauthenticated,
                "unauthenticated_clients": len(server.guard.unauthenticated_by_client),
                "upgrading": server._upgrading,
                "authenticated": server._authenticated,
            }
            # The rounds measure RSS only, at full speed: tracing every allocation would slow
            # 200 real-time streams past what one core serves.
            tracemalloc.stop()
            stop = asyncio.Event()
            janitor = asyncio.create_task(_janitor(Path(settings.recordings_dir), stop))
            for _ in range(cycles):
                before_codes = run.codes["1000"]
                await asyncio.gather(*(run.full_stream(settings.buffer_seconds, k) for k in range(cycle_streams)))
                await _settle(server)
                report.cycle_rss_kib.append(_rss_kib())
                report.cycle_streams_done.append(run.codes["1000"] - before_codes)
            stop.set()
            await janitor
            report.client_close_codes = dict(run.codes)
            report.client_errors = dict(run.errors)
            report.server_counts = dict(server.guard.counts)
    finally:
        tracemalloc.stop()
        logging.getLogger("websockets").removeHandler(failures)
        structlog.configure(**saved)
        if directory is None:
            shutil.rmtree(workdir, ignore_errors=True)
    report.server_log_errors = dict(counter.errors)
    if failures.count:
        report.server_log_errors["websockets_handler_failed"] = failures.count
    if report.fds_after != report.fds_before:
        report.leaked.append(f"file descriptors {report.fds_before} -> {report.fds_after}")
    if report.tasks_after != report.tasks_before:
        report.leaked.append(f"tasks {report.tasks_before} -> {report.tasks_after}")
    growth = report.traced_kib_after - report.traced_kib_before
    if growth > 1024:
        report.leaked.append(f"traced memory grew {growth:.0f} KiB")
    rss_growth = report.rss_kib_after - report.rss_kib_before
    if rss_growth > 64 * 1024:
        report.leaked.append(f"RSS grew {rss_growth / 1024:.0f} MiB")
    if report.server_log_errors:
        report.leaked.append(f"server logged errors {report.server_log_errors}")
    if any(report.budgets_after.values()):
        report.leaked.append(f"budgets not given back {report.budgets_after}")
    if len(report.cycle_rss_kib) > 1 and report.cycle_rss_kib[-1] - report.cycle_rss_kib[0] > 16 * 1024:
        report.leaked.append(f"RSS grew over the cycles of full streams {report.cycle_rss_kib} KiB")
    if any(done < cycle_streams * 9 // 10 for done in report.cycle_streams_done):
        report.leaked.append(f"rounds of full streams did not run (streams done {report.cycle_streams_done})")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--clients", type=int, default=40, help="concurrent client loops")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeouts", type=float, default=1.0, help="the server's handshake, start and idle timeouts")
    parser.add_argument("--cycles", type=int, default=3, help="rounds of streams that fill their ring buffers")
    parser.add_argument("--cycle-streams", type=int, default=200, help="streams per round")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    report = asyncio.run(
        soak(
            args.seconds,
            args.clients,
            args.seed,
            timeouts=args.timeouts,
            cycles=args.cycles,
            cycle_streams=args.cycle_streams,
        )
    )
    if args.json:
        print(json.dumps(asdict(report) | {"ok": report.ok}, indent=2))
    else:
        for key, value in asdict(report).items():
            print(f"{key:>20}: {value}")
        print("OK: nothing leaked" if report.ok else f"LEAKED: {report.leaked}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
