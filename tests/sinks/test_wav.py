"""WavSink: per-track and stereo files, exact length, crash repair."""

from __future__ import annotations

import asyncio
import os
import wave
from pathlib import Path

import numpy as np
import pytest

from receiver.events import Encoding, MediaFormat, Platform, Track
from receiver.sinks import AudioBlock, StreamInfo, StreamOutcome
from receiver.sinks.wav import WavSink, repair_directory, repair_wav, safe_name

IN, OUT = Track.INBOUND, Track.OUTBOUND
OUTCOME = StreamOutcome(reason="stop_stream", close_code=1000, duration_seconds=0.0, samples=0)


def info(
    tracks: tuple[Track, ...] = (IN, OUT), rate: int = 8000, call_id: str = "call_1", stream_id: str = "str_1"
) -> StreamInfo:
    return StreamInfo(stream_id, call_id, Platform.MINIVOICE, tracks, MediaFormat(Encoding.L16, rate))


def block(start: int, n: int, tracks: tuple[Track, ...] = (IN, OUT), rate: int = 8000) -> AudioBlock:
    channels = {t: (np.arange(start, start + n) * (1 if t is IN else -1) % 30000).astype(np.int16) for t in tracks}
    return AudioBlock(start, rate, channels)


def read(path: Path) -> tuple[int, int, np.ndarray]:
    with wave.open(str(path)) as w:
        return w.getnchannels(), w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


async def test_two_tracks_make_three_files(tmp_path: Path) -> None:
    sink = WavSink(tmp_path)
    await sink.open(info(rate=16000))
    await sink.write(block(0, 100, rate=16000))
    await sink.write(block(100, 60, rate=16000))
    await sink.close(OUTCOME)

    d = tmp_path / "call_1"
    assert sorted(p.name for p in d.iterdir()) == ["str_1.inbound.wav", "str_1.outbound.wav", "str_1.stereo.wav"]
    expected = block(0, 160)
    ch, rate, inbound = read(d / "str_1.inbound.wav")
    assert (ch, rate) == (1, 16000)
    assert np.array_equal(inbound, expected.channels[IN])
    assert np.array_equal(read(d / "str_1.outbound.wav")[2], expected.channels[OUT])
    ch, _, stereo = read(d / "str_1.stereo.wav")
    assert ch == 2
    assert np.array_equal(stereo[0::2], expected.channels[IN])  # left: inbound
    assert np.array_equal(stereo[1::2], expected.channels[OUT])  # right: outbound


async def test_one_track_makes_one_file(tmp_path: Path) -> None:
    sink = WavSink(tmp_path)
    await sink.open(info(tracks=(OUT,)))
    await sink.write(block(0, 10, tracks=(OUT,)))
    await sink.close(OUTCOME)

    assert [p.name for p in (tmp_path / "call_1").iterdir()] == ["str_1.outbound.wav"]


async def test_lost_spans_are_written_as_silence_keeping_the_clock(tmp_path: Path) -> None:
    sink = WavSink(tmp_path)
    await sink.open(info())
    await sink.write(block(0, 10))
    await sink.write(block(50, 10))  # 40 samples lost by this sink
    await sink.close(OUTCOME)

    _, _, inbound = read(tmp_path / "call_1" / "str_1.inbound.wav")
    assert len(inbound) == 60
    assert not inbound[10:50].any()
    _, _, stereo = read(tmp_path / "call_1" / "str_1.stereo.wav")
    assert len(stereo) == 120


