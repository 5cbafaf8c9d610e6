"""
Typed decoders for the JSON media message most formats share. Pure.

A stream is nearly all ``media`` messages. For MiniVoice, Twilio,
SignalWire, Telnyx, Plivo and Exotel (``media_received``'s shape in
``_common.py``: ``media`` holds ``track``, ``chunk``, ``timestamp`` and a
base64 ``payload``; counters are integers, or may be decimal strings; the
sequence number sits at the top under a name of the format's),
``media_text_parser`` builds a msgspec decoder for exactly that message: no
dict, no field lookups, the base64 read by msgspec.

It only ever takes well-formed media messages. For anything else (another
event, a missing or mistyped field, a counter that is not a decimal string,
bad base64, invalid JSON) the parser returns None and the session parses
the message the general way, which raises the errors the format's ``parse``
documents. Extra fields (the stream's id, Plivo's ``extra_headers``) are
skipped, as the general path skips them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from receiver.events import MediaReceived, Track
from receiver.platforms._common import WireInt

MediaTextParser = Callable[[str | bytes], MediaReceived | None]

# Counters as the formats send them: integers (beyond 64 bits the general path decides), or
# also decimal strings.
_Counter = WireInt | str | None
_IntCounter = WireInt | None


def media_text_parser(
    sequence_key: str, *, strings: bool = True, default_track: Track | None = None
) -> MediaTextParser:
    """A typed parser for one format's well-formed ``media`` messages.

    Args:
        sequence_key: The top-level key of the sequence number (``sequenceNumber``,
            ``sequence_number``).
        strings: Counters may come as decimal strings (as ``media_received`` reads them).
        default_track: The track of a message that names none (formats that carry
            the caller only, or may leave it out); None: ``track`` is required.

    Returns:
        A function from one message's text to its event, or None where the general
        parser must read it (the same events as the general parser, fewer steps).
    """
    # msgspec reads the track into the enum by its value; another name (Twilio's
    # "inbound_track" for DTMF) goes to the general path, which takes it too. It reads
    # base64 into bytes itself (padding required, no stray characters): no str object
    # and no binascii call per frame. What it refuses (binascii's strict mode takes
    # e.g. "AAAA====") goes to the general path.
    track: tuple[Any, ...] = ("track", Track) if default_track is None else ("track", Track, default_track)
    counter: Any = _Counter if strings else _IntCounter
    media_type: Any = msgspec.defstruct(
        "Media", [track, ("payload", bytes), ("chunk", counter, None), ("timestamp", counter, None)], kw_only=True
    )
    message_type = msgspec.defstruct(
        "MediaMessage",
        [
            ("event", str),
            ("media", media_type | None, None),
            ("sequence", counter, msgspec.field(default=None, name=sequence_key)),
        ],
    )
    decode = msgspec.json.Decoder(message_type).decode

    def parse_media_text(text: str | bytes) -> MediaReceived | None:
        try:
            message: Any = decode(text)
        except (msgspec.DecodeError, UnicodeDecodeError):  # bytes that are not UTF-8: the general path says why
            return None
        media = message.media
        if media is None or message.event != "media":
            return None
        return media_event(media.track, media.chunk, media.timestamp, media.payload, message.sequence)

    return parse_media_text


def media_event(
    track: Track, chunk: int | str | None, timestamp: int | str | None, payload: bytes, sequence: int | str | None
) -> MediaReceived | None:
    """The event of a decoded media message; None where a counter string is not decimal.

    The three counters are read as ``to_int`` reads them (by ``_decimal``, C when
    compiled); a string that is not decimal goes to the general path, which says why."""
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
    return MediaReceived(track, chunk, timestamp, payload, sequence)


# Run from its source (the pure-Python build), str's own checks are faster than a loop in Python.
_SOURCE = __file__.endswith(".py")


def _decimal(text: str) -> int:
    """``int(text)`` where ``text`` is ASCII decimal digits only (what ``to_int`` takes), else -1.

    Compiled (_typed.pxd), the digits are read in C: two ``str`` method calls and ``int()``
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
