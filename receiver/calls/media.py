"""
A call's media for people to look at: each stream's recordings, found from the
call record (never from a path a request names), their waveform envelope,
where audio is missing, and the stream's transcript as dialogue lines and
WebVTT captions.

Blocking (reads files): the listener runs these in a thread, ``receiver plot``
calls them directly. Pure numpy otherwise; no asyncio, no logging.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from receiver.errors import ReceiverError
from receiver.sinks.wav import safe_name
from receiver.transcription.formats import format_vtt
from receiver.transcription.transcript import SPEAKERS, Transcript, read_transcript, transcript_path

RECORDINGS: Final = ("stereo", "inbound", "outbound")  # what a stream's WAV files are called, by suffix
WAV_SINK: Final = "wav"  # the sink whose losses show in the recordings (as silence)
MAX_POINTS: Final = 4000

Samples = npt.NDArray[np.int16]


class RecordingError(ReceiverError):
    """A recording exists but cannot be read as our WAV files are written."""


@dataclass(frozen=True, slots=True)
class StreamMedia:
    """What the call record says about one stream's audio, and where its files are."""

    call_id: str
    stream_id: str
    tracks: tuple[str, ...]
    sample_rate: int | None
    files: Mapping[str, Path]  # recording name (RECORDINGS) → file, only those that exist
    gap_spans: Mapping[str, tuple[tuple[int, int], ...]] = field(default_factory=dict)  # samples, per track
    loss_spans: tuple[tuple[int, int], ...] = ()  # samples the WAV sink lost (written as silence)
    ended: bool = False

    @property
    def player(self) -> str | None:
        """The recording to play: the stereo file (left inbound, right outbound), else the one track."""
        for name in RECORDINGS:
            if name in self.files:
                return name
        return None


def stream_media(
    record: Mapping[str, Any], stream_id: str, recordings_dir: str | os.PathLike[str]
) -> StreamMedia | None:
    """One stream of a call record (``db.read_call``), with the recordings that exist under ``recordings_dir``.

    A file is used only when it is inside ``recordings_dir`` and named for this
    stream: either as the stream's end listed it, or where the WAV sink puts
    it while the stream runs.
    """
    stream = next((s for s in record.get("streams", ()) if s["stream_id"] == stream_id), None)
    if stream is None:
        return None
    root = Path(recordings_dir).resolve()
    call_dir = root / safe_name(str(record["call_id"]))
    files: dict[str, Path] = {}
    listed = [Path(f) for f in stream.get("files") or ()]
    for name in RECORDINGS:
        wanted = f"{safe_name(stream_id)}.{name}.wav"
        for candidate in [*(p for p in listed if p.name == wanted), call_dir / wanted]:
            resolved = candidate.resolve()
            if resolved.is_relative_to(root) and resolved.is_file():
                files[name] = resolved
                break
    outcome = stream.get("outcome") or {}
    spans = outcome.get("gap_spans") or {}
    losses = (outcome.get("sink_loss_spans") or {}).get(WAV_SINK) or ()
    return StreamMedia(
        call_id=str(record["call_id"]),
        stream_id=stream_id,
        tracks=tuple(stream.get("tracks") or ()),
        sample_rate=stream.get("sample_rate"),
        files=files,
        gap_spans={str(t): tuple((int(a), int(b)) for a, b in v) for t, v in spans.items()},
        loss_spans=tuple((int(a), int(b)) for a, b in losses),
        ended=stream.get("stopped_at") is not None,
    )


# -- reading our WAV files ---------------------------------------------------------------


def read_wav(path: Path) -> tuple[int, int, Samples]:
    """``(rate, channels, samples)`` of a 16-bit PCM WAV file, memory-mapped (interleaved when stereo).

    A file still being written is read up to its last header refresh.

    Raises:
        RecordingError: Not a 16-bit PCM WAV file.
    """
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise RecordingError(f"{path.name}: not a WAV file")
        rate = channels = bits = 0
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                raise RecordingError(f"{path.name}: no data chunk")
            kind, size = struct.unpack("<4sI", chunk)
            if kind == b"fmt ":
                fmt = f.read(size)
                if len(fmt) < 16:
                    raise RecordingError(f"{path.name}: short fmt chunk")
                tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", fmt[:16])
                if tag != 1 or bits != 16 or channels not in (1, 2):
                    raise RecordingError(f"{path.name}: not 16-bit PCM, mono or stereo")
            elif kind == b"data":
                if not rate:
                    raise RecordingError(f"{path.name}: data before fmt")
                offset = f.tell()
                available = os.fstat(f.fileno()).st_size - offset
                frames = min(size, available) // (2 * channels)
                break
            else:
                f.seek(size + (size & 1), os.SEEK_CUR)
    if frames == 0:
        return rate, channels, np.zeros(0, dtype=np.int16)
    data = np.memmap(path, dtype="<i2", mode="r", offset=offset, shape=(frames * channels,))
    return rate, channels, data


