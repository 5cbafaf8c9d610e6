"""
The platform parsers, their detection and their registry. Pure.

Only this package knows which platform is talking: ``choose`` picks a
stream's format from its route, its negotiated subprotocol or its first
message, and every parser turns its platform's messages into the same
``receiver.events``.

Detection, in this order (the first that applies wins):

1. a route for the request path (``[[routes]]``) fixes the format; a first
   message that does not fit it is refused (4400, ``format_mismatch``);
2. the negotiated WebSocket subprotocol: ``audio.jambonz.org`` is jambonz,
   ``audio.drachtio.org`` is FreeSWITCH audio_fork;
3. the first message:

   - a binary frame: refused (4400): only a route or subprotocol makes a
     binary-first stream (audio_fork without metadata) acceptable;
   - text starting ``MEDIA_START`` (or JSON whose ``event`` is
     ``MEDIA_START``): Asterisk chan_websocket;
   - JSON ``protocol`` ``minivoice-stream``: MiniVoice; ``protocol`` ``Call``:
     Twilio, or SignalWire when ``version`` is 0.2.0;
   - ``event`` ``websocket:connected``: Vonage;
   - ``type`` ``open`` with ``version`` and ``id``: Genesys AudioHook;
   - ``connected`` with a ``version`` and no ``protocol``, or a ``start`` with
     ``start.call_control_id``: Telnyx;
   - a bare ``connected``, or a ``start`` with ``stream_sid``: Exotel;
   - a ``start`` with ``start.streamId`` and ``start.callId``: Plivo;
   - an object with no ``event`` but ``sampleRate`` or ``mixType``: jambonz;
   - a stream whose ``connected`` was lost is told by its key style:
     snake_case counters are MiniVoice, camelCase are Twilio;
   - anything else: refused (4400, ``format_mismatch``), the close reason
     naming what was expected.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeAlias

from receiver.errors import FormatMismatch, MalformedMessage
from receiver.events import Event, MediaReceived, Platform, StreamStarted
from receiver.platforms import (
    asterisk,
    audiofork,
    audiohook,
    exotel,
    jambonz,
    minivoice,
    plivo,
    telnyx,
    twilio,
    vonage,
)
from receiver.routes import Route

Parser: TypeAlias = Callable[[Mapping[str, Any]], Event | None]
# Formats whose text is not always JSON take the raw text, and whether it is the stream's first message.
TextParser: TypeAlias = Callable[[str, bool], Event | None]

EXPECTED_FIRST: Final = (
    "a known first message: connected, start, websocket:connected, open, MEDIA_START or jambonz metadata"
)
EXPECTED_TEXT: Final = "a text message first (binary-only streams need a [[routes]] format)"

SUBPROTOCOLS: Final = {jambonz.SUBPROTOCOL: Platform.JAMBONZ, audiofork.SUBPROTOCOL: Platform.AUDIOFORK}


class Dialogue(Protocol):
    """A format's answers: the reply (text) a client message needs, or None."""

    def reply(self, message: Mapping[str, Any]) -> str | None: ...


@dataclass(frozen=True, slots=True)
class StreamFormat:
    """Everything the session needs to know about one wire format."""

    platform: Platform
    parse: Parser | None = None  # one JSON object -> event
    parse_text: TextParser | None = None  # one raw text message -> event (when not always JSON)
    fast_media: Callable[[str | bytes], MediaReceived | None] | None = None
    dialogue: Callable[[], Dialogue] | None = None
    # Media timestamps may be Unix epoch milliseconds (Plivo documents it; Telnyx and Exotel
    # leave it open): the session reads a first timestamp past 2001 as epoch and rebases.
    epoch_timestamps: bool = False
    # Audio comes in binary frames (once the stream started).
    binary_media: bool = False
    # The start of a stream whose first frame is audio (audio_fork without metadata).
    implicit_start: Callable[[], StreamStarted] | None = None


PARSERS: Final[Mapping[Platform, Parser]] = {
    Platform.MINIVOICE: minivoice.parse,
    Platform.TWILIO: twilio.parse,
    Platform.SIGNALWIRE: functools.partial(twilio.parse, platform=Platform.SIGNALWIRE),
    Platform.TELNYX: telnyx.parse,
    Platform.PLIVO: plivo.parse,
    Platform.EXOTEL: exotel.parse,
    Platform.VONAGE: vonage.parse,
    Platform.JAMBONZ: jambonz.parse,
    Platform.AUDIOHOOK: audiohook.parse,
}

