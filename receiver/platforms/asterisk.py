"""
Asterisk ``chan_websocket`` (Asterisk 20.16+, 21.11+, 22.6+, 23+). Pure.

The first frame is the text notification ``MEDIA_START connection_id:<id>
channel:<name> format:ulaw optimal_frame_size:160`` (plain) or, with
``control_message_format=json`` (20.18+, 22.8+, 23.2+), the same as JSON
``{"event": "MEDIA_START", "connection_id": ..., "channel": ...,
"channel_id": ..., "format": "ulaw", "optimal_frame_size": 160, ...,
"channel_variables": {...}}``. Both are read. Then **binary** frames of raw
media in the channel's codec (``ulaw``, ``alaw``, ``slin`` = 8 kHz,
``slin16``, ...; signed linear is host order, little-endian), one track:
what the channel hears. ``DTMF_END digit:5`` carries key presses; other
notifications (``MEDIA_XOFF``, ``MEDIA_XON``, ``STATUS``, ``QUEUE_DRAINED``,
``MEDIA_BUFFERING_COMPLETED``) carry nothing to record. A hangup closes the
socket; that ends the stream.

The outgoing-connection example in the Asterisk docs has no ``format``:
then the codec is read from ``optimal_frame_size`` (160 bytes: ulaw, 320:
slin, 640: slin16) and the reading is logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import orjson

from receiver.errors import FormatMismatch, MalformedMessage, UnknownEvent, UnsupportedEncoding
from receiver.events import (
    DtmfReceived,
    Encoding,
    Event,
    MediaFormat,
    Platform,
    StreamStarted,
    Track,
)
from receiver.platforms._common import first_str, require_dtmf_digit, string_values

MEDIA_START: Final = "MEDIA_START"
EXPECTED: Final = "an Asterisk MEDIA_START first"

FORMATS: Final = {
    "ulaw": MediaFormat(Encoding.MULAW, 8000),
    "alaw": MediaFormat(Encoding.ALAW, 8000),
    "slin": MediaFormat(Encoding.L16, 8000),
    "slin16": MediaFormat(Encoding.L16, 16000),
    "slin24": MediaFormat(Encoding.L16, 24000),
    "slin32": MediaFormat(Encoding.L16, 32000),
    "slin48": MediaFormat(Encoding.L16, 48000),
}
# A 20 ms frame's size names the codec when MEDIA_START does not (ulaw and alaw share 160).
_BY_FRAME_SIZE: Final = {160: "ulaw", 320: "slin", 640: "slin16", 960: "slin24"}
_NOTHING: Final = frozenset({"MEDIA_XOFF", "MEDIA_XON", "STATUS", "QUEUE_DRAINED", "MEDIA_BUFFERING_COMPLETED"})


def plain_fields(text: str) -> tuple[str, dict[str, str]]:
    """``NAME key:value key:value`` as (NAME, {key: value}); a value runs to the next space."""
    name, _, rest = text.strip().partition(" ")
    fields: dict[str, str] = {}
    for item in rest.split():
        key, sep, value = item.partition(":")
        if sep:
            fields[key] = value
    return name, fields


def parse_text(text: str, first: bool = False) -> Event | None:
    """Translate one chan_websocket text frame (plain or JSON control format).

    Raises:
        FormatMismatch: The first frame is not a ``MEDIA_START``.
        MalformedMessage: A notification with a missing or bad field.
        UnsupportedEncoding: A codec we cannot decode (opus, g722, ...).
        UnknownEvent: Another notification.
    """
    message: Mapping[str, Any]
    if text.lstrip().startswith("{"):
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise MalformedMessage("message is not valid JSON") from None
        if not isinstance(value, dict):
            raise MalformedMessage("message is not a JSON object")
        name = value.get("event")
        message, control = value, "json"
    else:
        name, message = plain_fields(text)
        control = "plain"
    if first and name != MEDIA_START:
        raise FormatMismatch(EXPECTED, "the first message is not MEDIA_START")
    if name == MEDIA_START:
        return _media_start(message, control)
    if name == "DTMF_END":
        return DtmfReceived(digit=require_dtmf_digit(message, "digit"))
    if name in _NOTHING:
        return None
    if not isinstance(name, str):
        raise MalformedMessage("event must be a string")
    raise UnknownEvent(name)


def _media_start(message: Mapping[str, Any], control: str) -> Event:
    connection_id = first_str(message, "connection_id")
    if connection_id is None:
        raise MalformedMessage("MEDIA_START needs a connection_id")
    readings = {"control": control}
    codec = message.get("format")
    if codec is None:
        size = message.get("optimal_frame_size")
        codec = _BY_FRAME_SIZE.get(int(size) if isinstance(size, (int, str)) and str(size).isdigit() else -1)
        if codec is None:
            raise MalformedMessage("MEDIA_START names no format and no known optimal_frame_size")
        readings["format"] = f"{codec} (from optimal_frame_size)"
    if not isinstance(codec, str):
        raise MalformedMessage("format must be a string")
    fmt = FORMATS.get(codec.lower())
    if fmt is None:
        raise UnsupportedEncoding(f"unsupported Asterisk format {codec[:20]!r}")
    variables = message.get("channel_variables")
    return StreamStarted(
        platform=Platform.ASTERISK,
        stream_id=connection_id,
        call_id=first_str(message, "channel_id", "channel") or connection_id,
        tracks=(Track.INBOUND,),
        media_format=fmt,
        custom_parameters=string_values(variables, "channel_variables") if isinstance(variables, Mapping) else {},
        readings=readings,
        binary_channels=(Track.INBOUND,),
    )


def is_first_message(text: str) -> bool:
    """Detection: text starting ``MEDIA_START`` or JSON whose event is ``MEDIA_START``."""
    head = text[:200].lstrip()
    if head.startswith(MEDIA_START):
        return True
    return head.startswith("{") and '"MEDIA_START"' in text and _json_event(text) == MEDIA_START


def _json_event(text: str) -> object:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return value.get("event") if isinstance(value, dict) else None
