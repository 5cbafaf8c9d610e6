"""
What the fuzzers exercise: one function per target, shared by the atheris
harness (``fuzz/fuzz_session.py``) and the hypothesis tests (``tests/test_fuzz.py``).

The contract each target checks is the one the modules document: any input
gives events, None, or a ``StreamProtocolError`` (the documented, close-coded
errors; ``UnknownEvent`` too where a parser documents it). Anything else
escaping is a bug, and the media clock's invariants must hold after every frame.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

from receiver.codecs import decoder_for
from receiver.errors import StreamProtocolError, UnknownEvent
from receiver.events import Event, MediaReceived, StreamStarted, Track
from receiver.mediaclock import MediaClock
from receiver.platforms import PARSERS, detect
from receiver.ringbuffer import TrackBuffer
from receiver.session import StreamSession

EVENT_TYPES = tuple(t for t in Event.__args__)  # type: ignore[attr-defined]


def parse_one(message: Mapping[str, Any]) -> None:
    """Every parser on one decoded message: an event, None, or a documented error."""
    with contextlib.suppress(StreamProtocolError):
        detect(message)
    for parser in PARSERS.values():
        try:
            event = parser(message)
        except (StreamProtocolError, UnknownEvent):
            continue
        assert event is None or isinstance(event, EVENT_TYPES), type(event)


def run_session(messages: Iterable[str | bytes], *, frames_per_track_limit: int = 2000) -> int:
    """Feed messages to one session, and its media through a decoder and a media clock.

    A ``StreamProtocolError`` ends the stream (as the server does). Returns the
    number of events. Checks the clock's invariants after every frame and at the end.
    """
    session = StreamSession()
    clock: MediaClock | None = None
    decode = None
    events = 0
    for text in messages:
        try:
            event = session.receive_text(text)
            if event is None:
                continue
            assert isinstance(event, EVENT_TYPES), type(event)
            events += 1
            if type(event) is StreamStarted:
                fmt = event.media_format
                decode = decoder_for(fmt)
                rate = fmt.sample_rate
                clock = MediaClock(
                    {t: TrackBuffer(rate) for t in event.tracks},
                    sample_rate=rate,
                    window=rate // 10,
                    max_gap=rate * 2,
                    frame_samples=rate // 50,
                )
            elif type(event) is MediaReceived:
                assert clock is not None and decode is not None
                samples = decode(event.payload)
                clock.place(event.track, event.timestamp_ms, event.chunk, samples)
                check_clock(clock)
        except StreamProtocolError:
            break
    if clock is not None:
        clock.flush()
        check_clock(clock, flushed=True)
    return events


def check_clock(clock: MediaClock, *, flushed: bool = False) -> None:
    """The media clock's invariants: tracks never run ahead of the head, never lag it by
    more than the reorder window, and are exactly as long as it once flushed."""
    head = clock.head
    window = clock._window
    for track, state in clock._states.items():
        assert isinstance(track, Track)
        committed = state.committed
        assert state.buffer.head == committed, (track, state.buffer.head, committed)
        assert head - window <= committed <= head, (track, committed, head)
        for position, samples in state.pending.items():
            assert committed < position and position + len(samples) <= head, (position, committed, head)
        if flushed:
            assert committed == head and not state.pending
        stats = state.stats.as_dict()
        assert all(value >= 0 for value in stats.values()), stats
