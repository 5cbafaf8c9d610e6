"""
Where a simulated track's audio comes from: a WAV file, espeak-ng speech, or a test signal.

Every source ends as mono int16 samples at the stream's sample rate. WAV files
may have any rate, width (8/16/24/32-bit PCM, 32/64-bit float) and channel
count: channels are averaged, and the rate is converted with soxr (libsoxr,
the resampler SoX itself uses: band-limited, well maintained, and fast enough
to convert minutes of audio in milliseconds).

An audio spec names a source:

- ``PATH.wav``: the file;
- ``say:TEXT``: ``espeak-ng`` renders TEXT (it must be installed);
- ``tone:HZ``: the built-in test signal at HZ: 600 ms of a sine at -12 dBFS,
  then 400 ms of silence, repeated (so lost frames and gaps are easy to see
  and hear);
- ``silence``.

Tracks loop their source for as long as the call lasts: a stream started at
call time ``t`` carries the audio from ``t`` on, as a tap on the call would.
"""

from __future__ import annotations

import functools
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from receiver.errors import ReceiverError
from receiver.events import Samples

_WAVE_FORMAT_PCM = 1
_WAVE_FORMAT_FLOAT = 3
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE


class AudioError(ReceiverError):
    """An audio source cannot be read or rendered; the message says why."""


@dataclass(frozen=True, slots=True)
class AudioSpec:
    """A parsed audio spec (see the module docstring)."""

    kind: str  # "wav", "say", "tone" or "silence"
    value: str = ""

    @classmethod
    def parse(cls, text: str) -> AudioSpec:
        if text == "silence":
            return cls("silence")
        if text.startswith("say:"):
            if not text[4:].strip():
                raise AudioError("say: needs some text")
            return cls("say", text[4:])
        if text.startswith("tone:"):
            try:
                hz = float(text[5:])
            except ValueError:
                raise AudioError(f"tone: needs a frequency in Hz, not {text[5:]!r}") from None
            if not 0 < hz < 12_000:
                raise AudioError("tone: frequency must be between 0 and 12000 Hz")
            return cls("tone", text[5:])
        return cls("wav", text)

    def __str__(self) -> str:
        return self.kind if self.kind == "silence" else f"{self.kind}:{self.value}"


def load(spec: AudioSpec, rate: int) -> Samples:
    """The source's samples at ``rate`` (mono int16; never empty).

    Raises:
        AudioError: The file cannot be read, or espeak-ng is missing or failed.
    """
    return _load_cached(spec, rate)


@functools.lru_cache(maxsize=16)
def _load_cached(spec: AudioSpec, rate: int) -> Samples:
    if spec.kind == "silence":
        out = np.zeros(rate // 50, dtype=np.int16)
    elif spec.kind == "tone":
        out = burst_tone(float(spec.value), rate)
    elif spec.kind == "say":
        out = speak(spec.value, rate)
    else:
        samples, source_rate = read_wav(spec.value)
        out = resample(samples, source_rate, rate)
    if not len(out):
        raise AudioError(f"{spec} holds no audio")
    out.flags.writeable = False
    return out


def burst_tone(hz: float, rate: int) -> Samples:
    """One second of the built-in test signal (600 ms of sine at -12 dBFS, 400 ms of silence)."""
    t = np.arange(rate) / rate
    on = int(rate * 0.6)
    wave = np.zeros(rate)
    wave[:on] = 0.25 * np.sin(2 * np.pi * hz * t[:on])
    # 5 ms ramps: no clicks at the edges of each burst.
    ramp = max(1, rate // 200)
    envelope = np.ones(on)
    envelope[:ramp] = np.linspace(0, 1, ramp)
    envelope[-ramp:] = np.linspace(1, 0, ramp)
    wave[:on] *= envelope
    return np.round(wave * 32767).astype(np.int16)


def speak(text: str, rate: int) -> Samples:
    """Render ``text`` with espeak-ng and convert it to ``rate``.

    Raises:
        AudioError: espeak-ng is not installed or failed.
    """
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise AudioError("say: needs espeak-ng (apt-get install espeak-ng); use a WAV file or tone:HZ instead")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "speech.wav"
        try:
            subprocess.run([exe, "-w", str(path), "--", text], check=True, capture_output=True, timeout=60)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            raise AudioError(f"espeak-ng failed: {exc}") from None
        samples, source_rate = read_wav(path)
    return resample(samples, source_rate, rate)


def read_wav(path: str | Path) -> tuple[npt.NDArray[np.float64], int]:
    """Read a WAV file as mono float samples in [-1, 1] and its sample rate.

    Reads PCM (8-bit unsigned, 16/24/32-bit signed) and IEEE float (32/64-bit),
    plain or WAVE_FORMAT_EXTENSIBLE; channels are averaged.

    Raises:
        AudioError: The file is missing or not a WAV file we can read.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise AudioError(f"cannot read {path}: {exc.strerror}") from None
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioError(f"{path} is not a WAV file")
    fmt: tuple[int, int, int, int] | None = None
    pcm: bytes | None = None
    pos = 12
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        body = data[pos + 8 : pos + 8 + size]
        if chunk_id == b"fmt " and len(body) >= 16:
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", body)
            if tag == _WAVE_FORMAT_EXTENSIBLE and len(body) >= 26:
                (tag,) = struct.unpack_from("<H", body, 24)
            fmt = (tag, channels, rate, bits)
        elif chunk_id == b"data":
            pcm = body
        pos += 8 + size + (size & 1)
    if fmt is None or pcm is None:
        raise AudioError(f"{path}: no fmt or data chunk")
    tag, channels, rate, bits = fmt
    if channels < 1 or rate < 1:
        raise AudioError(f"{path}: bad channel count or sample rate")
    width = bits // 8
    usable = len(pcm) // (width * channels) * width * channels if width else 0
    raw = pcm[:usable]
    if tag == _WAVE_FORMAT_PCM and bits == 8:
        samples = (np.frombuffer(raw, dtype=np.uint8).astype(np.float64) - 128) / 128
    elif tag == _WAVE_FORMAT_PCM and bits == 16:
        samples = np.frombuffer(raw, dtype="<i2") / 32768
    elif tag == _WAVE_FORMAT_PCM and bits == 24:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        ints = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        samples = np.where(ints >= 1 << 23, ints - (1 << 24), ints) / float(1 << 23)
    elif tag == _WAVE_FORMAT_PCM and bits == 32:
        samples = np.frombuffer(raw, dtype="<i4") / float(1 << 31)
    elif tag == _WAVE_FORMAT_FLOAT and bits in (32, 64):
        samples = np.frombuffer(raw, dtype="<f4" if bits == 32 else "<f8").astype(np.float64)
    else:
        raise AudioError(f"{path}: unsupported WAV format (tag {tag}, {bits} bits)")
    mono = samples.reshape(-1, channels).mean(axis=1)
    return mono, rate


def resample(samples: npt.NDArray[np.float64], source_rate: int, rate: int) -> Samples:
    """Convert float samples to ``rate`` (soxr, high quality) and to int16."""
    if source_rate != rate and len(samples):
        import soxr

        samples = soxr.resample(samples, source_rate, rate, quality="HQ")
    return np.clip(np.round(samples * 32767), -32768, 32767).astype(np.int16)


def span(source: Samples, start: int, count: int) -> Samples:
    """``count`` samples of ``source`` looped, from sample ``start`` of the call."""
    if count <= 0:
        return np.zeros(0, dtype=np.int16)
    n = len(source)
    index = (np.arange(start, start + count) % n).astype(np.intp)
    return source[index]
