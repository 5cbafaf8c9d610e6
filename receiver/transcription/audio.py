"""
Sample-rate and sample-format conversion for plugins, one track at a time.

``TrackConverter`` turns a track's int16 audio at the stream's rate into the
rate and format a plugin declares. Resampling is soxr's streaming resampler
(``soxr.ResampleStream``), which keeps its filter state across blocks: a
stream resampled block by block equals the whole signal resampled at once, so
block edges make no clicks. Resampling runs in float32 (exact across blocks);
int16 output is rounded from it.

Pure: numpy and soxr only; no asyncio, no logging.
"""

from __future__ import annotations

from typing import Any, Final, Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import soxr

from receiver.errors import InvalidValue

SampleFormat: TypeAlias = Literal["int16", "float32"]
SAMPLE_FORMATS: Final = ("int16", "float32")
_SCALE: Final = 32768.0
_EMPTY: Final = np.zeros(0, dtype=np.float32)


def to_float32(samples: npt.NDArray[np.int16]) -> npt.NDArray[np.float32]:
    """int16 → float32 in [-1, 1)."""
    return samples.astype(np.float32) / np.float32(_SCALE)


def to_int16(samples: npt.NDArray[np.float32]) -> npt.NDArray[np.int16]:
    """float32 → int16, rounded and clipped."""
    out: npt.NDArray[np.int16] = np.clip(np.rint(samples * _SCALE), -32768, 32767).astype(np.int16)
    return out


def convert(
    samples: npt.NDArray[np.int16], in_rate: int, out_rate: int, fmt: SampleFormat = "int16"
) -> npt.NDArray[Any]:
    """One-shot conversion of a whole signal (what a ``TrackConverter`` produces block by block)."""
    x = to_float32(samples)
    if in_rate != out_rate:
        x = soxr.resample(x, in_rate, out_rate, quality="HQ").astype(np.float32, copy=False)
    return x if fmt == "float32" else to_int16(x)


class TrackConverter:
    """Streaming conversion of one track: int16 at ``in_rate`` → ``fmt`` at ``out_rate``.

    ``position`` counts the samples handed out so far, which is the output
    block's start on the media clock (in output samples): soxr removes its
    own delay, so output sample ``k`` is at time ``k / out_rate``.
    """

    __slots__ = ("_stream", "fmt", "in_rate", "out_rate", "position")

    def __init__(self, in_rate: int, out_rate: int, fmt: SampleFormat = "int16") -> None:
        if fmt not in SAMPLE_FORMATS:
            raise InvalidValue(f"sample format must be one of {SAMPLE_FORMATS}, not {fmt!r}")
        self.in_rate = in_rate
        self.out_rate = out_rate
        self.fmt = fmt
        self.position = 0
        self._stream = (
            soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality="HQ") if in_rate != out_rate else None
        )

    def convert(self, samples: npt.NDArray[np.int16], *, last: bool = False) -> npt.NDArray[Any]:
        """Convert the next block (``last=True`` once, at the end, flushes the resampler)."""
        x = to_float32(samples)
        if self._stream is not None:
            x = self._stream.resample_chunk(x, last=last).astype(np.float32, copy=False)
        out = x if self.fmt == "float32" else to_int16(x)
        self.position += len(out)
        return out

    def flush(self) -> npt.NDArray[Any]:
        """The samples the resampler still holds (call once, at the end)."""
        return self.convert(np.zeros(0, dtype=np.int16), last=True)
