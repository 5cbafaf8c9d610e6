"""
Plivo audio streams (``<Stream>`` XML, Stream API). Pure.

No ``connected``: ``start`` comes first, with ``start.callId`` and
``start.streamId`` (``shared/reference/stream-formats.md`` section 4).
``sequenceNumber`` and ``media.chunk`` are JSON integers in the protocol
reference and ``long`` in the Java SDK: both integers and decimal strings are
accepted. ``extra_headers`` (``k1=v1;k2=v2``) become custom parameters.

Unconfirmed facts, read both ways:

- ``media.timestamp`` is Unix epoch milliseconds per the reference (Twilio's
  is relative): the session rebases epoch timestamps on the stream's first
  frame and logs which kind it saw;
- whether a ``stop`` comes at all: an optional ``stop`` ends the stream, and
  so does the socket closing;
- L16 byte order (probably little-endian): the pipeline tells it from the audio;
- the ``extra_headers`` separator: ``;`` (guide) or ``,`` (XML reference).
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
    MarkReceived,
    Platform,
    StreamStarted,
    StreamStopped,
    Track,
)
from receiver.platforms._common import (
    EventParser,
    dispatch,
    media_format,
    media_received,
    optional_int,
    optional_str,
    require_dtmf_digit,
    require_mapping,
    require_str,
    require_track,
    require_tracks,
    to_int,
)
from receiver.platforms._typed import MediaTextParser, media_text_parser

ENCODINGS: Final = {
    "audio/x-mulaw": Encoding.MULAW,
    "audio/x-l16": Encoding.L16,
    "audio/l16": Encoding.L16,
}


def _sequence(message: Mapping[str, Any]) -> int | None:
    return optional_int(message, "sequenceNumber", strings=True)


def extra_headers(value: object) -> tuple[dict[str, str], str | None]:
    """``k1=v1;k2=v2`` (or ``k1=v1,k2=v2``) as a dict, and the separator it used."""
    if value is None or value == "":
        return {}, None
    if not isinstance(value, str):
        raise MalformedMessage("extra_headers must be a string")
    separator = ";" if ";" in value or "," not in value else ","
    pairs: dict[str, str] = {}
    for item in value.split(separator):
        key, eq, val = item.partition("=")
        if not eq or not key.strip():
            raise MalformedMessage("extra_headers must be key=value pairs")
        pairs[key.strip()] = val.strip()
    return pairs, separator


def _start(message: Mapping[str, Any], platform: Platform = Platform.PLIVO) -> Event:
    start = require_mapping(message, "start")
    fmt = require_mapping(start, "mediaFormat")
    media = media_format(fmt.get("encoding"), fmt.get("sampleRate"), fmt.get("channels"), strings=True, names=ENCODINGS)
    parameters, separator = extra_headers(message.get("extra_headers", start.get("extra_headers")))
    readings = {"extra_headers": f"separated by {separator!r}"} if separator else {}
    return StreamStarted(
        platform=Platform.PLIVO,
        stream_id=require_str(start, "streamId"),
        call_id=require_str(start, "callId"),
        tracks=require_tracks(start.get("tracks", ["inbound"]), "tracks"),
        media_format=media,
        custom_parameters=parameters,
        call=CallMetadata(account_id=optional_str(start, "accountId")),
        sequence=_sequence(message),
        readings=readings,
        byteorder_unknown=media.encoding is Encoding.L16,
    )


def _media(message: Mapping[str, Any], platform: Platform = Platform.PLIVO) -> Event:
    return media_received(message, strings=True, sequence_key="sequenceNumber", default_track="inbound")


def _dtmf(message: Mapping[str, Any], platform: Platform = Platform.PLIVO) -> Event:
    dtmf = require_mapping(message, "dtmf")
    track = dtmf.get("track")
    timestamp = dtmf.get("timestamp")
    return DtmfReceived(
        digit=require_dtmf_digit(dtmf, "digit"),
        track=None if track is None else require_track(track, "dtmf.track"),
        timestamp_ms=None if timestamp is None else to_int(timestamp, "dtmf.timestamp", strings=True),
        sequence=_sequence(message),
    )


def _played_stream(message: Mapping[str, Any], platform: Platform = Platform.PLIVO) -> Event:
    # The echo of a checkpoint the receiver sent: Plivo's mark.
    return MarkReceived(require_str(message, "name"), _sequence(message))


def _cleared_audio(message: Mapping[str, Any], platform: Platform = Platform.PLIVO) -> Event | None:
    return None


def _stop(message: Mapping[str, Any], platform: Platform = Platform.PLIVO) -> Event:
    stop = message.get("stop")
    reason = stop.get("reason") if isinstance(stop, Mapping) else None
    return StreamStopped(reason if isinstance(reason, str) and reason else "stop", _sequence(message))


HANDLERS: Final[Mapping[str, EventParser]] = {
    "media": _media,
    "start": _start,
    "dtmf": _dtmf,
    "playedStream": _played_stream,
    "clearedAudio": _cleared_audio,
    "stop": _stop,
}


def parse(message: Mapping[str, Any]) -> Event | None:
    """Translate one Plivo audio-stream message.

    Raises:
        MalformedMessage: A known event lacks a required field or has a bad value.
        UnsupportedEncoding: ``start`` names a media format we cannot decode.
        UnknownEvent: The event type is not one Plivo defines.
    """
    return dispatch(HANDLERS, message, Platform.PLIVO)


# A typed decoder for the one message that makes up a stream (_typed.py): the same event
# as ``parse`` for a well-formed media message, None for anything else.
parse_media_text: MediaTextParser = media_text_parser("sequenceNumber", default_track=Track.INBOUND)


def is_first_message(message: Mapping[str, Any]) -> bool:
    """Detection: a ``start`` first, naming ``start.streamId`` and ``start.callId``."""
    start = message.get("start")
    return message.get("event") == "start" and isinstance(start, Mapping) and "streamId" in start and "callId" in start
