"""
Voice-activity detection: split a track into utterances (who spoke when).

``Segmenter`` runs WebRTC's VAD (``webrtcvad``, from the ``webrtcvad-wheels``
package) over fixed 30 ms frames counted from the start of the track, so its
result does not depend on how the audio was cut into blocks. An utterance
starts after ``start_ms`` of voiced frames (with ``pad_ms`` of audio before
it), ends after ``silence_ms`` without voice (with up to ``pad_ms`` after the
last voiced frame), and is split at ``max_seconds``. Engines decode these
segments; the ``vad`` plugin publishes them as ``speech`` events even when no
engine runs.

``Segmenter`` is pure (numpy and webrtcvad); ``VadSink`` is the plugin.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import webrtcvad

from receiver.errors import InvalidValue
from receiver.sinks import AudioBlock, StreamInfo, StreamOutcome
from receiver.transcription.transcript import Transcripts

VAD_FRAME_MS: Final = 30
VAD_RATES: Final = (8000, 16000, 32000, 48000)


@dataclass(frozen=True, slots=True)
class Utterance:
    """A stretch of speech: ``start`` is its first sample on the track's clock."""

    start: int
    samples: npt.NDArray[np.int16] = field(repr=False)
    rate: int

    @property
    def end(self) -> int:
        return self.start + len(self.samples)

    @property
    def start_seconds(self) -> float:
        return self.start / self.rate

    @property
    def end_seconds(self) -> float:
        return self.end / self.rate


@dataclass(frozen=True, slots=True)
class VadOptions:
    aggressiveness: int = 2  # 0 (keeps most) .. 3 (keeps least)
    start_ms: int = 90
    silence_ms: int = 500
    pad_ms: int = 300
    max_seconds: float = 15.0

    def __post_init__(self) -> None:
        if self.aggressiveness not in (0, 1, 2, 3):
            raise InvalidValue("aggressiveness must be 0, 1, 2 or 3")
        if self.start_ms < VAD_FRAME_MS or self.silence_ms < VAD_FRAME_MS or self.pad_ms < 0:
            raise InvalidValue(f"start_ms and silence_ms must be at least {VAD_FRAME_MS}, pad_ms not negative")
        if not 1.0 <= self.max_seconds <= 300.0:
            raise InvalidValue("max_seconds must be 1-300")


class Segmenter:
    """Feeds a track's int16 audio through the VAD; returns utterances as they end."""

    def __init__(self, rate: int = 16000, options: VadOptions | None = None) -> None:
        if rate not in VAD_RATES:
            raise InvalidValue(f"the VAD runs at {VAD_RATES} Hz, not {rate}")
        self.rate = rate
        self.options = options = options or VadOptions()
        self._vad = webrtcvad.Vad(options.aggressiveness)
        self._frame = rate * VAD_FRAME_MS // 1000
        self._start_frames = options.start_ms // VAD_FRAME_MS
        self._silence_frames = options.silence_ms // VAD_FRAME_MS
        self._pad_frames = options.pad_ms // VAD_FRAME_MS
        self._max_frames = int(options.max_seconds * 1000) // VAD_FRAME_MS
        self._pending = np.zeros(0, dtype=np.int16)
        self._index = 0  # next frame number
        self._history: deque[tuple[int, npt.NDArray[np.int16], bool]] = deque(
            maxlen=self._pad_frames + self._start_frames
        )
        self._speech: list[tuple[int, npt.NDArray[np.int16], bool]] | None = None
        self._silence = 0

    @property
    def in_speech(self) -> bool:
        return self._speech is not None

    def push(self, samples: npt.NDArray[np.int16]) -> list[Utterance]:
        """Add audio; return the utterances that ended within it."""
        data = np.concatenate([self._pending, samples]) if len(self._pending) else samples
        n = len(data) // self._frame
        out: list[Utterance] = []
        for k in range(n):
            frame = np.ascontiguousarray(data[k * self._frame : (k + 1) * self._frame], dtype=np.int16)
            self._frame_in(frame, out)
        self._pending = data[n * self._frame :].copy()
        return out

    def current(self) -> Utterance | None:
        """The utterance being spoken so far (None in silence): what a partial result decodes."""
        return self._utterance(self._speech) if self._speech else None

    def flush(self) -> list[Utterance]:
        """End of the track: the utterance in progress, if any."""
        out: list[Utterance] = []
        if self._speech is not None:
            self._emit(self._speech, out)
            self._speech = None
        return out

    def _frame_in(self, frame: npt.NDArray[np.int16], out: list[Utterance]) -> None:
        voiced = self._vad.is_speech(frame.tobytes(), self.rate)
        entry = (self._index, frame, voiced)
        self._index += 1
        if self._speech is None:
            self._history.append(entry)
            recent = list(self._history)[-self._start_frames :]
            if len(recent) == self._start_frames and all(v for _i, _f, v in recent):
                self._speech = list(self._history)
                self._history.clear()
                self._silence = 0
            return
        self._speech.append(entry)
        self._silence = 0 if voiced else self._silence + 1
        if self._silence >= self._silence_frames:
            keep = len(self._speech) - self._silence + min(self._pad_frames, self._silence)
            self._emit(self._speech[:keep], out)
            for item in self._speech[keep:]:
                self._history.append(item)
            self._speech = None
        elif len(self._speech) >= self._max_frames:
            self._emit(self._speech, out)
            self._speech = []  # speech goes on: the next piece starts right here
            self._silence = 0

    def _emit(self, frames: list[tuple[int, npt.NDArray[np.int16], bool]], out: list[Utterance]) -> None:
        if frames:
            out.append(self._utterance(frames))

    def _utterance(self, frames: list[tuple[int, npt.NDArray[np.int16], bool]]) -> Utterance:
        return Utterance(frames[0][0] * self._frame, np.concatenate([f for _i, f, _v in frames]), self.rate)


class VadSink:
    """The ``vad`` plugin: publishes each track's utterances as ``speech`` events (no text)."""

    name = "vad"
    interval = 0.2
    sample_rate = 16000
    sample_format = "int16"

    def __init__(self, **options: Any) -> None:
        self.options = VadOptions(**options)
        self.transcripts: Transcripts | None = None
        self._segmenters: dict[Any, Segmenter] = {}

    async def open(self, stream: StreamInfo) -> None:
        self._segmenters = {track: Segmenter(self.sample_rate, self.options) for track in stream.tracks}

    async def write(self, block: AudioBlock) -> None:
        for track, segmenter in self._segmenters.items():
            self._publish(track, segmenter.push(block.channels[track]))

    async def close(self, outcome: StreamOutcome) -> None:
        for track, segmenter in self._segmenters.items():
            self._publish(track, segmenter.flush())

    def _publish(self, track: Any, utterances: list[Utterance]) -> None:
        if self.transcripts is None:
            return
        for u in utterances:
            self.transcripts.publish(track, u.start_seconds, u.end_seconds, "", kind="speech")
