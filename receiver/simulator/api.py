"""
The platform's REST API for simulated calls: SignalWire's compatibility
(LaML) ``startStream`` and ``stopStream``, and hanging a call up.

``receiver simulate --api-port PORT`` serves, for the calls of the run while
they are up (``--hold SECONDS`` keeps each up after its actions):

(and the same without ``/api/laml``, as SignalWire's Node library calls them):

=============================================================================  ====================
``POST /api/laml/2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}/Streams.json``   startStream
``POST .../Calls/{CallSid}/Streams/{Sid}.json`` with ``Status=stopped``             stopStream
``GET  .../Calls/{CallSid}/Streams/{Sid}.json``                                      the stream resource
``POST .../Calls/{CallSid}.json`` with ``Status=completed``                          hang the call up
=============================================================================  ====================

HTTP basic authentication with the project id and token (``--api-project``,
``--api-token``); TLS with ``--api-cert``/``--api-key``. Answers are the
resource shapes of the compatibility API (``sid``, ``account_sid``,
``call_sid``, ``name``, ``status``, ``date_updated`` in RFC 2822, ``uri``);
errors its JSON error shape (``code``, ``message``, ``more_info``, ``status``).
Streams started here speak the run's wire format (``--format signalwire``
or ``twilio``) and carry the call's audio; ``StatusCallback`` gets
``stream-started``, ``stream-stopped`` and ``stream-error`` as form posts.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import aiohttp
import numpy as np
import orjson
from aiohttp import web

from receiver.calls.actions import InvalidActions, StartStream, StreamTrack
from receiver.errors import ReceiverError
from receiver.logging import get_logger
from receiver.simulator.plan import CallPlan, Faults, MediaSpec, StreamPlan, plan_stream
from receiver.simulator.wire import WireFormat

if TYPE_CHECKING:
    from receiver.simulator.runner import RunSettings, Stats, StopSignal, StreamReport, Ticker

log = get_logger("receiver.simulator.api")

# SignalWire serves the compatibility API under /api/laml (as its resource URIs say), and
# at the space's root too: its own Node library (@signalwire/compatibility-api) calls the latter.
PREFIXES = ("/api/laml/2010-04-01/Accounts/{account}/Calls/{call}", "/2010-04-01/Accounts/{account}/Calls/{call}")
TRACKS = {"inbound_track": StreamTrack.INBOUND, "outbound_track": StreamTrack.OUTBOUND, "both_tracks": StreamTrack.BOTH}


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """Where and how the REST API listens."""

    project: str
    token: str
    host: str = "127.0.0.1"
    port: int = 0
    certfile: str | None = None
    keyfile: str | None = None


class ApiError(ReceiverError):
    """An error answer, in the compatibility API's shape."""

    def __init__(self, status: HTTPStatus, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self) -> web.Response:
        body = {"code": self.code, "message": self.message, "more_info": None, "status": int(self.status)}
        return web.Response(body=orjson.dumps(body), status=int(self.status), content_type="application/json")


def _not_found(path: str) -> ApiError:
    return ApiError(HTTPStatus.NOT_FOUND, 20404, f"The requested resource {path} was not found")


@dataclass(slots=True)
class LiveStream:
    """A stream of a live call, as the streams resource describes it."""

    sid: str
    call: LiveCall
    name: str | None
    stop: StopSignal
    status: str = "in-progress"
    status_callback: str | None = None
    status_callback_method: str = "POST"
    date_updated: datetime = field(default_factory=lambda: datetime.now(UTC))

    def resource(self) -> dict[str, Any]:
        account, call = self.call.account_id, self.call.call_id
        return {
            "sid": self.sid,
            "account_sid": account,
            "call_sid": call,
            "name": self.name,
            "status": self.status,
            "date_updated": format_datetime(self.date_updated),
            "uri": f"/api/laml/2010-04-01/Accounts/{account}/Calls/{call}/Streams/{self.sid}.json",
        }


