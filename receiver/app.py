"""
The service put together: the sinks the settings switch on (and the bus
publisher when ``bus_url`` is set), recordings a crash left behind repaired, the stream server and the webhook listener run
side by side until a signal, and ``--workers`` processes sharing one port.

The stream server (``receiver.stream.server``) only handles sockets; what it
feeds and what runs beside it is decided here.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from receiver.config import Settings
from receiver.errors import ConfigError, ListenError
from receiver.logging import SERVER, configure, get_logger
from receiver.loop import loop_factory
from receiver.metrics import StreamMetrics, multiprocess_dir, worker_exited
from receiver.sinks import SinkFactory
from receiver.sinks.disk import DiskSpace
from receiver.sinks.wav import WavSink, repair_directory
from receiver.stream.observers import StreamObserver
from receiver.stream.server import StreamServer
from receiver.transcription.plugins import plugin_sinks
from receiver.transcription.transcript import Transcript, TranscriptFeed

if TYPE_CHECKING:  # redis-py is an optional extra: imported only when a bus is configured
    from receiver.bus.publisher import BusPublisher

if TYPE_CHECKING:
    from receiver.calls.listener import WebhookService

server_log = get_logger(SERVER)


_DISKS: dict[tuple[str, int, int, int], DiskSpace] = {}


def disk_space(settings: Settings) -> DiskSpace:
    """The process's ``DiskSpace`` for the settings' recordings (one, shared by the server and its WAV sinks)."""
    key = (
        settings.recordings_dir,
        settings.min_free_disk_bytes,
        settings.recordings_max_bytes,
        settings.max_recording_bytes,
    )
    disk = _DISKS.get(key)
    if disk is None:
        disk = _DISKS[key] = DiskSpace(
            settings.recordings_dir,
            min_free_bytes=settings.min_free_disk_bytes,
            max_total_bytes=settings.recordings_max_bytes,
            max_stream_bytes=settings.max_recording_bytes,
        )
    return disk


def default_sinks(
    settings: Settings,
    *,
    on_transcript: Callable[[Transcript], None] | None = None,
    bus: BusPublisher | None = None,
) -> list[SinkFactory]:
    """The sinks the settings switch on (the bus sink when a publisher is given)."""
    factories: list[SinkFactory] = []
    if settings.wav:
        recordings, disk = settings.recordings_dir, disk_space(settings)
        factories.append(lambda info: WavSink(recordings, disk))
    if bus is not None:
        interval = settings.bus_block_ms / 1000
        from receiver.bus.publisher import BusSink

        factories.append(lambda info: BusSink(bus, interval))
    factories.extend(plugin_sinks(settings, on_transcript=on_transcript))
    return factories


def bus_publisher(settings: Settings) -> BusPublisher | None:
    """The process's bus publisher when ``bus_url`` is set (not started)."""
    if not settings.bus_url:
        return None
    try:
        from receiver.bus import BusKeys
        from receiver.bus.publisher import BusPublisher  # noqa: F811 (the runtime import of the optional extra)
    except ImportError as exc:
        raise ConfigError(f"the bus needs redis-py: pip install 'receiver[redis]' ({exc})") from None
    return BusPublisher(
        settings.bus_url,
        keys=BusKeys(settings.bus_prefix),
        block_seconds=settings.bus_block_ms / 1000,
        max_seconds=settings.bus_max_seconds,
        queue=settings.bus_queue,
        retention_seconds=settings.bus_retention_seconds,
    )


async def repair_recordings(settings: Settings) -> None:
    """Finish the WAV files a crash left open (``repair_on_start``), off the event loop."""
    if settings.wav and settings.repair_on_start:
        repaired = await asyncio.to_thread(repair_directory, settings.recordings_dir)
        if repaired:
            server_log.warning("recordings_repaired", count=len(repaired), files=[str(p) for p in repaired[:20]])


