"""
answer_url actions: what a MiniVoice call flow returns, as values.

Pure: no I/O, no asyncio, no logging. ``parse_actions`` turns an
``{"actions": [...]}`` payload (text, bytes, or decoded JSON) into frozen
action values, or raises ``InvalidActions`` with a precise ``reason`` for the
log; the platform itself only ever answers with ``ERROR_BODY``. The builders
and ``to_payload`` go the other way, so an application can write its
answer_url response in Python::

    from receiver import actions as a

    body = a.to_payload([
        a.start_stream("wss://media.example.com/minivoice", track="both"),
        a.pause(5),
        a.stop_stream("wss://media.example.com/minivoice", track="both"),
        a.hangup(),
    ])

The rules (``shared/minivoice/stream-protocol.md`` and the MiniVoice pages):

- The payload is a JSON object with an ``actions`` array; each element is an
  object written typed (``{"type": "start_stream", ...}``) or keyed
  (``{"start_stream": {...}}``, exactly one key holding an object).
- ``start_stream``: ``stream_url`` required, a ``wss://`` URL with a host
  (``ws://`` only when the caller allows it, as the simulator's local flag
  does); ``track`` optional, ``inbound`` | ``outbound`` | ``both`` (default
  ``inbound``); ``parameters`` optional, an object of strings.
- ``stop_stream``: ``stream_url`` optional (any non-empty string: a URL that
  matches no stream is legal and changes nothing); ``track`` optional, as above.
- ``start_recording``: no required fields (the others are kept, unchecked);
  ``stop_recording``: no fields.
- ``pause``: ``length`` in seconds, a non-negative number (default 1), so a
  flow has a timeline; ``hangup`` ends the call.
- Any other action type is passed through as ``OtherAction`` with its fields:
  a validator that does not know an action's fields must not reject it.
- Fields a known action does not define are ignored, not rejected, for the
  same reason; a JSON ``null`` in an optional field counts as absent.

An invalid payload is rejected whole: one bad action rejects the lot.
"""

from __future__ import annotations

import enum
import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, TypeAlias
from urllib.parse import urlsplit

import orjson

from receiver.errors import InvalidValue, ReceiverError
from receiver.events import Track
from receiver.security.auth import DEFAULT_TOKEN_PARAM, sign_stream_url, stream_token

__all__ = [
    "ACCEPTED_BODY",
    "ERROR_BODY",
    "Action",
    "Hangup",
    "InvalidActions",
    "OtherAction",
    "Pause",
    "StartRecording",
    "StartStream",
    "StopRecording",
    "StopStream",
    "StreamSigner",
    "StreamTrack",
    "Verdict",
    "action",
    "check",
    "check_stream_url",
    "hangup",
    "parse_actions",
    "pause",
    "start_recording",
    "start_stream",
    "stop_recording",
    "stop_stream",
    "stream_actions",
    "to_payload",
]

# What MiniVoice answers to an invalid payload, and to a valid stream action.
# Module-level dicts: copy them before changing anything.
ERROR_BODY: Final[dict[str, Any]] = {"error": {"code": "answer_url_error", "message": "invalid action payload"}}
ACCEPTED_BODY: Final[dict[str, Any]] = {"result": "stream action accepted by the call flow"}

DEFAULT_PAUSE_SECONDS: Final = 1.0
_TYPE_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")