class LiveCall:
    """A call of the run while it is up: its streams, and a way to hang it up."""

    def __init__(
        self,
        calls: LiveCalls,
        plan: CallPlan,
        t0: float,
        settings: RunSettings,
        stats: Stats,
        ticker: Ticker | None,
    ) -> None:
        self.calls, self.plan, self.t0 = calls, plan, t0
        self.settings, self.stats, self.ticker = settings, stats, ticker
        self.call_id = plan.call.call_id
        self.account_id = calls.project
        self.streams: dict[str, LiveStream] = {}
        self.ended = asyncio.Event()
        self.hung_up_early = False
        self.reports: list[StreamReport] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._added = 0

    def flow_stream(self, sp: StreamPlan) -> StopSignal:
        """Register a stream the flow starts; returns what stops it."""
        from receiver.simulator.runner import StopSignal

        stream = LiveStream(sp.ident.stream_id, self, None, StopSignal())
        self.streams[stream.sid] = stream
        return stream.stop

    async def sleep_until(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        """Sleep until loop time ``when``, or until the call is hung up."""
        delay = when - loop.time()
        if delay > 0 and not self.ended.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.ended.wait(), delay)

    def hang_up(self, early: bool = False) -> None:
        """End the call: every open stream gets ``stop`` (``call_ended``)."""
        if not self.ended.is_set():
            self.hung_up_early = early
            self.ended.set()
        for stream in self.streams.values():
            stream.stop.set("call_ended")

    async def join(self) -> None:
        """Wait for the streams started over the API."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def start_stream(self, url: str, track: StreamTrack, name: str | None, callback: str | None) -> LiveStream:
        from receiver.simulator.runner import StopSignal, run_stream

        loop = asyncio.get_running_loop()
        start_ms = (loop.time() - self.t0) * 1000
        if self.ended.is_set() or start_ms >= self.plan.duration_ms:
            raise ApiError(HTTPStatus.BAD_REQUEST, 21220, "Call is not in-progress. Cannot start a stream.")
        try:
            act = StartStream(url, track)
        except InvalidActions as exc:
            raise ApiError(HTTPStatus.BAD_REQUEST, 21205, f"Url is not valid: {exc.reason}") from None
        if not url.startswith("wss://") and not (self.settings.allow_insecure and url.startswith("ws://")):
            raise ApiError(HTTPStatus.BAD_REQUEST, 21205, "Url must be a wss:// URL")
        self._added += 1
        sid = self.calls.new_stream_id(self.plan, self._added)
        sp = await asyncio.to_thread(
            plan_stream,
            act,
            start_ms,
            self.plan.duration_ms,
            sid,
            self.plan,
            self.account_id,
            self.calls.media,
            self.calls.faults,
        )
        stream = LiveStream(sid, self, name, StopSignal(), status_callback=callback)
        self.streams[sid] = stream

        async def run() -> None:
            report = await run_stream(
                sp,
                self.t0,
                self.settings,
                self.stats,
                self.ticker,
                stop=stream.stop,
                on_connected=lambda: self.calls.notify(stream, "stream-started"),
            )
            self.reports.append(report)
            stream.status, stream.date_updated = "stopped", datetime.now(UTC)
            if report.outcome == "connect_failed":
                self.calls.notify(stream, "stream-error", report.error)
            else:
                self.calls.notify(stream, "stream-stopped")

        self._tasks.append(asyncio.ensure_future(run()))
        log.info("api_stream_started", call_id=self.call_id, stream_id=sid, url=url, track=track.value)
        return stream


class LiveCalls:
    """The run's calls while they are up, for the REST API (``RunSettings.live``)."""

    def __init__(self, media: MediaSpec, faults: Faults, project: str) -> None:
        self.media, self.faults, self.seed = media, faults, faults.seed
        self.project = project  # every call of the run belongs to the project (its AccountSid)
        self.calls: dict[str, LiveCall] = {}
        self.session: aiohttp.ClientSession | None = None
        self._callbacks: set[asyncio.Task[None]] = set()
        self.callbacks_failed = 0

    def new_stream_id(self, plan: CallPlan, n: int) -> str:
        rng = np.random.default_rng([self.seed, plan.index, n, 0xA91])
        if self.media.wire is WireFormat.SIGNALWIRE:
            h = rng.bytes(16).hex()
            return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
        return "MZ" + rng.bytes(16).hex()

    def call_started(
        self, plan: CallPlan, t0: float, settings: RunSettings, stats: Stats, ticker: Ticker | None
    ) -> LiveCall:
        call = LiveCall(self, plan, t0, settings, stats, ticker)
        self.calls[call.call_id] = call
        return call

    def call_ended(self, call_id: str) -> None:
        call = self.calls.pop(call_id, None)
        if call is not None:
            for stream in call.streams.values():
                if stream.status != "stopped":
                    stream.status, stream.date_updated = "stopped", datetime.now(UTC)

    def notify(self, stream: LiveStream, event: str, error: str | None = None) -> None:
        """Send a ``StatusCallback`` form post (in the background; failures are counted and logged)."""
        if stream.status_callback is None or self.session is None:
            return
        form = {
            "AccountSid": stream.call.account_id,
            "CallSid": stream.call.call_id,
            "StreamSid": stream.sid,
            "StreamName": stream.name or stream.sid,
            "StreamEvent": event,
            "Timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
        if error:
            form["StreamError"] = error
        task = asyncio.ensure_future(self._post(stream.status_callback, form))
        self._callbacks.add(task)
        task.add_done_callback(self._callbacks.discard)

    async def _post(self, url: str, form: Mapping[str, str]) -> None:
        assert self.session is not None
        try:
            async with self.session.post(url, data=dict(form), timeout=aiohttp.ClientTimeout(total=10)) as response:
                ok = 200 <= response.status < 300
        except (aiohttp.ClientError, TimeoutError) as exc:
            ok = False
            log.warning("status_callback_failed", url=url, stream_event=form["StreamEvent"], error=repr(exc)[:200])
        if not ok:
            self.callbacks_failed += 1

    async def drain(self) -> None:
        """Wait for the status callbacks in flight."""
        if self._callbacks:
            await asyncio.gather(*self._callbacks, return_exceptions=True)


class CompatApi:
    """The HTTP side: ``async with CompatApi(api_settings, live) as api: ...`` (``api.url``)."""

    def __init__(self, settings: ApiSettings, live: LiveCalls) -> None:
        self.settings, self.live = settings, live
        self._runner: web.AppRunner | None = None
        self._expected = "Basic " + base64.b64encode(f"{settings.project}:{settings.token}".encode()).decode()
        self.port = 0

    @property
    def url(self) -> str:
        scheme = "https" if self.settings.certfile else "http"
        return f"{scheme}://{self.settings.host}:{self.port}"

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        for prefix in PREFIXES:
            app.router.add_post(prefix + "/Streams.json", self._start_stream)
            app.router.add_post(prefix + "/Streams/{sid}.json", self._update_stream)
            app.router.add_get(prefix + "/Streams/{sid}.json", self._get_stream)
            app.router.add_post(prefix + ".json", self._update_call)
        return app

    async def __aenter__(self) -> CompatApi:
        ssl_context = None
        if self.settings.certfile:
            ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ssl_context.load_cert_chain(self.settings.certfile, self.settings.keyfile)
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port, ssl_context=ssl_context)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self.live.session = aiohttp.ClientSession()
        log.info("api_started", url=self.url)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.live.drain()
        if self.live.session is not None:
            await self.live.session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            if not hmac.compare_digest(request.headers.get("Authorization", ""), self._expected):
                raise ApiError(HTTPStatus.UNAUTHORIZED, 20003, "Authentication Error - invalid username")
            if request.match_info.get("account") != self.settings.project:
                raise _not_found(request.path)
            response: web.StreamResponse = await handler(request)
            return response
        except ApiError as exc:
            log.info("api_refused", method=request.method, status=int(exc.status), code=exc.code)
            response = exc.response()
            if exc.status == HTTPStatus.UNAUTHORIZED:
                response.headers["WWW-Authenticate"] = 'Basic realm="simulator"'
            return response
        except web.HTTPException as exc:
            if exc.status == HTTPStatus.NOT_FOUND:
                return _not_found(request.path).response()
            raise

    def _call(self, request: web.Request) -> LiveCall:
        call = self.live.calls.get(request.match_info["call"])
        if call is None:
            raise _not_found(request.path)
        return call

    def _stream(self, request: web.Request) -> LiveStream:
        stream = self._call(request).streams.get(request.match_info["sid"])
        if stream is None:
            raise _not_found(request.path)
        return stream

    async def _start_stream(self, request: web.Request) -> web.Response:
        call = self._call(request)
        form = await request.post()
        url = form.get("Url")
        if not isinstance(url, str) or not url:
            raise ApiError(HTTPStatus.BAD_REQUEST, 21201, "No 'Url' was specified")
        track = TRACKS.get(str(form.get("Track", "inbound_track")))
        if track is None:
            raise ApiError(HTTPStatus.BAD_REQUEST, 21235, f"Track must be one of {', '.join(TRACKS)}")
        name = form.get("Name")
        callback = form.get("StatusCallback")
        stream = await call.start_stream(
            url, track, str(name) if name else None, str(callback) if isinstance(callback, str) else None
        )
        return _json(stream.resource(), HTTPStatus.CREATED)

    async def _update_stream(self, request: web.Request) -> web.Response:
        stream = self._stream(request)
        status = (await request.post()).get("Status")
        if status != "stopped":
            raise ApiError(HTTPStatus.BAD_REQUEST, 21218, "Status must be 'stopped'")
        if stream.status != "stopped":
            stream.stop.set("stop_stream")
            stream.status, stream.date_updated = "stopped", datetime.now(UTC)
            log.info("api_stream_stopped", call_id=stream.call.call_id, stream_id=stream.sid)
        return _json(stream.resource())

    async def _get_stream(self, request: web.Request) -> web.Response:
        return _json(self._stream(request).resource())

    async def _update_call(self, request: web.Request) -> web.Response:
        call = self._call(request)
        status = (await request.post()).get("Status")
        if status not in ("completed", "canceled"):
            raise ApiError(HTTPStatus.BAD_REQUEST, 21218, "Status must be 'completed' or 'canceled'")
        call.hang_up(early=True)
        log.info("api_call_hung_up", call_id=call.call_id)
        account = call.account_id
        return _json(
            {
                "sid": call.call_id,
                "account_sid": account,
                "status": "completed",
                "date_updated": format_datetime(datetime.now(UTC)),
                "uri": f"/api/laml/2010-04-01/Accounts/{account}/Calls/{call.call_id}.json",
            }
        )


def _json(body: Any, status: HTTPStatus = HTTPStatus.OK) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=int(status), content_type="application/json")
