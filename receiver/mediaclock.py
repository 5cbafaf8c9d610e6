"""
One media clock per stream: every frame placed by its own timestamp.

Pure: no asyncio, no logging, no I/O. A frame's place on the stream's sample
clock comes from its timestamp (or its chunk number where a format has no
timestamp), never from when it arrived, so sample ``k`` of every track of a
stream is the same instant.

How frames become committed audio, per track:

- A frame that starts exactly where the track's committed audio ends is
  written to the track's ring buffer at once (the common case).
- A frame that arrives ahead of a hole waits in a small pending map. The hole
  is given ``window`` samples to fill: once the newest audio of the stream (any
  track) is more than ``window`` past it, the hole becomes silence, counted as
  a gap, and the waiting frames are committed behind it.
- Because the window is measured against the newest audio of *any* track, a
  track that goes quiet or stops is filled with silence as the other moves on:
  it never stalls the other, and both tracks stay the same length.
- A frame whose place is already committed is dropped: counted as ``late`` if
  its place had been filled with silence, as a ``duplicate`` otherwise.
- A timestamp more than ``max_gap`` away from the stream's newest audio is a
  discontinuity: the clock is re-based so the frame lands right after the
  newest audio. No silence is filled for the jump.
- Media time may not run ahead of wall time: with an ``allowance`` (the
  furthest the newest audio may reach now, in samples), a frame that would
  end beyond it is refused (``AHEAD``) and neither placed nor filled in
  front of. Jumps just under ``max_gap``, or audio sent faster than real
  time, would otherwise become hours of recorded silence or audio in
  seconds. The allowance is asked only when a frame passes the last answer,
  so the in-order path pays one comparison.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Mapping

from receiver.counters import Counters
from receiver.events import Samples, Track
from receiver.ringbuffer import TrackBuffer

MAX_GAP_SPANS = 1000  # per track: where the holes were, for the console and plots (counts go on)


class Placement(enum.IntEnum):
    """What the clock did with a frame (returned by ``MediaClock.place``)."""

    PLACED = 0
    LATE = 1
    DUPLICATE = 2
    DISCONTINUITY = 3  # placed, after re-basing the clock
    UNDECLARED_TRACK = 4  # the stream did not announce this track
    AHEAD = 5  # refused: it would take the stream's media time too far ahead of wall time


# On the per-frame path, enum members are read from module constants: a lookup on the
# enum class goes through EnumType.__getattr__'s slot (about 200 instructions on CPython 3.11).
_PLACED = Placement.PLACED
_UNDECLARED = Placement.UNDECLARED_TRACK
_AHEAD = Placement.AHEAD
# No allowance: a limit no stream reaches (an int: comparing an int to float("inf") costs more).
_NO_LIMIT = 1 << 62


class TrackStats(Counters):
    """One track's counters on the clock (not a dataclass: ``receiver/counters.py`` says why)."""

    __slots__ = (
        "frames",
        "samples_received",
        "audio_gaps",
        "audio_gap_samples",
        "lost_frames",
        "lead_samples",
        "late",
        "duplicates",
        "overlap_samples",
    )

    def __init__(
        self,
        frames: int = 0,  # frames placed
        samples_received: int = 0,  # samples of the frames placed
        audio_gaps: int = 0,  # holes in the audio filled with silence (not sequence gaps: see StreamOutcome)
        audio_gap_samples: int = 0,  # samples of silence filled into holes
        lost_frames: int = 0,  # audio_gap_samples in whole frames
        lead_samples: int = 0,  # silence before the track's first frame
        late: int = 0,  # frames dropped: their place had become silence
        duplicates: int = 0,  # frames dropped: their place held audio already
        overlap_samples: int = 0,  # samples trimmed from frames overlapping committed audio
    ) -> None:
        self.frames = frames
        self.samples_received = samples_received
        self.audio_gaps = audio_gaps
        self.audio_gap_samples = audio_gap_samples
        self.lost_frames = lost_frames
        self.lead_samples = lead_samples
        self.late = late
        self.duplicates = duplicates
        self.overlap_samples = overlap_samples


class _TrackState:
    """One track's place on the clock (a class of its own, not a dataclass: ``mediaclock.pxd``
    makes it a C struct in the compiled build, and a compiled class cannot take ``slots=True``)."""

    __slots__ = ("buffer", "committed", "fills", "gap_spans", "pending", "seen_audio", "stats")

    def __init__(self, buffer: TrackBuffer) -> None:
        self.buffer = buffer
        self.committed = 0  # samples before this index are final
        self.pending: dict[int, Samples] = {}
        self.seen_audio = False
        self.fills: deque[tuple[int, int]] = deque(maxlen=64)
        self.gap_spans: list[tuple[int, int]] = []  # holes filled after audio began
        self.stats = TrackStats()


