"""
Exotel stream and voicebot applets (AgentStream). Pure.

snake_case keys, every number a JSON string (even ``media_format.sample_rate``),
a bare ``connected`` first (``shared/reference/stream-formats.md`` section 6).
Audio is raw 16-bit little-endian PCM (``audio/x-raw``) in about 100 ms
chunks; each ``media`` carries its ``chunk`` and ``timestamp``.

Unconfirmed facts, read both ways:

- the encoding: ``audio/x-raw`` (base doc) or the beta's
  ``audio/x-mulaw;rate=8000`` / ``audio/L16;rate=16000``;
- tracks: the base doc has no ``track`` on media (inbound only); the beta
  has ``both`` with ``media.track``. A stream declares the tracks
  ``start.tracks`` names, else inbound only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from receiver.errors import MalformedMessage
from receiver.events import (
    CallMetadata,
    DtmfReceived,
    Encoding,
    Event,
    Platform,
    StreamStarted,
    StreamStopped,
    Track,
)
from receiver.platforms._common import (
    EventParser,
    connected,
    dispatch,
    first_str,
    mark_received,
    media_format,
    media_received,
    optional_int,
    optional_mapping,
    optional_str,
    require_dtmf_digit,
    require_mapping,
    require_str,
    require_tracks,
    string_map,
    to_int,
)
from receiver.platforms._typed import MediaTextParser, media_text_parser

ENCODINGS: Final = {
    "audio/x-raw": Encoding.L16,
    "audio/l16": Encoding.L16,
    "audio/x-l16": Encoding.L16,
    "audio/x-mulaw": Encoding.MULAW,
}


def _sequence(message: Mapping[str, Any]) -> int | None:
    return optional_int(message, "sequence_number", strings=True)


def _rate_from(encoding: object) -> str | None:
    # The beta names the rate in the encoding: "audio/L16;rate=16000".
    if isinstance(encoding, str):
        for param in encoding.split(";")[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "rate":
                return value.strip()
    return None


def _start(message: Mapping[str, Any], platform: Platform = Platform.EXOTEL) -> Event:
    start = require_mapping(message, "start")
    fmt = require_mapping(start, "media_format")
    stream_id = first_str(start, "stream_sid") or first_str(message, "stream_sid")
    if stream_id is None:
        raise MalformedMessage("stream_sid must be a non-empty string")
    encoding = fmt.get("encoding")
    rate = fmt.get("sample_rate", _rate_from(encoding))
    if "bit_rate" in fmt and to_int(fmt["bit_rate"], "bit_rate", strings=True) != 16 and encoding == "audio/x-raw":
        raise MalformedMessage("bit_rate of raw audio must be 16")
    readings = {"encoding": str(encoding)[:40]}
    if "tracks" in start:
        tracks = require_tracks(start["tracks"], "tracks")
    else:
        tracks = (Track.INBOUND,)
        readings["tracks"] = "not named: inbound"
    return StreamStarted(
        platform=Platform.EXOTEL,
        stream_id=stream_id,
        call_id=require_str(start, "call_sid"),
        tracks=tracks,
        media_format=media_format(encoding, rate, fmt.get("channels"), strings=True, names=ENCODINGS),
        custom_parameters=string_map(start.get("custom_parameters"), "custom_parameters"),
        call=CallMetadata(
            account_id=optional_str(start, "account_sid"),
            from_number=optional_str(start, "from"),
            to_number=optional_str(start, "to"),
        ),
        sequence=_sequence(message),
        readings=readings,
    )


def _media(message: Mapping[str, Any], platform: Platform = Platform.EXOTEL) -> Event:
    return media_received(message, strings=True, sequence_key="sequence_number", default_track="inbound")


def _dtmf(message: Mapping[str, Any], platform: Platform = Platform.EXOTEL) -> Event:
    dtmf = require_mapping(message, "dtmf")
    return DtmfReceived(
        digit=require_dtmf_digit(dtmf, "digit"),
        duration_ms=optional_int(dtmf, "duration", strings=True),
        sequence=_sequence(message),
    )


def _mark(message: Mapping[str, Any], platform: Platform = Platform.EXOTEL) -> Event:
    return mark_received(message, _sequence(message))


def _stop(message: Mapping[str, Any], platform: Platform = Platform.EXOTEL) -> Event:
    stop = optional_mapping(message, "stop")
    reason = stop.get("reason") if stop is not None else None
    return StreamStopped(reason if isinstance(reason, str) and reason else "stop", _sequence(message))


HANDLERS: Final[Mapping[str, EventParser]] = {
    "media": _media,
    "connected": connected,
    "start": _start,
    "dtmf": _dtmf,
    "mark": _mark,
    "stop": _stop,
}


def parse(message: Mapping[str, Any]) -> Event | None:
    """Translate one Exotel stream message.

    Raises:
        MalformedMessage: A known event lacks a required field or has a bad value.
        UnsupportedEncoding: ``start`` names a media format we cannot decode.
        UnknownEvent: The event type is not one Exotel defines.
    """
    return dispatch(HANDLERS, message, Platform.EXOTEL)


# A typed decoder for the one message that makes up a stream (_typed.py): the same event
# as ``parse`` for a well-formed media message, None for anything else.
parse_media_text: MediaTextParser = media_text_parser("sequence_number", default_track=Track.INBOUND)


def is_first_message(message: Mapping[str, Any]) -> bool:
    """Detection: a bare ``connected`` (no protocol, no version), or a ``start``
    naming ``stream_sid``."""
    event = message.get("event")
    if event == "connected":
        return "protocol" not in message and "version" not in message
    start = message.get("start")
    return event == "start" and ("stream_sid" in message or (isinstance(start, Mapping) and "stream_sid" in start))
