"""MediaClock: placement by timestamp, the reorder window, gaps, duplicates, late frames."""

from __future__ import annotations

import random

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from receiver.codecs import COPY, _ulaw_to_linear, decode_ulaw, decoder_for, lookup_table_for
from receiver.errors import MalformedMessage
from receiver.events import Encoding, MediaFormat, Track
from receiver.mediaclock import MediaClock, Placement
from receiver.ringbuffer import TrackBuffer

IN, OUT = Track.INBOUND, Track.OUTBOUND
RATE = 8000
FRAME = 160  # 20 ms
WINDOW = 800  # 100 ms
Samples = npt.NDArray[np.int16]


def make_clock(tracks: tuple[Track, ...] = (IN, OUT), *, window: int = WINDOW, max_gap: int = 30 * RATE) -> MediaClock:
    buffers = {t: TrackBuffer(10 * RATE) for t in tracks}
    return MediaClock(buffers, sample_rate=RATE, window=window, max_gap=max_gap, frame_samples=FRAME)


def frame(track: Track, k: int) -> Samples:
    """Frame k of a track: distinct, recognisable samples."""
    base = (1 if track is IN else 20000) + k * FRAME
    return (np.arange(base, base + FRAME, dtype=np.int64) % 30000).astype(np.int16)


def signal(track: Track, frames: int) -> Samples:
    return np.concatenate([frame(track, k) for k in range(frames)]) if frames else np.zeros(0, np.int16)


def contents(clock: MediaClock, track: Track) -> Samples:
    buf = clock._states[track].buffer
    return buf.read(buf.oldest, buf.head)


def test_in_order_frames_are_committed_at_once() -> None:
    clock = make_clock()
    for k in range(5):
        assert clock.place(IN, 20 * k, k + 1, frame(IN, k)) is Placement.PLACED
        assert clock.place(OUT, 20 * k, k + 1, frame(OUT, k)) is Placement.PLACED

    assert clock.committed == 5 * FRAME
    assert np.array_equal(contents(clock, IN), signal(IN, 5))
    assert np.array_equal(contents(clock, OUT), signal(OUT, 5))


def test_a_lost_frame_becomes_silence_after_the_window_and_is_counted() -> None:
    clock = make_clock((IN,))
    for k in range(12):
        if k != 3:
            clock.place(IN, 20 * k, k + 1, frame(IN, k))
    clock.flush()

    expected = signal(IN, 12)
    expected[3 * FRAME : 4 * FRAME] = 0
    stats = clock.stats()[IN]
    assert np.array_equal(contents(clock, IN), expected)
    assert (stats.audio_gaps, stats.audio_gap_samples, stats.lost_frames) == (1, FRAME, 1)


def test_a_late_frame_inside_the_window_lands_in_its_place() -> None:
    clock = make_clock((IN,))
    order = [0, 1, 3, 4, 5, 2, 6]  # frame 2 arrives three frames late (60 ms < 100 ms)
    for k in order:
        clock.place(IN, 20 * k, k + 1, frame(IN, k))
    clock.flush()

    assert np.array_equal(contents(clock, IN), signal(IN, 7))
    assert clock.stats()[IN].audio_gaps == 0


def test_a_frame_later_than_the_window_is_dropped_and_counted() -> None:
    clock = make_clock((IN,))
    for k in [0, 1, *range(3, 12)]:
        clock.place(IN, 20 * k, k + 1, frame(IN, k))

    assert clock.place(IN, 40, 3, frame(IN, 2)) is Placement.LATE
    clock.flush()
    stats = clock.stats()[IN]
    assert stats.late == 1
    assert stats.audio_gaps == 1
    assert not contents(clock, IN)[2 * FRAME : 3 * FRAME].any()