class ReceiverServer(StreamServer):
    """The stream server with the settings' sinks (unless given), recordings repaired before it listens."""

    def __init__(
        self, settings: Settings, sinks: Sequence[SinkFactory] | None = None, observers: Sequence[StreamObserver] = ()
    ) -> None:
        self.disk = disk_space(settings) if settings.wav else None
        gates = [self.disk.refusal] if self.disk is not None else []
        super().__init__(settings, default_sinks(settings) if sinks is None else sinks, observers, gates=gates)
        self._disk_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await repair_recordings(self.settings)
        if self.disk is not None:
            await asyncio.to_thread(self.disk.refresh)
            self._disk_task = asyncio.get_running_loop().create_task(self._watch_disk(self.disk), name="disk")
        await super().start()

    async def stop(self) -> None:
        if self._disk_task is not None:
            self._disk_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._disk_task
            self._disk_task = None
        await super().stop()

    @staticmethod
    async def _watch_disk(disk: DiskSpace) -> None:
        """Free space (and the quota's scan) looked at once a second, off the loop, for the handshake."""
        while True:
            await asyncio.sleep(1.0)
            await asyncio.to_thread(disk.refresh)


async def run_server(settings: Settings) -> None:
    """Serve until a signal, then shut down cleanly (streams closed, files finalised).

    SIGTERM drains: readiness turns 503 and new streams are refused at once,
    live streams run until they end or ``drain_timeout`` passes, then the rest
    are closed with 1012. SIGINT, or a second SIGTERM, cuts the drain short:
    the streams are closed with 1012 at once, and every sink is still finalised.
    """
    from receiver.calls.listener import WebhookService

    stop = asyncio.Event()
    hurry = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        server_log.info("signal_received", signal=signal.Signals(signum).name, draining=stop.is_set())
        if stop.is_set() or signum == signal.SIGINT:
            hurry.set()
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):  # before starting: a signal during start-up stops cleanly too
        loop.add_signal_handler(sig, on_signal, sig)
    metrics = StreamMetrics()
    transcripts = TranscriptFeed()  # every transcript event: to the store, the metrics, the console
    transcripts.subscribe(metrics.transcript_published)
    hooks = WebhookService(settings, before_scrape=metrics.sync) if settings.webhooks else None
    bus = bus_publisher(settings)
    # Everything that can be wrong with the settings (plugins and their options, the TLS
    # certificate) is found here, before any port opens.
    sinks = default_sinks(settings, on_transcript=transcripts.publish, bus=bus)
    observers: list[StreamObserver] = [metrics, *(hooks.observers if hooks is not None else ())]
    server = ReceiverServer(settings, sinks, observers=observers)
    metrics.watch(server.live_streams, lambda: server.guard.counts)
    if hooks is not None and hooks.console is not None:
        hooks.console.watch(server.live_streams)
    if hooks is not None and hooks.listener is not None:
        hooks.listener.streams.control = server  # the API stops and pauses this process's streams
    if hooks is not None:
        transcripts.subscribe(hooks.store.transcript_published)
        if hooks.console is not None:
            transcripts.subscribe(hooks.console.feed.transcript_published)
        await hooks.start()  # first, so every stream's start reaches the store
    try:
        if bus is not None:
            await bus.start()
        await server.start()
        metrics.start()
        try:
            server_log.info("receiver_ready", **startup_summary(settings, server, hooks))
            await stop.wait()
            await server.drain(settings.drain_timeout, hurry=hurry)
        finally:
            await server.stop()
            await metrics.stop()
    finally:
        if bus is not None:
            await bus.close()  # after the streams: their end entries go out
        if hooks is not None:
            await hooks.stop()  # last, so the final streams' ends are written


# Limits and timings the start-up summary lists when they differ from their defaults.
LIMITS = (
    "max_message_bytes",
    "max_streams",
    "handshake_timeout",
    "start_timeout",
    "idle_timeout",
    "max_stream_seconds",
    "max_messages_per_second",
    "rate_window",
    "drain_timeout",
    "reorder_window_ms",
    "max_gap_ms",
    "buffer_seconds",
    "sink_close_timeout",
    "webhook_max_body_bytes",
    "store_timeout",
)


