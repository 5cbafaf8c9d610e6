"""
The only module that touches the socket.

``StreamServer`` accepts media streams on any path but the reserved HTTP
ones (``/healthz``, ``/readyz``), feeds each text message to the stream's
``StreamSession``, hands media to its ``StreamPipeline``, and decides every
close: the one place errors become close codes.

=============================  ==========================================
what happened                  close
=============================  ==========================================
``stop`` received              1000 (normal)
``StreamProtocolError``        its ``close_code`` (4400, 4409, 4415, 1008)
message over the size limit    1009 (websockets closes it)
a limit hit (``limits.py``)    4429 rate, 4408 idle / no start, 1008 duration
over ``max_streams``           HTTP 503 at the handshake, 1013 after it
authentication refused         HTTP 401/403 at the handshake, 1008 at start
stopped by the application    1000 (normal; ``control.py``)
server shutting down / drain   1012 (service restart)
anything unexpected            1011, no details (websockets closes it)
=============================  ==========================================
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import weakref
from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import Any, Final, Self

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.typing import Subprotocol

from receiver import speedups
from receiver.config import Settings
from receiver.errors import CloseCode, ListenError, StreamProtocolError
from receiver.events import (
    Connected,
    DtmfReceived,
    Event,
    InterleavedMediaReceived,
    MarkReceived,
    MediaReceived,
    StreamStarted,
    StreamStopped,
)
from receiver.logging import MEDIA, SERVER, STREAM, get_logger
from receiver.mediaclock import Placement
from receiver.metrics import MESSAGE_SECONDS, SAMPLE_MASK, LiveStream
from receiver.platforms import SUBPROTOCOLS
from receiver.routes import parse_routes, route_for
from receiver.security.auth import HandshakeResult
from receiver.security.guard import Guard, Refusal
from receiver.security.limits import Limit, LimitExceeded
from receiver.security.tls import server_context
from receiver.sinks import SinkFactory, StreamOutcome
from receiver.stream.control import STOP_REASON, ControlChange, Status, StreamState, notify_controlled
from receiver.stream.fanout import PauseBehavior
from receiver.stream.fastpath import FALLBACK, FastServerConnection
from receiver.stream.handler import MISSING, StreamHandler
from receiver.stream.observers import StreamObserver, notify_ended, notify_started
from receiver.stream.pacing import ReadPacer
from receiver.stream.pipeline import MediaSettings, StreamPipeline

RESERVED_PATHS = frozenset({"/healthz", "/readyz"})
_CONTROL_OPCODES = frozenset({Opcode.PING, Opcode.PONG})


stream_log = get_logger(STREAM)
media_log = get_logger(MEDIA)
# On the per-frame path, enum members are read from module constants: a lookup on the
# enum class goes through EnumType.__getattr__'s slot (about 200 instructions on CPython 3.11).
_DISCONTINUITY = Placement.DISCONTINUITY
server_log = get_logger(SERVER)

# Delayed ACKs. A media stream flows one way in small frames. In the kernel's default
# (quick-ACK) mode, a read that empties a socket of a small segment sends an ACK from the
# read itself: one ACK a frame for a one-track stream, about a quarter of the receiver's
# CPU at 200 real-time Vonage calls (docs/performance.md). In delayed-ACK mode
# (TCP_QUICKACK off, Linux) the kernel ACKs every second segment, or when its
# delayed-ACK timer (40 ms or more) fires. The mode is set at a stream's first media frame.
# The kernel leaves it when that timer fires, so the server checks every
# ACK_CHECK_SECONDS and sets it again. A sender that waits for each ACK before it
# sends the next small segment (Nagle's algorithm, no TCP_NODELAY) makes the timer fire
# every time; such a stream is found out of the mode at ACK_MISSES checks in a row and
# left in quick-ACK mode, with one log line (`delayed_acks_off`).
_TCP_QUICKACK: Final[int | None] = getattr(socket, "TCP_QUICKACK", None)
ACK_CHECK_SECONDS: Final = 1.0
ACK_MISSES: Final = 3


class StreamServer:
    """The stream receiver's socket side: ``async with StreamServer(settings, sinks) as server: ...``.

    ``receiver.app.ReceiverServer`` is this with the sinks the settings switch on.

    Args:
        settings: The configuration.
        sinks: Sink factories for every stream.
        observers: Told when each stream starts and ends (``observers.StreamObserver``).
        gates: Each returns why no stream may start now (refused with HTTP 503 and that
            reason: ``disk_low``, ...), or None.
    """

    def __init__(
        self,
        settings: Settings,
        sinks: Sequence[SinkFactory] = (),
        observers: Sequence[StreamObserver] = (),
        *,
        gates: Sequence[Callable[[], str | None]] = (),
    ) -> None:
        self.settings = settings
        # Read the certificate now: a bad one is a ConfigError before any port opens.
        self._tls = (
            server_context(settings.tls_certfile, settings.tls_keyfile, settings.tls_key_password)
            if settings.tls_certfile
            else None
        )
        self._gates = list(gates)  # each says why no stream may start now (HTTP 503), or None
        self._sinks = list(sinks)
        self._observers = list(observers)
        self._media = MediaSettings(
            reorder_window_ms=settings.reorder_window_ms,
            max_gap_ms=settings.max_gap_ms,
            max_media_lead_seconds=settings.max_media_lead_seconds,
            buffer_seconds=settings.buffer_seconds,
            sink_close_timeout=settings.sink_close_timeout,
        )
        self._routes = parse_routes(settings.routes)
        self._server: Server | None = None
        self._streams: dict[ServerConnection, StreamHandler] = {}
        self._summary_task: asyncio.Task[None] | None = None
        self.guard = Guard(settings)
        self._handshakes: weakref.WeakKeyDictionary[ServerConnection, HandshakeResult] = weakref.WeakKeyDictionary()
        self._unauthenticated: dict[ServerConnection, str | None] = {}  # upgraded without a credential: their client
        self._authenticated = 0  # streams that take one of max_streams
        self._upgrading = 0  # connections still in their HTTP upgrade (max_handshakes)
        self._limits_task: asyncio.Task[None] | None = None
        self.pacer: ReadPacer | None = None  # read pacing (receiver/stream/pacing.py), while serving
        self._pacer_task: asyncio.Task[None] | None = None
        self._acks_task: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self.draining = False
        self._stopped = False
        self.ready = False
        self.streams_total = 0
        self.streams_ended = 0
        self.outcomes: list[StreamOutcome] = []  # the last few, for tests and /readyz
        self.stream_ended = asyncio.Event()

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        settings = self.settings
        tls = self._tls
        try:
            self._server = await serve(
                self._handle,
                settings.host,
                settings.port,
                process_request=self._process_request,
                max_size=settings.max_message_bytes,
                compression=None,
                server_header="receiver",
                reuse_port=settings.workers > 1,
                open_timeout=settings.handshake_timeout,
                ssl=tls,
                create_connection=_counting_connection(self, fast=settings.fast_path),
                select_subprotocol=_select_subprotocol,
            )
        except OSError as exc:
            raise ListenError.from_os_error("streams", settings.host, settings.port, "host/port", exc) from exc
        self._summary_task = asyncio.get_running_loop().create_task(self._summaries(), name="media-summaries")
        self._limits_task = asyncio.get_running_loop().create_task(self._watch_limits(), name="limits")
        if settings.read_pacing_ms > 0:
            self.pacer = ReadPacer(settings.read_pacing_ms / 1000, self.messages_received)
            self._pacer_task = asyncio.get_running_loop().create_task(self.pacer.run(), name="read-pacing")
        if settings.delayed_acks and _TCP_QUICKACK is not None:
            self._acks_task = asyncio.get_running_loop().create_task(self._watch_acks(), name="delayed-acks")
        self.ready = True
        self.guard.log_startup()
        server_log.info(
            "server_started",
            host=settings.host,
            port=self.port,
            recordings_dir=settings.recordings_dir,
            tls=tls is not None,
            build=speedups.build(),
        )

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def active_streams(self) -> int:
        return len(self._streams)

    def messages_received(self) -> int:
        """Messages (and pings) the live streams have brought so far (read by the read pacer)."""
        return sum(stream.received for stream in self._streams.values())

    def live_streams(self) -> list[LiveStream]:
        """The started streams, for metrics and the console (read on the loop; keep none)."""
        return [LiveStream(s.pipeline, s.session.stats) for s in self._streams.values() if s.pipeline is not None]

    async def stop(self) -> None:
        """Stop accepting, close every stream (1012), finalise every sink (idempotent)."""
        self.ready = False
        if self._stopped:
            return
        self._stopped = True
        for task in (self._summary_task, self._limits_task, self._pacer_task, self._acks_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._server is not None:
            for stream in self._streams.values():
                stream.closed_by = stream.closed_by or ("shutdown", int(CloseCode.SERVICE_RESTART))
            self._server.close(close_connections=True, code=CloseCode.SERVICE_RESTART, reason="service restart")
            await self._server.wait_closed()
        server_log.info("server_stopped", streams_total=self.streams_total, security=dict(self.guard.counts))

    async def drain(self, grace: float, *, hurry: asyncio.Event | None = None) -> None:
        """Graceful shutdown: readiness 503 and new streams refused at once; live streams
        run until they end, ``grace`` seconds pass or ``hurry`` is set; then ``stop``."""
        self.ready = False
        self.draining = True
        server_log.info("server_draining", active_streams=self.active_streams, drain_timeout=grace)
        hurry = hurry or asyncio.Event()

        async def streams_done() -> None:
            while self._streams:
                self.stream_ended.clear()
                await self.stream_ended.wait()

        waiters = [asyncio.ensure_future(streams_done()), asyncio.ensure_future(hurry.wait())]
        try:
            await asyncio.wait(waiters, timeout=grace, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
        server_log.info("server_drained", remaining_streams=self.active_streams, hurried=hurry.is_set())
        await self.stop()

    async def serve_forever(self) -> None:
        assert self._server is not None
        await self._server.serve_forever()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- HTTP on the same port -------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path not in RESERVED_PATHS:
            # A stream: authenticate and admit it before the upgrade.
            remote = connection.remote_address
            for gate in self._gates:
                closed = gate()
                if closed is not None and not self.draining:
                    refusal = self.guard.refuse(
                        HTTPStatus.SERVICE_UNAVAILABLE, closed, request.path, str(remote[0]) if remote else None
                    )
                    return _json_response(connection, refusal.status, refusal.body)
            decision = self.guard.check_request(
                path=request.path,
                headers=request.headers.raw_items(),
                peer=str(remote[0]) if remote else None,
                pending=self._authenticated,
                draining=self.draining,
            )
            if isinstance(decision, Refusal):
                response = _json_response(connection, decision.status, decision.body)
                for name, value in decision.headers:
                    response.headers[name] = value
                return response
            self._handshakes[connection] = decision
            if decision.pending_start:  # held in the unauthenticated budget until start, or until it ends
                self._unauthenticated[connection] = decision.client
            return None  # go on with the WebSocket handshake
        if path == "/healthz":
            return _json_response(connection, HTTPStatus.OK, {"status": "ok"})
        body = {"ready": self.ready, "active_streams": self.active_streams}
        return _json_response(connection, HTTPStatus.OK if self.ready else HTTPStatus.SERVICE_UNAVAILABLE, body)

    # -- streams ---------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        remote = ws.remote_address
        log = stream_log.bind(
            remote=f"{remote[0]}:{remote[1]}" if remote else None,
            path=self.guard.redact(ws.request.path if ws.request else None),
        )
        handshake = self._handshakes.pop(ws, None)
        unauthenticated = self._unauthenticated.pop(ws, MISSING)
        if handshake is not None and handshake.pending_start:
            pass  # its place in the unauthenticated budget is held; max_streams applies at start
        elif self._authenticated >= self.settings.max_streams:
            # Admitted at the handshake, but others got in first.
            self.guard.limit_hit(log, Limit.CAPACITY, max_streams=self.settings.max_streams)
            await _close(ws, *Limit.CAPACITY.close)
            return
        route = route_for(self._routes, ws.request.path if ws.request else None)
        stream = StreamHandler(ws, log, self.guard.new_limits(), handshake, route, unauthenticated)
        if not (handshake is not None and handshake.pending_start):
            stream.counted = True
            self._authenticated += 1
        self._streams[ws] = stream
        self.streams_total += 1
        if hasattr(ws, "on_control"):
            ws.on_control = lambda: self._on_ping(ws, stream)
        preset = stream.session.readings.get("format")
        log.info("stream_connected", **({"format": stream.session.platform, "by": preset} if preset else {}))
        reason, close_code, error = "disconnected", None, None
        try:
            # The fast path hands each text message to _on_message from data_received
            # (receiver/stream/fastpath.py); what it does not take comes through `async for`.
            done = ws.attach(self.message_handler(stream)) if isinstance(ws, FastServerConnection) else None
            stopped = FALLBACK if done is None else await done
            if stopped is FALLBACK:
                stopped = None
                async for message in ws:
                    stopped = self._on_message(stream, message)
                    if stopped is not None:
                        break
            if isinstance(stopped, StreamStopped):
                reason, close_code = stopped.reason, int(CloseCode.NORMAL_CLOSURE)
            else:
                reason = "disconnected" if ws.close_code != CloseCode.NORMAL_CLOSURE else "closed"
                close_code = ws.close_code
        except StreamProtocolError as exc:
            reason, close_code, error = exc.kind, int(exc.close_code), str(exc)
            self.guard.counts[f"rejected_{exc.kind}"] += 1
            stream.log.warning("stream_rejected", error_kind=exc.kind, detail=str(exc)[:200], close_code=close_code)
            await _close(ws, exc.close_code, exc.close_reason)
        except ConnectionClosed as exc:
            close_code = exc.rcvd.code if exc.rcvd is not None else None
            if exc.sent is not None and exc.sent.code == CloseCode.MESSAGE_TOO_BIG:
                reason, close_code, error = (
                    "message_too_big",
                    int(CloseCode.MESSAGE_TOO_BIG),
                    "message over the size limit",
                )
                stream.log.warning(
                    "stream_rejected", error_kind=reason, close_code=close_code, limit=self.settings.max_message_bytes
                )
                self.guard.count(Limit.MESSAGE_SIZE)
        finally:
            if stream.closed_by is not None:
                reason, close_code = stream.closed_by
            await self._finish(ws, stream, reason=reason, close_code=close_code, error=error)

    def message_handler(self, stream: StreamHandler) -> Callable[[str | bytes], StreamStopped | None]:
        """The callback the fast path calls for each of the stream's messages (``handler.py``):
        the common media message from frame to ring write, everything else through ``_on_message``."""
        return stream.route_to(self._on_message, self._on_event, self._log_discontinuity)

    def _on_message(self, stream: StreamHandler, message: str | bytes) -> StreamStopped | None:
        """One message of the stream; returns the ``StreamStopped`` that ends it, else None.

        No await, no log call on the media path: the fast path calls this from
        ``data_received`` (through ``StreamHandler.on_message``).

        Raises:
            StreamProtocolError: The message ends the stream with its close code.
        """
        received = stream.received = stream.received + 1
        # One message in SAMPLE_EVERY is timed (receiver_message_seconds); the rest pay a bit test.
        sampled = 0.0 if received & SAMPLE_MASK else time.perf_counter()
        limits = stream.limits
        if received >= limits.rate_check_at and limits.check_rate(time.monotonic(), received) is not None:
            if stream.closed_by is None:  # (pings may have hit it first: logged then)
                self.guard.limit_hit(
                    stream.log, Limit.RATE, max_messages_per_second=self.settings.max_messages_per_second
                )
            raise LimitExceeded(Limit.RATE)
        session = stream.session
        event = session.receive_text(message) if isinstance(message, str) else session.receive_binary(message)
        return self._on_event(stream, event, sampled)

    def _on_event(self, stream: StreamHandler, event: Event | None, sampled: float = 0.0) -> StreamStopped | None:
        """What the session made of one message (``sampled``: when its timing started, or 0)."""
        if type(event) is MediaReceived:
            pipeline = stream.pipeline
            assert pipeline is not None  # the session allows media only after start
            if pipeline.media(event) is _DISCONTINUITY:
                self._log_discontinuity(stream, event)
            if sampled:
                MESSAGE_SECONDS.observe(time.perf_counter() - sampled)
            if stream.first_media:
                self._first_media(stream, event.track.value)
            return None
        if type(event) is InterleavedMediaReceived:
            pipeline = stream.pipeline
            assert pipeline is not None
            pipeline.media_interleaved(event)
            if sampled:
                MESSAGE_SECONDS.observe(time.perf_counter() - sampled)
            if stream.first_media:
                self._first_media(stream, ",".join(t.value for t in event.tracks))
            return None
        stopped = self._on_control(stream, event)
        session = stream.session
        if session.replies:
            for reply in session.take_replies():
                _send_now(stream.ws, reply)
        if session.backlog:
            for later in session.take_backlog():  # an audio_fork stream's first frame: start, then its audio
                if self._on_message_event(stream, later) is not None:  # pragma: no cover - only media is kept
                    break
        return stopped

    def _log_discontinuity(self, stream: StreamHandler, event: MediaReceived) -> None:
        pipeline = stream.pipeline
        assert pipeline is not None
        media_log.warning(
            "media_discontinuity",
            stream_id=pipeline.info.stream_id,
            track=event.track.value,
            timestamp_ms=event.timestamp_ms,
        )

    def _on_message_event(self, stream: StreamHandler, event: Event) -> StreamStopped | None:
        if type(event) is MediaReceived:
            assert stream.pipeline is not None
            stream.pipeline.media(event)
            if stream.first_media:
                self._first_media(stream, event.track.value)
            return None
        if type(event) is InterleavedMediaReceived:
            assert stream.pipeline is not None
            stream.pipeline.media_interleaved(event)
            if stream.first_media:
                self._first_media(stream, ",".join(t.value for t in event.tracks))
            return None
        return self._on_control(stream, event)

    def _first_media(self, stream: StreamHandler, track: str) -> None:
        stream.first_media = False
        pipeline = stream.pipeline
        assert pipeline is not None
        media_log.info("first_media", stream_id=pipeline.info.stream_id, call_id=pipeline.info.call_id, track=track)
        if self._acks_task is not None and _quick_acks(stream.ws, False) is not None:
            stream.ack_misses = 0

    def _on_control(self, stream: StreamHandler, event: Event | None) -> StreamStopped | None:
        """Everything but media: start, stop, DTMF, marks (and None: nothing to do)."""
        if type(event) is StreamStarted:
            log = stream.log = stream.log.bind(
                stream_id=event.stream_id, call_id=event.call_id, platform=event.platform.value
            )
            event = self.guard.admit_start(stream.handshake, stream.limits, event, log)
            stream.handshake = None
            if not stream.counted:  # authenticated just now: from the unauthenticated budget to max_streams
                self._release_unauthenticated(stream)
                if self._authenticated >= self.settings.max_streams:
                    self.guard.limit_hit(log, Limit.CAPACITY, max_streams=self.settings.max_streams)
                    raise LimitExceeded(Limit.CAPACITY)
                stream.counted = True
                self._authenticated += 1
            pipeline = stream.pipeline = StreamPipeline(event, self._media, self._sinks, log)
            pipeline.start()
            notify_started(self._observers, pipeline.info, log)
            fmt = event.media_format
            extra = {"readings": dict(event.readings)} if event.readings else {}
            log.info(
                "stream_started",
                tracks=[t.value for t in event.tracks],
                encoding=fmt.encoding.value,
                sample_rate=fmt.sample_rate,
                custom_parameters=sorted(event.custom_parameters),
                **extra,
            )
        elif type(event) is StreamStopped:
            return event
        elif type(event) is DtmfReceived:
            stream.log.info(
                "dtmf",
                digit=event.digit,
                track=event.track.value if event.track else None,
                timestamp_ms=event.timestamp_ms,
            )
        elif type(event) is Connected:
            stream.log = stream.log.bind(platform=event.platform.value)
        elif type(event) is MarkReceived:
            pass
        return None

    async def _finish(
        self, ws: ServerConnection, stream: StreamHandler, *, reason: str, close_code: int | None, error: str | None
    ) -> None:
        try:
            pipeline = stream.pipeline
            if pipeline is None:
                stream.log.info(
                    "stream_ended",
                    reason=reason,
                    close_code=close_code,
                    started=False,
                    messages=stream.session.stats.messages,
                )
                return
            outcome = await pipeline.finish(
                reason=reason, close_code=close_code, session=stream.session.stats, error=error
            )
            self.outcomes = [*self.outcomes[-99:], outcome]
            notify_ended(self._observers, pipeline.info, outcome, stream.log)
            summary = outcome.as_dict()
            for key in ("reason", "gap_spans", "sink_loss_spans"):  # the spans go to the call record only
                summary.pop(key)
            readings = {**stream.session.readings, **pipeline.readings}
            if readings:
                summary["readings"] = readings
            stream.log.info(
                "stream_ended", reason=reason, wall_seconds=round(time.monotonic() - stream.connected_at, 3), **summary
            )
        finally:
            self._streams.pop(ws, None)
            self._release_unauthenticated(stream)
            if stream.counted:
                stream.counted = False
                self._authenticated -= 1
            if hasattr(ws, "on_control"):
                ws.on_control = None  # it refers to the stream: no cycle left behind
            self.streams_ended += 1
            self.stream_ended.set()
            stream.ended.set()

    # -- control by the application (control.StreamControl) ----------------------

    def _find(self, call_id: str, stream_id: str) -> tuple[ServerConnection, StreamHandler, StreamPipeline] | None:
        for ws, stream in self._streams.items():
            pipeline = stream.pipeline
            if pipeline is not None and pipeline.info.stream_id == stream_id and pipeline.info.call_id == call_id:
                return ws, stream, pipeline
        return None

    @staticmethod
    def _state(stream: StreamHandler, pipeline: StreamPipeline) -> StreamState:
        fanout, rate = pipeline.fanout, pipeline.info.sample_rate
        paused = fanout.paused
        head = pipeline.clock.head
        status: Status = "stopped" if stream.closed_by else "paused" if paused else "in-progress"
        return StreamState(
            call_id=pipeline.info.call_id,
            stream_id=pipeline.info.stream_id,
            status=status,
            media_seconds=head / rate,
            paused_seconds=fanout.paused_samples(head) / rate,
            pause_behavior=paused.behavior if paused else None,
            account_id=pipeline.info.call.customer_id,
        )

    def stream_state(self, call_id: str, stream_id: str) -> StreamState | None:
        found = self._find(call_id, stream_id)
        return None if found is None else self._state(found[1], found[2])

    async def stop_stream(self, call_id: str, stream_id: str) -> StreamState | None:
        """Close the stream with 1000 (reason ``stopped_by_api``); return once its files are final."""
        found = self._find(call_id, stream_id)
        if found is None:
            return None
        ws, stream, pipeline = found
        if stream.closed_by is None:
            stream.closed_by = (STOP_REASON, int(CloseCode.NORMAL_CLOSURE))
            notify_controlled(
                self._observers,
                pipeline.info,
                ControlChange("stop_requested", pipeline.clock.head / pipeline.info.sample_rate),
                stream.log,
            )
            stream.log.info("stream_stop_requested", by="api")
            task = asyncio.get_running_loop().create_task(
                ws.close(CloseCode.NORMAL_CLOSURE, "stopped by the application")
            )
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        state = self._state(stream, pipeline)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                stream.ended.wait(), self.settings.sink_close_timeout + (ws.close_timeout or 10.0) + 1
            )
        return state

    def pause_stream(self, call_id: str, stream_id: str, behavior: PauseBehavior) -> StreamState | None:
        """Keep the stream's audio from every sink from now on (``skip``: cut; ``silence``: zeros)."""
        found = self._find(call_id, stream_id)
        if found is None:
            return None
        _ws, stream, pipeline = found
        if stream.closed_by is None and pipeline.fanout.paused is None:
            pause = pipeline.fanout.pause(pipeline.clock.head, behavior)
            at = pause.start / pipeline.info.sample_rate
            notify_controlled(self._observers, pipeline.info, ControlChange("paused", at, behavior), stream.log)
            stream.log.info("recording_paused", behavior=behavior, media_seconds=round(at, 3))
        return self._state(stream, pipeline)

    def resume_stream(self, call_id: str, stream_id: str) -> StreamState | None:
        """Let the stream's audio reach the sinks again."""
        found = self._find(call_id, stream_id)
        if found is None:
            return None
        _ws, stream, pipeline = found
        if stream.closed_by is None and pipeline.fanout.paused is not None:
            pause = pipeline.fanout.resume(pipeline.clock.head)
            assert pause is not None and pause.end is not None
            rate = pipeline.info.sample_rate
            at = pause.end / rate
            notify_controlled(self._observers, pipeline.info, ControlChange("resumed", at, pause.behavior), stream.log)
            stream.log.info(
                "recording_resumed",
                media_seconds=round(at, 3),
                paused_seconds=round((pause.end - pause.start) / rate, 3),
            )
        return self._state(stream, pipeline)

    # The periodic tasks do their work in plain methods: a coroutine's locals live while
    # it sleeps, and a loop variable left on the last stream would keep that ended
    # stream (its ring buffers) alive until the next round.

    async def _watch_limits(self) -> None:
        """Close streams over a time-based limit (idle, no start, duration)."""
        interval = self.guard.limits.sweep_interval
        while True:
            await asyncio.sleep(interval)
            self._sweep_limits(time.monotonic())

    async def _watch_acks(self) -> None:
        """Keep the streams' sockets in delayed-ACK mode (see ``ACK_CHECK_SECONDS``)."""
        while True:
            await asyncio.sleep(ACK_CHECK_SECONDS)
            self._check_acks()

    def _check_acks(self) -> None:
        """Set delayed-ACK mode again where the kernel left it; give a stream up at ACK_MISSES in a row."""
        for stream in self._streams.values():
            if stream.ack_misses < 0:
                continue  # not set (no media yet, or not TCP), or given up
            quick = _quick_acks(stream.ws)
            if not quick:
                stream.ack_misses = -1 if quick is None else 0  # None: the socket is gone
                continue
            stream.ack_misses += 1
            if stream.ack_misses < ACK_MISSES:
                _quick_acks(stream.ws, False)
                continue
            stream.ack_misses = -1
            stream.log.info("delayed_acks_off", checks=ACK_MISSES, check_seconds=ACK_CHECK_SECONDS)

    def _release_unauthenticated(self, stream: StreamHandler) -> None:
        client = stream.unauthenticated
        if client is not MISSING:
            stream.unauthenticated = MISSING
            self.guard.release_unauthenticated(client)

    def _connection_lost(self, connection: ServerConnection) -> None:
        """A connection is gone: one that never reached ``_handle`` gives back its unauthenticated place."""
        client = self._unauthenticated.pop(connection, MISSING)
        if client is not MISSING:
            self.guard.release_unauthenticated(client)

    def _on_ping(self, ws: ServerConnection, stream: StreamHandler) -> None:
        """A ping or pong arrived: it counts in the rate limit like a message (websockets answered it)."""
        received = stream.received = stream.received + 1
        limits = stream.limits
        if received < limits.rate_check_at or limits.check_rate(time.monotonic(), received) is None:
            return
        if stream.closed_by is None:
            self._close_for(ws, stream, Limit.RATE, max_messages_per_second=self.settings.max_messages_per_second)

    def _close_for(self, ws: ServerConnection, stream: StreamHandler, limit: Limit, **fields: Any) -> None:
        """Close a stream over ``limit`` from outside its receive loop (one log line, counted)."""
        code, close_reason = limit.close
        stream.closed_by = (limit.value, int(code))
        self.guard.limit_hit(stream.log, limit, **fields)
        task = asyncio.get_running_loop().create_task(ws.close(code, close_reason))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _sweep_limits(self, now: float) -> None:
        for ws, stream in list(self._streams.items()):
            if stream.closed_by is not None:
                continue
            limit = stream.limits.sweep(now, stream.session.stats.messages)
            if limit is not None:
                self._close_for(ws, stream, limit, seconds=self.guard.limit_value(limit))

    async def _summaries(self) -> None:
        """Every ``media_summary_seconds``, one line of media statistics per live stream."""
        while True:
            await asyncio.sleep(self.settings.media_summary_seconds)
            self._log_summaries()

    def _log_summaries(self) -> None:
        for stream in list(self._streams.values()):
            pipeline = stream.pipeline
            if pipeline is None:
                continue
            media_log.info(
                "media_summary",
                stream_id=pipeline.info.stream_id,
                call_id=pipeline.info.call_id,
                media_seconds=round(pipeline.clock.head / pipeline.info.sample_rate, 3),
                messages=stream.session.stats.messages,
                tracks={t.value: s.as_dict() for t, s in pipeline.clock.stats().items()},
                sink_losses=pipeline.fanout.losses,
            )