def test_duplicates_are_dropped_and_counted() -> None:
    clock = make_clock((IN,))
    clock.place(IN, 0, 1, frame(IN, 0))
    clock.place(IN, 40, 3, frame(IN, 2))  # pending behind a hole

    assert clock.place(IN, 0, 1, frame(IN, 5)) is Placement.DUPLICATE  # already committed
    assert clock.place(IN, 40, 3, frame(IN, 5)) is Placement.DUPLICATE  # already pending
    clock.place(IN, 20, 2, frame(IN, 1))
    clock.flush()
    assert clock.stats()[IN].duplicates == 2
    assert np.array_equal(contents(clock, IN), signal(IN, 3))


def test_a_silent_track_never_stalls_the_other() -> None:
    clock = make_clock()
    for k in range(50):  # only inbound sends, for a second
        clock.place(IN, 20 * k, k + 1, frame(IN, k))

    assert clock.committed >= 50 * FRAME - WINDOW
    assert not contents(clock, OUT).any()
    assert clock.stats()[OUT].lead_samples == clock._states[OUT].committed


def test_a_stopped_track_is_padded_to_the_other_at_the_end() -> None:
    clock = make_clock()
    for k in range(10):
        clock.place(IN, 20 * k, k + 1, frame(IN, k))
        if k < 4:
            clock.place(OUT, 20 * k, k + 1, frame(OUT, k))
    clock.flush()

    out = contents(clock, OUT)
    assert len(out) == len(contents(clock, IN)) == 10 * FRAME
    assert np.array_equal(out[: 4 * FRAME], signal(OUT, 4))
    assert not out[4 * FRAME :].any()


def test_a_track_starting_late_is_aligned_by_its_timestamps() -> None:
    clock = make_clock()
    for k in range(30):
        clock.place(IN, 20 * k, k + 1, frame(IN, k))
        if k >= 4:  # outbound starts at 80 ms but its frames arrive in step
            clock.place(OUT, 20 * k, k - 3, frame(OUT, k))
    clock.flush()

    out = contents(clock, OUT)
    assert not out[: 4 * FRAME].any()
    assert np.array_equal(out[4 * FRAME :], signal(OUT, 30)[4 * FRAME :])


def test_first_timestamp_above_zero_gives_leading_silence() -> None:
    """Twilio's first timestamp is not 0 (live logs show 52)."""
    clock = make_clock((IN,))
    for k in range(10):
        clock.place(IN, 52 + 20 * k, k + 1, frame(IN, k))
    clock.flush()

    buf = contents(clock, IN)
    assert not buf[: 52 * 8].any()
    assert np.array_equal(buf[52 * 8 :], signal(IN, 10))
    assert clock.stats()[IN].audio_gaps == 0
    assert clock.stats()[IN].lead_samples == 52 * 8


def test_frames_without_timestamp_are_placed_by_chunk() -> None:
    clock = make_clock((IN,))
    for k in [0, 2, 1, 3]:
        clock.place(IN, None, k + 1, frame(IN, k))
    clock.flush()

    assert np.array_equal(contents(clock, IN), signal(IN, 4))


def test_a_jump_beyond_max_gap_is_a_discontinuity_and_fills_nothing() -> None:
    clock = make_clock((IN,), max_gap=RATE)  # 1 s
    clock.place(IN, 0, 1, frame(IN, 0))

    assert clock.place(IN, 60_000, 2, frame(IN, 1)) is Placement.DISCONTINUITY
    clock.place(IN, 60_020, 3, frame(IN, 2))
    clock.flush()
    assert clock.discontinuities == 1
    assert np.array_equal(contents(clock, IN), signal(IN, 3))


def test_a_gap_within_max_gap_is_filled_exactly() -> None:
    clock = make_clock((IN,), max_gap=RATE)
    clock.place(IN, 0, 1, frame(IN, 0))
    clock.place(IN, 900, 2, frame(IN, 1))  # 880 ms of silence
    clock.flush()

    assert clock.head == 900 * 8 + FRAME
    assert clock.stats()[IN].audio_gap_samples == 880 * 8


