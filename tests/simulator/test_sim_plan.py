"""The call plan: timeline, stream matching, faults, sequence numbers and the expected audio (pure)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from receiver.calls import actions as a
from receiver.codecs import decode_ulaw, encode_ulaw
from receiver.events import Encoding
from receiver.simulator.audio import AudioSpec, load
from receiver.simulator.plan import Faults, MediaSpec, StreamPlan, plan_call
from receiver.simulator.wire import WireFormat

URL = "wss://media.example.com/minivoice"
OTHER = "wss://media.example.com/other"


def media(wire: WireFormat = WireFormat.MINIVOICE, encoding: Encoding = Encoding.MULAW, rate: int = 8000) -> MediaSpec:
    return MediaSpec(wire, encoding, rate, {"inbound": AudioSpec("tone", "440"), "outbound": AudioSpec("tone", "660")})


def media_of(sp: StreamPlan) -> list[dict]:
    return [json.loads(text) for _, text, t, _ in sp.items if t >= 0]


def test_the_timeline_follows_pauses_stops_and_hangup() -> None:
    flow = [
        a.start_stream(URL, "both"),
        a.pause(1),
        a.start_stream(OTHER, "inbound"),
        a.pause(0.5),
        a.stop_stream(URL, "both"),
        a.pause(0.5),
        a.hangup(),
        a.start_stream(URL),  # after the hangup: never runs
    ]

    plan = plan_call(flow, media(), Faults())

    assert plan.duration_ms == 2000
    first, second = plan.streams
    assert (first.start_ms, first.end_ms, first.end, first.frames, first.tracks) == (
        0,
        1500,
        "stop_stream",
        75,
        ("inbound", "outbound"),
    )
    assert (second.start_ms, second.end_ms, second.end, second.frames, second.tracks) == (
        1000,
        2000,
        "call_ended",
        50,
        ("inbound",),
    )
    assert [w.event for w in plan.webhooks] == ["call.completed"]


def test_the_end_of_the_list_hangs_up_and_ends_open_streams() -> None:
    plan = plan_call([a.start_stream(URL), a.pause(0.3)], media(), Faults())

    assert plan.duration_ms == 300
    assert plan.streams[0].end == "call_ended"
    assert plan.streams[0].frames == 15


def test_a_stop_stream_matching_nothing_changes_nothing() -> None:
    base = [a.start_stream(URL, "both"), a.pause(0.5), a.pause(0.5), a.hangup()]
    with_stop = [
        a.start_stream(URL, "both"),
        a.pause(0.5),
        a.stop_stream(OTHER),
        a.stop_stream(URL, "inbound"),
        a.pause(0.5),
        a.hangup(),
    ]

    plain, stopped = plan_call(base, media(), Faults()), plan_call(with_stop, media(), Faults())

    assert stopped.unmatched_stops == 2
    assert [s.end for s in stopped.streams] == ["call_ended"]
    assert [it[1] for it in stopped.streams[0].items] == [it[1] for it in plain.streams[0].items]


def test_stop_stream_without_fields_stops_every_stream_and_with_a_track_only_equal_ones() -> None:
    flow = [
        a.start_stream(URL, "inbound"),
        a.start_stream(URL, "outbound"),
        a.start_stream(OTHER, "both"),
        a.pause(0.2),
        a.stop_stream(None, "outbound"),
        a.pause(0.2),
        a.stop_stream(),
        a.pause(0.2),
    ]

    plan = plan_call(flow, media(), Faults())

    assert [(s.action.track.value, s.end, s.end_ms) for s in plan.streams] == [
        ("inbound", "stop_stream", 400),
        ("outbound", "stop_stream", 200),
        ("both", "stop_stream", 400),
    ]
    assert plan.duration_ms == pytest.approx(600)


def test_recordings_send_completed_with_metadata_or_failed() -> None:
    flow = [a.stop_recording(), a.start_recording(), a.pause(2.5), a.stop_recording(), a.start_recording(), a.pause(1)]

    plan = plan_call(flow, media(), Faults())

    events = [(w.event, w.at_ms) for w in plan.webhooks]
    assert events == [
        ("recording.failed", 0),
        ("recording.completed", 2500),
        ("recording.completed", 3500),
        ("call.completed", 3500),
    ]
    first = plan.webhooks[1].data
    assert first["recording_id"] == f"rec_{plan.call.call_id}"
    assert first["status"] == "completed"
    assert first["duration_seconds"] == 2.5
    assert first["size_bytes"] == 44 + 2 * 8000 * 2.5
    assert plan.webhooks[2].data["recording_id"] == f"rec_{plan.call.call_id}_2"


def test_other_actions_are_skipped_and_reported() -> None:
    plan = plan_call([a.action("play", url="https://x/a.mp3"), a.start_stream(URL)], media(), Faults())

    assert plan.skipped == ["play"]


def test_messages_follow_the_protocol_order_and_numbering() -> None:
    plan = plan_call([a.start_stream(URL, "both", {"k": "v"}), a.pause(0.1)], media(), Faults())
    sp = plan.streams[0]
    messages = [json.loads(text) for _, text, _, _ in sp.items]

    assert [m["event"] for m in messages] == ["connected", "start"] + ["media"] * 10 + ["stop"]
    assert [m.get("sequence_number") for m in messages[1:]] == list(range(1, 13))
    start = messages[1]["start"]
    assert start["tracks"] == ["inbound", "outbound"] and start["track"] == "both"
    assert start["custom_parameters"] == {"k": "v"} and start["stream_url"] == URL
    media_ = messages[2:-1]
    assert [(m["media"]["track"], m["media"]["chunk"], m["media"]["timestamp"]) for m in media_[:4]] == [
        ("inbound", 1, 0),
        ("outbound", 1, 0),
        ("inbound", 2, 20),
        ("outbound", 2, 20),
    ]
    assert messages[-1]["stop"] == {"call_id": plan.call.call_id, "reason": "call_ended"}
    assert [due for due, *_ in sp.items] == [0, 0] + [20 * (i // 2) for i in range(10)] + [100]


def test_payloads_carry_the_source_audio_encoded() -> None:
    plan = plan_call([a.start_stream(URL), a.pause(0.2)], media(), Faults())
    import base64

    payload = b"".join(base64.b64decode(m["media"]["payload"]) for m in media_of(plan.streams[0]))
    source = load(AudioSpec("tone", "440"), 8000)[:1600]

    assert payload == encode_ulaw(source)
    assert np.array_equal(plan.streams[0].decoded["inbound"], decode_ulaw(encode_ulaw(source)))


def test_a_stream_started_later_carries_the_audio_from_its_start() -> None:
    plan = plan_call([a.pause(0.5), a.start_stream(URL), a.pause(0.1)], media(), Faults())
    source = load(AudioSpec("tone", "440"), 8000)

    assert np.array_equal(plan.streams[0].decoded["inbound"], decode_ulaw(encode_ulaw(source[4000:4800])))


FAULTY = Faults(seed=11, loss=0.1, duplicate=0.1, reorder_ms=100, reorder=0.2, delay=0.05, delay_ms=200)


def faulty_plan(faults: Faults = FAULTY, index: int = 0) -> StreamPlan:
    return plan_call([a.start_stream(URL, "both"), a.pause(4)], media(), faults, index=index).streams[0]


def test_faults_are_reproducible_from_the_seed() -> None:
    one, two = faulty_plan(), faulty_plan()
    other_seed = faulty_plan(dataclasses.replace(FAULTY, seed=12))
    other_call = faulty_plan(index=1)

    assert [it[1] for it in one.items] == [it[1] for it in two.items]
    assert {k: v.as_dict() for k, v in one.faults.items()} == {k: v.as_dict() for k, v in two.faults.items()}
    assert one.faults["inbound"].lost != other_seed.faults["inbound"].lost
    assert one.faults["inbound"].lost != other_call.faults["inbound"].lost


def test_the_report_says_exactly_which_frames_were_altered() -> None:
    sp = faulty_plan()
    sent = media_of(sp)

    for track in sp.tracks:
        tf = sp.faults[track]
        chunks = [m["media"]["chunk"] for m in sent if m["media"]["track"] == track]
        assert tf.lost and tf.duplicated and tf.reordered and tf.delayed
        # Lost frames are never sent; duplicated ones exactly twice, back to back; the rest once.
        assert set(tf.lost).isdisjoint(chunks)
        assert sorted(c for c in set(chunks) if chunks.count(c) == 2) == tf.duplicated
        assert sorted(set(chunks) | set(tf.lost)) == list(range(1, sp.frames + 1))
        assert all(chunks.count(c) <= 2 for c in chunks)
        # A reordered or delayed frame follows exactly the frames of the slots it was moved past.
        order = list(dict.fromkeys(chunks))
        moved = {c: n for c, n in tf.reordered + tf.delayed}
        for chunk, slots in moved.items():
            at = order.index(chunk)
            for c in order:
                if c not in moved and c > chunk:
                    assert (order.index(c) < at) == (c <= chunk + slots)
            assert slots <= (4 if [chunk, slots] in tf.reordered else 10)
        unmoved = [c for c in order if c not in moved]
        assert unmoved == sorted(unmoved)
        assert all(d == 10 for _, d in tf.delayed)  # 200 ms


def test_sequence_numbers_are_the_platforms_so_faults_show_as_gaps_and_repeats() -> None:
    sp = faulty_plan()
    numbers = [m["sequence_number"] for m in media_of(sp)]
    lost = sum(len(tf.lost) for tf in sp.faults.values())
    dups = sum(len(tf.duplicated) for tf in sp.faults.values())

    assert len(numbers) == 2 * sp.frames - lost + dups
    assert len(set(numbers)) == 2 * sp.frames - lost
    assert json.loads(sp.items[-1][1])["sequence_number"] == 2 + 2 * sp.frames


def test_the_expected_audio_holds_silence_for_lost_and_late_frames_only() -> None:
    sp = faulty_plan()
    expected = sp.expected()
    F = sp.frame_samples

    for track in sp.tracks:
        tf = sp.faults[track]
        missing = set(tf.lost) | set(tf.late)
        decoded = sp.decoded[track]
        assert len(expected[track]) == len(expected["inbound"])
        for k in range(len(expected[track]) // F):
            frame = expected[track][k * F : (k + 1) * F]
            if k + 1 in missing:
                assert not frame.any()
            else:
                assert np.array_equal(frame, decoded[k * F : (k + 1) * F])
        # Frames delayed past the receiver's window arrive late; reordered ones within it never do.
        assert set(tf.late) <= {c for c, _ in tf.delayed}
        assert tf.late


def test_a_reorder_window_wider_than_the_receivers_predicts_late_frames() -> None:
    wide = faulty_plan(Faults(seed=3, reorder_ms=400, reorder=0.5))
    narrow = faulty_plan(Faults(seed=3, reorder_ms=100, reorder=0.5))

    assert any(wide.faults[t].late for t in wide.tracks)
    assert not any(narrow.faults[t].late for t in narrow.tracks)


def test_both_tracks_end_at_the_newest_audio_of_either() -> None:
    sp = plan_call([a.start_stream(URL, "both"), a.pause(0.2)], media(), Faults()).streams[0]
    # Drop the outbound track's last frame from what was delivered: inbound's still sets the end.
    delivered = [i for i, it in enumerate(sp.items) if not (it[2] == 1 and it[3] == sp.frames - 1)]
    sp.items = [sp.items[i] for i in delivered]

    expected = sp.expected()

    assert len(expected["inbound"]) == len(expected["outbound"]) == 1600
    assert not expected["outbound"][-160:].any()
    assert expected["inbound"][-160:].any()


def test_drop_at_truncates_at_the_last_frame_due_before_it() -> None:
    flow = [a.start_stream(URL, "both"), a.pause(1), a.start_stream(OTHER), a.pause(1)]

    plan = plan_call(flow, media(), Faults(drop_at=0.5))

    first, second = plan.streams
    assert (first.end, first.end_ms) == ("dropped", 500)
    assert json.loads(first.items[-1][1])["event"] == "media"  # no stop
    assert max(it[0] for it in first.items) < 500
    assert first.faults["inbound"].unsent == list(range(26, 101))
    assert len(first.expected()["inbound"]) == 25 * 160
    assert second.end == "call_ended"  # started after the drop


def test_drop_at_with_reordering_keeps_only_what_was_due_before() -> None:
    sp = plan_call(
        [a.start_stream(URL, "both"), a.pause(2)], media(), Faults(seed=5, reorder_ms=100, reorder=0.5, drop_at=1.0)
    ).streams[0]

    sent = {(it[2], it[3]) for it in sp.items if it[2] >= 0}
    unsent = {(t, c - 1) for t, name in enumerate(sp.tracks) for c in sp.faults[name].unsent}

    assert sent.isdisjoint(unsent)
    assert sent | unsent == {(t, k) for t in range(2) for k in range(100)}
    assert any(k < 50 for _, k in unsent)  # a frame due before the drop but moved past it


@pytest.mark.parametrize("bad", [{"loss": 1.5}, {"duplicate": -0.1}, {"reorder_ms": -1}, {"drop_at": -1.0}])
def test_faults_refuse_nonsense(bad: dict) -> None:
    with pytest.raises(ValueError):
        Faults(**bad)
