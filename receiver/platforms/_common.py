"""
Small field readers shared by the platform parsers. Pure.

Each raises ``MalformedMessage`` naming the field, never a bare
``KeyError``/``ValueError``/``TypeError``.

Every parser has the same shape: one function per event type, a table
``{event name: function}``, and ``parse`` that hands the message to
``dispatch``. A function takes the message and the platform it is parsed
for (formats shared by several platforms, such as Twilio's and SignalWire's,
need it to stamp their events).
"""

from __future__ import annotations

import binascii
from collections.abc import Callable, Mapping
from typing import Annotated, Any, TypeAlias

import msgspec

from receiver.errors import MalformedMessage, UnknownEvent, UnsupportedEncoding
from receiver.events import Connected, Encoding, Event, MarkReceived, MediaFormat, MediaReceived, Platform, Track
from receiver.routes import BINARY_L16_RATES

EventParser: TypeAlias = Callable[[Mapping[str, Any], Platform], Event | None]
"""Parses one event type's message; None for a message that carries nothing for us."""

TRACKS = _TRACKS = {
    "inbound": Track.INBOUND,
    "outbound": Track.OUTBOUND,
    # Twilio spells dtmf tracks (and <Stream track=...>) with a suffix.
    "inbound_track": Track.INBOUND,
    "outbound_track": Track.OUTBOUND,
}

_ENCODINGS = {
    "audio/x-mulaw": Encoding.MULAW,
    "audio/pcmu": Encoding.MULAW,
    "audio/x-alaw": Encoding.ALAW,
    "audio/pcma": Encoding.ALAW,
    "audio/l16": Encoding.L16,
    "audio/x-l16": Encoding.L16,  # SignalWire writes audio/x-L16
}

# An integer field of a typed media decoder (_typed.py): orjson, on the general
# path, reads integers in the 64-bit range only; beyond it the general path decides.
WireInt = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]

L16_RATES = frozenset({8000, 16000, 24000})

# RFC 4733's sixteen DTMF events, as every platform we speak names them.
DTMF_DIGITS = frozenset("0123456789*#ABCD")


def dispatch(
    table: Mapping[str, EventParser], message: Mapping[str, Any], platform: Platform, key: str = "event"
) -> Event | None:
    """Hand ``message`` to the table's function for its ``key`` (``event``; AudioHook: ``type``).

    Raises:
        MalformedMessage: ``key`` is not a string (or the function found it malformed).
        UnknownEvent: The table has no function for the event.
    """
    event = message.get(key)
    if not isinstance(event, str):
        raise MalformedMessage(f"{key} must be a string")
    parse = table.get(event)
    if parse is None:
        raise UnknownEvent(event)
    return parse(message, platform)