def test_undeclared_track_is_reported() -> None:
    clock = make_clock((IN,))

    assert clock.place(OUT, 0, 1, frame(OUT, 0)) is Placement.UNDECLARED_TRACK


def test_short_last_frame() -> None:
    clock = make_clock((IN,))
    clock.place(IN, 0, 1, frame(IN, 0))
    clock.place(IN, 20, 2, frame(IN, 1)[:40])
    clock.flush()

    assert clock.head == FRAME + 40


def test_overlapping_frame_keeps_only_its_new_samples() -> None:
    clock = make_clock((IN,))
    clock.place(IN, 0, 1, frame(IN, 0))
    overlapping = np.arange(1000, 1000 + FRAME, dtype=np.int16)
    clock.place(IN, 10, 2, overlapping)  # starts 80 samples before the committed end
    clock.flush()

    buf = contents(clock, IN)
    assert len(buf) == 10 * 8 + FRAME
    assert np.array_equal(buf[FRAME:], overlapping[80:])
    assert clock.stats()[IN].overlap_samples == 80


def delivery_order(frames: int, rng: random.Random, max_delay_ms: int) -> list[tuple[Track, int]]:
    """Both tracks' frames in an arrival order where no frame is later than ``max_delay_ms``."""
    keyed = [(20 * k + rng.uniform(0, max_delay_ms), t, k) for t in (IN, OUT) for k in range(frames)]
    return [(t, k) for _, t, k in sorted(keyed, key=lambda x: x[0])]


@settings(max_examples=60, deadline=None)
@given(frames=st.integers(1, 60), seed=st.integers(0, 2**32 - 1), delay=st.integers(0, 100), dups=st.integers(0, 10))
def test_any_interleaving_and_reorder_inside_the_window_gives_identical_buffers(
    frames: int, seed: int, delay: int, dups: int
) -> None:
    """Chunking invariance: arrival order inside the window never changes the audio."""
    rng = random.Random(seed)
    order = delivery_order(frames, rng, delay)
    for _ in range(dups):  # duplicates re-sent right after the original
        i = rng.randrange(len(order))
        order.insert(i + 1, order[i])
    clock = make_clock()
    for track, k in order:
        clock.place(track, 20 * k, k + 1, frame(track, k))
    clock.flush()

    assert np.array_equal(contents(clock, IN), signal(IN, frames))
    assert np.array_equal(contents(clock, OUT), signal(OUT, frames))
    assert sum(s.audio_gaps + s.late for s in clock.stats().values()) == 0


@settings(max_examples=80, deadline=None)
@given(
    ops=st.lists(
        st.tuples(st.sampled_from([IN, OUT]), st.integers(0, 4000), st.integers(0, 320)),
        max_size=40,
    ),
)
def test_any_placements_leave_every_track_the_same_length(ops: list[tuple[Track, int, int]]) -> None:
    clock = make_clock(max_gap=2 * RATE)
    for track, ts, n in ops:
        clock.place(track, ts, None, np.ones(n, dtype=np.int16))
    clock.flush()

    heads = {s.buffer.head for s in clock._states.values()}
    assert heads == {clock.head}
    assert clock.committed == clock.head


