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

from receiver.errors import MalformedMessage, UnknownEvent
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
    b64decode_strict,
    media_format,
    optional_int,
    optional_str,
    require_mapping,
    require_str,
    require_track,
    require_tracks,
    string_map,
    to_int,
)

SIGNALWIRE_VERSION = "0.2.0"
DTMF_DIGITS = frozenset("0123456789*#ABCD")


def parse(message: Mapping[str, Any], platform: Platform = Platform.TWILIO) -> Event | None:
    """Translate one Twilio (or SignalWire) Media Streams message.

    Raises:
        MalformedMessage: A known event lacks a required field or has a bad value.
        UnsupportedEncoding: ``start`` names a media format we cannot decode.
        UnknownEvent: The event type is not one the format defines.
    """
    event = message.get("event")
    if event == "media":
        media = require_mapping(message, "media")
        timestamp = media.get("timestamp")
        return MediaReceived(
            require_track(media.get("track")),
            optional_int(media, "chunk", strings=True),
            None if timestamp is None else to_int(timestamp, "timestamp", strings=True),
            b64decode_strict(media.get("payload")),
            optional_int(message, "sequenceNumber", strings=True),
        )
    if event == "connected":
        version = str(message.get("version", ""))
        return Connected(Platform.SIGNALWIRE if version == SIGNALWIRE_VERSION else platform, version)
    if event == "start":
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
            sequence=optional_int(message, "sequenceNumber", strings=True),
        )
    if event == "dtmf":
        dtmf = require_mapping(message, "dtmf")
        digit = dtmf.get("digit")
        if not isinstance(digit, str) or digit not in DTMF_DIGITS:
            raise MalformedMessage("dtmf.digit must be one of 0-9 * # A-D")
        track = dtmf.get("track")
        return DtmfReceived(
            digit=str(digit),
            track=None if track is None else require_track(track, "dtmf.track"),
            duration_ms=optional_int(dtmf, "duration", strings=True),
            sequence=optional_int(message, "sequenceNumber", strings=True),
        )
    if event == "mark":
        mark = require_mapping(message, "mark")
        return MarkReceived(require_str(mark, "name"), optional_int(message, "sequenceNumber", strings=True))
    if event == "stop":
        # SignalWire's stop is only {"event": "stop", "sequenceNumber": "999"}.
        stop = message.get("stop")
        if stop is not None and not isinstance(stop, Mapping):
            raise MalformedMessage("stop must be an object")
        return StreamStopped("stop", optional_int(message, "sequenceNumber", strings=True))
    if not isinstance(event, str):
        raise MalformedMessage("event must be a string")
    raise UnknownEvent(event)