def require_mapping(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = obj.get(key)
    if type(value) is not dict and not isinstance(value, Mapping):  # the dict check skips the slow ABC check
        raise MalformedMessage(f"{key} must be an object")
    return value


def optional_mapping(obj: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    """An object a message may leave out (``stop``, ``payload``); when there, an object."""
    value = obj.get(key)
    if value is not None and not isinstance(value, Mapping):
        raise MalformedMessage(f"{key} must be an object")
    return value


def require_str(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedMessage(f"{key} must be a non-empty string")
    return value


def optional_str(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedMessage(f"{key} must be a string")
    return value


def to_int(value: object, key: str, *, strings: bool) -> int:
    """Read a counter: an integer, or (where the platform sends them) a decimal string."""
    if type(value) is int:
        return value
    if strings and type(value) is str and value.isascii() and value.isdigit():
        return int(value)
    kind = "an integer or a decimal string" if strings else "an integer"
    raise MalformedMessage(f"{key} must be {kind}")


def optional_int(obj: Mapping[str, Any], key: str, *, strings: bool) -> int | None:
    value = obj.get(key)
    return None if value is None else to_int(value, key, strings=strings)


def require_track(value: object, key: str = "track") -> Track:
    track = _TRACKS.get(value) if isinstance(value, str) else None
    if track is None:
        raise MalformedMessage(f"{key} must be inbound or outbound")
    return track


def require_tracks(value: object, key: str) -> tuple[Track, ...]:
    if not isinstance(value, list) or not value:
        raise MalformedMessage(f"{key} must be a non-empty list")
    tracks = tuple(dict.fromkeys(require_track(v, key) for v in value))
    # A stable order (inbound first) keeps stereo channels and file names predictable.
    return tuple(t for t in Track if t in tracks)


def b64decode_strict(value: object, key: str = "payload") -> bytes:
    if not isinstance(value, str):
        raise MalformedMessage(f"{key} must be a base64 string")
    try:
        return binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError):
        raise MalformedMessage(f"{key} is not valid base64") from None


def media_format(
    encoding: object,
    sample_rate: object,
    channels: object,
    *,
    strings: bool,
    names: Mapping[str, Encoding] = _ENCODINGS,
) -> MediaFormat:
    """Validate a stream's media format (``names``: the platform's encoding names,
    lower case); L16 is little-endian unless the caller says otherwise."""
    if not isinstance(encoding, str):
        raise MalformedMessage("encoding must be a string")
    # Encoding names compare case-insensitively; drop parameters such as ";rate=16000".
    enc = names.get(encoding.split(";", 1)[0].strip().lower())
    if enc is None:
        raise UnsupportedEncoding(f"unsupported encoding {encoding[:40]!r}")
    rate = to_int(sample_rate, "sample_rate", strings=strings)
    if enc is Encoding.L16:
        if rate not in L16_RATES:
            raise UnsupportedEncoding(f"unsupported L16 sample rate {rate}")
    elif rate != 8000:
        raise UnsupportedEncoding(f"G.711 must be 8000 Hz, not {rate}")
    if channels is not None and to_int(channels, "channels", strings=strings) != 1:
        raise UnsupportedEncoding("only mono tracks are supported")
    return MediaFormat(enc, rate, "little")


def media_received(
    message: Mapping[str, Any], *, strings: bool, sequence_key: str, default_track: str | None = None
) -> MediaReceived:
    """A ``media`` message in the shape most formats share.

    ``media`` holds ``track`` (``default_track`` where a format may leave it
    out), ``chunk``, ``timestamp`` and a base64 ``payload``; the sequence
    number sits at the top under ``sequence_key``; ``strings``: counters may
    come as decimal strings.
    """
    media = require_mapping(message, "media")
    timestamp = media.get("timestamp")
    return MediaReceived(
        require_track(media.get("track", default_track)),
        optional_int(media, "chunk", strings=strings),
        None if timestamp is None else to_int(timestamp, "timestamp", strings=strings),
        b64decode_strict(media.get("payload")),
        optional_int(message, sequence_key, strings=strings),
    )


def connected(message: Mapping[str, Any], platform: Platform) -> Connected:
    """A ``connected`` message: the protocol version it names, if any."""
    return Connected(platform, str(message.get("version", "")))


def mark_received(message: Mapping[str, Any], sequence: int | None) -> MarkReceived:
    """A ``mark`` message: the echo of a checkpoint the receiver sent, named in ``mark.name``."""
    return MarkReceived(require_str(require_mapping(message, "mark"), "name"), sequence)


def require_dtmf_digit(obj: Mapping[str, Any], key: str = "digit") -> str:
    digit = obj.get(key)
    if not isinstance(digit, str) or digit not in DTMF_DIGITS:
        raise MalformedMessage("dtmf.digit must be one of 0-9 * # A-D")
    return digit


def string_map(value: object, key: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise MalformedMessage(f"{key} must map strings to strings")
    return dict(value)


def string_values(value: object, key: str) -> dict[str, str]:
    """The string-valued entries of a free-form JSON object (metadata, flattened headers).

    Other values are left out: custom parameters map strings to strings.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise MalformedMessage(f"{key} must be an object")
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}


def first_str(obj: Mapping[str, Any], *keys: str) -> str | None:
    """The first of ``keys`` that holds a non-empty string (ids that go by several names)."""
    for key in keys:
        value = obj.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def binary_l16_format(rate: object, key: str = "sample_rate") -> MediaFormat:
    """Raw little-endian L16 at one of ``BINARY_L16_RATES``."""
    value = to_int(rate, key, strings=True)
    if value not in BINARY_L16_RATES:
        raise UnsupportedEncoding(f"unsupported L16 sample rate {value}")
    return MediaFormat(Encoding.L16, value, "little")