class WallClock:
    """An allowance driven by hand: how far the newest audio may reach, in samples."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.asked = 0

    def __call__(self) -> int:
        self.asked += 1
        return self.limit


def test_a_frame_beyond_the_allowance_is_refused_and_nothing_is_filled_in_front_of_it() -> None:
    wall = WallClock(10 * FRAME)
    buffers = {t: TrackBuffer(10 * RATE) for t in (IN, OUT)}
    clock = MediaClock(buffers, sample_rate=RATE, window=WINDOW, max_gap=30 * RATE, frame_samples=FRAME, allowance=wall)

    for k in range(10):
        assert clock.place(IN, 20 * k, None, frame(IN, k)) is Placement.PLACED
    jump = clock.place(OUT, 29_000, None, frame(OUT, 0))  # just under max_gap: silence, before the bound
    late = clock.place(IN, 200, None, frame(IN, 10))  # in order, but one frame past the allowance

    assert (jump, late) == (Placement.AHEAD, Placement.AHEAD)
    assert clock.head == 10 * FRAME and clock.ahead == 2 and clock.offset == 0
    # Time passes: the allowance grows, and the stream goes on where it was.
    wall.limit = 11 * FRAME
    assert clock.place(IN, 200, None, frame(IN, 10)) is Placement.PLACED


def test_the_allowance_is_asked_only_when_a_frame_passes_its_last_answer() -> None:
    wall = WallClock(100 * FRAME)
    buffers = {IN: TrackBuffer(10 * RATE)}
    clock = MediaClock(buffers, sample_rate=RATE, window=WINDOW, max_gap=30 * RATE, frame_samples=FRAME, allowance=wall)

    for k in range(100):
        clock.place(IN, 20 * k, None, frame(IN, k))

    assert wall.asked == 1  # at construction; 100 frames in order cost a comparison each


def test_a_refused_jump_past_max_gap_does_not_move_the_clock() -> None:
    wall = WallClock(2 * FRAME)
    buffers = {IN: TrackBuffer(10 * RATE)}
    clock = MediaClock(buffers, sample_rate=RATE, window=WINDOW, max_gap=RATE, frame_samples=FRAME, allowance=wall)
    clock.place(IN, 0, None, frame(IN, 0))
    clock.place(IN, 20, None, frame(IN, 1))

    assert clock.place(IN, 3_600_000, None, frame(IN, 2)) is Placement.AHEAD  # re-based, it would end past the bound
    assert (clock.offset, clock.discontinuities) == (0, 0)


@settings(max_examples=100, deadline=None)
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from([IN, OUT]),
            # each track's next frame: mostly the one after its last (in order), else a
            # duplicate, a loss, a reordering, a jump, or a frame with no timestamp
            st.sampled_from([1, 1, 1, 1, 1, 0, 2, -1, -3, 7, 150, None]),
            st.one_of(st.binary(min_size=FRAME, max_size=FRAME), st.binary(max_size=400)),
        ),
        max_size=120,
    ),
    capacity=st.sampled_from([1000, 10 * RATE]),
    allowance=st.one_of(st.none(), st.integers(0, 8000)),
    encoding=st.sampled_from([Encoding.MULAW, Encoding.ALAW, Encoding.L16]),
    tracks=st.sampled_from([(IN, OUT), (IN,)]),  # (IN,): OUT's frames are undeclared
    by_chunk=st.booleans(),
)
def test_g711_decoded_in_place_is_the_same_as_decoded_then_placed(
    ops: list[tuple[Track, int | None, bytes]],
    capacity: int,
    allowance: int | None,
    encoding: Encoding,
    tracks: tuple[Track, ...],
    by_chunk: bool,
) -> None:
    """``place_encoded`` (G.711 decoded, L16 copied straight into the ring) against ``place`` of the
    decoded frame: in order, reordered, lost, duplicated, overlapping, across the ring's end, refused,
    half an L16 sample."""
    fmt = MediaFormat(encoding, RATE)
    decode, table = decoder_for(fmt), lookup_table_for(fmt)
    assert table is not None

    def clock() -> MediaClock:
        buffers = {t: TrackBuffer(capacity) for t in tracks}
        limit = (lambda: allowance) if allowance is not None else None
        return MediaClock(
            buffers, sample_rate=RATE, window=WINDOW, max_gap=2 * RATE, frame_samples=FRAME, allowance=limit
        )

    decoded, in_place = clock(), clock()
    k = {IN: -1, OUT: -1}
    for track, step, payload in ops:
        ts = chunk = None
        if step is not None:
            k[track] = max(0, k[track] + step)
            if by_chunk:
                chunk = k[track] + 1
            else:
                ts = 20 * k[track]
        try:
            expected = decoded.place(track, ts, chunk, decode(payload))
        except MalformedMessage:  # an odd number of L16 bytes
            with pytest.raises(MalformedMessage):
                in_place.place_encoded(track, ts, chunk, payload, decode, table)
            continue
        assert in_place.place_encoded(track, ts, chunk, payload, decode, table) is expected
    decoded.flush()
    in_place.flush()

    assert (in_place.head, in_place.offset, in_place.ahead) == (decoded.head, decoded.offset, decoded.ahead)
    assert in_place.stats() == decoded.stats()
    for track in tracks:
        assert np.array_equal(contents(in_place, track), contents(decoded, track))


@settings(max_examples=100, deadline=None)
@given(
    ops=st.lists(
        st.tuples(st.sampled_from([1, 1, 1, 1, 0, 2, -1, -3, 150, None]), st.binary(max_size=4 * FRAME)),
        max_size=60,
    ),
    capacity=st.sampled_from([1000, 10 * RATE]),
    encoding=st.sampled_from([Encoding.MULAW, Encoding.ALAW, Encoding.L16]),
)
def test_each_channel_of_interleaved_frames_in_place_is_the_same_as_decoded_then_placed(
    ops: list[tuple[int | None, bytes]], capacity: int, encoding: Encoding
) -> None:
    """``place_encoded`` of one channel of a two-channel frame (jambonz, AudioHook) against ``place``
    of that channel's decoded samples: in order, and (by timestamp) reordered, lost, duplicated."""
    fmt = MediaFormat(encoding, RATE)
    decode, table = decoder_for(fmt), lookup_table_for(fmt)
    assert table is not None
    frame_bytes = 2 * (2 if encoding is Encoding.L16 else 1)

    def clock() -> MediaClock:
        buffers = {t: TrackBuffer(capacity) for t in (IN, OUT)}
        return MediaClock(buffers, sample_rate=RATE, window=WINDOW, max_gap=2 * RATE, frame_samples=FRAME)

    decoded, in_place = clock(), clock()
    k = -1
    for step, payload in ops:
        payload = payload[: len(payload) // frame_bytes * frame_bytes]  # whole samples of both channels
        ts = None
        if step is not None:
            k = max(0, k + step)
            ts = 20 * k
        for channel, track in enumerate((IN, OUT)):
            expected = decoded.place(track, ts, None, decode(payload)[channel::2])
            assert in_place.place_encoded(track, ts, None, payload, decode, table, channel, 2) is expected
    decoded.flush()
    in_place.flush()

    assert in_place.stats() == decoded.stats()
    for track in (IN, OUT):
        assert np.array_equal(contents(in_place, track), contents(decoded, track))


def test_an_l16_frame_across_the_rings_end_is_copied_whole() -> None:
    samples = np.arange(-FRAME, FRAME, 2, dtype=np.int16)
    buf = TrackBuffer(FRAME * 3 // 2)
    table = lookup_table_for(MediaFormat(Encoding.L16, RATE))
    assert table is COPY
    assert lookup_table_for(MediaFormat(Encoding.L16, RATE, "big")) is None  # swapped on decoding, as before
    assert buf.write_lookup(table, samples.tobytes()) == 0
    assert buf.write_lookup(table, samples.tobytes()) == FRAME  # across the end
    assert np.array_equal(buf.latest(FRAME), samples)


def test_a_g711_frame_across_the_rings_end_is_decoded_whole() -> None:
    payload = bytes(range(FRAME))
    buf = TrackBuffer(FRAME * 3 // 2)
    table = lookup_table_for(MediaFormat(Encoding.MULAW, RATE))
    assert table is not None
    assert buf.write_lookup(table, payload) == 0
    assert buf.write_lookup(table, payload) == FRAME  # across the end
    assert np.array_equal(buf.latest(FRAME), decode_ulaw(payload))
    assert np.array_equal(decode_ulaw(payload), [_ulaw_to_linear(b) for b in payload])
