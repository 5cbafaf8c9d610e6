"""
The MiniVoice stream format (``shared/minivoice/stream-protocol.md``). Pure.

snake_case keys; ``sequence_number``, ``chunk`` and ``timestamp`` are JSON
integers; L16 is little-endian at 8, 16 or 24 kHz.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from receiver.errors import MalformedMessage
from receiver.events import (
    CallMetadata,
    DtmfReceived,
    Event,
    MediaReceived,
    Platform,
    StreamStarted,
    StreamStopped,
)
from receiver.platforms._common import (
    EventParser,
    connected,
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
    string_map,
)
from receiver.platforms._typed import MediaTextParser, media_text_parser

PROTOCOL = "minivoice-stream"
STOP_REASONS = frozenset({"stop_stream", "call_ended", "error"})


def parse(message: Mapping[str, Any]) -> Event | None:
    """Translate one MiniVoice message.

    Raises:
        MalformedMessage: A known event lacks a required field or has a bad value.
        UnsupportedEncoding: ``start`` names a media format we cannot decode.
        UnknownEvent: The event type is not one MiniVoice defines.
    """
    return dispatch(EVENTS, message, Platform.MINIVOICE)


def _media(message: Mapping[str, Any], platform: Platform) -> MediaReceived:
    return media_received(message, strings=False, sequence_key="sequence_number")


def _start(message: Mapping[str, Any], platform: Platform) -> StreamStarted:
    start = require_mapping(message, "start")
    fmt = require_mapping(start, "media_format")
    tracks = start.get("tracks")
    if tracks is None:  # without the list, the requested track says which arrive
        requested = start.get("track", "inbound")
        tracks = ["inbound", "outbound"] if requested == "both" else [requested]
    return StreamStarted(
        platform=platform,
        stream_id=require_str(message, "stream_id"),
        call_id=require_str(start, "call_id"),
        tracks=require_tracks(tracks, "tracks"),
        media_format=media_format(fmt.get("encoding"), fmt.get("sample_rate"), fmt.get("channels"), strings=False),
        custom_parameters=string_map(start.get("custom_parameters"), "custom_parameters"),
        call=CallMetadata(
            customer_id=optional_str(start, "customer_id"),
            application_id=optional_str(start, "application_id"),
            direction=optional_str(start, "direction"),
            from_number=optional_str(start, "from"),
            to_number=optional_str(start, "to"),
            stream_url=optional_str(start, "stream_url"),
            requested_track=optional_str(start, "track"),
        ),
        sequence=_sequence(message),
    )


def _dtmf(message: Mapping[str, Any], platform: Platform) -> DtmfReceived:
    dtmf = require_mapping(message, "dtmf")
    track = dtmf.get("track")
    return DtmfReceived(
        digit=require_dtmf_digit(dtmf),
        track=None if track is None else require_track(track),
        timestamp_ms=optional_int(dtmf, "timestamp", strings=False),
        sequence=_sequence(message),
    )


def _stop(message: Mapping[str, Any], platform: Platform) -> StreamStopped:
    reason = require_mapping(message, "stop").get("reason")
    if not isinstance(reason, str) or reason not in STOP_REASONS:
        raise MalformedMessage("stop.reason must be stop_stream, call_ended or error")
    return StreamStopped(reason, _sequence(message))


def _sequence(message: Mapping[str, Any]) -> int | None:
    return optional_int(message, "sequence_number", strings=False)


EVENTS: Mapping[str, EventParser] = {
    "media": _media,
    "connected": connected,
    "start": _start,
    "dtmf": _dtmf,
    "stop": _stop,
}


# -- the media fast path -----------------------------------------------------------
# A typed decoder for the one message that makes up a stream (_typed.py): the same event
# as ``parse`` for a well-formed media message, None for anything else.
parse_media_text: MediaTextParser = media_text_parser("sequence_number", strings=False)
