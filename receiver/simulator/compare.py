"""
The oracle check: did the receiver record what was sent? Its WAV files against
the ones ``--record-sent`` wrote, sample for sample, under the same names.

Reads files only, so the receiver may be another process on this machine. A
receiver finalises a stream's files just after the stream closes, so a file
that is missing or shorter than expected is read again (every 0.1 s) until it
matches or ``timeout`` passes.
"""

from __future__ import annotations

import time
import wave
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MISMATCH = "recording(s) differ from what was sent"


@dataclass(frozen=True, slots=True)
class Wav:
    rate: int
    channels: int
    frames: bytes  # 16-bit little-endian samples, channels interleaved

    @property
    def samples(self) -> int:
        return len(self.frames) // (2 * self.channels)


def read_wav(path: Path) -> Wav | None:
    """The file's format and samples, or None when it is missing or not (yet) a readable WAV."""
    try:
        with wave.open(str(path), "rb") as w:
            return Wav(w.getframerate(), w.getnchannels(), w.readframes(w.getnframes()))
    except (OSError, EOFError, wave.Error):
        return None


def compare_recordings(sent: Iterable[str], sent_root: Path, received_root: Path, timeout: float = 10.0) -> list[str]:
    """Compare each file under ``sent_root`` with the same name under ``received_root``.

    Returns:
        One line per file that differs (empty: every file equal).
    """
    deadline = time.monotonic() + timeout
    problems = []
    for name in sent:
        relative = Path(name).relative_to(sent_root)
        expected = read_wav(Path(name))
        if expected is None:
            problems.append(f"{relative}: the simulator's own file is unreadable")
            continue
        while True:
            got = read_wav(received_root / relative)
            if got == expected:
                break
            if time.monotonic() >= deadline:
                problems.append(_difference(relative, received_root, expected, got))
                break
            time.sleep(0.1)
    return problems


def _difference(relative: Path, received_root: Path, expected: Wav, got: Wav | None) -> str:
    if got is None:
        return f"{relative}: no readable file at {received_root / relative}"
    if (got.rate, got.channels) != (expected.rate, expected.channels):
        return f"{relative}: {got.rate} Hz x{got.channels}, expected {expected.rate} Hz x{expected.channels}"
    n = min(got.samples, expected.samples) * expected.channels
    a = np.frombuffer(got.frames, dtype="<i2", count=n)
    b = np.frombuffer(expected.frames, dtype="<i2", count=n)
    differ = np.flatnonzero(a != b)
    first = int(differ[0]) // expected.channels if differ.size else None
    where = "" if first is None else f", first different sample {first} ({first / expected.rate:.3f} s)"
    return f"{relative}: {got.samples} samples, expected {expected.samples}{where}"