async def _close(ws: ServerConnection, code: CloseCode, reason: str) -> None:
    """Close, reading (and dropping) what the peer still sends until its close frame.

    ``ws.close`` alone waits for the peer's close frame, but the connection stops
    reading from the socket while its incoming queue is full: a peer that sent
    a burst before our close would then hold it for ``close_timeout``.
    """
    closing = asyncio.ensure_future(ws.close(code, reason))
    with contextlib.suppress(ConnectionClosed):
        async for _ in ws:
            pass
    await closing


def _counting_connection(server: StreamServer, *, fast: bool) -> type[ServerConnection]:
    """The server's connection class: at most ``max_handshakes`` connections in their HTTP
    upgrade at once (more are dropped at once, counted and logged at most once a second),
    an opening handshake that timed out counted and logged, pings and pongs handed to the
    stream's rate limit, and the server told when a connection is gone.

    With ``fast``, it is also a ``FastServerConnection`` (receiver/stream/fastpath.py).
    """
    base: type[ServerConnection] = FastServerConnection if fast else ServerConnection
    guard, cap = server.guard, server.settings.max_handshakes

    class _Connection(base):  # type: ignore[valid-type,misc]
        # Told of every ping and pong (the server counts them in the stream's rate limit).
        on_control: Callable[[], None] | None = None
        _upgrading = False

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            if server._upgrading >= cap:
                # Slow or idle upgrades would otherwise hold a descriptor each for handshake_timeout.
                guard.counts["refused_too_many_handshakes"] += 1
                peer = transport.get_extra_info("peername")
                guard.flood("too_many_handshakes", remote=str(peer[0]) if peer else None, max_handshakes=cap)
                self.transport.abort()
                return
            server._upgrading += 1
            self._upgrading = True

        def connection_lost(self, exc: Exception | None) -> None:
            super().connection_lost(exc)
            self._upgrade_over()
            server._connection_lost(self)

        def process_event(self, event: Any) -> None:
            super().process_event(event)
            if isinstance(event, Frame) and event.opcode in _CONTROL_OPCODES and self.on_control is not None:
                self.on_control()

        async def handshake(self, *args: Any, **kwargs: Any) -> None:
            try:
                await super().handshake(*args, **kwargs)
            except asyncio.CancelledError:
                remote = self.remote_address
                guard.limit_hit(server_log, Limit.HANDSHAKE_TIMEOUT, remote=str(remote[0]) if remote else None)
                raise
            finally:
                self._upgrade_over()

        def _upgrade_over(self) -> None:
            if self._upgrading:
                self._upgrading = False
                server._upgrading -= 1

    return _Connection


