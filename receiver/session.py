"""
The lifecycle of one media stream: connected → started → media* → stopped.

Pure. Feed it one WebSocket message (``receive_text`` / ``receive_binary``),
get at most one event back. Never awaits, logs or touches a socket. The legal
sequences are the table below; anything else is an ``UnexpectedEvent``.

Three things a message may leave besides its event, for the server to act on
after it has handled the event (none of them on the media path):

- ``replies``: text the format requires the receiver to answer (AudioHook's
  ``opened``, ``pong``, ``closed``), in order;
- ``backlog``: further events the same message carried (an audio_fork stream
  whose first frame is audio both starts the stream and carries media);
- ``readings``: how the facts a platform leaves unconfirmed were read
  (fact -> reading), for the log.
"""

from __future__ import annotations

import dataclasses
import enum
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Final

import orjson

from receiver.counters import Counters
from receiver.errors import FormatMismatch, MalformedMessage, UnexpectedEvent, UnknownEvent
from receiver.events import (
    Connected,
    DtmfReceived,
    Event,
    InterleavedMediaReceived,
    MarkReceived,
    MediaReceived,
    Platform,
    StreamStarted,
    StreamStopped,
    Track,
)
from receiver.platforms import (
    Dialogue,
    Parser,
    StreamFormat,
    binary_first,
    detect,
    detect_text,
    preset,
    stream_format,
)
from receiver.routes import Route

# A media timestamp at or past 2001-01-01 in milliseconds is Unix epoch time, not
# time since the stream started (that would be a call 31 years long).
EPOCH_MS_THRESHOLD: Final = 978_307_200_000


class SessionState(enum.Enum):
    NEW = "new"  # nothing received yet
    CONNECTED = "connected"  # `connected` received
    STARTED = "started"  # `start` received: media may flow
    STOPPED = "stopped"  # `stop` received


# On the per-frame path, enum members are read from module constants: a lookup on the
# enum class goes through EnumType.__getattr__'s slot (about 200 instructions on CPython 3.11).
_STARTED = SessionState.STARTED


_TRANSITIONS: Final[Mapping[SessionState, Mapping[type[Event], SessionState]]] = {
    # A lost `connected` is tolerated: `start` may come first.
    SessionState.NEW: {Connected: SessionState.CONNECTED, StreamStarted: SessionState.STARTED},
    SessionState.CONNECTED: {StreamStarted: SessionState.STARTED},
    SessionState.STARTED: {
        MediaReceived: SessionState.STARTED,
        InterleavedMediaReceived: SessionState.STARTED,
        DtmfReceived: SessionState.STARTED,
        MarkReceived: SessionState.STARTED,
        StreamStopped: SessionState.STOPPED,
    },
    SessionState.STOPPED: {},
}


class SessionStats(Counters):
    """Message-level counters (frame placement is counted by the media clock).

    Not a dataclass: ``receiver/counters.py`` says why.
    """

    __slots__ = (
        "messages",
        "media_messages",
        "dtmf",
        "marks",
        "unknown_events",
        "sequence_gaps",
        "sequence_out_of_order",
    )

    def __init__(
        self,
        messages: int = 0,
        media_messages: int = 0,
        dtmf: int = 0,
        marks: int = 0,
        unknown_events: int = 0,
        sequence_gaps: int = 0,  # messages missing by sequence number
        sequence_out_of_order: int = 0,  # sequence number not above the highest seen
    ) -> None:
        self.messages = messages
        self.media_messages = media_messages
        self.dtmf = dtmf
        self.marks = marks
        self.unknown_events = unknown_events
        self.sequence_gaps = sequence_gaps
        self.sequence_out_of_order = sequence_out_of_order


