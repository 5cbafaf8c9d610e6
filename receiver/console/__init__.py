"""
The web console, served by the webhook/API port: server-rendered pages, a
little static JavaScript, and the JSON and audio those pages read.

::

    GET /ui/                                   the calls: filter by status and date, search by id or number
    GET /ui/calls/<call_id>                    one call: timeline, streams (waveform, player), transcript
    GET /ui/live                               live streams: levels and transcript lines as they come
    GET /ui/static/<file>                      the console's CSS and JavaScript (no data, no auth)
    GET /calls/<call_id>/streams/<stream_id>/waveform?points=N
                                               each track's envelope, gaps, losses, keyword hits (JSON)
    GET /calls/<call_id>/streams/<stream_id>/audio/{stereo,inbound,outbound}.wav
                                               a recording (HTTP range requests)
    GET /calls/<call_id>/streams/<stream_id>/captions.vtt
                                               the stream's transcript as WebVTT captions
    GET /live                                  live streams with their levels (JSON)
    GET /live/events                           the same, and transcript lines, as server-sent events

Every route but the static files asks for the port's credentials, as the
rest of the API does (a ``?token=`` the page was opened with is carried on
its links). Recordings are found from the call record, never from a path in
the request. Call ids, numbers and webhook fields are data: the templates
escape everything (Jinja2 autoescaping) and show control characters as
visible escapes; the scripts only ever set ``textContent``. Pages are sent
with a Content-Security-Policy that allows only the console's own scripts.

No build step: the templates and static files are package data.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from http import HTTPStatus
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlencode

import orjson
from aiohttp import web
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from receiver.calls.media import (
    RECORDINGS,
    RecordingError,
    StreamMedia,
    call_transcript,
    captions,
    dialogue,
    stream_media,
    waveform,
)
from receiver.calls.store import CallStore
from receiver.calls.webhooks import InvalidQuery, NotFound, WebhookRejected, call_query
from receiver.config import Settings
from receiver.console.live import LEVEL_SECONDS, LiveFeed, levels
from receiver.metrics import LiveStream
from receiver.transcription.transcript import Transcript

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Authorized = Callable[[Handler], Handler]

STATIC: Final = Path(__file__).parent / "static"
_STATIC_TYPES: Final = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # a ?token= in the page's address must not leave in a Referer
    "Cache-Control": "no-store",
}
STATUSES: Final = (
    "queued",
    "ringing",
    "in_progress",
    "completed",
    "failed",
    "busy",
    "no_answer",
    "canceled",
)  # MiniVoice's
# C0 and C1 controls, and the bidirectional overrides that can make text read as something else.
_INVISIBLE: Final = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def visible(value: Any) -> Any:
    """Jinja2's ``finalize``: control and direction characters in data shown as ``\\uXXXX`` escapes."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return _INVISIBLE.sub(lambda m: f"\\u{ord(m.group()):04x}", value)
    return value


class RecordingUnreadable(WebhookRejected):
    status = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "recording_unreadable"


