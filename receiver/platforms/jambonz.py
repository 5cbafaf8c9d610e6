"""
jambonz ``listen`` (WebSocket subprotocol ``audio.jambonz.org``). Pure.

The first frame is text: one JSON object of call attributes (``callSid``,
``from``, ``to``, ``direction``, ...) with ``sampleRate`` and ``mixType``,
plus the verb's ``metadata`` object (its string values become custom
parameters; a ``stream_id`` in it names the stream), and no ``event`` key. Then **binary**
frames of raw little-endian L16 (``shared/reference/stream-formats.md``
section 7). ``mixType`` ``mono`` is the caller, ``mixed`` both legs in one
channel (recorded as the inbound track), ``stereo`` two interleaved channels.
There is no stop message: the stream ends when the socket closes.

Later text frames: ``{"event": "dtmf", "dtmf": "2", "duration": "1600"}``
with ``passDtmf`` (the duration is in RTP timestamp units, so it is not
kept), and the echo of a mark the receiver sent
(``{"type": "mark", "data": {"name": ..., "event": "playout"}}``).

Unconfirmed: the stereo channel order. Channel 0 is read as the caller
(inbound) unless the route says otherwise (``stereo_channels``); the reading
is logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from receiver.errors import FormatMismatch, MalformedMessage, UnknownEvent
from receiver.events import (
    CallMetadata,
    DtmfReceived,
    Event,
    MarkReceived,
    Platform,
    StreamStarted,
    Track,
)
from receiver.platforms._common import (
    binary_l16_format,
    first_str,
    optional_str,
    require_dtmf_digit,
    require_mapping,
    require_str,
    string_values,
)
from receiver.routes import DEFAULT_STEREO, Mix, Route

SUBPROTOCOL: Final = "audio.jambonz.org"
EXPECTED: Final = "jambonz call metadata (JSON with sampleRate and mixType) first"


def stereo_channels(route: Route | None) -> tuple[Track, Track]:
    return route.stereo_channels if route is not None else DEFAULT_STEREO


def tracks_for(mix: Mix, route: Route | None) -> tuple[Track, ...]:
    return stereo_channels(route) if mix is Mix.STEREO else (Track.INBOUND,)


def mix_of(value: object, key: str = "mixType") -> Mix:
    try:
        return Mix(str(value))
    except ValueError:
        raise MalformedMessage(f"{key} must be mono, mixed or stereo") from None


def parse(message: Mapping[str, Any], route: Route | None = None) -> Event | None:
    """Translate one jambonz text frame (binary frames are media: the session's job).

    The metadata frame is the stream's ``StreamStarted``.

    Raises:
        FormatMismatch: A frame that is neither metadata nor a jambonz event
            arrived first (a stream on a jambonz route that is something else).
        MalformedMessage: Metadata or an event with a missing or bad field.
        UnsupportedEncoding: A sample rate we cannot take.
        UnknownEvent: Another event type.
    """
    if "event" not in message and "type" not in message:
        return _metadata(message, route)
    event = message.get("event")
    if event == "dtmf":
        return DtmfReceived(digit=require_dtmf_digit(message, "dtmf"))
    if message.get("type") == "mark":
        data = require_mapping(message, "data")
        return MarkReceived(require_str(data, "name"))
    kind = event if event is not None else message.get("type")
    if not isinstance(kind, str):
        raise MalformedMessage("event must be a string")
    raise UnknownEvent(kind)


def _metadata(message: Mapping[str, Any], route: Route | None) -> Event:
    if "sampleRate" not in message and "mixType" not in message:
        raise FormatMismatch(EXPECTED, "the first message has no sampleRate or mixType")
    mix = mix_of(message.get("mixType", "mono"))
    stream_fmt = binary_l16_format(message.get("sampleRate", 8000), "sampleRate")
    channels = tracks_for(mix, route)
    readings = {"mix": mix.value}
    if mix is Mix.STEREO:
        readings["stereo_channels"] = ",".join(t.value for t in channels) + (
            " (route)" if route is not None else " (assumed)"
        )
    metadata = message.get("metadata")
    parameters = string_values(metadata, "metadata") if isinstance(metadata, Mapping) else {}
    call_id = first_str(message, "callSid", "call_sid")
    return StreamStarted(
        platform=Platform.JAMBONZ,
        # None on the wire: the verb's metadata may name it, else the session (after the connection).
        stream_id=parameters.get("stream_id", ""),
        call_id=call_id or "",
        tracks=tuple(t for t in Track if t in channels),
        media_format=stream_fmt,
        custom_parameters=parameters,
        call=CallMetadata(
            account_id=optional_str(message, "accountSid"),
            application_id=optional_str(message, "applicationSid"),
            direction=optional_str(message, "direction"),
            from_number=optional_str(message, "from"),
            to_number=optional_str(message, "to"),
        ),
        readings=readings,
        binary_channels=channels,
    )


def is_first_message(message: Mapping[str, Any]) -> bool:
    """Detection: a JSON object with no ``event`` but ``sampleRate`` or ``mixType``."""
    return "event" not in message and ("sampleRate" in message or "mixType" in message)
