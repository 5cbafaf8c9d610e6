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

import msgspec

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
    Track,
)
from receiver.platforms._common import (
    EventParser,
    WireInt,
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
# A typed decoder for the one message that makes up a stream (as in minivoice.py):
# it only ever takes well-formed media messages; for anything else (another event,
# a missing or mistyped field, a counter that is not a decimal string, bad base64,
# invalid JSON) parse_media_text returns None and the session parses the message
# the general way, which raises the errors ``parse`` documents.

_Counter = WireInt | str | None  # Twilio and SignalWire send counters as strings; integers are accepted too


class _Media(msgspec.Struct):
    # msgspec reads the track into the enum by its value; another name (Twilio's
    # "inbound_track" for DTMF) goes to the general path, which takes it too.
    track: Track
    # msgspec reads base64 into bytes itself (padding required, no stray characters):
    # no str object and no binascii call per frame. What it refuses (binascii's strict
    # mode takes e.g. "AAAA====") goes to the general path.
    payload: bytes
    chunk: _Counter = None
    timestamp: _Counter = None


class _MediaMessage(msgspec.Struct):
    event: str
    media: _Media | None = None
    sequenceNumber: _Counter = None  # noqa: N815 - the wire's name


_decode_media = msgspec.json.Decoder(_MediaMessage).decode


def parse_media_text(text: str | bytes) -> MediaReceived | None:
    """A well-formed Twilio or SignalWire ``media`` message as its event; None for anything else. Pure."""
    try:
        message = _decode_media(text)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    media = message.media
    if media is None or message.event != "media":
        return None
    # The three counters are read as to_int reads them (by _decimal, C when compiled); a string
    # that is not decimal goes to the general path, which says why.
    chunk, timestamp, sequence = media.chunk, media.timestamp, message.sequenceNumber
    if isinstance(chunk, str):
        chunk = _decimal(chunk)
        if chunk < 0:
            return None
    if isinstance(timestamp, str):
        timestamp = _decimal(timestamp)
        if timestamp < 0:
            return None
    if isinstance(sequence, str):
        sequence = _decimal(sequence)
        if sequence < 0:
            return None
    return MediaReceived(media.track, chunk, timestamp, media.payload, sequence)


# Run from its source (the pure-Python build), str's own checks are faster than a loop in Python.
_SOURCE = __file__.endswith(".py")


def _decimal(text: str) -> int:
    """``int(text)`` where ``text`` is ASCII decimal digits only (what ``to_int`` takes), else -1.

    Compiled (twilio.pxd), the digits are read in C: two ``str`` method calls and ``int()``
    per counter were 14% of a Twilio message's instructions."""
    n = len(text)
    if _SOURCE or n == 0 or n > 18:  # longer: beyond a C long long, so read as to_int reads it
        return int(text) if text.isascii() and text.isdigit() else -1
    value = 0
    for ch in text:
        if ch < "0" or ch > "9":
            return -1
        value = value * 10 + (ord(ch) - 48)
    return value