class Console:
    """The console's routes, added to the listener's application (``WebhookServer``).

    Args:
        settings: The configuration (``recordings_dir``).
        store: The call records.
    """

    def __init__(self, settings: Settings, store: CallStore) -> None:
        self.settings = settings
        self.store = store
        self.recordings = settings.recordings_dir
        self.feed = LiveFeed()
        self._static = {p.name: p for p in STATIC.iterdir() if p.suffix in _STATIC_TYPES}
        self._templates = Environment(
            loader=PackageLoader("receiver.console", "templates"),
            autoescape=True,
            finalize=visible,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._templates.filters["seg"] = lambda value: quote(str(value), safe="")
        self._templates.filters["clock"] = _clock
        self._templates.filters["duration"] = _duration

    def watch(self, live: Callable[[], Iterable[LiveStream]]) -> None:
        """Show these live streams on the Live page (the stream server's ``live_streams``)."""
        self.feed.live = live

    def close(self) -> None:
        self.feed.close()

    def add_routes(self, app: web.Application, authorized: Authorized) -> None:
        """Add the console's routes; every one but the static files behind ``authorized`` (the port's credentials)."""
        router = app.router
        router.add_get("/ui", self._to_calls)
        router.add_get("/ui/", authorized(self._calls_page))
        router.add_get("/ui/calls/{call_id}", authorized(self._call_page))
        router.add_get("/ui/live", authorized(self._live_page))
        router.add_get("/ui/static/{name}", self._static_file)
        router.add_get("/calls/{call_id}/streams/{stream_id}/waveform", authorized(self._waveform))
        router.add_get("/calls/{call_id}/streams/{stream_id}/captions.vtt", authorized(self._captions))
        router.add_get("/calls/{call_id}/streams/{stream_id}/audio/{name}", authorized(self._audio))
        router.add_get("/live", authorized(self._live_json))
        router.add_get("/live/events", authorized(self._live_events))

    # -- pages ------------------------------------------------------------------------

    def _render(self, request: web.Request, template: str, status: int = 200, **values: Any) -> web.Response:
        token = request.query.get("token")

        def link(path: str, **query: Any) -> str:
            params = {k: v for k, v in query.items() if v not in (None, "")}
            if token:
                params["token"] = token
            return path + ("?" + urlencode(params) if params else "")

        html = self._templates.get_template(template).render(link=link, token=token or "", **values)
        return web.Response(text=html, status=status, content_type="text/html", headers=SECURITY_HEADERS)

    async def _to_calls(self, request: web.Request) -> web.Response:
        location = "/ui/" + ("?" + request.query_string if request.query_string else "")
        return web.Response(status=HTTPStatus.FOUND, headers={"Location": location})

    async def _calls_page(self, request: web.Request) -> web.Response:
        query = request.query
        error = None
        try:
            calls = await self.store.list_calls(**call_query(query))
        except InvalidQuery as exc:
            calls, error = [], exc.message
        filters = {name: query.get(name, "") for name in ("q", "status", "since", "until")}
        return self._render(
            request,
            "calls.html",
            status=400 if error else 200,
            calls=calls,
            filters=filters,
            statuses=STATUSES,
            error=error,
            page="calls",
        )

    async def _call_page(self, request: web.Request) -> web.Response:
        call_id = request.match_info["call_id"]
        record = await self.store.get_call(call_id)
        if record is None:
            return self._render(
                request, "missing.html", status=404, what="call", call_id=call_id, page="calls", title=call_id
            )
        events = await self.store.call_events(call_id) or []
        transcript = await self._transcript_of(call_id)
        streams = await asyncio.to_thread(self._streams_of, record, transcript)
        return self._render(
            request,
            "call.html",
            call=record,
            events=[(e, _summary(e)) for e in events],
            streams=streams,
            transcript=transcript,
            page="calls",
            title=call_id,
        )

    def _streams_of(self, record: Mapping[str, Any], transcript: list[Transcript]) -> list[dict[str, Any]]:
        streams = []
        for stream in record["streams"]:
            media = stream_media(record, stream["stream_id"], self.recordings)
            assert media is not None
            streams.append(
                {
                    "record": stream,
                    "player": media.player,
                    "has_audio": bool(media.files),
                    "lines": dialogue(transcript, stream["stream_id"]),
                    "stats": _stream_stats(stream),
                }
            )
        return streams

    async def _live_page(self, request: web.Request) -> web.Response:
        return self._render(request, "live.html", page="live", title="Live")

    async def _static_file(self, request: web.Request) -> web.StreamResponse:
        path = self._static.get(request.match_info["name"])
        if path is None:
            raise NotFound("no such file")
        return web.FileResponse(
            path, headers={"Content-Type": _STATIC_TYPES[path.suffix], "Cache-Control": "no-cache", **_NOSNIFF}
        )

    # -- the JSON and audio the pages read ---------------------------------------------------

    async def _transcript_of(self, call_id: str) -> list[Transcript]:
        """The call's final transcript events: from the store, else from its file beside the recordings."""
        events = [e for e in await self.store.transcripts(call_id) if e.final]
        if events:
            return events
        return await asyncio.to_thread(call_transcript, self.recordings, call_id)

    async def _media(self, request: web.Request) -> StreamMedia:
        call_id, stream_id = request.match_info["call_id"], request.match_info["stream_id"]
        record = await self.store.get_call(call_id)
        if record is None:
            raise NotFound(f"no call {call_id}")
        media = await asyncio.to_thread(stream_media, record, stream_id, self.recordings)
        if media is None:
            raise NotFound(f"no stream {stream_id} in call {call_id}")
        return media

    async def _waveform(self, request: web.Request) -> web.Response:
        media = await self._media(request)
        try:
            points = int(request.query.get("points", "1000"))
        except ValueError:
            raise InvalidQuery("points must be an integer") from None
        if not 1 <= points <= 4000:
            raise InvalidQuery("points must be 1-4000")

        transcript = await self._transcript_of(media.call_id)
        try:
            return _json(await asyncio.to_thread(waveform, media, points, transcript))
        except RecordingError as exc:
            if not media.files:
                raise NotFound(f"no recording of stream {media.stream_id}") from None
            raise RecordingUnreadable(str(exc)) from None

    async def _captions(self, request: web.Request) -> web.Response:
        media = await self._media(request)
        events = await self._transcript_of(media.call_id)
        return web.Response(
            text=captions(events, media.stream_id), content_type="text/vtt", charset="utf-8", headers=_NOSNIFF
        )

    async def _audio(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        kind = name.removesuffix(".wav")
        if kind == name or kind not in RECORDINGS:
            raise NotFound(f"no recording {name}: stereo.wav, inbound.wav or outbound.wav")
        media = await self._media(request)
        path = media.files.get(kind)
        if path is None:
            raise NotFound(f"stream {media.stream_id} has no {name}")
        # aiohttp answers Range requests (206) and conditional ones itself.
        return web.FileResponse(path, headers={"Content-Type": "audio/wav", "Cache-Control": "no-cache", **_NOSNIFF})

    async def _live_json(self, request: web.Request) -> web.Response:
        return _json({"streams": levels(self.feed.live()), "lines": list(self.feed.recent)})

    async def _live_events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: ``levels`` every quarter second, ``transcript`` lines as they come."""
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        )
        await response.prepare(request)
        feed = self.feed
        queue = feed.watch()
        loop = asyncio.get_running_loop()
        try:
            await response.write(_event("hello", {"lines": list(feed.recent)}))
            due = loop.time()
            while not feed.closed:
                if loop.time() >= due:
                    await response.write(_event("levels", {"streams": levels(feed.live())}))
                    due = loop.time() + LEVEL_SECONDS
                try:
                    line = await asyncio.wait_for(queue.get(), max(0.0, due - loop.time()))
                except TimeoutError:
                    continue
                if line:
                    await response.write(_event("transcript", line))
        except ConnectionResetError:  # the watcher went away
            pass
        finally:
            feed.unwatch(queue)
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response


_NOSNIFF: Final = {"X-Content-Type-Options": "nosniff"}


def _json(body: Any) -> web.Response:
    return web.Response(body=orjson.dumps(body) + b"\n", content_type="application/json")


def _event(name: str, data: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _clock(seconds: float | None) -> str:
    """``m:ss.s`` on a stream's media clock."""
    if seconds is None:
        return ""
    minutes, rest = divmod(float(seconds), 60)
    return f"{int(minutes)}:{rest:04.1f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{rest:02d}" if hours else f"{minutes}:{rest:02d}"


def _stream_stats(stream: Mapping[str, Any]) -> dict[str, Any]:
    """What the call page says about a stream's end."""
    outcome = stream.get("outcome") or {}
    tracks = outcome.get("tracks") or {}
    total = {k: sum(int(t.get(k, 0)) for t in tracks.values()) for k in ("late", "duplicates", "lost_frames")}
    # Holes in the audio filled with silence; records written before the rename say "gaps".
    total["audio_gaps"] = sum(int(t.get("audio_gaps", t.get("gaps", 0))) for t in tracks.values())
    total["sequence_gaps"] = int(outcome.get("sequence_gaps", 0))
    return {
        "duration_seconds": outcome.get("duration_seconds"),
        "messages": outcome.get("messages"),
        "lost_seconds": {
            sink: round(n / stream["sample_rate"], 3)
            for sink, n in (outcome.get("sink_losses") or {}).items()
            if n and stream.get("sample_rate")
        },
        "disabled_sinks": outcome.get("disabled_sinks") or [],
        "discontinuities": outcome.get("discontinuities", 0),
        **total,
    }


def _summary(event: Mapping[str, Any]) -> str:
    """One line about a timeline event (the detail is shown whole beside it)."""
    detail = event.get("detail") or {}
    kind = event.get("kind")
    if event.get("source") == "webhook":
        call = detail.get("call") or {}
        data = detail.get("data") or {}
        parts = [f"status {call.get('status')}"] if call.get("status") else []
        if isinstance(data, Mapping) and data.get("recording_id"):
            parts.append(f"recording {data.get('recording_id')} {data.get('status') or ''}".strip())
            if data.get("duration_seconds") is not None:
                parts.append(f"{data['duration_seconds']} s")
        return " · ".join(parts)
    if kind == "stream.started":
        return (
            f"{detail.get('stream_id')} · {', '.join(detail.get('tracks') or [])} · "
            f"{detail.get('encoding')} {detail.get('sample_rate')} Hz"
        )
    if kind == "stream.ended":
        outcome = detail.get("outcome") or {}
        return (
            f"{detail.get('stream_id')} · {detail.get('reason')} · close {detail.get('close_code')} · "
            f"{_duration(outcome.get('duration_seconds'))}"
        )
    if event.get("source") == "answer":
        actions = detail.get("actions")
        return f"{len(actions)} action(s)" if isinstance(actions, list) else ""
    return ""