class StreamSession:
    """One stream's protocol state, fed one message at a time.

    Pure: no I/O, no asyncio, no logging.

    Args:
        route: The route of the request path: fixes the format (``[[routes]]``).
        subprotocol: The negotiated WebSocket subprotocol (jambonz, audio_fork).
        connection_id: Names the stream when its format carries no stream id
            (Vonage, jambonz, audio_fork); default: a random UUID.
    """

    __slots__ = (
        "_dialogue",
        "_fast_media",
        "_format",
        "_last_sequence",
        "_parser",
        "_plain_media",
        "_preset",
        "_route",
        "_ts_base",
        "backlog",
        "connection_id",
        "platform",
        "readings",
        "replies",
        "started",
        "state",
        "stats",
    )

    def __init__(
        self, *, route: Route | None = None, subprotocol: str | None = None, connection_id: str | None = None
    ) -> None:
        self.state = SessionState.NEW
        self.platform: Platform | None = None
        self.started: StreamStarted | None = None
        self.stats = SessionStats()
        self.replies: list[str] = []
        self.backlog: list[Event] = []
        self.readings: dict[str, str] = {}
        self.connection_id = connection_id or str(uuid.uuid4())
        self._route = route
        self._format: StreamFormat | None = None
        self._parser: Parser | None = None
        self._fast_media: Callable[[str | bytes], MediaReceived | None] | None = None
        self._dialogue: Dialogue | None = None
        self._ts_base: int | None = None
        self._plain_media = True
        self._last_sequence = 0
        platform = preset(route, subprotocol)
        self._preset = platform is not None
        if platform is not None:
            self._use(platform)
            self.readings["format"] = f"route {route.path}" if route is not None else f"subprotocol {subprotocol}"

    def _use(self, platform: Platform) -> StreamFormat:
        fmt = self._format = stream_format(platform, self._route)
        self.platform = platform
        self._parser = fmt.parse
        self._fast_media = fmt.fast_media
        self._dialogue = fmt.dialogue() if fmt.dialogue is not None else None
        self._plain_media = not fmt.epoch_timestamps
        return fmt

    def receive_text(self, text: str | bytes) -> Event | None:
        """Take one text message; return the event it carries, or None.

        None means the message carried nothing to act on (an unknown event type,
        counted in ``stats.unknown_events``, or a message such as a ping).

        Raises:
            MalformedMessage: Not a JSON object, not a known format (``FormatMismatch``),
                or a known event with missing or wrong fields.
            UnsupportedEncoding: ``start`` names a format we cannot decode.
            UnexpectedEvent: The event is not allowed in the current state.
        """
        self.stats.messages += 1
        fast = self._fast_media
        if fast is not None and self.state is _STARTED:
            media = fast(text)
            if media is not None:  # the same as receive_message would do with it
                stats = self.stats
                stats.media_messages += 1
                if not self._plain_media:  # timestamps that may be epoch milliseconds
                    self._rebase(media)
                sequence = media.sequence
                if sequence is not None:
                    # _count_sequence's in-order case inline (once per frame): one call fewer
                    last = self._last_sequence
                    if sequence == last + 1:
                        self._last_sequence = sequence
                    else:
                        self._count_sequence(sequence)
                return media
        fmt = self._format
        if fmt is None or fmt.parse_text is not None:
            try:
                raw = text if isinstance(text, str) else text.decode()
            except UnicodeDecodeError:
                raise MalformedMessage("text message is not UTF-8") from None
            if fmt is None:
                platform = detect_text(raw)
                if platform is not None:
                    fmt = self._use(platform)
            parse_text = fmt.parse_text if fmt is not None else None
            if parse_text is not None:
                first = self.state is SessionState.NEW
                return self._accept(self._first_fits(parse_text, raw, first))
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
            if self._format is not None:  # a text format (Asterisk, audio_fork) given JSON: read it as text
                return self._accept(self._first_fits(self._parse_as_text, message))
            parser = self._use(detect(message)).parse
            assert parser is not None
        if self._preset and self.state is SessionState.NEW:
            event = self._first_fits(parser, message)
        else:
            try:
                event = parser(message)
            except UnknownEvent:
                self.stats.unknown_events += 1
                return None
        if type(event) is MediaReceived and self.state is _STARTED and self._plain_media:
            # The hot path (formats without a media fast path): no table, no rebasing.
            self.stats.media_messages += 1
            sequence = event.sequence
            if sequence is not None:
                self._count_sequence(sequence)
            return event
        event = self._accept(event)
        if self._dialogue is not None:
            self._reply(message)
        return event

    def binary_media(self) -> tuple[Track, ...]:
        """The tracks of a binary frame on the started stream, that frame counted as media;
        empty otherwise (``receive_binary`` then takes the frame and says what it is).

        The stream handler's way for audio: no event object made for it.
        """
        started = self.started
        if started is None or self.state is not _STARTED:
            return ()
        channels: tuple[Track, ...] = started.binary_channels
        if channels:
            stats = self.stats
            stats.messages += 1
            stats.media_messages += 1
        return channels

    def receive_binary(self, data: bytes) -> Event | None:
        """Take one binary message: audio, for the formats that send it that way.

        Raises:
            MalformedMessage: The format has no binary frames (or the stream's
                format is not known yet: ``FormatMismatch``).
            UnexpectedEvent: Audio before the stream started, or after it stopped.
        """
        channels = self.binary_media()  # counts the message where it is audio
        if len(channels) == 1:
            return MediaReceived(channels[0], None, None, data)
        if channels:
            return InterleavedMediaReceived(channels, data)
        self.stats.messages += 1
        if self.started is not None and self.state is _STARTED:  # its format sends no binary audio
            raise binary_first(self.platform)
        fmt = self._format
        if fmt is None or not fmt.binary_media:
            raise binary_first(self.platform)
        if self.state is SessionState.NEW and fmt.implicit_start is not None:
            event = self._accept(fmt.implicit_start())
            media = self.receive_binary(data)
            self.stats.messages -= 1  # one message, counted once
            if media is not None:
                self.backlog.append(media)
            return event
        raise UnexpectedEvent(f"binary frame in state {self.state.value}")

    def take_backlog(self) -> list[Event]:
        backlog, self.backlog = self.backlog, []
        return backlog

    def take_replies(self) -> list[str]:
        replies, self.replies = self.replies, []
        return replies

    # -- internals -------------------------------------------------------------

    def _first_fits(self, parse: Callable[..., Event | None], *args: Any) -> Event | None:
        """``parse(*args)``; on a stream whose format a route or subprotocol fixed, a first
        message that does not parse as that format is a format mismatch.

        Takes the parser and its arguments rather than a closure: a closure would make
        its variables cells in the caller, allocated on every call of the hot path.
        """
        if not (self._preset and self.state is SessionState.NEW):
            try:
                return parse(*args)
            except UnknownEvent:
                self.stats.unknown_events += 1
                return None
        platform = self.platform
        assert platform is not None
        expected = f"a {platform.value} stream ({self.readings.get('format', 'preset')})"
        try:
            return parse(*args)
        except FormatMismatch as exc:
            raise FormatMismatch(expected, str(exc)) from None
        except (MalformedMessage, UnknownEvent) as exc:
            raise FormatMismatch(expected, f"the first message does not fit {platform.value}: {exc}") from None

    def _parse_as_text(self, message: dict[str, Any]) -> Event | None:
        fmt = self._format
        assert fmt is not None and fmt.parse_text is not None
        return fmt.parse_text(orjson.dumps(message).decode(), self.state is SessionState.NEW)

    def _reply(self, message: Mapping[str, Any]) -> None:
        assert self._dialogue is not None
        reply = self._dialogue.reply(message)
        if reply is not None:
            self.replies.append(reply)

    def _accept(self, event: Event | None) -> Event | None:
        """Check ``event`` against the lifecycle and count it."""
        if event is None:
            return None
        kind = type(event)
        if kind is MediaReceived and self.state is SessionState.STARTED:
            # The hot path: skip the table lookup for the one legal case.
            self.stats.media_messages += 1
            fmt = self._format
            if fmt is not None and fmt.epoch_timestamps:
                self._rebase(event)  # type: ignore[arg-type]
        else:
            new_state = _TRANSITIONS[self.state].get(kind)
            if new_state is None:
                raise UnexpectedEvent(f"{kind.__name__} in state {self.state.value}")
            self.state = new_state
            if kind is StreamStarted:
                assert isinstance(event, StreamStarted)
                event = self.started = self._complete(event)
            elif kind is Connected:
                assert isinstance(event, Connected)
                self.platform = event.platform
            elif kind is DtmfReceived:
                self.stats.dtmf += 1
            elif kind is MarkReceived:
                self.stats.marks += 1
        sequence = getattr(event, "sequence", None)
        if sequence is not None:
            self._count_sequence(sequence)
        return event

    def _complete(self, event: StreamStarted) -> StreamStarted:
        """Name a stream its format leaves unnamed; add the session's readings."""
        changes: dict[str, Any] = {}
        stream_id = event.stream_id or self.connection_id
        if not event.stream_id:
            changes["stream_id"] = stream_id
        if not event.call_id:
            changes["call_id"] = stream_id
        self.readings.update(event.readings)
        changes["readings"] = dict(self.readings)
        return dataclasses.replace(event, **changes)

    def _rebase(self, media: MediaReceived) -> None:
        timestamp = media.timestamp_ms
        if timestamp is None:
            return
        base = self._ts_base
        if base is None:
            base = self._ts_base = timestamp if timestamp >= EPOCH_MS_THRESHOLD else 0
            self.readings["timestamps"] = "epoch ms (from the first frame)" if base else "ms from stream start"
        if base:
            media.timestamp_ms = timestamp - base

    def _count_sequence(self, sequence: int) -> None:
        last = self._last_sequence
        if sequence > last:
            if last and sequence > last + 1:
                self.stats.sequence_gaps += sequence - last - 1
            self._last_sequence = sequence
        else:
            self.stats.sequence_out_of_order += 1
