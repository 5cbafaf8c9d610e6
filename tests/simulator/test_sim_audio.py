"""Audio sources: WAV files of any rate and width, espeak-ng speech, the test signal."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from receiver.simulator.audio import AudioError, AudioSpec, burst_tone, load, read_wav, span
from tests.prereq import needs_program


def write_wav(
    path: Path, data: bytes, *, rate: int, channels: int, bits: int, tag: int = 1, extensible: bool = False
) -> Path:
    block = channels * bits // 8
    if extensible:
        fmt = struct.pack(
            "<HHIIHHHHI16s",
            0xFFFE,
            channels,
            rate,
            rate * block,
            block,
            bits,
            22,
            bits,
            0,
            struct.pack("<H", tag) + b"\x00" * 14,
        )
    else:
        fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    chunks += b"LIST" + struct.pack("<I", 3) + b"abc\x00"  # an odd-sized chunk to skip (padded)
    chunks += b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks)
    return path


RAMP = np.array([0.0, 0.5, -0.5, 0.25, -1.0, 0.75])


@pytest.mark.parametrize(
    ("bits", "tag", "encode"),
    [
        (8, 1, lambda x: (np.round(x * 127) + 128).astype(np.uint8).tobytes()),
        (16, 1, lambda x: np.round(x * 32767).astype("<i2").tobytes()),
        (24, 1, lambda x: b"".join(int(v).to_bytes(3, "little", signed=True) for v in np.round(x * 8388607))),
        (32, 1, lambda x: np.round(x * 2147483647).astype("<i4").tobytes()),
        (32, 3, lambda x: x.astype("<f4").tobytes()),
        (64, 3, lambda x: x.astype("<f8").tobytes()),
    ],
)
@pytest.mark.parametrize("extensible", [False, True])
def test_wav_files_of_every_width_read_the_same(tmp_path: Path, bits: int, tag: int, encode, extensible: bool) -> None:  # type: ignore[no-untyped-def]
    path = write_wav(tmp_path / "a.wav", encode(RAMP), rate=8000, channels=1, bits=bits, tag=tag, extensible=extensible)

    samples, rate = read_wav(path)

    assert rate == 8000
    assert np.allclose(samples, RAMP, atol=1 / 100)


def test_stereo_files_are_averaged(tmp_path: Path) -> None:
    frames = np.array([[0.5, -0.5], [1.0, 0.0]])
    path = write_wav(
        tmp_path / "s.wav", np.round(frames * 32767).astype("<i2").tobytes(), rate=16000, channels=2, bits=16
    )

    samples, _ = read_wav(path)

    assert np.allclose(samples, [0.0, 0.5], atol=1e-4)


def test_files_are_resampled_to_the_stream_rate(tmp_path: Path) -> None:
    t = np.arange(44100) / 44100
    path = write_wav(
        tmp_path / "t.wav",
        np.round(0.5 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2").tobytes(),
        rate=44100,
        channels=1,
        bits=16,
    )

    out = load(AudioSpec.parse(str(path)), 8000)

    assert out.dtype == np.int16 and len(out) == 8000
    spectrum = np.abs(np.fft.rfft(out.astype(float)))
    assert abs(int(np.argmax(spectrum)) - 440) <= 1  # 1 Hz bins
    assert 0.45 * 32767 < np.abs(out[100:-100]).max() < 0.55 * 32767


@pytest.mark.parametrize(
    ("content", "expected"),
    [(b"", "not a WAV file"), (b"RIFF\x04\x00\x00\x00WAVE", "no fmt or data chunk")],
)
def test_bad_files_give_clear_errors(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "bad.wav"
    path.write_bytes(content)

    with pytest.raises(AudioError, match=expected):
        read_wav(path)
    with pytest.raises(AudioError, match="cannot read"):
        read_wav(tmp_path / "missing.wav")


def test_unsupported_wav_formats_are_refused(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "adpcm.wav", b"\x00" * 8, rate=8000, channels=1, bits=4, tag=2)

    with pytest.raises(AudioError, match="unsupported"):
        read_wav(path)


def test_the_test_signal_is_a_burst_then_silence() -> None:
    signal = burst_tone(440, 8000)

    assert len(signal) == 8000
    assert np.abs(signal[:4800]).max() > 8000
    assert not signal[4800:].any()
    assert np.array_equal(load(AudioSpec.parse("tone:440"), 8000), signal)


@pytest.mark.parametrize(
    ("spec", "expected"), [("tone:abc", "frequency"), ("tone:0", "between"), ("say:  ", "needs some text")]
)
def test_bad_specs_are_refused(spec: str, expected: str) -> None:
    with pytest.raises(AudioError, match=expected):
        AudioSpec.parse(spec)


def test_silence_and_looping() -> None:
    assert not load(AudioSpec.parse("silence"), 16000).any()
    source = np.arange(5, dtype=np.int16)
    assert span(source, 3, 6).tolist() == [3, 4, 0, 1, 2, 3]
    assert len(span(source, 0, 0)) == 0


@needs_program("espeak-ng")
def test_speech_is_rendered_with_espeak_ng() -> None:
    out = load(AudioSpec.parse("say:hello there"), 16000)

    assert 0.3 * 16000 < len(out) < 3 * 16000
    assert np.abs(out).max() > 1000


def test_speech_without_espeak_ng_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)

    with pytest.raises(AudioError, match="espeak-ng"):
        load(AudioSpec.parse("say:not cached"), 8000)
