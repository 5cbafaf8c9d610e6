"""
Where decoded audio goes: the sink protocol and the values it speaks in.

A sink is any object with ``name``, ``open``, ``write`` and ``close``: no base
class. Sinks own their I/O and their failures; a failing sink is disabled and
the stream goes on. Blocking work (file writes, CPU-heavy engines) belongs in
a thread or the sink's own worker, never on the event loop.

Blocks come in order and never overlap. Each block holds every track of the
stream for the same span of the media clock, so ``channels[Track.INBOUND][i]``
and ``channels[Track.OUTBOUND][i]`` are simultaneous. When a sink fell
further behind than the ring buffer holds, the next block starts later than
the previous one ended: the audio in between was lost for that sink (and is
counted for it).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Protocol, TypeAlias, runtime_checkable

from receiver.events import CallMetadata, MediaFormat, Platform, Samples, Track

__all__ = [
    "AudioBlock",
    "Sink",
    "SinkFactory",
    "StreamInfo",
    "StreamOutcome",
]


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """What a sink knows about the stream when it opens."""

    stream_id: str
    call_id: str
    platform: Platform
    tracks: tuple[Track, ...]
    media_format: MediaFormat
    custom_parameters: Mapping[str, str] = field(default_factory=dict)
    call: CallMetadata = field(default_factory=CallMetadata)
    started_at: float = field(default_factory=time.time)
    # Unique per connection: two streams with the same call and stream ids (a reconnect,
    # or someone else using them) are still two streams to the call record.
    connection_id: str = field(default_factory=lambda: os.urandom(8).hex())

    @property
    def sample_rate(self) -> int:
        return self.media_format.sample_rate


@dataclass(frozen=True, slots=True)
class AudioBlock:
    """A span of every track of a stream, on its media clock (arrays are read-only)."""

    start: int  # media-clock index of the first sample
    sample_rate: int
    channels: Mapping[Track, Samples]

    def __len__(self) -> int:
        for samples in self.channels.values():
            return len(samples)
        return 0

    @property
    def end(self) -> int:
        return self.start + len(self)

    @property
    def start_seconds(self) -> float:
        return self.start / self.sample_rate


@dataclass(frozen=True, slots=True)
class StreamOutcome:
    """How a stream ended, with its statistics (given to every sink's ``close``)."""

    reason: str  # stop_stream, call_ended, error, stop, disconnected, protocol_error, shutdown, ...
    close_code: int | None
    duration_seconds: float  # media-clock duration
    samples: int  # media-clock length of every track
    tracks: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    messages: int = 0
    unknown_events: int = 0
    # Two different counts, named apart everywhere (logs, call records, CLI):
    # sequence_gaps: sequence numbers the platform skipped (messages that never came);
    # audio_gaps: holes in the audio filled with silence, over all tracks (the per-track
    # counts and lengths are in tracks[...]["audio_gaps"] / ["audio_gap_samples"]).
    sequence_gaps: int = 0
    audio_gaps: int = 0
    sequence_out_of_order: int = 0
    dtmf: int = 0
    discontinuities: int = 0
    undeclared_track_frames: int = 0
    sink_losses: Mapping[str, int] = field(default_factory=dict)
    # Where audio is missing, as (start, end) media-clock sample indices: holes filled with
    # silence per track, and audio each sink lost (the first thousand of each).
    gap_spans: Mapping[str, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    sink_loss_spans: Mapping[str, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    disabled_sinks: tuple[str, ...] = ()
    error: str | None = None
    files: tuple[str, ...] = ()  # what the sinks wrote (every sink with a ``paths`` attribute)
    paused_seconds: float = 0.0  # media-clock time the application kept from the sinks (pause/resume)
    pauses: tuple[Mapping[str, Any], ...] = ()  # each: start_seconds, end_seconds, behavior (skip or silence)

    def as_dict(self) -> dict[str, Any]:
        """Every field as plain data, nothing shared with the outcome: what ``dataclasses.asdict``
        gives, built directly. ``asdict`` deep-copies every number and string it meets, and a
        stream's end asks twice (its log line, its call record): 200 streams ending at once took
        the receiver 0.21 s of CPU with it, 0.11-0.15 s without (docs/performance.md)."""
        return {name: _plain(getattr(self, name)) for name in _OUTCOME_FIELDS}


def _plain(value: Any) -> Any:
    """A field's value with its containers copied (dicts and lists as such, tuples kept tuples)."""
    if type(value) is tuple:
        return tuple([_plain(item) for item in value])
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if type(value) is list:
        return [_plain(item) for item in value]
    return value  # numbers, strings, None: immutable


_OUTCOME_FIELDS = tuple(f.name for f in fields(StreamOutcome))


@runtime_checkable
class Sink(Protocol):
    """Where decoded audio goes. Implementations own their I/O and failures.

    ``interval`` (seconds) is how often the sink wants to be handed new audio:
    larger intervals mean fewer, larger blocks. A sink that writes files may
    list them in a ``paths`` attribute; they end up in ``StreamOutcome.files``.
    """

    name: str
    interval: float

    async def open(self, stream: StreamInfo) -> None: ...

    async def write(self, block: AudioBlock) -> None: ...

    async def close(self, outcome: StreamOutcome) -> None: ...


SinkFactory: TypeAlias = Callable[[StreamInfo], Sink]