def startup_summary(settings: Settings, server: StreamServer, hooks: WebhookService | None) -> dict[str, Any]:
    """What the running service loaded, for the one ``receiver_ready`` line: where to reach it,
    where it writes, what it feeds, how it authenticates, and the limits that differ from defaults."""
    from receiver.transcription.plugins import parse_specs

    def url(scheme: str, host: str, port: int, path: str) -> str:
        host = "127.0.0.1" if host in ("", "0.0.0.0") else host
        return f"{scheme}://{'[' + host + ']' if ':' in host else host}:{port}{path}"

    scheme = "wss" if settings.tls_certfile else "ws"
    summary: dict[str, Any] = {
        "streams": url(scheme, settings.host, server.port, "/<any path>"),
        "health": url("https" if settings.tls_certfile else "http", settings.host, server.port, "/healthz"),
        "listening_on": settings.host,
    }
    if hooks is not None and hooks.listener is not None:
        port = hooks.listener.port
        summary["webhooks"] = url("http", settings.webhook_host, port, "/webhooks")
        summary["calls_api"] = url("http", settings.webhook_host, port, "/calls")
        if settings.answer:
            summary["answer_url"] = url("http", settings.webhook_host, port, "/answer")
        summary["webhook_auth"] = [
            m for m, on in (("token", settings.webhook_secret), ("basic", settings.webhook_user)) if on
        ] or "none"
        if hooks.console is not None:
            summary["console"] = url("http", settings.webhook_host, port, "/ui/")
        summary["database"] = _without_password(settings.database)
    else:
        summary["webhooks"] = "off"
    summary["recordings_dir"] = str(Path(settings.recordings_dir).resolve())
    sinks = ["wav (inbound, outbound, stereo)"] if settings.wav else []
    sinks += [
        f"{spec.name} (plugin {spec.plugin}, tracks {','.join(t.value for t in spec.tracks)})"
        for spec in parse_specs(settings.sinks)
    ]
    if settings.bus_url:
        sinks.append(f"bus ({_without_password(settings.bus_url)}, prefix {settings.bus_prefix})")
    summary["sinks"] = sinks or "none"
    summary["stream_auth"] = server.guard.policy.modes() or "none"
    defaults = Settings()
    changed = {name: getattr(settings, name) for name in LIMITS if getattr(settings, name) != getattr(defaults, name)}
    if changed:
        summary["limits"] = changed
    summary["config_file"] = settings.config_file or "none (defaults and RECEIVER_* variables)"
    summary["workers"] = settings.workers
    return summary


def _without_password(location: str) -> str:
    """A database path made absolute, or a URL without its password (the summary is logged)."""
    from receiver.security.auth import redact_url

    return redact_url(location) if "://" in location else str(Path(location).resolve())


# The collector's youngest generation is collected every GC_THRESHOLD allocations net of frees
# (700 by default). The media path frees what it allocates (it makes no reference cycles), so
# those collections find next to nothing; each also counts towards the older generations' turns.
GC_THRESHOLD = 2_000


def settle_heap() -> None:
    """Before serving: collect once, move every object alive then (modules, classes, settings)
    out of the collector's view for good, and collect the youngest generation less often.

    A full collection walks every object the collector tracks and holds the receive loop while
    it does. At 900 calls the longest one took 120 ms, and collecting took 0.30 s of a 15 s run;
    with the start-up objects frozen and this threshold, 29 ms and 0.15 s (``docs/performance.md``).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 10, 10)


def run(settings: Settings, loop_name: str = "auto") -> None:
    """Run the service in this process on the chosen event loop."""
    settle_heap()
    with asyncio.Runner(loop_factory=loop_factory(loop_name)) as runner:
        runner.run(run_server(settings))


def run_workers(settings: Settings, loop_name: str = "auto") -> int:
    """Run ``settings.workers`` processes on one port (SO_REUSEPORT); the exit status is the worst of theirs."""
    if settings.port == 0:
        raise ConfigError("--workers needs a fixed --port")
    if settings.webhooks:
        from receiver.calls.listener import check_exposure

        check_exposure(settings)  # here, once, rather than as N workers' tracebacks
    ctx = multiprocessing.get_context("spawn")
    # The workers' metrics go to one directory (set in the environment they inherit), so /metrics
    # on any of them sums every worker (prometheus-client's multiprocess mode).
    with multiprocess_dir():
        procs = [
            ctx.Process(target=_worker_main, args=(settings, loop_name), name=f"worker-{i}")
            for i in range(settings.workers)
        ]
        for proc in procs:
            proc.start()
        server_log.info("workers_started", workers=len(procs), pids=[p.pid for p in procs])

        def forward(signum: int, _frame: Any) -> None:
            for proc in procs:
                if proc.pid is not None and proc.is_alive():
                    os.kill(proc.pid, signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        for proc in procs:
            proc.join()
            if proc.pid is not None:
                worker_exited(proc.pid)
        return max((p.exitcode or 0) for p in procs)


def _worker_main(settings: Settings, loop_name: str) -> None:
    configure(fmt=settings.log_format, level=settings.log_level)
    try:
        run(settings, loop_name)
    except ListenError as exc:
        get_logger(SERVER).error("listen_failed", error=str(exc))
        sys.exit(1)