# Subprotocols accepted when a client offers them: jambonz and audio_fork name their
# format by it; Asterisk's websocket client may offer "media". Others: none chosen.
ACCEPTED_SUBPROTOCOLS: Final = (*SUBPROTOCOLS, "media")


def _select_subprotocol(connection: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol | None:
    for name in ACCEPTED_SUBPROTOCOLS:
        if name in offered:
            return Subprotocol(name)
    return None


def _quick_acks(ws: ServerConnection, quick: bool | None = None) -> bool | None:
    """Whether the connection's socket is in the kernel's quick-ACK mode, after setting it to
    ``quick`` if given; None where that cannot be read (no TCP_QUICKACK, not TCP, closed)."""
    sock = ws.transport.get_extra_info("socket") if ws.transport is not None else None
    if _TCP_QUICKACK is None or sock is None or sock.type != socket.SOCK_STREAM:
        return None
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    try:
        if quick is not None:
            sock.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, int(quick))
        return bool(sock.getsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK))
    except (OSError, ValueError):  # closed meanwhile (uvloop's socket: ValueError, its descriptor -1)
        return None


def _send_now(ws: ServerConnection, text: str) -> None:
    """Send a text message at once, from synchronous code (the fast path calls
    ``_on_message`` from ``data_received``). Replies are small and few (AudioHook's
    ``opened``, ``pong``, ``closed``); the transport buffers them. Nothing is sent
    once the connection is closing."""
    if ws.protocol.state is State.OPEN:
        ws.protocol.send_text(text.encode())
        ws.send_data()


def _json_response(connection: ServerConnection, status: HTTPStatus, body: dict[str, Any]) -> Response:
    payload = orjson.dumps(body) + b"\n"
    headers = Headers(
        [("Content-Type", "application/json"), ("Content-Length", str(len(payload))), ("Connection", "close")]
    )
    return Response(status.value, status.phrase, headers, payload)