async def test_files_are_readable_while_recording(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The header is refreshed as audio arrives, so a reader sees what was written."""
    monkeypatch.setattr("receiver.sinks.wav.HEADER_REFRESH_SECONDS", 0.0)
    sink = WavSink(tmp_path)
    await sink.open(info())
    await sink.write(block(0, 80))

    _, _, inbound = read(tmp_path / "call_1" / "str_1.inbound.wav")
    assert len(inbound) == 80
    await sink.close(OUTCOME)


def inside(root: Path, path: str) -> bool:
    return root.resolve() in Path(path).resolve().parents


@pytest.mark.parametrize("hostile", ["../../etc", "a/b", "..", ".", "", "x\x00y", "call 1"])
async def test_peer_ids_never_escape_the_recordings_dir(tmp_path: Path, hostile: str) -> None:
    root = tmp_path / "rec"
    sink = WavSink(root)
    await sink.open(info(call_id=hostile or "_", stream_id=hostile or "_", tracks=(IN,)))
    await sink.close(OUTCOME)

    for path in sink.paths:
        assert inside(root, path)
    assert "/" not in safe_name(hostile) and safe_name(hostile) not in ("", ".", "..")


def test_repair_restores_a_file_cut_short(tmp_path: Path) -> None:
    path = tmp_path / "cut.wav"
    samples = np.arange(1000, dtype="<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(samples[:100].tobytes())
    with open(path, "ab") as f:  # audio written after the last header refresh, plus half a sample
        f.write(samples[100:].tobytes() + b"\x01")

    assert repair_wav(path) is True
    assert np.array_equal(read(path)[2], samples)
    assert repair_wav(path) is False  # already consistent


def test_repair_directory_skips_foreign_files(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "junk.wav").write_bytes(b"not a wav at all")

    assert repair_directory(tmp_path) == []
    assert repair_directory(tmp_path / "missing") == []


async def test_sink_write_errors_surface(tmp_path: Path) -> None:
    """A full disk raises from write(); the fan-out then disables this sink alone."""
    sink = WavSink(tmp_path)
    await sink.open(info(tracks=(IN,)))
    os.close(sink._files[IN].fd)
    sink._files[IN].fd = os.open(os.devnull, os.O_RDONLY)

    with pytest.raises(OSError):
        await sink.write(block(0, 10, tracks=(IN,)))


async def test_file_work_of_many_streams_crosses_to_the_writer_thread_in_one_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from receiver.sinks import wav

    batches: list[int] = []
    run_jobs = wav._run_jobs

    def counting(jobs: list[wav._Job]) -> list[BaseException | None]:
        batches.append(len(jobs))
        return run_jobs(jobs)

    monkeypatch.setattr(wav, "_run_jobs", counting)
    writer = wav._Writer(delay=0.01)
    done: list[int] = []

    def job(k: int) -> None:
        if k == 7:
            raise OSError(28, "No space left on device")
        done.append(k)

    results = await asyncio.gather(*(writer.run(job, k) for k in range(40)), return_exceptions=True)

    assert batches == [40]  # one hand-off for everything submitted within the delay
    assert done == [k for k in range(40) if k != 7]  # in submission order
    assert isinstance(results[7], OSError) and results[7].errno == 28  # the failure goes to its submitter alone
    assert [r for k, r in enumerate(results) if k != 7] == [None] * 39
    await writer.run(job, 40)  # later work makes a new batch
    assert batches == [40, 1]


def test_safe_names_keep_plain_ids_and_never_fold_two_ids_together() -> None:
    assert safe_name("CA0123abcd_-x") == "CA0123abcd_-x"
    ids = ["victim/call", "victim_call", "victim.call", "x" * 128 + "a", "x" * 128 + "b", "é" * 5, "ü" * 5,
           "a" * 64, "a" * 65, "", ".", "..", "~", "a~b"]  # fmt: skip
    names = [safe_name(i) for i in ids]

    assert len(set(names)) == len(ids)
    assert all("/" not in n and n not in ("", ".", "..") and len(n) <= 64 for n in names)
    assert safe_name("victim/call").startswith("victim_call~")  # still readable


async def test_a_second_stream_with_the_same_ids_gets_the_next_segment_and_never_truncates(tmp_path: Path) -> None:
    first, second = WavSink(tmp_path), WavSink(tmp_path)
    await first.open(info())
    await first.write(block(0, 80))
    await second.open(info())  # while the first is still recording
    await second.write(block(0, 40))
    await first.close(OUTCOME)
    await second.close(OUTCOME)

    assert (first.segment, second.segment) == (1, 2)
    assert [Path(p).name for p in second.paths] == ["str_1.2.inbound.wav", "str_1.2.outbound.wav", "str_1.2.stereo.wav"]
    assert len(read(tmp_path / "call_1" / "str_1.inbound.wav")[2]) == 80
    assert len(read(tmp_path / "call_1" / "str_1.2.inbound.wav")[2]) == 40


async def test_a_segment_is_claimed_whole_or_not_at_all(tmp_path: Path) -> None:
    """A stream with only the inbound track took segment 1's inbound file: a two-track stream moves on."""
    (tmp_path / "call_1").mkdir()
    (tmp_path / "call_1" / "str_1.outbound.wav").write_bytes(b"someone else's")
    sink = WavSink(tmp_path)
    await sink.open(info())
    await sink.close(OUTCOME)

    assert sink.segment == 2
    assert sorted(p.name for p in (tmp_path / "call_1").iterdir()) == [
        "str_1.2.inbound.wav", "str_1.2.outbound.wav", "str_1.2.stereo.wav", "str_1.outbound.wav"
    ]  # fmt: skip
    assert (tmp_path / "call_1" / "str_1.outbound.wav").read_bytes() == b"someone else's"