TEXT_PARSERS: Final[Mapping[Platform, TextParser]] = {
    Platform.ASTERISK: asterisk.parse_text,
    Platform.AUDIOFORK: lambda text, first: audiofork.parse_text(text, first=first),
}


def stream_format(platform: Platform, route: Route | None = None) -> StreamFormat:
    """The format of ``platform``, with what the route adds (jambonz and audio_fork layouts)."""
    if platform is Platform.JAMBONZ:
        return StreamFormat(platform, parse=functools.partial(jambonz.parse, route=route), binary_media=True)
    if platform is Platform.AUDIOFORK:
        return StreamFormat(
            platform,
            parse_text=lambda text, first: audiofork.parse_text(text, route, first=first),
            binary_media=True,
            implicit_start=lambda: audiofork.started(route),
        )
    if platform is Platform.ASTERISK:
        return StreamFormat(platform, parse_text=asterisk.parse_text, binary_media=True)
    if platform is Platform.AUDIOHOOK:
        return StreamFormat(platform, parse=audiohook.parse, dialogue=audiohook.AudioHookDialogue, binary_media=True)
    if platform is Platform.VONAGE:
        return StreamFormat(platform, parse=vonage.parse, binary_media=True)
    return StreamFormat(
        platform,
        parse=PARSERS[platform],
        fast_media=MEDIA_FAST_PATHS.get(platform),
        epoch_timestamps=platform in (Platform.TELNYX, Platform.PLIVO, Platform.EXOTEL),
    )


def detect(message: Mapping[str, Any]) -> Platform:
    """Tell the platform from the first message of a stream, decoded from JSON.

    Raises:
        FormatMismatch: The message matches no known format.
    """
    protocol = message.get("protocol")
    if protocol == minivoice.PROTOCOL:
        return Platform.MINIVOICE
    if protocol == "Call":
        return Platform.SIGNALWIRE if message.get("version") == twilio.SIGNALWIRE_VERSION else Platform.TWILIO
    if vonage.is_first_message(message):
        return Platform.VONAGE
    if audiohook.is_first_message(message):
        return Platform.AUDIOHOOK
    if message.get("event") == asterisk.MEDIA_START:
        return Platform.ASTERISK
    if telnyx.is_first_message(message):
        return Platform.TELNYX
    if exotel.is_first_message(message):
        return Platform.EXOTEL
    if plivo.is_first_message(message):
        return Platform.PLIVO
    if jambonz.is_first_message(message):
        return Platform.JAMBONZ
    if "sequence_number" in message or "stream_id" in message:
        return Platform.MINIVOICE
    if "sequenceNumber" in message or "streamSid" in message:
        return Platform.TWILIO
    start = message.get("start")
    if isinstance(start, Mapping):
        if "media_format" in start:
            return Platform.MINIVOICE
        if "mediaFormat" in start:
            return Platform.TWILIO
    raise FormatMismatch(EXPECTED_FIRST, "the first message matches no known stream format")


def detect_text(text: str) -> Platform | None:
    """The platforms told from raw text before any JSON decoding (Asterisk's plain MEDIA_START)."""
    return Platform.ASTERISK if asterisk.is_first_message(text) else None


def preset(route: Route | None, subprotocol: str | None) -> Platform | None:
    """The format fixed before any message: by the route, else by the subprotocol."""
    if route is not None:
        return route.format
    if subprotocol is not None:
        return SUBPROTOCOLS.get(subprotocol)
    return None


def parser_for(platform: Platform) -> Parser:
    return PARSERS[platform]


def binary_first(platform: Platform | None) -> MalformedMessage:
    """The error for a binary frame that arrives where the format takes none yet."""
    if platform is None:
        return FormatMismatch(EXPECTED_TEXT, "the first message is a binary frame")
    return MalformedMessage(f"binary frames are not part of the {platform.value} protocol here")


# Per platform, an optional typed parser for well-formed media text (None: not one;
# parse it the general way). Same events as the platform's parser, fewer steps.
MEDIA_FAST_PATHS: Mapping[Platform, Callable[[str | bytes], MediaReceived | None]] = {
    Platform.MINIVOICE: minivoice.parse_media_text,
    Platform.TWILIO: twilio.parse_media_text,
    Platform.SIGNALWIRE: twilio.parse_media_text,
    Platform.TELNYX: telnyx.parse_media_text,
    Platform.PLIVO: plivo.parse_media_text,
    Platform.EXOTEL: exotel.parse_media_text,
}