def envelope(samples: Samples, points: int) -> tuple[list[int], list[int]]:
    """The minimum and maximum of each of ``points`` equal spans of ``samples`` (fewer when shorter)."""
    n = len(samples)
    if n == 0 or points < 1:
        return [], []
    points = min(points, n)
    starts = (np.arange(points, dtype=np.int64) * n) // points
    return np.minimum.reduceat(samples, starts).tolist(), np.maximum.reduceat(samples, starts).tolist()


def track_samples(media: StreamMedia) -> tuple[int, dict[str, Samples]]:
    """``(rate, {track: samples})``: every track of the stream, aligned on the media clock.

    Raises:
        RecordingError: No recording, or one that cannot be read.
    """
    channels: dict[str, Samples] = {}
    rate = 0
    for track in ("inbound", "outbound"):
        path = media.files.get(track)
        if path is not None:
            rate, _, channels[track] = read_wav(path)
    if not channels and "stereo" in media.files:
        rate, _, both = read_wav(media.files["stereo"])
        channels = {"inbound": both[0::2], "outbound": both[1::2]}
    if not channels:
        raise RecordingError(f"no recording of stream {media.stream_id}")
    return rate, channels


def waveform(media: StreamMedia, points: int, transcript: Sequence[Transcript] = ()) -> dict[str, Any]:
    """What the console draws for a stream: each track's envelope on one time axis, where audio is
    missing (holes filled with silence, audio the WAV sink lost) and the keyword hits, in seconds.

    Raises:
        RecordingError: No recording, or one that cannot be read.
    """
    rate, channels = track_samples(media)
    length = max(len(s) for s in channels.values())
    points = max(1, min(points, MAX_POINTS))
    tracks = {}
    for track, samples in channels.items():
        low, high = envelope(samples, points)
        tracks[track] = {"min": low, "max": high}

    def seconds(spans: Sequence[tuple[int, int]]) -> list[list[float]]:
        return [[round(a / rate, 3), round(min(b, length) / rate, 3)] for a, b in spans if a < length]

    return {
        "call_id": media.call_id,
        "stream_id": media.stream_id,
        "sample_rate": rate,
        "samples": length,
        "duration_seconds": round(length / rate, 3),
        "points": min(points, length),
        "tracks": tracks,
        "gaps": {track: seconds(spans) for track, spans in media.gap_spans.items() if track in channels},
        "lost": seconds(media.loss_spans),
        "keywords": [
            {"track": e.track, "start": e.start, "end": e.end, "text": e.text}
            for e in transcript
            if e.kind == "keyword" and e.stream_id == media.stream_id
        ],
        "ended": media.ended,
    }


# -- the transcript ----------------------------------------------------------------------


def call_transcript(recordings_dir: str | os.PathLike[str], call_id: str) -> list[Transcript]:
    """A call's transcript events (final ones), in media-clock order; none when it has no file."""
    path = transcript_path(recordings_dir, call_id)
    if not path.is_file():
        return []
    return [e for e in read_transcript(path) if e.final]


def dialogue(events: Sequence[Transcript], stream_id: str) -> list[dict[str, Any]]:
    """One stream's dialogue lines: who spoke (caller, agent), when, what; keyword hits flagged."""
    lines = []
    for e in events:
        if e.stream_id != stream_id or e.kind == "speech":
            continue
        lines.append(
            {
                "speaker": SPEAKERS.get(e.track, e.track),
                "track": e.track,
                "start": e.start,
                "end": e.end,
                "text": e.text,
                "keyword": e.kind == "keyword",
                "engine": e.engine,
            }
        )
    return lines


def captions(events: Sequence[Transcript], stream_id: str) -> str:
    """The stream's transcript as WebVTT captions, as ``receiver transcript --format vtt`` writes them."""
    return format_vtt([e for e in events if e.stream_id == stream_id])
