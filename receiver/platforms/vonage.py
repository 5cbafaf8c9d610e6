"""
Vonage Voice API websockets (NCCO ``connect`` to a ``websocket`` endpoint). Pure.

The first frame is text: ``{"event": "websocket:connected", "content-type":
"audio/l16;rate=16000", ...}`` with the NCCO ``headers`` flattened into it.
Then **binary** frames of raw little-endian L16, 20 ms each, one track (the
mix of the call's other parties: it is a participant, not a fork), and
text events such as ``websocket:dtmf`` (``shared/reference/stream-formats.md``
section 5). There is no stop message: the stream ends when the socket closes.

The first frame is the stream's start. It names no stream or call id: the
call id comes from a header the NCCO sets (``call_id``, ``uuid``,
``call_uuid`` or ``conversation_uuid``) and the stream id from a
``stream_id`` header; without one the session names the stream after its
connection. String headers become custom parameters (so a stream token
can ride in them).

Unconfirmed facts, read both ways: 24 kHz (SDK enum only) is accepted; the
DTMF digit may be ``digit`` or ``dtmf.digit`` (both seen in third-party code).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from receiver.errors import MalformedMessage, UnsupportedEncoding
from receiver.events import (
    CallMetadata,
    DtmfReceived,
    Encoding,
    Event,
    MediaFormat,
    Platform,
    StreamStarted,
    Track,
)
from receiver.platforms._common import (
    EventParser,
    dispatch,
    first_str,
    optional_int,
    require_dtmf_digit,
    string_values,
)

CONNECTED: Final = "websocket:connected"
RATES: Final = frozenset({8000, 16000, 24000})
CALL_ID_KEYS: Final = ("call_id", "uuid", "call_uuid", "conversation_uuid")
_RESERVED: Final = frozenset({"event", "content-type"})


def content_type(value: object) -> MediaFormat:
    """``audio/l16;rate=16000`` as a media format."""
    if not isinstance(value, str):
        raise MalformedMessage("content-type must be a string")
    kind, *params = (part.strip() for part in value.split(";"))
    if kind.lower() != "audio/l16":
        raise UnsupportedEncoding(f"unsupported content-type {value[:40]!r}")
    rate = None
    for param in params:
        key, _, raw = param.partition("=")
        if key.strip().lower() == "rate" and raw.strip().isdigit():
            rate = int(raw.strip())
    if rate not in RATES:
        raise UnsupportedEncoding(f"unsupported content-type {value[:40]!r}")
    return MediaFormat(Encoding.L16, rate, "little")


def _connected(message: Mapping[str, Any], platform: Platform = Platform.VONAGE) -> Event:
    headers = {k: v for k, v in string_values(message, "message").items() if k not in _RESERVED}
    call_id = first_str(message, *CALL_ID_KEYS)
    return StreamStarted(
        platform=Platform.VONAGE,
        # None on the wire: a stream_id header names it, else the session (after the connection).
        stream_id=first_str(message, "stream_id") or "",
        call_id=call_id or "",
        tracks=(Track.INBOUND,),
        media_format=content_type(message.get("content-type")),
        custom_parameters=headers,
        call=CallMetadata(
            from_number=first_str(message, "from", "callerID"),
            to_number=first_str(message, "to"),
        ),
        readings={"call_id": "header" if call_id else "none: the stream id"},
        binary_channels=(Track.INBOUND,),
    )


def _dtmf(message: Mapping[str, Any], platform: Platform = Platform.VONAGE) -> Event:
    # Both spellings are seen in third-party code: {"digit": "5"} and {"dtmf": {"digit": "5"}}.
    dtmf = message.get("dtmf")
    source = dtmf if isinstance(dtmf, Mapping) else message
    duration = source.get("duration")
    return DtmfReceived(
        digit=require_dtmf_digit(source, "digit"),
        duration_ms=None if duration is None else optional_int(source, "duration", strings=True),
    )


def _nothing(message: Mapping[str, Any], platform: Platform = Platform.VONAGE) -> Event | None:
    # websocket:cleared / websocket:notify answer what the receiver sent: nothing to record.
    return None


HANDLERS: Final[Mapping[str, EventParser]] = {
    CONNECTED: _connected,
    "websocket:dtmf": _dtmf,
    "websocket:cleared": _nothing,
    "websocket:notify": _nothing,
}


def parse(message: Mapping[str, Any]) -> Event | None:
    """Translate one Vonage text frame (binary frames are media: the session's job).

    Raises:
        MalformedMessage: A known event lacks a required field or has a bad value.
        UnsupportedEncoding: ``content-type`` is not L16 at 8, 16 or 24 kHz.
        UnknownEvent: The event type is not one Vonage defines.
    """
    return dispatch(HANDLERS, message, Platform.VONAGE)


def is_first_message(message: Mapping[str, Any]) -> bool:
    """Detection: ``{"event": "websocket:connected", ...}``."""
    return message.get("event") == CONNECTED
