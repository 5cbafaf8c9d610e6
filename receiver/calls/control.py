"""
``/calls/{call_id}/streams/{stream_id}`` on the API port: the application stops
a live stream, or pauses and resumes its recording.

The resource has the shape of SignalWire's (and Twilio's) compatibility
stream resource: ``sid``, ``account_sid``, ``call_sid``, ``name``, ``status``,
``date_updated`` (RFC 2822, GMT) and ``uri``, plus what only a receiver knows
(``media_seconds``, ``paused_seconds``, ``pause_behavior``). The request is a
form (``Status=stopped``), as the platforms' REST APIs take it, or the same
fields as JSON.

=================================  =============================================
``Status``                         effect
=================================  =============================================
``stopped``                        close with 1000; answered once files are final
``paused`` (``PauseBehavior``)     ``skip`` (default): the span is cut from every
                                   recording and engine; ``silence``: zeros
``in-progress``                    resume a paused recording
=================================  =============================================
"""

from __future__ import annotations

from collections.abc import Mapping
from email.utils import format_datetime
from http import HTTPStatus
from typing import Any

import orjson
from aiohttp import web

from receiver.calls.webhooks import NotFound, WebhookRejected
from receiver.stream.control import StreamControl, StreamState

STATUSES = ("stopped", "paused", "in-progress")
BEHAVIORS = ("skip", "silence")


class InvalidControl(WebhookRejected):
    status = HTTPStatus.BAD_REQUEST
    code = "invalid_stream_update"


class NoStreams(WebhookRejected):
    status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "no_stream_server"


def resource(state: StreamState) -> dict[str, Any]:
    """The stream resource (SignalWire's fields first, then the receiver's)."""
    return {
        "sid": state.stream_id,
        "account_sid": state.account_id,
        "call_sid": state.call_id,
        "name": state.stream_id,
        "status": state.status,
        "date_updated": format_datetime(state.updated_at),
        "uri": f"/calls/{state.call_id}/streams/{state.stream_id}",
        "media_seconds": round(state.media_seconds, 3),
        "paused_seconds": round(state.paused_seconds, 3),
        "pause_behavior": state.pause_behavior,
    }


def parse_update(fields: Mapping[str, Any]) -> tuple[str, str]:
    """``Status`` and ``PauseBehavior`` of a request, checked (``InvalidControl`` otherwise)."""
    status = fields.get("Status")
    if status not in STATUSES:
        raise InvalidControl(f"Status must be one of {', '.join(STATUSES)}")
    behavior = fields.get("PauseBehavior", "skip")
    if behavior not in BEHAVIORS:
        raise InvalidControl(f"PauseBehavior must be one of {', '.join(BEHAVIORS)}")
    if behavior != "skip" and status != "paused":
        raise InvalidControl("PauseBehavior applies only with Status=paused")
    return str(status), str(behavior)


async def read_fields(request: web.Request) -> Mapping[str, Any]:
    if request.content_type == "application/json":
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            raise InvalidControl("body is not valid JSON") from None
        if not isinstance(body, dict):
            raise InvalidControl("body must be a JSON object")
        return body
    return await request.post()


class StreamControlRoutes:
    """The handlers; ``control`` is None in a process that serves no streams (``receiver webhooks``)."""

    def __init__(self) -> None:
        self.control: StreamControl | None = None

    def _control(self) -> StreamControl:
        if self.control is None:
            raise NoStreams("this process serves no streams (run receiver serve)")
        return self.control

    async def get(self, request: web.Request) -> web.Response:
        call_id, stream_id = request.match_info["call_id"], request.match_info["stream_id"]
        state = self._control().stream_state(call_id, stream_id)
        if state is None:
            raise NotFound(f"no live stream {stream_id} of call {call_id}")
        return _json(resource(state))

    async def update(self, request: web.Request) -> web.Response:
        call_id, stream_id = request.match_info["call_id"], request.match_info["stream_id"]
        status, behavior = parse_update(await read_fields(request))
        control = self._control()
        if status == "stopped":
            state = await control.stop_stream(call_id, stream_id)
        elif status == "paused":
            state = control.pause_stream(call_id, stream_id, "silence" if behavior == "silence" else "skip")
        else:
            state = control.resume_stream(call_id, stream_id)
        if state is None:
            raise NotFound(f"no live stream {stream_id} of call {call_id}")
        return _json(resource(state))


def _json(body: Any) -> web.Response:
    return web.Response(body=orjson.dumps(body) + b"\n", content_type="application/json")
