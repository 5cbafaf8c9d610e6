"""
The webhook listener: its own HTTP port (aiohttp), apart from the stream port.

::

    POST /webhooks[/<secret>]          a MiniVoice webhook → 200 {"result": "stored" | "duplicate"}
    GET  /calls?status=&since=&until=&q=&limit=
                                       call records, most recently active first
    GET  /calls/<call_id>              one call's whole record
    GET  /calls/<call_id>/events       its timeline: webhooks and stream lifecycle, in order
    GET  /calls/<call_id>/transcript   its transcript events (every stream, every engine), media-clock order
    POST /answer[/<secret>]            the configured answer_url action list (off by default)
    GET  /metrics                      Prometheus metrics (receiver/metrics.py)
    GET  /healthz                      liveness (no auth)

and the web console (``receiver.console``: ``/ui/`` and the JSON and audio it
reads), behind the same credentials but for its static files.

A thin shell: authentication and parsing are ``webhooks.py`` (pure), records
are ``store.py`` (threads, never the loop). Every error is a JSON body
``{"error": {"code", "message"}}`` with the status the error suggests, and
one log line under ``receiver.calls.webhooks``. A store that cannot take a write
answers 503, so the platform retries; nothing here ever waits on a stream.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from receiver.calls.answer import AnswerEndpoint
from receiver.calls.control import StreamControlRoutes
from receiver.calls.observer import CallRecordObserver
from receiver.calls.store import CallStore, open_store
from receiver.calls.webhooks import (
    WEBHOOKS_LOGGER,
    BodyTooLarge,
    MethodNotAllowed,
    NotFound,
    StoreUnavailable,
    WebhookAuth,
    WebhookRejected,
    call_query,
    check_content_type,
    check_size,
    parse_webhook,
)
from receiver.config import Settings
from receiver.errors import ConfigError, ListenError
from receiver.logging import get_logger
from receiver.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from receiver.metrics import WEBHOOKS, exposition, webhook_event_label
from receiver.stream.observers import StreamObserver

if TYPE_CHECKING:
    from receiver.console import Console

log = get_logger(WEBHOOKS_LOGGER)

INTERNAL_ERROR = {"error": {"code": "internal_error", "message": "internal error"}}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(body: Any, status: int = HTTPStatus.OK) -> web.Response:
    return web.Response(body=orjson.dumps(body) + b"\n", status=int(status), content_type="application/json")


def error_response(exc: WebhookRejected, auth: WebhookAuth | None = None) -> web.Response:
    response = json_response(exc.body(), exc.status)
    if exc.status == HTTPStatus.UNAUTHORIZED and auth is not None and auth.basic:
        response.headers["WWW-Authenticate"] = 'Basic realm="receiver", charset="UTF-8"'
    return response


def auth_from(settings: Settings) -> WebhookAuth:
    return WebhookAuth(secret=settings.webhook_secret, user=settings.webhook_user, password=settings.webhook_password)


def check_exposure(settings: Settings) -> None:
    """Refuse a webhook port that would hand out stream credentials or call data to anyone.

    Raises:
        ConfigError: ``/answer`` would sign stream URLs with no credentials required to ask
            for one; or the port listens beyond loopback with no credentials and
            ``insecure_webhooks`` is off.
    """
    if auth_from(settings).required:
        return
    if settings.answer and settings.auth_secrets:
        raise ConfigError(
            "answer = true signs stream URLs (auth_secrets is set), so without webhook credentials anyone could "
            "get a valid stream URL for any call: set webhook_secret, or webhook_user and webhook_password"
        )
    if not is_loopback(settings.webhook_host) and not settings.insecure_webhooks:
        raise ConfigError(
            f"the webhook port listens on {settings.webhook_host or 'every address'} with no credentials: anyone "
            "could forge webhooks and read callers' numbers from /calls. Set webhook_secret (or webhook_user and "
            "webhook_password), listen on 127.0.0.1, or pass --insecure-webhooks (insecure_webhooks = true)"
        )


def is_loopback(host: str) -> bool:
    """Whether ``host`` only ever accepts connections from this machine (names other than localhost: no)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class WebhookServer:
    """The webhook listener and read API: ``async with WebhookServer(settings, store) as hooks: ...``.

    Args:
        settings: The configuration (``webhook_*``, ``answer*``).
        store: Where call records go; started and closed by the caller.
        answer: Handles ``POST /answer`` when ``settings.answer`` is on (see ``answer.py``).
    """

    def __init__(
        self,
        settings: Settings,
        store: CallStore,
        *,
        answer: Handler | None = None,
        console: Console | None = None,
        before_scrape: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.auth = auth_from(settings)
        self._answer = answer
        self.console = console
        self._before_scrape = before_scrape
        self._max_future = timedelta(seconds=settings.webhook_max_future_seconds)
        self._runner: web.AppRunner | None = None
        self.streams = StreamControlRoutes()  # its ``control`` is set by whoever serves the streams
        self.received = 0  # webhook requests, for tests and logs

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.webhook_max_body_bytes, middlewares=[self._errors])
        # Every route but /healthz needs the webhook credentials (``_authorized``).
        webhook = self._counted(self._authorized(self._webhook))
        app.router.add_post("/webhooks", webhook)
        app.router.add_post("/webhooks/{token}", webhook)
        app.router.add_get("/calls", self._authorized(self._calls))
        app.router.add_get("/calls/{call_id}", self._authorized(self._call))
        app.router.add_get("/calls/{call_id}/events", self._authorized(self._events))
        app.router.add_get("/calls/{call_id}/transcript", self._authorized(self._transcript))
        app.router.add_get("/calls/{call_id}/streams/{stream_id}", self._authorized(self.streams.get))
        app.router.add_post("/calls/{call_id}/streams/{stream_id}", self._authorized(self.streams.update))
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._authorized(self._metrics))
        if self.console is not None:
            self.console.add_routes(app, self._authorized)
        if self._answer is not None:
            answer = self._authorized(self._answer)
            app.router.add_post("/answer", answer)
            app.router.add_post("/answer/{token}", answer)
        return app

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        check_exposure(self.settings)
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False, shutdown_timeout=5.0)
        await self._runner.setup()
        site = web.TCPSite(
            self._runner,
            self.settings.webhook_host,
            self.settings.webhook_port,
            reuse_address=True,
            reuse_port=self.settings.workers > 1,  # every worker listens; they share the database
        )
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise ListenError.from_os_error(
                "webhooks", self.settings.webhook_host, self.settings.webhook_port, "webhook_host/webhook_port", exc
            ) from exc
        log.info(
            "webhooks_started",
            host=self.settings.webhook_host,
            port=self.port,
            auth=self.auth.mode,
            answer=self._answer is not None,
        )
        if not self.auth.required:
            log.warning(
                "webhooks_unauthenticated",
                message="NO WEBHOOK CREDENTIALS ARE CONFIGURED: anyone who can reach this port can forge webhooks "
                "and read call records. Set webhook_secret, or webhook_user and webhook_password.",
                host=self.settings.webhook_host,
            )

    @property
    def port(self) -> int:
        assert self._runner is not None, "listener not started"
        return int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self.console is not None:
            self.console.close()  # ends the Live page's event streams, which would hold the shutdown
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            log.info("webhooks_stopped", received=self.received)

    async def __aenter__(self) -> WebhookServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- plumbing ------------------------------------------------------------------

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """The one error path: every error a JSON body with its status, and one log line.

        Lines are named for the route's role: ``webhook_rejected`` and
        ``webhook_store_unavailable`` on ``/webhooks``, ``request_rejected``
        and ``request_store_unavailable`` elsewhere, with the error's
        ``log_fields``.
        """
        try:
            return await handler(request)
        except WebhookRejected as exc:
            error = exc
        except web.HTTPNotFound:
            error = NotFound("no such route")
        except web.HTTPMethodNotAllowed:
            error = MethodNotAllowed(f"{request.method} is not allowed here")
        except Exception as exc:  # a bug: a JSON 500 with no details, the details in the log
            log.error(
                "request_failed", method=request.method, path=_route(request), error=repr(exc)[:300], exc_info=exc
            )
            return json_response(INTERNAL_ERROR, HTTPStatus.INTERNAL_SERVER_ERROR)
        role = "webhook" if request.path.startswith("/webhooks") else "request"
        context = error.log_fields
        if isinstance(error, StoreUnavailable):
            # The store's own words stay in the log; the platform is told to retry.
            log.error(f"{role}_store_unavailable", path=_route(request), detail=error.message[:200], **context)
            error = StoreUnavailable("call store unavailable, retry later")
        else:
            log.warning(
                f"{role}_rejected",
                method=request.method,
                path=_route(request),
                status=int(error.status),
                error_code=error.code,
                detail=error.message,
                remote=request.remote,
                **context,
            )
        return error_response(error, self.auth)

    def _authorized(self, handler: Handler) -> Handler:
        """``handler`` behind the webhook credentials: a path segment or ``token`` query, or basic auth."""

        async def wrapped(request: web.Request) -> web.StreamResponse:
            token = request.match_info.get("token")
            if token is None:
                token = request.query.get("token")
            self.auth.check(token=token, authorization=request.headers.get("Authorization"))
            return await handler(request)

        return wrapped

    @staticmethod
    def _counted(handler: Handler) -> Handler:
        """``handler``'s refusals counted in ``receiver_webhook_requests`` (``_webhook`` counts the rest)."""

        async def wrapped(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except WebhookRejected as exc:
                WEBHOOKS.labels(webhook_event_label(exc.log_fields.get("webhook_event")), exc.code).inc()
                raise

        return wrapped

    # -- webhooks --------------------------------------------------------------------

    async def _webhook(self, request: web.Request) -> web.Response:
        self.received += 1
        started = time.monotonic()
        check_content_type(request.headers.get("Content-Type"))
        if request.content_length is not None:
            check_size(request.content_length, self.settings.webhook_max_body_bytes)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise BodyTooLarge(f"body is over the {self.settings.webhook_max_body_bytes}-byte limit") from None
        event = parse_webhook(body, received_at=datetime.now(UTC), max_future=self._max_future)
        if event.future_skew is not None:
            log.warning(
                "webhook_future_dated",
                webhook_event=event.event,
                call_id=event.call.id,
                created_at=event.created_at,
                ahead_seconds=round(event.future_skew),
                max_future_seconds=self.settings.webhook_max_future_seconds,
                recorded_at="received_at",
            )
        try:
            result = await self.store.record_webhook(event)
        except StoreUnavailable as exc:
            exc.log_fields = {"webhook_event": event.event, "call_id": event.call.id}
            raise
        WEBHOOKS.labels(webhook_event_label(event.event), result).inc()
        log.info(
            "webhook_" + result,
            webhook_event=event.event,
            call_id=event.call.id,
            call_status=event.call.status,
            created_at=event.created_at,
            recording_id=event.recording.recording_id if event.recording else None,
            ms=round((time.monotonic() - started) * 1000, 1),
        )
        reply = {"result": result, "event": event.event, "call_id": event.call.id}
        if event.future_skew is not None:
            reply["warning"] = "created_at is too far in the future: recorded at the time it was received"
        return json_response(reply)

    # -- the read API ----------------------------------------------------------------

    async def _calls(self, request: web.Request) -> web.Response:
        calls = await self.store.list_calls(**call_query(request.query))
        return json_response({"calls": calls, "count": len(calls)})

    async def _call(self, request: web.Request) -> web.Response:
        call_id = request.match_info["call_id"]
        record = await self.store.get_call(call_id)
        if record is None:
            raise NotFound(f"no call {call_id}")
        return json_response(record)

    async def _events(self, request: web.Request) -> web.Response:
        call_id = request.match_info["call_id"]
        events = await self.store.call_events(call_id)
        if events is None:
            raise NotFound(f"no call {call_id}")
        return json_response({"call_id": call_id, "events": events})

    async def _transcript(self, request: web.Request) -> web.Response:
        call_id = request.match_info["call_id"]
        events = await self.store.transcripts(call_id)
        if not events and await self.store.get_call(call_id) is None:
            raise NotFound(f"no call {call_id}")
        return json_response({"call_id": call_id, "events": [e.as_dict() for e in events]})

    async def _healthz(self, request: web.Request) -> web.Response:
        return json_response({"status": "ok"})

    async def _metrics(self, request: web.Request) -> web.Response:
        if self._before_scrape is not None:
            self._before_scrape()  # this worker's live streams, up to now
        body = await asyncio.to_thread(exposition)  # multiprocess mode reads every worker's files
        return web.Response(body=body, headers={"Content-Type": METRICS_CONTENT_TYPE})


def _route(request: web.Request) -> str:
    """The path without a token segment (never log a secret)."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "(no route)"


class WebhookService:
    """The call-record side of the service: the store, its stream observer and the listener.

    ``receiver serve`` starts it before the stream server and stops it after,
    so the last streams' ends still reach the store; ``receiver webhooks``
    runs it alone.

    Args:
        settings: The configuration.
        listen: Run the HTTP listener (off: only the stream observer writes).
        before_scrape: Called before ``/metrics`` answers (``StreamMetrics.sync``).
    """

    def __init__(
        self, settings: Settings, *, listen: bool = True, before_scrape: Callable[[], None] | None = None
    ) -> None:
        from receiver.console import Console

        self.settings = settings
        self.store = open_store(settings.database, timeout=settings.store_timeout)
        self.observer = CallRecordObserver(self.store)
        self.listener: WebhookServer | None = None
        self.console: Console | None = None
        if listen:
            answer = AnswerEndpoint(settings, self.store) if settings.answer else None
            self.console = Console(settings, self.store)
            self.listener = WebhookServer(
                settings, self.store, answer=answer, console=self.console, before_scrape=before_scrape
            )

    @property
    def observers(self) -> list[StreamObserver]:
        return [self.observer]

    async def start(self) -> None:
        await self.store.start()
        if self.listener is not None:
            try:
                await self.listener.start()
            except BaseException:
                await self.store.close()
                raise

    async def stop(self) -> None:
        try:
            if self.listener is not None:
                await self.listener.stop()
        finally:
            await self.store.close()

    async def __aenter__(self) -> WebhookService:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
