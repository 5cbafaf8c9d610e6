"""
The answer_url endpoint (``POST /answer``, off by default): returns a configured action list.

It lets a user run the whole loop locally: the simulator (or the platform)
POSTs the answered call to ``/answer``, gets back, say, a ``start_stream`` to
this receiver with track ``both``, streams to it, and sends its webhooks to
``/webhooks``. The action list comes from ``answer_actions`` and is validated
once, at start-up, with the actions library; when it is invalid every answer
is the platform's own error body (HTTP 500: the configuration is at fault)
and the reason is logged.

With stream tokens configured (``auth_secrets``), every stream action's URL
is signed for the answered call (``actions.StreamSigner`` with the first
secret): the receiver refuses unsigned streams then, so the answers it gives
must carry the token. A request whose call id cannot be found gets the error
body (HTTP 400), since no URL can be signed for it.

The seed pages ask for three separate logs; this is the answer_url one:
every answer returned is logged under ``receiver.calls.answer`` with the call id
and the exact body, and it is added to the call's timeline (the store only
enqueues it, as it does for streams).
"""

from __future__ import annotations

from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Final

import orjson
from aiohttp import web

from receiver.calls.actions import ERROR_BODY, StreamSigner, Verdict, check, to_payload
from receiver.calls.db import AnswerRecord
from receiver.calls.store import CallStore
from receiver.config import Settings
from receiver.logging import get_logger
from receiver.security.auth import strip_token

ANSWER_LOGGER: Final = "receiver.answer"

log = get_logger(ANSWER_LOGGER)


def answer_config(settings: Settings) -> Verdict:
    """Validate ``answer_actions`` with the actions library (``ws://`` only with ``answer_allow_ws``)."""
    if not settings.answer_actions.strip():
        return Verdict(None, "answer is on but answer_actions is empty")
    return check(settings.answer_actions, allow_insecure=settings.answer_allow_ws)


def answer_signer(settings: Settings) -> StreamSigner | None:
    """The signer for answered stream URLs: the first ``auth_secrets`` key, or None without one."""
    if not settings.auth_secrets:
        return None
    # A token is checked when a stream connects, never after: it needs to live only as long as
    # the platform may take to open the call's streams, and a short life limits its replay.
    return StreamSigner(settings.auth_secrets[0], ttl=settings.auth_token_ttl, param=settings.auth_token_param)


def call_id_of(body: bytes, query: Any = None, headers: Any = None) -> str | None:
    """The call id of an answer_url request, wherever it is (lenient: a request is never refused for it).

    The platform POSTs the answered call as a webhook envelope (``call.id``);
    ``call_id`` at the top level, a ``call_id`` query parameter and the
    ``X-MiniVoice-Call-Id`` header are accepted too.
    """
    try:
        data = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        call = data.get("call")
        if isinstance(call, dict) and isinstance(call.get("id"), str) and call["id"]:
            return str(call["id"])
        if isinstance(data.get("call_id"), str) and data["call_id"]:
            return str(data["call_id"])
    for source, key in ((query, "call_id"), (headers, "X-MiniVoice-Call-Id")):
        if source is not None and source.get(key):
            return str(source.get(key))
    return None


class AnswerEndpoint:
    """``POST /answer``: the configured actions, logged and added to the call's timeline."""

    def __init__(self, settings: Settings, store: CallStore) -> None:
        self.config = answer_config(settings)
        self.signer = answer_signer(settings)
        self.store = store
        if self.config.actions is not None:
            log.info("answer_configured", actions=[a.type for a in self.config.actions])
        else:
            log.error("answer_config_invalid", reason=self.config.reason)

    async def __call__(self, request: web.Request) -> web.Response:
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            body = b""  # the answer does not depend on the request: answer anyway
        call_id = call_id_of(body, request.query, request.headers)
        actions = self.config.actions
        if actions is None:
            return _refused(HTTPStatus.INTERNAL_SERVER_ERROR, call_id, self.config.reason)
        if self.signer is not None:
            if call_id is None:
                return _refused(HTTPStatus.BAD_REQUEST, None, "no call id in the request: cannot sign the stream URLs")
            actions = tuple(self.signer.sign(actions, call_id))
        payload = to_payload(actions)
        shown = _redacted(payload, self.signer)  # what the log and the call's timeline keep
        log.info("answer_returned", call_id=call_id, valid=True, signed=self.signer is not None, response=shown)
        if call_id is not None:
            self.store.answer_returned(AnswerRecord(call_id=call_id, answered_at=datetime.now(UTC), response=shown))
        return web.Response(body=orjson.dumps(payload), content_type="application/json")


def _refused(status: HTTPStatus, call_id: str | None, reason: str | None) -> web.Response:
    """The platform's error body (the configuration or the request is at fault), and its log line."""
    log.error("answer_returned", call_id=call_id, valid=False, reason=reason, response=ERROR_BODY)
    return web.Response(body=orjson.dumps(ERROR_BODY), status=status, content_type="application/json")


def _redacted(payload: dict[str, Any], signer: StreamSigner | None) -> dict[str, Any]:
    """The answer as logged: stream tokens redacted (a token admits a stream, so it stays out of logs)."""
    if signer is None:
        return payload
    out = []
    for item in payload["actions"]:
        url = item.get("stream_url")
        if isinstance(url, str):
            item = {**item, "stream_url": strip_token(url, signer.param)}
        out.append(item)
    return {"actions": out}
