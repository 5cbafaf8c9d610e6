"""
The lifecycle of one media stream: connected → started → media* → stopped.

Pure. Feed it one WebSocket message, get at most one event back. Never
awaits, logs or touches a socket. The legal sequences are the table below;
anything else is an ``UnexpectedEvent``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from receiver.errors import MalformedMessage, UnexpectedEvent, UnknownEvent
from receiver.events import (
    Connected,
    DtmfReceived,
    Event,
    MarkReceived,
    MediaReceived,
    Platform,
    StreamStarted,
    StreamStopped,
)
from receiver.platforms import MEDIA_FAST_PATHS, Parser, detect, parser_for


class SessionState(enum.Enum):
    NEW = "new"  # nothing received yet
    CONNECTED = "connected"  # `connected` received
    STARTED = "started"  # `start` received: media may flow
    STOPPED = "stopped"  # `stop` received


_TRANSITIONS: Final[Mapping[SessionState, Mapping[type[Event], SessionState]]] = {
    # A lost `connected` is tolerated: `start` may come first.
    SessionState.NEW: {Connected: SessionState.CONNECTED, StreamStarted: SessionState.STARTED},
    SessionState.CONNECTED: {StreamStarted: SessionState.STARTED},
    SessionState.STARTED: {
        MediaReceived: SessionState.STARTED,
        DtmfReceived: SessionState.STARTED,
        MarkReceived: SessionState.STARTED,
        StreamStopped: SessionState.STOPPED,
    },
    SessionState.STOPPED: {},
}


@dataclass(slots=True)
class SessionStats:
    """Message-level counters (frame placement is counted by the media clock)."""

    messages: int = 0
    media_messages: int = 0
    dtmf: int = 0
    marks: int = 0
    unknown_events: int = 0
    sequence_gaps: int = 0  # messages missing by sequence number
    sequence_out_of_order: int = 0  # sequence number not above the highest seen


class StreamSession:
    """One stream's protocol state, fed one message at a time.

    Pure: no I/O, no asyncio, no logging.
    """

    __slots__ = ("_fast_media", "_last_sequence", "_parser", "platform", "started", "state", "stats")

    def __init__(self) -> None:
        self.state = SessionState.NEW
        self.platform: Platform | None = None
        self.started: StreamStarted | None = None
        self.stats = SessionStats()
        self._parser: Parser | None = None
        self._fast_media: Callable[[str | bytes], MediaReceived | None] | None = None
        self._last_sequence = 0

    def receive_text(self, text: str | bytes) -> Event | None:
        """Take one text message; return the event it carries, or None.

        None means the message carried nothing to act on (an unknown event type,
        counted in ``stats.unknown_events``).

        Raises:
            MalformedMessage: Not a JSON object, not a known format, or a known
                event with missing or wrong fields.
            UnsupportedEncoding: ``start`` names a format we cannot decode.
            UnexpectedEvent: The event is not allowed in the current state.
        """
        self.stats.messages += 1
        fast = self._fast_media
        if fast is not None and self.state is SessionState.STARTED:
            media = fast(text)
            if media is not None:  # the same as receive_message would do with it
                self.stats.media_messages += 1
                if media.sequence is not None:
                    self._count_sequence(media.sequence)
                return media
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise MalformedMessage("message is not valid JSON") from None
        if type(message) is not dict:
            raise MalformedMessage("message is not a JSON object")
        return self.receive_message(message)

    def receive_message(self, message: dict[str, Any]) -> Event | None:
        """Take one decoded JSON object (see ``receive_text``)."""
        parser = self._parser
        if parser is None:
            self.platform = detect(message)
            parser = self._parser = parser_for(self.platform)
            self._fast_media = MEDIA_FAST_PATHS.get(self.platform)
        try:
            event = parser(message)
        except UnknownEvent:
            self.stats.unknown_events += 1
            return None
        if event is None:  # pragma: no cover - the parser contract allows None; no event type returns it
            return None
        kind = type(event)
        if kind is MediaReceived and self.state is SessionState.STARTED:
            # The hot path: skip the table lookup for the one legal case.
            self.stats.media_messages += 1
        else:
            new_state = _TRANSITIONS[self.state].get(kind)
            if new_state is None:
                raise UnexpectedEvent(f"{kind.__name__} in state {self.state.value}")
            self.state = new_state
            if kind is StreamStarted:
                assert isinstance(event, StreamStarted)
                self.started = event
            elif kind is Connected:
                assert isinstance(event, Connected)
                self.platform = event.platform
            elif kind is DtmfReceived:
                self.stats.dtmf += 1
            elif kind is MarkReceived:
                self.stats.marks += 1
        sequence = event.sequence if kind is not Connected else None  # type: ignore[union-attr]
        if sequence is not None:
            self._count_sequence(sequence)
        return event

    def _count_sequence(self, sequence: int) -> None:
        last = self._last_sequence
        if sequence > last:
            if last and sequence > last + 1:
                self.stats.sequence_gaps += sequence - last - 1
            self._last_sequence = sequence
        else:
            self.stats.sequence_out_of_order += 1
