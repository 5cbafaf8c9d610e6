"""
Genesys Cloud AudioHook (protocol version 2). Pure.

Control messages are JSON text with ``version``, ``id`` (the session),
``type``, ``seq`` (the client's counter), ``serverseq``, ``position`` and
``parameters``; audio is **binary**: PCMU (or L16) at 8 kHz, the channels of
the media the server chose interleaved, ``external`` (the customer: the
inbound track) and ``internal`` (the agent: the outbound track)
(``shared/reference/stream-formats.md`` section 8, and Genesys' reference
implementation, ``purecloudlabs/audiohook-reference-implementation``).

It is the one format where the receiver must answer: ``open`` needs an
``opened`` naming the media chosen from the offers before audio flows,
``ping`` a ``pong``, ``close`` a ``closed``. ``AudioHookDialogue`` writes
those replies (pure: the session collects them, the server sends them).

``paused`` / ``resumed`` / ``discarded`` (audio the client held back) carry
nothing to record: the recording holds the audio received, back to back;
``update`` and ``error`` likewise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import orjson

from receiver.errors import MalformedMessage, UnsupportedEncoding
from receiver.events import (
    CallMetadata,
    Encoding,
    Event,
    MediaFormat,
    Platform,
    StreamStarted,
    StreamStopped,
    Track,
)
from receiver.platforms._common import EventParser, dispatch, first_str, require_mapping, require_str, string_values

VERSION: Final = "2"
CHANNELS: Final = {"external": Track.INBOUND, "internal": Track.OUTBOUND}
FORMATS: Final = {"PCMU": Encoding.MULAW, "L16": Encoding.L16}


def _sequence(message: Mapping[str, Any]) -> int:
    seq = message.get("seq")
    if type(seq) is not int or seq < 1:
        raise MalformedMessage("seq must be a positive integer")
    return seq


def _acceptable(offer: object) -> bool:
    if not isinstance(offer, Mapping):
        return False
    channels = offer.get("channels")
    return (
        offer.get("type") == "audio"
        and offer.get("format") in FORMATS
        and offer.get("rate") == 8000
        and isinstance(channels, list)
        and 0 < len(channels) <= 2
        and len(set(channels)) == len(channels)
        and all(c in CHANNELS for c in channels)
    )


def choose_media(offers: object) -> Mapping[str, Any]:
    """The offer to take: the first that carries both parties, else the first we can decode.

    Raises:
        MalformedMessage: ``media`` is not a list.
        UnsupportedEncoding: No offer is PCMU or L16 at 8 kHz on external/internal channels.
    """
    if not isinstance(offers, list):
        raise MalformedMessage("parameters.media must be a list")
    usable = [offer for offer in offers if _acceptable(offer)]
    if not usable:
        raise UnsupportedEncoding("no AudioHook media offer is PCMU or L16 at 8000 Hz")
    both = [offer for offer in usable if len(offer["channels"]) == 2]
    chosen: Mapping[str, Any] = (both or usable)[0]
    return chosen


def _open(message: Mapping[str, Any], platform: Platform = Platform.AUDIOHOOK) -> Event:
    parameters = require_mapping(message, "parameters")
    media = choose_media(parameters.get("media"))
    channels = tuple(CHANNELS[c] for c in media["channels"])
    participant = parameters.get("participant")
    participant = participant if isinstance(participant, Mapping) else {}
    config = parameters.get("customConfig")
    return StreamStarted(
        platform=Platform.AUDIOHOOK,
        stream_id=require_str(message, "id"),
        call_id=require_str(parameters, "conversationId"),
        tracks=tuple(t for t in Track if t in channels),
        media_format=MediaFormat(FORMATS[media["format"]], 8000, "little"),
        custom_parameters=string_values(config, "customConfig") if isinstance(config, Mapping) else {},
        call=CallMetadata(
            account_id=first_str(parameters, "organizationId"),
            from_number=first_str(participant, "ani"),
            to_number=first_str(participant, "dnis"),
        ),
        sequence=_sequence(message),
        readings={"channels": ",".join(media["channels"])},
        binary_channels=channels,
    )


def _close(message: Mapping[str, Any], platform: Platform = Platform.AUDIOHOOK) -> Event:
    parameters = message.get("parameters")
    reason = parameters.get("reason") if isinstance(parameters, Mapping) else None
    return StreamStopped(reason if isinstance(reason, str) and reason else "close", _sequence(message))


def _nothing(message: Mapping[str, Any], platform: Platform = Platform.AUDIOHOOK) -> Event | None:
    _sequence(message)
    return None


HANDLERS: Final[Mapping[str, EventParser]] = {
    "open": _open,
    "close": _close,
    "ping": _nothing,
    "paused": _nothing,
    "resumed": _nothing,
    "discarded": _nothing,
    "update": _nothing,
    "error": _nothing,
}


def parse(message: Mapping[str, Any]) -> Event | None:
    """Translate one AudioHook client message (binary frames are media: the session's job).

    Raises:
        MalformedMessage: A known message lacks a required field or has a bad value.
        UnsupportedEncoding: ``open`` offers no media we can decode.
        UnknownEvent: The message type is not one a client sends.
    """
    return dispatch(HANDLERS, message, Platform.AUDIOHOOK, key="type")


def is_first_message(message: Mapping[str, Any]) -> bool:
    """Detection: ``{"version": "2", "type": "open", "id": ..., ...}``."""
    return message.get("type") == "open" and "version" in message and "id" in message


class AudioHookDialogue:
    """The server's side of the AudioHook transactions: what to answer to each client message.

    Pure: feed it every client message the parser accepted, send what it returns.
    Server messages carry their own ``seq`` (from 1) and the last client ``seq``
    seen (``clientseq``), as the protocol requires.
    """

    __slots__ = ("clientseq", "seq", "session_id")

    def __init__(self) -> None:
        self.seq = 0
        self.clientseq = 0
        self.session_id = ""

    def reply(self, message: Mapping[str, Any]) -> str | None:
        """The reply ``message`` needs (JSON text), or None."""
        seq = message.get("seq")
        if type(seq) is int:
            self.clientseq = seq
        session_id = message.get("id")
        if isinstance(session_id, str) and not self.session_id:
            self.session_id = session_id
        kind = message.get("type")
        if kind == "open":
            parameters = require_mapping(message, "parameters")
            return self._message(
                "opened", {"media": [dict(choose_media(parameters.get("media")))], "startPaused": False}
            )
        if kind == "ping":
            return self._message("pong", {})
        if kind == "close":
            return self._message("closed", {})
        return None

    def _message(self, kind: str, parameters: Mapping[str, Any]) -> str:
        self.seq += 1
        body = {
            "version": VERSION,
            "type": kind,
            "seq": self.seq,
            "clientseq": self.clientseq,
            "id": self.session_id,
            "parameters": parameters,
        }
        return orjson.dumps(body).decode()
