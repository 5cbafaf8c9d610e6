"""
The platform parsers and their detection. Pure.

Only this package knows which platform is talking: ``detect`` looks at the
first message of a stream and returns a parser; every parser turns its
platform's messages into the same ``receiver.events``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

from receiver.errors import MalformedMessage
from receiver.events import Event, MediaReceived, Platform
from receiver.platforms import minivoice, twilio

Parser: TypeAlias = Callable[[Mapping[str, Any]], Event | None]

PARSERS: Mapping[Platform, Parser] = {
    Platform.MINIVOICE: minivoice.parse,
    Platform.TWILIO: twilio.parse,
    Platform.SIGNALWIRE: functools.partial(twilio.parse, platform=Platform.SIGNALWIRE),
}


def detect(message: Mapping[str, Any]) -> Platform:
    """Tell the platform from the first message of a stream.

    ``connected`` names its protocol (MiniVoice ``minivoice-stream``; Twilio and
    SignalWire ``Call``, SignalWire with version 0.2.0). A stream whose
    ``connected`` was lost is told by its key style: snake_case counters are
    MiniVoice, camelCase are Twilio.

    Raises:
        MalformedMessage: The message matches no known format.
    """
    protocol = message.get("protocol")
    if protocol == minivoice.PROTOCOL:
        return Platform.MINIVOICE
    if protocol == "Call":
        return Platform.SIGNALWIRE if message.get("version") == twilio.SIGNALWIRE_VERSION else Platform.TWILIO
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
    raise MalformedMessage("the first message matches no known stream format")


def parser_for(platform: Platform) -> Parser:
    return PARSERS[platform]


# Per platform, an optional typed parser for well-formed media text (None: not one;
# parse it the general way). Same events as the platform's parser, fewer steps.
MEDIA_FAST_PATHS: Mapping[Platform, Callable[[str | bytes], MediaReceived | None]] = {
    Platform.MINIVOICE: minivoice.parse_media_text,
}
