"""StreamPipeline: decode, place on the media clock, fan out to sinks, and the outcome it ends with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from structlog.testing import capture_logs

from receiver.codecs import decode_ulaw, encode_ulaw
from receiver.errors import MalformedMessage
from receiver.events import Encoding, MediaFormat, MediaReceived, Platform, StreamStarted, Track
from receiver.logging import get_logger
from receiver.mediaclock import Placement
from receiver.session import SessionStats
from receiver.sinks import StreamInfo
from receiver.stream.pipeline import MediaSettings, StreamPipeline
from receiver.testing import RecordingSink

IN, OUT = Track.INBOUND, Track.OUTBOUND
FRAME = 160


def started(tracks: tuple[Track, ...] = (IN, OUT), encoding: Encoding = Encoding.MULAW) -> StreamStarted:
    return StreamStarted(
        platform=Platform.MINIVOICE,
        stream_id="str_p",
        call_id="call_p",
        tracks=tracks,
        media_format=MediaFormat(encoding, 8000),
        custom_parameters={"agent": "a1"},
    )


def frame(k: int, track: Track = IN) -> bytes:
    """Frame ``k`` (from 0) of a track: a ramp, distinct per track, encoded as mu-law."""
    base = 1000 if track is IN else -1000
    return encode_ulaw((base + np.arange(k * FRAME, (k + 1) * FRAME) % 2000).astype(np.int16))


def media(k: int, track: Track = IN) -> MediaReceived:
    return MediaReceived(track, k + 1, 20 * k, frame(k, track))


@dataclass
class WithFiles(RecordingSink):
    """A recording sink that says it wrote files (as the WAV sink does)."""

    paths: tuple[str, ...] = ()


async def test_frames_reach_every_sink_decoded_and_the_outcome_counts_them() -> None:
    first, second = RecordingSink(name="first"), WithFiles(name="second", paths=("a.wav",))
    pipeline = StreamPipeline(started(), MediaSettings(), [lambda i: first, lambda i: second], get_logger("test"))
    pipeline.start()
    for k in range(10):
        for track in (IN, OUT):
            assert pipeline.media(media(k, track)) is Placement.PLACED
    session = SessionStats(messages=22, media_messages=20)

    outcome = await pipeline.finish(reason="stop_stream", close_code=1000, session=session)

    for sink in (first, second):
        assert sink.calls[0] == "open" and sink.calls[-1] == "close"
        assert sink.outcome == outcome
        for track in (IN, OUT):
            expected = np.concatenate([decode_ulaw(frame(k, track)) for k in range(10)])
            assert np.array_equal(sink.audio(track), expected)
    assert first.info is not None
    assert (first.info.stream_id, first.info.call_id, first.info.tracks) == ("str_p", "call_p", (IN, OUT))
    assert first.info.custom_parameters == {"agent": "a1"}
    assert (outcome.samples, outcome.duration_seconds) == (10 * FRAME, 0.2)
    assert (outcome.messages, outcome.reason, outcome.close_code) == (22, "stop_stream", 1000)
    assert outcome.tracks["inbound"]["frames"] == 10 and outcome.tracks["outbound"]["frames"] == 10
    assert outcome.files == ("a.wav",)
    assert outcome.sink_losses == {"first": 0, "second": 0} and outcome.disabled_sinks == ()


async def test_a_track_the_stream_did_not_declare_is_counted_and_kept_out() -> None:
    sink = RecordingSink()
    pipeline = StreamPipeline(started(tracks=(IN,)), MediaSettings(), [lambda i: sink], get_logger("test"))
    pipeline.start()

    assert pipeline.media(media(0, IN)) is Placement.PLACED
    assert pipeline.media(media(0, OUT)) is Placement.UNDECLARED_TRACK
    outcome = await pipeline.finish(reason="stop_stream", close_code=1000, session=SessionStats())

    assert outcome.undeclared_track_frames == 1
    assert all(set(block.channels) == {IN} for block in sink.blocks)


async def test_a_jump_past_max_gap_is_a_discontinuity_not_silence() -> None:
    sink = RecordingSink()
    settings = MediaSettings(max_gap_ms=1000)
    pipeline = StreamPipeline(started(tracks=(IN,)), settings, [lambda i: sink], get_logger("test"))
    pipeline.start()

    pipeline.media(media(0))
    placement = pipeline.media(MediaReceived(IN, None, 60_000, frame(1)))
    outcome = await pipeline.finish(reason="stop_stream", close_code=1000, session=SessionStats())

    assert placement is Placement.DISCONTINUITY
    assert outcome.discontinuities == 1 and outcome.samples == 2 * FRAME


async def test_a_payload_the_codec_refuses_raises_malformed_message() -> None:
    pipeline = StreamPipeline(started(tracks=(IN,), encoding=Encoding.L16), MediaSettings(), [], get_logger("test"))
    pipeline.start()

    with pytest.raises(MalformedMessage, match="odd number of bytes"):
        pipeline.media(MediaReceived(IN, 1, 0, b"\x00\x01\x02"))
    await pipeline.finish(reason="malformed_message", close_code=4400, session=SessionStats())


async def test_a_sink_factory_that_raises_is_logged_and_the_others_still_run(tmp_path: Path) -> None:
    def broken(info: StreamInfo) -> RecordingSink:
        raise OSError("disk gone")

    sink = RecordingSink()
    with capture_logs() as logs:
        pipeline = StreamPipeline(started(), MediaSettings(), [broken, lambda i: sink], get_logger("test"))
    pipeline.start()
    pipeline.media(media(0))
    await pipeline.finish(reason="stop_stream", close_code=1000, session=SessionStats())

    [failure] = [e for e in logs if e["event"] == "sink_failed"]
    assert (failure["sink"], failure["phase"]) == ("broken", "create")
    assert "disk gone" in failure["error"]
    assert sink.calls[0] == "open" and sink.calls[-1] == "close" and len(sink.audio(IN)) == FRAME


async def test_a_frame_arriving_late_waits_in_the_window_and_lands_in_place() -> None:
    sink = RecordingSink()
    pipeline = StreamPipeline(started(tracks=(IN,)), MediaSettings(), [lambda i: sink], get_logger("test"))
    pipeline.start()

    for k in (0, 2, 1, 3):  # frame 1 arrives after frame 2, within the 100 ms window
        pipeline.media(media(k))
    outcome = await pipeline.finish(reason="stop_stream", close_code=1000, session=SessionStats())

    assert np.array_equal(sink.audio(IN), np.concatenate([decode_ulaw(frame(k)) for k in range(4)]))
    assert outcome.tracks["inbound"]["audio_gaps"] == 0
