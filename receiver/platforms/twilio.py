"""
The Twilio Media Streams format, and SignalWire's compatible variant. Pure.

camelCase keys; counters arrive as JSON strings. SignalWire differs in ways
this parser tolerates rather than branches on (``shared/reference/
stream-formats.md`` section 2): ``connected`` version 0.2.0, ``audio/x-L16``
at 16/24 kHz (little-endian), no ``streamSid`` on ``media`` and ``stop``, a
bodyless ``stop``, and ``dtmf`` without a track.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from receiver.errors import MalformedMessage
from receiver.events import (
    CallMetadata,
    Connected,
    DtmfReceived,
    Event,
    MarkReceived,
    MediaReceived,
    Platform,
    StreamStarted,
    StreamStopped,
)
from receiver.platforms._common import (
    EventParser,
    dispatch,
    mark_received,
    media_format,
    media_received,
    optional_int,
    optional_mapping,
    optional_str,
    require_dtmf_digit,
    require_mapping,
    require_str,
    require_track,
    require_tracks,
    string_map,
)
from receiver.platforms._typed import MediaTextParser, media_text_parser

SIGNALWIRE_VERSION = "0.2.0"


def parse(message: Mapping[str, Any], platform: Platform = Platform.TWILIO) -> Event | None:
    """Translate one Twilio (or SignalWire) Media Streams message.

    Raises:
        MalformedMessage: A known event lacks a required field or has a bad value.
        UnsupportedEncoding: ``start`` names a media format we cannot decode.
        UnknownEvent: The event type is not one the format defines.
    """
    return dispatch(EVENTS, message, platform)


def _media(message: Mapping[str, Any], platform: Platform) -> MediaReceived:
    return media_received(message, strings=True, sequence_key="sequenceNumber")


def _connected(message: Mapping[str, Any], platform: Platform) -> Connected:
    version = str(message.get("version", ""))
    return Connected(Platform.SIGNALWIRE if version == SIGNALWIRE_VERSION else platform, version)


def _start(message: Mapping[str, Any], platform: Platform) -> StreamStarted:
    start = require_mapping(message, "start")
    fmt = require_mapping(start, "mediaFormat")
    stream_id = start.get("streamSid", message.get("streamSid"))
    if not isinstance(stream_id, str) or not stream_id:
        raise MalformedMessage("streamSid must be a non-empty string")
    return StreamStarted(
        platform=platform,
        stream_id=stream_id,
        call_id=require_str(start, "callSid"),
        tracks=require_tracks(start.get("tracks", ["inbound"]), "tracks"),
        media_format=media_format(fmt.get("encoding"), fmt.get("sampleRate"), fmt.get("channels"), strings=True),
        custom_parameters=string_map(start.get("customParameters"), "customParameters"),
        call=CallMetadata(account_id=optional_str(start, "accountSid")),
        sequence=_sequence(message),
    )


def _dtmf(message: Mapping[str, Any], platform: Platform) -> DtmfReceived:
    dtmf = require_mapping(message, "dtmf")
    track = dtmf.get("track")
    return DtmfReceived(
        digit=require_dtmf_digit(dtmf),
        track=None if track is None else require_track(track, "dtmf.track"),
        duration_ms=optional_int(dtmf, "duration", strings=True),
        sequence=_sequence(message),
    )


def _mark(message: Mapping[str, Any], platform: Platform) -> MarkReceived:
    return mark_received(message, _sequence(message))


def _stop(message: Mapping[str, Any], platform: Platform) -> StreamStopped:
    # SignalWire's stop is only {"event": "stop", "sequenceNumber": "999"}.
    optional_mapping(message, "stop")  # checked: nothing in it for us
    return StreamStopped("stop", _sequence(message))


def _sequence(message: Mapping[str, Any]) -> int | None:
    return optional_int(message, "sequenceNumber", strings=True)


EVENTS: Mapping[str, EventParser] = {
    "media": _media,
    "connected": _connected,
    "start": _start,
    "dtmf": _dtmf,
    "mark": _mark,
    "stop": _stop,
}


# -- the media fast path -----------------------------------------------------------
# A typed decoder for the one message that makes up a stream (_typed.py): the same event
# as ``parse`` for a well-formed media message, None for anything else.
parse_media_text: MediaTextParser = media_text_parser("sequenceNumber")
