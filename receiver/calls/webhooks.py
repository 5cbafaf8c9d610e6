"""
MiniVoice webhooks, pure: authenticate a request, parse and validate its envelope.

The listener (``listener.py``) is a thin shell around these functions;
this module does no I/O, no asyncio and no logging, so every rule here is
tested without a socket.

The envelope, as the seed pages and the stream protocol give it::

    {"event": "call.completed", "created_at": "2026-05-29T12:10:00Z",
     "call": {"id": "call_123", "customer_id": ..., "application_id": ...,
              "status": ..., "direction": ..., "from": ..., "to": ...},
     "variables": {}, "data": {}}

Strict with what we know (``event``, ``call.id``, ``created_at``, the known
``call`` fields, ``recording.completed``'s ``data``), lenient with what we do
not: any other event type is accepted, and unknown keys are kept verbatim.

Errors suggest an HTTP status (h11's ``error_status_hint``); the listener
decides. ``WebhookRejected`` never carries a close code: it never ends a stream.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any, ClassVar, Final, TypedDict

import orjson

from receiver.errors import ReceiverError
from receiver.security.auth import any_equal, basic_user_password, split_authorization

WEBHOOKS_LOGGER: Final = "receiver.webhooks"

CALL_COMPLETED: Final = "call.completed"
RECORDING_COMPLETED: Final = "recording.completed"
RECORDING_FAILED: Final = "recording.failed"

# A webhook stamped further ahead of the receiver's clock than this is recorded at its
# receipt time instead: one event from year 9999 would otherwise be its call's last
# step, and sort the call first in every listing, for ever.
MAX_FUTURE_SKEW: Final = timedelta(hours=24)

# call.status values after which a call never goes back to an earlier state.
TERMINAL_STATUSES: Final = frozenset({"completed", "failed", "busy", "no_answer", "no-answer", "canceled", "cancelled"})

_CALL_FIELDS: Final = (
    ("customer_id", "customer_id"),
    ("application_id", "application_id"),
    ("status", "status"),
    ("direction", "direction"),
    ("from", "from_number"),
    ("to", "to_number"),
)


# -- errors ----------------------------------------------------------------------


class WebhookRejected(ReceiverError):
    """A webhook request we refuse; ``status`` is the HTTP status it suggests."""

    status: ClassVar[HTTPStatus] = HTTPStatus.BAD_REQUEST
    code: ClassVar[str] = "bad_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.log_fields: Mapping[str, Any] = {}  # context for the listener's log line (never in the body)

    def body(self) -> dict[str, Any]:
        """The JSON error body, shaped like the platform's own error bodies."""
        return {"error": {"code": self.code, "message": self.message}}


class MalformedJSON(WebhookRejected):
    status = HTTPStatus.BAD_REQUEST
    code = "malformed_json"


class TooDeeplyNested(WebhookRejected):
    """Valid JSON nested deeper than the store can write back (orjson's 254 levels)."""

    status = HTTPStatus.BAD_REQUEST
    code = "too_deeply_nested"


class InvalidEnvelope(WebhookRejected):
    """Valid JSON that is not a webhook envelope (a missing ``event`` or ``call.id``, a wrong type)."""

    status = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "invalid_envelope"


class UnsupportedContentType(WebhookRejected):
    status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    code = "unsupported_content_type"


class BodyTooLarge(WebhookRejected):
    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    code = "body_too_large"


class Unauthorized(WebhookRejected):
    status = HTTPStatus.UNAUTHORIZED
    code = "unauthorized"