class MediaClock:
    """Places the frames of every track of one stream on one sample clock.

    Args:
        buffers: The ring buffer of each track the stream announced.
        sample_rate: Samples per second of every track.
        window: The reorder window, in samples.
        max_gap: The largest timestamp jump filled with silence, in samples.
        frame_samples: A nominal frame, in samples (placing frames by chunk).
        allowance: Returns how far (in samples) the newest audio may reach now;
            None: no bound.
    """

    __slots__ = (
        "_allowance",
        "_frame",
        "_limit",
        "_max_gap",
        "_spms",
        "_states",
        "_window",
        "ahead",
        "discontinuities",
        "head",
        "offset",
        "sample_rate",
    )

    def __init__(
        self,
        buffers: Mapping[Track, TrackBuffer],
        *,
        sample_rate: int,
        window: int,
        max_gap: int,
        frame_samples: int,
        allowance: Callable[[], int] | None = None,
    ) -> None:
        self._states = {track: _TrackState(buf) for track, buf in buffers.items()}
        self.sample_rate = sample_rate
        self._spms = sample_rate // 1000
        self._window = window
        self._max_gap = max_gap
        self._frame = frame_samples
        self.head = 0  # end of the newest audio of any track
        self.offset = 0  # added to every timestamp-derived position
        self.discontinuities = 0
        self.ahead = 0  # frames refused as too far ahead of wall time
        self._allowance = allowance
        self._limit = allowance() if allowance is not None else _NO_LIMIT

    @property
    def committed(self) -> int:
        """The index up to which every track is final (what sinks may read)."""
        return min(s.committed for s in self._states.values())

    def stats(self) -> dict[Track, TrackStats]:
        return {track: s.stats for track, s in self._states.items()}

    def gap_spans(self) -> dict[Track, tuple[tuple[int, int], ...]]:
        """Where each track's holes were filled with silence: ``(start, end)`` sample indices,
        adjacent fills merged, the first ``MAX_GAP_SPANS`` per track."""
        return {track: tuple(s.gap_spans) for track, s in self._states.items()}

    def place(self, track: Track, timestamp_ms: int | None, chunk: int | None, samples: Samples) -> Placement:
        """Place one decoded frame of ``track``."""
        state = self._states.get(track)
        if state is None:
            return _UNDECLARED
        if timestamp_ms is not None:
            pos = timestamp_ms * self._spms + self.offset
        elif chunk is not None:
            pos = (chunk - 1) * self._frame + self.offset
        elif not state.pending:  # nothing to place it by: it follows the track's newest audio
            pos = state.committed
        else:
            pos = max(state.committed, max(p + len(s) for p, s in state.pending.items()))
        n = len(samples)
        committed = state.committed
        if pos == committed and not state.pending:
            # In order: the common case, written at once.
            end = pos + n
            if end > self._limit and self._too_far(end):
                return _AHEAD
            state.buffer.write(samples)
            state.committed = end
            state.seen_audio = True
            stats = state.stats
            stats.frames += 1
            stats.samples_received += n
            if end > self.head:
                self.head = end
                self._commit_behind(end - self._window)
            return _PLACED

        result = Placement.PLACED
        if pos - self.head > self._max_gap or committed - pos > self._max_gap:
            shift = max(self.head, committed) - pos
            self.offset += shift
            pos += shift
            self.discontinuities += 1
            result = Placement.DISCONTINUITY
        if pos < committed:
            if self._was_filled(state, pos, pos + n):
                state.stats.late += 1
                return Placement.LATE
            if pos + n <= committed:
                state.stats.duplicates += 1
                return Placement.DUPLICATE
            # Overlaps committed audio: keep only the new part.
            state.stats.overlap_samples += committed - pos
            samples = samples[committed - pos :]
            pos = committed
        if pos in state.pending:
            state.stats.duplicates += 1
            return Placement.DUPLICATE
        if pos + len(samples) > self._limit and self._too_far(pos + len(samples)):
            if result is Placement.DISCONTINUITY:  # the frame is refused: so is its re-basing
                self.offset -= shift
                self.discontinuities -= 1
            return _AHEAD
        state.pending[pos] = samples
        state.stats.frames += 1
        state.stats.samples_received += n
        end = pos + len(samples)
        if end > self.head:
            self.head = end
        self._drain(state)
        self._commit_behind(self.head - self._window)
        return result

    def place_encoded(
        self,
        track: Track,
        timestamp_ms: int | None,
        chunk: int | None,
        payload: bytes,
        decode: Callable[[bytes], Samples],
        table: Samples | memoryview,
        channel: int = 0,
        channels: int = 1,
    ) -> Placement:
        """``place`` for a frame still encoded: G.711, or L16 in this machine's byte order.

        A frame in order is decoded straight into its track's ring buffer by
        ``table`` (the common case: no array of its own): a G.711 lookup
        table, one sample per byte, or ``codecs.COPY`` (empty), two bytes per sample; either
        may come as a memoryview (``StreamPipeline`` passes one: cheaper to take as a buffer).
        Any other frame goes through ``place``, decoded by ``decode``. ``channels`` > 1: the
        payload interleaves that many channels (whole samples of each: the caller checks it),
        and ``channel`` is ``track``'s.
        """
        n = len(payload)
        if not len(table):  # ``codecs.COPY`` (or a view of it)
            if n & 1:  # half a sample: ``decode`` raises
                return self.place(track, timestamp_ms, chunk, decode(payload))
            n >>= 1
        if channels != 1:
            n //= channels
        state = self._states.get(track)
        if state is None:
            return _UNDECLARED
        if timestamp_ms is not None:
            pos = timestamp_ms * self._spms + self.offset
        elif chunk is not None:
            pos = (chunk - 1) * self._frame + self.offset
        elif not state.pending:
            pos = state.committed  # nothing to place it by: it follows the track's newest audio
        else:
            pos = -1  # ``place`` works out where the newest audio ends
        if pos != state.committed or state.pending:
            samples = decode(payload)
            return self.place(track, timestamp_ms, chunk, samples if channels == 1 else samples[channel::channels])
        # In order: as in ``place``, with the decoding inside the write.
        end = pos + n
        if end > self._limit and self._too_far(end):
            return _AHEAD
        if channels == 1:  # one track's frame: no channel arguments (callgrind: Vonage +2% with them)
            state.buffer.write_lookup(table, payload)
        else:
            state.buffer.write_lookup(table, payload, channel, channels)
        state.committed = end
        state.seen_audio = True
        stats = state.stats
        stats.frames += 1
        stats.samples_received += n
        if end > self.head:
            self.head = end
            self._commit_behind(end - self._window)
        return _PLACED

    def flush(self) -> None:
        """End of stream: commit everything, every track up to the newest audio."""
        for state in self._states.values():
            self._commit_until(state, self.head)

    # -- internals -------------------------------------------------------------

    def _too_far(self, end: int) -> bool:
        """Whether audio ending at ``end`` is beyond the allowance (asked again first)."""
        assert self._allowance is not None  # _limit is finite only with one
        self._limit = self._allowance()
        if end <= self._limit:
            return False
        self.ahead += 1
        return True

    @staticmethod
    def _was_filled(state: _TrackState, start: int, end: int) -> bool:
        return any(s < end and start < e for s, e in state.fills)

    def _drain(self, state: _TrackState) -> None:
        """Commit the pending frames that continue the committed audio."""
        pending = state.pending
        while pending:
            first = min(pending)
            if first > state.committed:
                return
            samples = pending.pop(first)
            skip = state.committed - first
            if skip >= len(samples):
                continue
            if skip:
                state.stats.overlap_samples += skip
                samples = samples[skip:]
            state.buffer.write(samples)
            state.committed += len(samples)
            state.seen_audio = True

    def _commit_behind(self, limit: int) -> None:
        """Make every track final up to ``limit``: the holes the window gave up on become silence."""
        for state in self._states.values():
            if state.committed < limit:
                self._commit_until(state, limit)

    def _commit_until(self, state: _TrackState, limit: int) -> None:
        """Make everything before ``limit`` final: holes become silence."""
        while state.committed < limit:
            nxt = min(state.pending) if state.pending else limit
            hole_end = min(nxt, limit)
            if hole_end > state.committed:
                self._fill(state, hole_end - state.committed)
            self._drain(state)

    def _fill(self, state: _TrackState, n: int) -> None:
        start = state.committed
        state.buffer.write_silence(n)
        state.committed = start + n
        state.fills.append((start, start + n))
        stats = state.stats
        if state.seen_audio:
            stats.audio_gaps += 1
            stats.audio_gap_samples += n
            stats.lost_frames += n // self._frame
            spans = state.gap_spans
            if spans and spans[-1][1] == start:
                spans[-1] = (spans[-1][0], start + n)
            elif len(spans) < MAX_GAP_SPANS:
                spans.append((start, start + n))
        else:
            stats.lead_samples += n
