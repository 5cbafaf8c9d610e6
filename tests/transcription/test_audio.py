"""Streaming conversion equals one-shot conversion: no clicks at block edges."""

from __future__ import annotations

import numpy as np
import pytest

from receiver.transcription.audio import TrackConverter, convert


def _signal(n: int, rate: int) -> np.ndarray:
    t = np.arange(n) / rate
    rng = np.random.default_rng(7)
    x = 8000 * np.sin(2 * np.pi * 440 * t) + 3000 * np.sin(2 * np.pi * 1234 * t) + rng.normal(0, 500, n)
    return np.clip(x, -32768, 32767).astype(np.int16)


@pytest.mark.parametrize(("in_rate", "out_rate"), [(8000, 16000), (16000, 8000), (8000, 44100), (8000, 8000)])
@pytest.mark.parametrize("fmt", ["int16", "float32"])
@pytest.mark.parametrize("blocks", ["20ms", "1-sample", "random"])
def test_stream_in_blocks_equals_one_shot(in_rate: int, out_rate: int, fmt: str, blocks: str) -> None:
    x = _signal(in_rate * 2 if blocks != "1-sample" else in_rate // 5, in_rate)
    rng = np.random.default_rng(3)
    if blocks == "20ms":
        sizes = [in_rate // 50] * (len(x) // (in_rate // 50) + 1)
    elif blocks == "1-sample":
        sizes = [1] * len(x)
    else:
        sizes = list(rng.integers(0, 900, 2 * len(x) // 450))
    converter = TrackConverter(in_rate, out_rate, fmt)  # type: ignore[arg-type]
    parts, offset = [], 0
    for size in sizes:
        parts.append(converter.convert(x[offset : offset + size]))
        offset += size
        if offset >= len(x):
            break
    parts.append(converter.flush())
    streamed = np.concatenate(parts)
    whole = convert(x, in_rate, out_rate, fmt)  # type: ignore[arg-type]

    assert streamed.dtype == (np.int16 if fmt == "int16" else np.float32)
    assert len(streamed) == len(whole) == converter.position
    tolerance = 1 if fmt == "int16" else 1e-5  # float32 through soxr's stream is exact; rounding may flip one LSB
    assert np.max(np.abs(streamed.astype(np.float64) - whole.astype(np.float64))) <= tolerance


def test_resampled_length_and_level_follow_the_rate() -> None:
    x = _signal(8000, 8000)
    y = convert(x, 8000, 16000, "float32")

    assert len(y) == 16000
    assert abs(float(np.std(y)) - float(np.std(x / 32768))) < 0.02
