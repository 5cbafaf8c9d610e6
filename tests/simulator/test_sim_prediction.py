"""The simulator's expected audio equals what the receiver's own media clock makes of its messages.

Sans-I/O and property-based: any seed, fault mix, window and track choice.
The simulator itself never imports the receiver's session or clock; this
test does, to hold the two sides of the contract together.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from receiver.calls import actions as a
from receiver.codecs import decode_ulaw
from receiver.events import Encoding, MediaReceived, Track
from receiver.mediaclock import MediaClock
from receiver.ringbuffer import TrackBuffer
from receiver.session import StreamSession
from receiver.simulator.audio import AudioSpec
from receiver.simulator.plan import Faults, MediaSpec, plan_call
from receiver.simulator.wire import WireFormat

MEDIA = MediaSpec(
    WireFormat.MINIVOICE,
    Encoding.MULAW,
    8000,
    {"inbound": AudioSpec("tone", "440"), "outbound": AudioSpec("tone", "660")},
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    loss=st.sampled_from([0.0, 0.05, 0.3]),
    duplicate=st.sampled_from([0.0, 0.1, 0.5]),
    reorder_ms=st.sampled_from([0, 40, 100, 160, 400]),
    reorder=st.sampled_from([0.1, 0.5, 1.0]),
    delay=st.sampled_from([0.0, 0.1]),
    delay_ms=st.sampled_from([20, 80, 100, 120, 300]),
    window_ms=st.sampled_from([0, 20, 50, 100, 250]),
    drop_at=st.one_of(st.none(), st.floats(0.0, 1.5)),
    seconds=st.floats(0.0, 1.5),
    track=st.sampled_from(["inbound", "outbound", "both"]),
)
def test_the_expected_audio_is_what_the_receivers_media_clock_writes(
    seed: int,
    loss: float,
    duplicate: float,
    reorder_ms: int,
    reorder: float,
    delay: float,
    delay_ms: int,
    window_ms: int,
    drop_at: float | None,
    seconds: float,
    track: str,
) -> None:
    faults = Faults(seed, loss, duplicate, reorder_ms, reorder, delay, delay_ms, 0.0, drop_at, window_ms)
    (sp,) = plan_call([a.start_stream("wss://h/x", track), a.pause(seconds)], MEDIA, faults).streams
    expected = sp.expected()

    session = StreamSession()
    buffers = {Track(t): TrackBuffer(8000 * 5) for t in sp.tracks}
    clock = MediaClock(buffers, sample_rate=8000, window=8 * window_ms, max_gap=8000 * 30, frame_samples=160)
    for _, text, _, _ in sp.items:
        event = session.receive_text(text)
        if isinstance(event, MediaReceived):
            clock.place(event.track, event.timestamp_ms, event.chunk, decode_ulaw(event.payload))
    clock.flush()

    for name in sp.tracks:
        actual = buffers[Track(name)].read(0, clock.head)
        assert np.array_equal(actual, expected[name])
        stats = clock.stats()[Track(name)]
        dup, late = set(sp.faults[name].duplicated), set(sp.faults[name].late)
        assert stats.late == len(late) + len(dup & late)
        assert stats.duplicates == len(dup - late)
