"""
Transcription after the fact: a call's recordings through transcription plugins, as if the call streamed again.

Every stream of the call (its ``{stream_id}.{track}.wav`` files, which the WAV
sink keeps exactly as long as the media clock) is opened on each plugin with
the stream's tracks, fed in blocks through the same ``PluginSink`` as a live
stream (track selection, resampling, transcripts), and closed. Between
blocks, a plugin that decodes in the background (``wait_ready``) is waited
for, so nothing is dropped however slow the engine. The events the plugins
publish replace the call's earlier events from the same engine names in its
``transcript.jsonl`` (written whole, then renamed over the old file), so a
run can be repeated, with a better engine, on yesterday's calls.

Uses asyncio; never touches a socket.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import orjson

from receiver.config import SinkSpec
from receiver.errors import ConfigError
from receiver.events import Encoding, MediaFormat, Platform, Track
from receiver.sinks import AudioBlock, StreamInfo, StreamOutcome
from receiver.sinks.wav import safe_name
from receiver.transcription.plugins import PluginSink, TranscriptOutputs, build_plugin, load_plugin
from receiver.transcription.transcript import Transcript, read_transcript, sort_events, transcript_path

BLOCK_SECONDS: Final = 0.5
_TRACK_FILE: Final = re.compile(r"^(?P<stream>.+)\.(?P<track>inbound|outbound)\.wav$")

# (seconds of audio fed so far, seconds in all)
Progress = Callable[[float, float], None]


class NoRecordings(ConfigError):
    """The call has no recorded tracks to transcribe."""


@dataclass(frozen=True, slots=True)
class Recording:
    """One stream of a call as the WAV sink left it: a file per track, all one length."""

    stream_id: str
    rate: int
    files: dict[Track, Path]
    samples: int

    @property
    def seconds(self) -> float:
        return self.samples / self.rate


def recordings(recordings_dir: str | os.PathLike[str], call_id: str) -> list[Recording]:
    """The call's streams, by their per-track WAV files (the stereo file repeats them)."""
    directory = Path(recordings_dir) / safe_name(call_id)
    streams: dict[str, dict[Track, Path]] = {}
    for path in sorted(directory.glob("*.wav")) if directory.is_dir() else []:
        match = _TRACK_FILE.match(path.name)
        if match:
            streams.setdefault(match["stream"], {})[Track(match["track"])] = path
    out = []
    for stream_id, files in streams.items():
        shapes = set()
        for path in files.values():
            with wave.open(str(path)) as w:
                if w.getnchannels() != 1 or w.getsampwidth() != 2:
                    raise ConfigError(f"{path}: not a 16-bit mono WAV file as the receiver writes them")
                shapes.add((w.getframerate(), w.getnframes()))
        rate = min(r for r, _n in shapes)
        if len({r for r, _n in shapes}) > 1:
            raise ConfigError(f"stream {stream_id}: its tracks' files have different sample rates")
        out.append(Recording(stream_id, rate, files, max(n for _r, n in shapes)))
    return out


def specs_for(settings: Any, plugin: str | None) -> list[SinkSpec]:
    """The sinks to run: the configured ones (but the WAV recorder), or one by name.

    ``plugin`` is a sink's name in the settings (its plugin, options and
    tracks: a sink is named after its plugin unless it has a name of its
    own), or else a plugin, which then runs with its defaults on both tracks.
    """
    from receiver.transcription.plugins import parse_specs

    configured = [s for s in parse_specs(getattr(settings, "sinks", ())) if s.plugin != "wav"]
    if plugin is None:
        if not configured:
            raise ConfigError("no transcription sinks in the settings: name one with --plugin")
        return configured
    chosen = [s for s in configured if s.name == plugin]
    return chosen or [SinkSpec(plugin, plugin, (Track.INBOUND, Track.OUTBOUND), {})]


async def transcribe_call(
    recordings_dir: str,
    call_id: str,
    specs: Sequence[SinkSpec],
    *,
    progress: Progress | None = None,
) -> list[Transcript]:
    """Run ``specs`` over the call's recordings; returns the new events (also written to its transcript).

    Raises:
        NoRecordings: The call has no recorded tracks.
        ConfigError: An unknown plugin or bad options.
    """
    plugins = [(spec, load_plugin(spec.plugin)) for spec in specs]
    for spec, cls in plugins:
        build_plugin(cls, spec)  # bad options fail before any audio is read
    streams = recordings(recordings_dir, call_id)
    if not streams:
        raise NoRecordings(f"no recordings of call {call_id!r} in {Path(recordings_dir) / safe_name(call_id)}")
    total = sum(s.seconds for s in streams) * len(plugins)
    done = 0.0
    with tempfile.TemporaryDirectory(prefix="receiver-transcribe-") as scratch:
        outputs = TranscriptOutputs(recordings_dir=scratch, callback_url=None)
        for stream in streams:
            audio = {track: _read(path) for track, path in stream.files.items()}
            info = StreamInfo(
                stream.stream_id,
                call_id,
                Platform.MINIVOICE,  # not recorded with the audio; sinks use it for labels only
                tuple(t for t in (Track.INBOUND, Track.OUTBOUND) if t in audio),
                MediaFormat(Encoding.L16, stream.rate),
            )
            for spec, cls in plugins:
                sink = PluginSink(build_plugin(cls, spec), spec, outputs)

                def fed(seconds: float, base: float = done) -> None:
                    if progress is not None:
                        progress(base + seconds, total)

                await _feed(sink, info, audio, stream, fed)
                done += stream.seconds
        new = _read_all(transcript_path(scratch, call_id))
    _replace(transcript_path(recordings_dir, call_id), {s.name for s in specs}, new)
    return new


async def _feed(
    sink: PluginSink,
    info: StreamInfo,
    audio: dict[Track, np.ndarray[Any, np.dtype[np.int16]]],
    stream: Recording,
    fed: Callable[[float], None],
) -> None:
    await sink.open(info)
    step = int(BLOCK_SECONDS * stream.rate)
    for start in range(0, stream.samples, step):
        channels = {}
        for track, samples in audio.items():
            block = samples[start : start + step]
            if len(block) < min(step, stream.samples - start):  # a track shorter than the stream: silence
                block = np.pad(block, (0, min(step, stream.samples - start) - len(block)))
            block.flags.writeable = False
            channels[track] = block
        await sink.write(AudioBlock(start, stream.rate, channels))
        wait_ready = getattr(sink.plugin, "wait_ready", None)
        if wait_ready is not None:
            await wait_ready()
        else:
            await asyncio.sleep(0)  # let a plugin's own tasks run
        fed(min(start + step, stream.samples) / stream.rate)
    seconds = stream.seconds
    tracks = {str(t): {"samples_received": stream.samples} for t in audio}
    await sink.close(StreamOutcome("batch", None, seconds, stream.samples, tracks))


def _read(path: Path) -> np.ndarray[Any, np.dtype[np.int16]]:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)


def _read_all(path: Path) -> list[Transcript]:
    return read_transcript(path) if path.is_file() else []


def _replace(path: Path, engines: set[str], new: list[Transcript]) -> None:
    """The call's transcript without ``engines``' earlier events, with ``new``: written whole, then renamed."""
    kept = [e for e in _read_all(path) if e.engine not in engines]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".transcript-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.writelines(orjson.dumps(e.as_dict()) + b"\n" for e in sort_events([*kept, *new]))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