class InvalidActions(ReceiverError):
    """An answer_url payload MiniVoice would reject whole.

    Attributes:
        reason: What is wrong, precisely, for the log (never sent to the caller).
        index: The position of the offending action, when one action is at fault.
    """

    def __init__(self, reason: str, index: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.index = index

    @property
    def body(self) -> dict[str, Any]:
        """The platform's error body (a fresh copy)."""
        return {"error": dict(ERROR_BODY["error"])}


class StreamTrack(enum.StrEnum):
    """The ``track`` of a stream action: one track, or both."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"
    BOTH = "both"

    @property
    def tracks(self) -> tuple[Track, ...]:
        """The tracks whose media the stream carries (inbound first)."""
        if self is StreamTrack.BOTH:
            return (Track.INBOUND, Track.OUTBOUND)
        return (Track(self.value),)


# -- the actions ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartStream:
    """Open a media stream of the call to ``stream_url``."""

    stream_url: str
    track: StreamTrack = StreamTrack.INBOUND
    parameters: Mapping[str, str] = field(default_factory=dict)

    type = "start_stream"

    def __post_init__(self) -> None:
        if not isinstance(self.stream_url, str) or not self.stream_url:
            raise InvalidActions("start_stream.stream_url must be a non-empty string")
        object.__setattr__(self, "track", _track(self.track, "start_stream.track"))
        object.__setattr__(self, "parameters", _parameters(self.parameters, "start_stream.parameters"))

    def to_fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {"stream_url": self.stream_url, "track": self.track.value}
        if self.parameters:
            out["parameters"] = dict(self.parameters)
        return out


@dataclass(frozen=True, slots=True)
class StopStream:
    """Stop the call's active streams that match (every one when both fields are None)."""

    stream_url: str | None = None
    track: StreamTrack | None = None

    type = "stop_stream"

    def __post_init__(self) -> None:
        if self.stream_url is not None and (not isinstance(self.stream_url, str) or not self.stream_url):
            raise InvalidActions("stop_stream.stream_url must be a non-empty string")
        if self.track is not None:
            object.__setattr__(self, "track", _track(self.track, "stop_stream.track"))

    def matches(self, stream_url: str, track: StreamTrack | str) -> bool:
        """Whether this action stops a stream started with ``stream_url`` and ``track``.

        The protocol page: the URL must equal the action's URL when given, and
        the track must equal the action's track when given.
        """
        if self.stream_url is not None and stream_url != self.stream_url:
            return False
        return self.track is None or str(track) == self.track.value

    def to_fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.stream_url is not None:
            out["stream_url"] = self.stream_url
        if self.track is not None:
            out["track"] = self.track.value
        return out


@dataclass(frozen=True, slots=True)
class StartRecording:
    """Start recording the call; ``options`` holds any fields given, unchecked."""

    options: Mapping[str, Any] = field(default_factory=dict)

    type = "start_recording"

    def to_fields(self) -> dict[str, Any]:
        return dict(self.options)


@dataclass(frozen=True, slots=True)
class StopRecording:
    """Stop the active recording (with none active, MiniVoice sends ``recording.failed``)."""

    type = "stop_recording"

    def to_fields(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True, slots=True)
class Pause:
    """Wait ``length`` seconds before the next action."""

    length: float = DEFAULT_PAUSE_SECONDS

    type = "pause"

    def __post_init__(self) -> None:
        object.__setattr__(self, "length", _seconds(self.length, "pause.length"))

    def to_fields(self) -> dict[str, Any]:
        return {"length": self.length}


@dataclass(frozen=True, slots=True)
class Hangup:
    """End the call."""

    type = "hangup"

    def to_fields(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True, slots=True)
class OtherAction:
    """An action this library does not model (play, collect digits, redirect, ...), passed through."""

    type: str
    fields: Mapping[str, Any] = field(default_factory=dict)

    def to_fields(self) -> dict[str, Any]:
        return dict(self.fields)


Action: TypeAlias = StartStream | StopStream | StartRecording | StopRecording | Pause | Hangup | OtherAction


# -- parsing -------------------------------------------------------------------


def parse_actions(payload: str | bytes | Mapping[str, Any], *, allow_insecure: bool = False) -> list[Action]:
    """Parse and validate an answer_url payload.

    Args:
        payload: The response body (JSON text or bytes) or the decoded object.
        allow_insecure: Accept ``ws://`` stream URLs too (local testing only;
            the platform requires ``wss://``).

    Returns:
        The actions, in order.

    Raises:
        InvalidActions: The payload is invalid; ``reason`` says why.
    """
    if isinstance(payload, str | bytes | bytearray | memoryview):
        try:
            payload = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise InvalidActions(f"malformed JSON: {exc}") from None
    if not isinstance(payload, Mapping):
        raise InvalidActions(f"the payload must be a JSON object with an actions array, not {_kind(payload)}")
    if "actions" not in payload:
        raise InvalidActions("the payload has no actions array")
    items = payload["actions"]
    if not isinstance(items, list):
        raise InvalidActions(f"actions must be an array, not {_kind(items)}")
    return [_parse_one(item, i, allow_insecure) for i, item in enumerate(items)]


def _parse_one(item: object, index: int, allow_insecure: bool) -> Action:
    where = f"actions[{index}]"
    if not isinstance(item, Mapping):
        raise InvalidActions(f"{where} must be an object, not {_kind(item)}", index)
    if "type" in item:
        kind = item["type"]
        # "type" itself names no action: keyed, {"type": {...}} would read as the typed form.
        if not isinstance(kind, str) or not _TYPE_NAME.match(kind) or kind == "type":
            raise InvalidActions(f"{where}.type must be an action name in snake_case, not {_show(kind)}", index)
        body: Mapping[str, Any] = {k: v for k, v in item.items() if k != "type"}
        where = f"{where} ({kind})"
    else:
        if len(item) != 1:
            keys = ", ".join(sorted(map(str, item))) or "none"
            raise InvalidActions(
                f"{where} must have a type field or exactly one action key (keyed form), found keys: {keys}", index
            )
        ((kind, value),) = item.items()
        if not _TYPE_NAME.match(kind):
            raise InvalidActions(f"{where}: {_show(kind)} is not an action name in snake_case", index)
        if not isinstance(value, Mapping):
            raise InvalidActions(f"{where}.{kind} must be an object, not {_kind(value)}", index)
        body = value
        where = f"{where}.{kind}"
    try:
        return _build(kind, body, where, allow_insecure)
    except InvalidActions as exc:
        raise InvalidActions(exc.reason, index) from None


def _build(kind: str, body: Mapping[str, Any], where: str, allow_insecure: bool) -> Action:
    def get(key: str) -> Any:
        return body.get(key)

    if kind == "start_stream":
        # Every field is checked, so the reason names every problem at once
        # (the pages' own failure example has a bad URL *and* a bad track).
        problems = _Problems()
        url = get("stream_url")
        if url is None:
            problems.add(f"{where}: stream_url is required")
        else:
            problems.run(check_stream_url, url, allow_insecure=allow_insecure, where=f"{where}.stream_url")
        track = get("track")
        track = StreamTrack.INBOUND if track is None else problems.run(_track, track, f"{where}.track")
        parameters = problems.run(_parameters, get("parameters"), f"{where}.parameters")
        problems.raise_if_any()
        return StartStream(url, track, parameters)
    if kind == "stop_stream":
        problems = _Problems()
        url = get("stream_url")
        if url is not None and (not isinstance(url, str) or not url):
            problems.add(f"{where}.stream_url must be a non-empty string, not {_show(url)}")
        track = get("track")
        track = None if track is None else problems.run(_track, track, f"{where}.track")
        problems.raise_if_any()
        return StopStream(url, track)
    if kind == "start_recording":
        return StartRecording(dict(body))
    if kind == "stop_recording":
        return StopRecording()
    if kind == "pause":
        length = get("length")
        return Pause(DEFAULT_PAUSE_SECONDS if length is None else _seconds(length, f"{where}.length"))
    if kind == "hangup":
        return Hangup()
    return OtherAction(kind, dict(body))


class _Problems:
    """Collects the problems of one action's fields."""

    def __init__(self) -> None:
        self.reasons: list[str] = []

    def add(self, reason: str) -> None:
        self.reasons.append(reason)

    def run(self, check: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return check(*args, **kwargs)
        except InvalidActions as exc:
            self.reasons.append(exc.reason)
            return None

    def raise_if_any(self) -> None:
        if self.reasons:
            raise InvalidActions("; ".join(self.reasons))


def check_stream_url(url: object, *, allow_insecure: bool = False, where: str = "stream_url") -> str:
    """Check a start_stream URL: ``wss://`` with a host (or ``ws://`` when allowed).

    Raises:
        InvalidActions: It is not such a URL.
    """
    if not isinstance(url, str) or not url:
        raise InvalidActions(f"{where} must be a non-empty string, not {_show(url)}")
    allowed = ("wss", "ws") if allow_insecure else ("wss",)
    wanted = "a wss:// or ws:// URL" if allow_insecure else "a wss:// URL"
    if any(c.isspace() or ord(c) < 0x20 or c == "\x7f" for c in url):
        raise InvalidActions(f"{where} must be {wanted} without spaces or control characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise InvalidActions(f"{where} is not a valid URL ({exc}): {_show(url)}") from None
    if parts.scheme.lower() not in allowed:
        raise InvalidActions(f"{where} must be {wanted}, not {_show(url)}")
    if not host:
        raise InvalidActions(f"{where} has no host: {_show(url)}")
    return url


def _track(value: object, where: str) -> StreamTrack:
    if isinstance(value, str):
        try:
            return StreamTrack(value)
        except ValueError:
            pass
    raise InvalidActions(f"{where} must be inbound, outbound or both, not {_show(value)}")


def _parameters(value: object, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidActions(f"{where} must be an object of strings, not {_kind(value)}")
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise InvalidActions(f"{where}.{key} must be a string, not {_kind(item)}")
    return dict(value)


def _seconds(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise InvalidActions(f"{where} must be a non-negative number of seconds, not {_show(value)}")
    return float(value)


def _kind(value: object) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    for kind, name in names.items():
        if isinstance(value, kind):
            return name
    if isinstance(value, Mapping):
        return "an object"
    return "a number" if isinstance(value, int | float) else type(value).__name__


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# -- building ------------------------------------------------------------------


def start_stream(
    stream_url: str,
    track: StreamTrack | str = StreamTrack.INBOUND,
    parameters: Mapping[str, str] | None = None,
    *,
    allow_insecure: bool = False,
) -> StartStream:
    """A ``start_stream`` action; the URL is used exactly as given (sign it first if you sign).

    Raises:
        InvalidActions: The URL is not ``wss://``, or the track or parameters are invalid.
    """
    check_stream_url(stream_url, allow_insecure=allow_insecure, where="start_stream.stream_url")
    return StartStream(stream_url, _track(track, "start_stream.track"), dict(parameters or {}))


def stop_stream(stream_url: str | None = None, track: StreamTrack | str | None = None) -> StopStream:
    """A ``stop_stream`` action: give the same URL the start_stream used to target that stream."""
    return StopStream(stream_url, None if track is None else _track(track, "stop_stream.track"))


def start_recording(**options: Any) -> StartRecording:
    """A ``start_recording`` action (``options`` are passed through as fields)."""
    return StartRecording(options)


def stop_recording() -> StopRecording:
    """A ``stop_recording`` action."""
    return StopRecording()


def pause(length: float = DEFAULT_PAUSE_SECONDS) -> Pause:
    """A ``pause`` of ``length`` seconds."""
    return Pause(length)


def hangup() -> Hangup:
    """A ``hangup`` action."""
    return Hangup()


def action(type: str, **fields: Any) -> Action:  # noqa: A002 - the protocol's own word
    """Any action by name, validated like a parsed one (``action("play", url=...)``)."""
    return _parse_one({"type": type, **fields}, 0, allow_insecure=False)


def to_payload(actions: Iterable[Action], *, keyed: bool = False) -> dict[str, Any]:
    """The answer_url response body for ``actions``: typed form, or keyed with ``keyed=True``.

    ``parse_actions(to_payload(actions)) == list(actions)`` for valid actions.
    """
    out: list[dict[str, Any]] = []
    for item in actions:
        fields = item.to_fields()
        out.append({item.type: fields} if keyed else {"type": item.type, **fields})
    return {"actions": out}


def stream_actions(actions: Sequence[Action]) -> list[StartStream | StopStream]:
    """The stream actions of a flow, in order."""
    return [a for a in actions if isinstance(a, StartStream | StopStream)]


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of checking a payload: the actions, or why it was rejected."""

    actions: tuple[Action, ...] | None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.actions is not None

    @property
    def body(self) -> dict[str, Any]:
        """What MiniVoice answers: ``ACCEPTED_BODY`` or ``ERROR_BODY`` (fresh copies)."""
        if self.ok:
            return dict(ACCEPTED_BODY)
        return {"error": dict(ERROR_BODY["error"])}


def check(payload: str | bytes | Mapping[str, Any], *, allow_insecure: bool = False) -> Verdict:
    """``parse_actions`` that returns a ``Verdict`` instead of raising."""
    try:
        return Verdict(tuple(parse_actions(payload, allow_insecure=allow_insecure)))
    except InvalidActions as exc:
        return Verdict(None, exc.reason)


# -- signed stream URLs ------------------------------------------------------------


class StreamSigner:
    """Issues stream URLs that carry a token bound to one call (``receiver.security.auth``).

    The receiver, given the same secret in ``auth_secrets``, accepts a stream
    only with a valid token for its own call id: a URL copied to another call,
    forged, or used after its expiry is refused at the handshake (401/403).

    The expiry of a call's token is fixed the first time that call is signed
    (``ttl`` from then) and remembered for the last ``remember`` calls, so the
    same call always gets the same URL and a later ``stop_stream`` naming it
    still matches the stream. Pass ``expires_at`` to choose it yourself (for
    example when answer_url requests for one call reach different processes).

        signer = StreamSigner(secret, ttl=600)
        body = to_payload([
            signer.start_stream("wss://media.example.com/minivoice", call_id, track="both"),
            pause(5),
            signer.stop_stream("wss://media.example.com/minivoice", call_id),
        ])

    Args:
        secret: The first of the receiver's ``auth_secrets``.
        ttl: Seconds a token may be used to connect (the receiver checks it when a
            stream connects, never later, so a stream may run past it). Cover the
            time from the answer to the flow's last ``start_stream``; shorter is
            a shorter window for anyone who copies the URL.
        param: The query parameter (the receiver's ``auth_token_param``).
        remember: How many calls' expiries are kept.
        clock: Unix time (for tests).
    """

    def __init__(
        self,
        secret: str | bytes,
        *,
        ttl: float = 600.0,
        param: str = DEFAULT_TOKEN_PARAM,
        remember: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not secret:
            raise InvalidValue("secret must not be empty")
        if ttl <= 0:
            raise InvalidValue("ttl must be positive")
        self._secret = secret
        self.ttl = ttl
        self.param = param
        self._remember = remember
        self._clock = clock
        self._expiry: OrderedDict[str, int] = OrderedDict()

    def __repr__(self) -> str:  # never the secret
        return f"StreamSigner(ttl={self.ttl}, param={self.param!r})"

    def expires_at(self, call_id: str) -> int:
        """The expiry of ``call_id``'s token: fixed at the first call, then remembered."""
        expiry = self._expiry.get(call_id)
        if expiry is None:
            expiry = self._expiry[call_id] = int(self._clock() + self.ttl)
            while len(self._expiry) > self._remember:
                self._expiry.popitem(last=False)
        else:
            self._expiry.move_to_end(call_id)
        return expiry

    def token(self, call_id: str, *, expires_at: int | None = None) -> str:
        """The bare token, for a start_stream's custom parameters (platforms that strip query strings)."""
        expiry = self.expires_at(call_id) if expires_at is None else expires_at
        return stream_token(call_id=call_id, secret=self._secret, expires_at=expiry)

    def url(self, stream_url: str, call_id: str, *, expires_at: int | None = None) -> str:
        """``stream_url`` with the call's token in its query (any token already there replaced)."""
        expiry = self.expires_at(call_id) if expires_at is None else expires_at
        return sign_stream_url(stream_url, call_id=call_id, secret=self._secret, expires_at=expiry, param=self.param)

    def start_stream(
        self,
        stream_url: str,
        call_id: str,
        track: StreamTrack | str = StreamTrack.INBOUND,
        parameters: Mapping[str, str] | None = None,
        *,
        token_parameter: bool = False,
        allow_insecure: bool = False,
    ) -> StartStream:
        """``start_stream`` to the signed URL; ``token_parameter`` also puts the token in ``parameters``."""
        params = dict(parameters or {})
        if token_parameter:
            params[self.param] = self.token(call_id)
        return start_stream(self.url(stream_url, call_id), track, params, allow_insecure=allow_insecure)

    def stop_stream(self, stream_url: str | None, call_id: str, track: StreamTrack | str | None = None) -> StopStream:
        """``stop_stream`` naming the same signed URL the call's ``start_stream`` got (None: every stream)."""
        return stop_stream(None if stream_url is None else self.url(stream_url, call_id), track)

    def sign(self, actions: Iterable[Action], call_id: str, *, token_parameter: bool = False) -> list[Action]:
        """A flow with every stream action's URL signed for ``call_id`` (other actions unchanged)."""
        out: list[Action] = []
        for item in actions:
            if isinstance(item, StartStream):
                params = dict(item.parameters)
                if token_parameter:
                    params[self.param] = self.token(call_id)
                item = replace(item, stream_url=self.url(item.stream_url, call_id), parameters=params)
            elif isinstance(item, StopStream) and item.stream_url is not None:
                item = replace(item, stream_url=self.url(item.stream_url, call_id))
            out.append(item)
        return out
