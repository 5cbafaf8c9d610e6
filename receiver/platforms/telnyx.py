"""
Telnyx media streaming (Call Control ``stream_url``, TeXML ``<Stream>``). Pure.

snake_case keys, counters as JSON strings, the stream id at the top level
(``stream_id``), the call in ``start.call_control_id``
(``shared/reference/stream-formats.md`` section 3). Telnyx says frame order
is not guaranteed: ``media.chunk`` / ``media.timestamp`` place each frame and
the media clock absorbs the order.

Unconfirmed facts, read both ways (the reading a stream used goes to
``StreamStarted.readings``, which the server logs):

- ``media.track`` is documented as ``inbound/outbound``; third-party code
  also sees ``inbound_track``: both spellings are accepted.
- where custom parameters sit in ``start``: ``custom_parameters`` or
  ``customParameters``;
- L16 byte order (RTP convention says big-endian, nothing confirms it): the
  pipeline tells it from the audio (``byteorder_unknown``);
- ``start`` names no tracks: a stream declares both unless ``start.tracks``
  (or ``start.stream_track``) says otherwise.
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
)
from receiver.platforms._typed import MediaTextParser, media_text_parser

# media_format.encoding is a bare codec name (PCMU, PCMA, L16; G722, OPUS and AMR-WB are not decoded).
ENCODINGS: Final = {"pcmu": Encoding.MULAW, "pcma": Encoding.ALAW, "l16": Encoding.L16}

_STREAM_TRACKS: Final = {
    "inbound_track": (Track.INBOUND,),
    "outbound_track": (Track.OUTBOUND,),
    "both_tracks": (Track.INBOUND, Track.OUTBOUND),
}


def _sequence(message: Mapping[str, Any]) -> int | None:
    return optional_int(message, "sequence_number", strings=True)


def _start(message: Mapping[str, Any], platform: Platform = Platform.TELNYX) -> Event:
    start = require_mapping(message, "start")
    fmt = require_mapping(start, "media_format")
    stream_id = message.get("stream_id", start.get("stream_id"))
    if not isinstance(stream_id, str) or not stream_id:
        raise MalformedMessage("stream_id must be a non-empty string")
    readings: dict[str, str] = {}
    if "tracks" in start:
        tracks = require_tracks(start["tracks"], "tracks")
        readings["tracks"] = "start.tracks"
    elif start.get("stream_track") in _STREAM_TRACKS:
        tracks = _STREAM_TRACKS[start["stream_track"]]
        readings["tracks"] = "start.stream_track"
    else:
        tracks = (Track.INBOUND, Track.OUTBOUND)
        readings["tracks"] = "not named: both declared"
    if "custom_parameters" in start:
        parameters = string_map(start["custom_parameters"], "custom_parameters")
        readings["custom_parameters"] = "custom_parameters"
    else:
        parameters = string_map(start.get("customParameters"), "customParameters")
        if "customParameters" in start:
            readings["custom_parameters"] = "customParameters"
    media = media_format(
        fmt.get("encoding"), fmt.get("sample_rate"), fmt.get("channels"), strings=True, names=ENCODINGS
    )
    return StreamStarted(
        platform=Platform.TELNYX,
        stream_id=stream_id,
        call_id=require_str(start, "call_control_id"),
        tracks=tracks,
        media_format=media,
        custom_parameters=parameters,
        call=CallMetadata(
            account_id=optional_str(start, "user_id"),
            from_number=optional_str(start, "from"),
            to_number=optional_str(start, "to"),
        ),
        sequence=_sequence(message),
        readings=readings,
        byteorder_unknown=media.encoding is Encoding.L16,
    )


def _media(message: Mapping[str, Any], platform: Platform = Platform.TELNYX) -> Event:
    return media_received(message, strings=True, sequence_key="sequence_number")


def _dtmf(message: Mapping[str, Any], platform: Platform = Platform.TELNYX) -> Event:
    dtmf = require_mapping(message, "dtmf")
    return DtmfReceived(digit=require_dtmf_digit(dtmf, "digit"), sequence=_sequence(message))


def _mark(message: Mapping[str, Any], platform: Platform = Platform.TELNYX) -> Event:
    return mark_received(message, _sequence(message))


def _error(message: Mapping[str, Any], platform: Platform = Platform.TELNYX) -> Event | None:
    # Telnyx reports a problem with what *we* sent (malformed_frame, invalid_media, ...):
    # nothing for the recording. The payload must still be an object.
    optional_mapping(message, "payload")
    return None


def _stop(message: Mapping[str, Any], platform: Platform = Platform.TELNYX) -> Event:
    optional_mapping(message, "stop")  # checked: nothing in it for us
    return StreamStopped("stop", _sequence(message))


HANDLERS: Final[Mapping[str, EventParser]] = {
    "media": _media,
    "connected": connected,
    "start": _start,
    "dtmf": _dtmf,
    "mark": _mark,
    "error": _error,
    "stop": _stop,
}


def parse(message: Mapping[str, Any]) -> Event | None:
    """Translate one Telnyx media-streaming message.

    Returns None for ``error`` (Telnyx's complaint about what we sent).

    Raises:
        MalformedMessage: A known event lacks a required field or has a bad value.
        UnsupportedEncoding: ``start`` names a codec we cannot decode (G722, OPUS, AMR-WB).
        UnknownEvent: The event type is not one Telnyx defines.
    """
    return dispatch(HANDLERS, message, Platform.TELNYX)


# A typed decoder for the one message that makes up a stream (_typed.py): the same event
# as ``parse`` for a well-formed media message, None for anything else.
parse_media_text: MediaTextParser = media_text_parser("sequence_number")


def is_first_message(message: Mapping[str, Any]) -> bool:
    """Detection: ``connected`` with a version and no protocol, or a snake_case
    ``start`` naming a ``call_control_id``."""
    event = message.get("event")
    if event == "connected":
        return "version" in message and "protocol" not in message
    start = message.get("start")
    return event == "start" and isinstance(start, Mapping) and first_str(start, "call_control_id") is not None
