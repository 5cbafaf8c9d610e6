"""A call's media for the console and ``receiver plot`` (receiver/calls/media.py): files found from
the record and only inside the recordings, WAV reading, envelopes, captions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from receiver.calls.media import RecordingError, captions, dialogue, envelope, read_wav, stream_media, waveform
from receiver.sinks.wav import wav_header
from receiver.transcription.formats import format_vtt
from receiver.transcription.transcript import Transcript


def write_wav(
    path: Path, samples: np.ndarray, *, channels: int = 1, rate: int = 8000, declared: int | None = None
) -> None:
    data = samples.astype("<i2").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        wav_header(channels=channels, sample_rate=rate, data_bytes=len(data) if declared is None else declared) + data
    )


def record(call_id: str, stream_id: str, files: list[str], outcome: dict | None = None) -> dict:
    stream = {"stream_id": stream_id, "tracks": ["inbound", "outbound"], "sample_rate": 8000, "files": files,
              "stopped_at": "2026-05-29T12:00:00.000Z", "outcome": outcome}  # fmt: skip
    return {"call_id": call_id, "streams": [stream]}


def test_recordings_are_found_from_the_record_and_only_inside_the_recordings_dir(tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    write_wav(root / "call_1" / "str_1.inbound.wav", np.zeros(80, np.int16))
    write_wav(tmp_path / "elsewhere" / "str_1.outbound.wav", np.zeros(80, np.int16))
    (root / "call_1" / "str_1.stereo.wav").symlink_to(tmp_path / "elsewhere" / "str_1.outbound.wav")
    listed = [str(tmp_path / "elsewhere" / "str_1.outbound.wav"), str(root / "call_1" / "str_1.stereo.wav")]

    media = stream_media(record("call_1", "str_1", listed), "str_1", root)

    assert media is not None
    assert dict(media.files) == {"inbound": (root / "call_1" / "str_1.inbound.wav").resolve()}
    assert media.player == "inbound"
    assert stream_media(record("call_1", "str_1", []), "str_2", root) is None


def test_a_hostile_call_id_cannot_leave_the_recordings_dir(tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    write_wav(tmp_path / "str_1.inbound.wav", np.zeros(80, np.int16))

    media = stream_media(record("..", "str_1", []), "str_1", root)

    assert media is not None and dict(media.files) == {}


def test_a_wav_file_being_written_is_read_up_to_the_bytes_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    write_wav(path, np.arange(100, dtype=np.int16), declared=400)  # the header was refreshed ahead of the data

    rate, channels, samples = read_wav(path)

    assert (rate, channels) == (8000, 1)
    assert samples.tolist() == list(range(100))


def test_what_is_not_our_wav_is_a_recording_error(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises(RecordingError):
        read_wav(path)


def test_envelope_is_the_min_and_max_of_equal_spans() -> None:
    samples = np.array([1, -5, 3, 7, -2, 0, 4, 4], dtype=np.int16)

    assert envelope(samples, 4) == ([-5, 3, -2, 4], [1, 7, 0, 4])
    assert envelope(samples, 100) == (samples.tolist(), samples.tolist())
    assert envelope(samples[:0], 10) == ([], [])


def test_waveform_aligns_both_tracks_and_marks_gaps_losses_and_keywords_in_seconds(tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    write_wav(root / "c" / "s.inbound.wav", np.full(16000, 1000, np.int16))
    write_wav(root / "c" / "s.outbound.wav", np.full(16000, -1000, np.int16))
    outcome = {"gap_spans": {"inbound": [[800, 1600]]}, "sink_loss_spans": {"wav": [[8000, 12000]], "other": [[0, 1]]}}
    media = stream_media(record("c", "s", [], outcome), "s", root)
    assert media is not None
    keyword = Transcript("c", "s", "inbound", 0.5, 0.9, "cancel my order", kind="keyword")

    shape = waveform(media, 10, [keyword])

    assert shape["duration_seconds"] == 2.0
    assert shape["tracks"]["inbound"]["max"] == [1000] * 10
    assert shape["tracks"]["outbound"]["min"] == [-1000] * 10
    assert shape["gaps"] == {"inbound": [[0.1, 0.2]]}
    assert shape["lost"] == [[1.0, 1.5]]
    assert shape["keywords"] == [{"track": "inbound", "start": 0.5, "end": 0.9, "text": "cancel my order"}]


def test_captions_are_webvtt_with_the_speakers_words_escaped() -> None:
    events = [
        Transcript("c", "s", "inbound", 1.25, 2.5, "a <b>bold</b> & --> claim"),
        Transcript("c", "s", "outbound", 62.0, 62.1, "ok"),
        Transcript("c", "s", "inbound", 3.0, 3.5, "cancel", kind="keyword"),
        Transcript("c", "other", "inbound", 0.0, 1.0, "another stream"),
    ]

    vtt = captions(events, "s")

    assert vtt.splitlines() == [
        "WEBVTT",
        "",
        "00:00:01.250 --> 00:00:02.500",
        "<v caller>a &lt;b&gt;bold&lt;/b&gt; &amp; -&gt; claim",
        "",
        "00:01:02.000 --> 00:01:02.100",
        "<v agent>ok",
    ]
    assert vtt == format_vtt(events[:3])  # the console's captions are the command's
    assert [(line["speaker"], line["keyword"]) for line in dialogue(events, "s")] == [
        ("caller", False),
        ("agent", False),
        ("caller", True),
    ]