class StoreUnavailable(WebhookRejected):
    """The call store cannot take the write now: a 5xx, so the platform retries."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "store_unavailable"


# -- values ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallFields:
    """What a webhook says about its call (``call``); ``None`` where it says nothing."""

    id: str
    customer_id: str | None = None
    application_id: str | None = None
    status: str | None = None
    direction: str | None = None
    from_number: str | None = None
    to_number: str | None = None


@dataclass(frozen=True, slots=True)
class RecordingFields:
    """A platform recording, from ``recording.completed`` / ``recording.failed`` ``data``."""

    recording_id: str | None
    status: str
    duration_seconds: float | None = None
    size_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """One validated webhook delivery.

    ``occurred_at`` is ``created_at`` in UTC (or the receipt time when the
    platform sent none); ``dedupe_key`` is the same for every retry of the
    same body, whatever its whitespace or key order.
    """

    event: str
    call: CallFields
    occurred_at: datetime
    created_at: str | None  # as sent
    variables: Mapping[str, Any]
    data: Mapping[str, Any]
    dedupe_key: str
    envelope: Mapping[str, Any] = field(repr=False)
    recording: RecordingFields | None = None
    future_skew: float | None = None  # seconds ``created_at`` was ahead of the clock, when it was clamped


# -- parsing ---------------------------------------------------------------------


def check_content_type(content_type: str | None) -> None:
    """Accept ``application/json`` (any charset) and ``application/*+json``.

    Raises:
        UnsupportedContentType: Anything else, or none.
    """
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if mime == "application/json" or (mime.startswith("application/") and mime.endswith("+json")):
        return
    raise UnsupportedContentType(f"content type must be application/json, not {mime or 'none'}")


def check_size(length: int, limit: int) -> None:
    """Raises ``BodyTooLarge`` when ``length`` bytes exceed ``limit``."""
    if length > limit:
        raise BodyTooLarge(f"body is over the {limit}-byte limit")


def parse_timestamp(value: str, *, what: str = "created_at") -> datetime:
    """An RFC 3339 timestamp with an offset, in UTC.

    Raises:
        InvalidEnvelope: Not a timestamp, or no offset.
    """
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidEnvelope(f"{what} is not an RFC 3339 timestamp") from None
    if parsed.tzinfo is None:
        raise InvalidEnvelope(f"{what} has no UTC offset")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-14:00 is in year 10000 in UTC
        raise InvalidEnvelope(f"{what} is outside the years 1-9999 in UTC") from None


def format_timestamp(moment: datetime) -> str:
    """The one text form timestamps are stored in: UTC, milliseconds, ``Z`` (sorts as it reads)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_webhook(
    body: bytes, *, received_at: datetime | None = None, max_future: timedelta = MAX_FUTURE_SKEW
) -> WebhookEvent:
    """Validate one webhook body.

    Args:
        body: The request body as received.
        received_at: When it arrived (stands in for a missing ``created_at``,
            and for one more than ``max_future`` ahead of it: ``future_skew``
            then says by how much).
        max_future: How far ahead of ``received_at`` a ``created_at`` is believed.

    Raises:
        MalformedJSON: Not JSON, or not a JSON object.
        InvalidEnvelope: A missing or ill-typed ``event``, ``call``, ``call.id``,
            ``created_at``, ``variables``, ``data``, or a ``recording.completed``
            without ``data.recording_id``.
        TooDeeplyNested: JSON nested deeper than the store can serialise.
    """
    received_at = (received_at or datetime.now(UTC)).astimezone(UTC)
    try:
        envelope = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise MalformedJSON("body is not valid JSON") from None
    if not isinstance(envelope, dict):
        raise MalformedJSON("body must be a JSON object")
    event = envelope.get("event")
    if not isinstance(event, str) or not event.strip():
        raise InvalidEnvelope("missing event" if event is None else "event must be a non-empty string")
    call = envelope.get("call")
    if not isinstance(call, dict):
        raise InvalidEnvelope("missing call" if call is None else "call must be an object")
    call_id = call.get("id")
    if not isinstance(call_id, str) or not call_id.strip():
        raise InvalidEnvelope("missing call.id" if call_id is None else "call.id must be a non-empty string")
    values: dict[str, str | None] = {}
    for key, attr in _CALL_FIELDS:
        value = call.get(key)
        if value is not None and not isinstance(value, str):
            raise InvalidEnvelope(f"call.{key} must be a string")
        values[attr] = value
    created_at = envelope.get("created_at")
    future_skew = None
    if created_at is None:
        occurred_at = received_at
    elif isinstance(created_at, str):
        occurred_at = parse_timestamp(created_at)
        if occurred_at - received_at > max_future:
            future_skew = (occurred_at - received_at).total_seconds()
            occurred_at = received_at
    else:
        raise InvalidEnvelope("created_at must be an RFC 3339 string")
    variables = _object(envelope, "variables")
    data = _object(envelope, "data")
    recording = _recording(event, data)
    return WebhookEvent(
        event=event,
        call=CallFields(id=call_id, **values),
        occurred_at=occurred_at,
        created_at=created_at,
        variables=variables,
        data=data,
        dedupe_key=dedupe_key(envelope),
        envelope=envelope,
        recording=recording,
        future_skew=future_skew,
    )


def dedupe_key(envelope: Mapping[str, Any]) -> str:
    """A hash of the envelope in canonical form (sorted keys, no whitespace).

    A retry carries the same body, so it gets the same key; two different
    events for one call differ in ``event``, ``created_at`` or ``data``.
    """
    try:
        canonical = orjson.dumps(envelope, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:  # parsed, but the store could not write it back either
        raise TooDeeplyNested("body is nested more than 254 levels deep") from None
    return hashlib.sha256(canonical).hexdigest()


def _object(envelope: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = envelope.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidEnvelope(f"{key} must be an object")
    return value


def _recording(event: str, data: Mapping[str, Any]) -> RecordingFields | None:
    if event not in (RECORDING_COMPLETED, RECORDING_FAILED):
        return None
    recording_id = data.get("recording_id")
    if recording_id is not None and (not isinstance(recording_id, str) or not recording_id):
        raise InvalidEnvelope("data.recording_id must be a non-empty string")
    if recording_id is None and event == RECORDING_COMPLETED:
        raise InvalidEnvelope("recording.completed without data.recording_id")
    status = data.get("status")
    if status is not None and not isinstance(status, str):
        raise InvalidEnvelope("data.status must be a string")
    duration = data.get("duration_seconds")
    if duration is not None and (isinstance(duration, bool) or not isinstance(duration, int | float) or duration < 0):
        raise InvalidEnvelope("data.duration_seconds must be a non-negative number")
    size = data.get("size_bytes")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise InvalidEnvelope("data.size_bytes must be a non-negative integer")
    default = "completed" if event == RECORDING_COMPLETED else "failed"
    return RecordingFields(
        recording_id=recording_id, status=status or default, duration_seconds=duration, size_bytes=size
    )


# -- authentication --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WebhookAuth:
    """What a request must carry; nothing configured means open (the default, for local use).

    With a ``secret``, the URL carries it as a path segment (``/webhooks/<secret>``)
    or a ``token`` query parameter. With ``user`` and ``password``, HTTP basic
    auth. With both configured, either one is enough.
    """

    secret: str = ""
    user: str = ""
    password: str = ""

    @property
    def required(self) -> bool:
        return bool(self.secret or self.user)

    @property
    def basic(self) -> bool:
        return bool(self.user)

    @property
    def mode(self) -> str:
        """The configured mechanisms, for the start-up log: ``token+basic``, ``token``, ``basic`` or ``none``."""
        return "+".join(name for name, on in (("token", self.secret), ("basic", self.user)) if on) or "none"

    def check(self, *, token: str | None, authorization: str | None) -> None:
        """Fail closed: when anything is configured, the request must prove it.

        Args:
            token: The token from the path or the query string, if any.
            authorization: The ``Authorization`` header, if any.

        Raises:
            Unauthorized: Credentials are required and missing or wrong.
        """
        if not self.required:
            return
        if self.secret and token is not None and any_equal(token, (self.secret,)):
            return
        if self.basic and authorization is not None and check_basic(authorization, self.user, self.password):
            return
        if token is None and authorization is None:
            raise Unauthorized("credentials required")
        raise Unauthorized("credentials rejected")


def check_basic(authorization: str, user: str, password: str) -> bool:
    """True when ``authorization`` is HTTP basic auth for ``user`` and ``password`` (constant time)."""
    scheme, credentials = split_authorization(authorization)
    if scheme != "basic":
        return False
    return any_equal(basic_user_password(credentials) or "", (f"{user}:{password}",))


# -- the read API's errors ---------------------------------------------------------


class InvalidQuery(WebhookRejected):
    status = HTTPStatus.BAD_REQUEST
    code = "invalid_query"


class NotFound(WebhookRejected):
    status = HTTPStatus.NOT_FOUND
    code = "not_found"


class MethodNotAllowed(WebhookRejected):
    status = HTTPStatus.METHOD_NOT_ALLOWED
    code = "method_not_allowed"


def parse_since(value: str) -> str:
    """A ``since`` filter (RFC 3339, or a date or time without offset, taken as UTC) in stored form.

    Raises:
        InvalidQuery: Not a date or timestamp.
    """
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidQuery("since must be an RFC 3339 timestamp or a date") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return format_timestamp(moment)
    except OverflowError:  # 0001-01-01T00:00:00+14:00 is before year 1 in UTC
        raise InvalidQuery("since is outside the years 1-9999 in UTC") from None


def parse_limit(value: str | None, *, default: int = 50, maximum: int = 1000) -> int:
    """A ``limit`` query parameter, 1 to ``maximum``.

    Raises:
        InvalidQuery: Not an integer in range.
    """
    if value is None or value == "":
        return default
    try:
        limit = int(value)
    except ValueError:
        raise InvalidQuery("limit must be an integer") from None
    if not 1 <= limit <= maximum:
        raise InvalidQuery(f"limit must be 1-{maximum}")
    return limit


class CallFilter(TypedDict):
    """The filters of ``CallStore.list_calls``, as keyword arguments."""

    status: str | None
    since: str | None
    until: str | None
    search: str | None
    limit: int


def call_query(query: Mapping[str, str]) -> CallFilter:
    """The ``CallStore.list_calls`` arguments a list query asks for (``status``, ``since``, ``until``, ``q``, ``limit``).

    ``until`` given as a date means through the end of that day.

    Raises:
        InvalidQuery: A filter is not valid.
    """
    since = parse_since(query["since"]) if query.get("since") else None
    until = None
    if query.get("until"):
        until = parse_since(query["until"])
        if len(query["until"].strip()) == len("2026-01-01"):
            until = format_timestamp(datetime.fromisoformat(until) + timedelta(days=1))
    return CallFilter(
        status=query.get("status") or None,
        since=since,
        until=until,
        search=query.get("q", "").strip() or None,
        limit=parse_limit(query.get("limit")),
    )
