"""
One contract, every built-in sink (uvicorn's parametrized-fixture habit).

What ``receiver.sinks`` promises, checked against WAV, pipe, VAD,
pocketsphinx and ``receiver.testing.RecordingSink``, each built the way the
server builds it (plugins through ``plugin_sinks``, so wrapped in
``PluginSink``):

- the object matches the ``Sink`` protocol (``name``, ``interval``, ``open``,
  ``write``, ``close``);
- ``open``, ``write``... ``close`` in that order, blocks in order with a hole
  where audio was lost, read-only arrays left as they were;
- ``close`` finalises: what the sink writes is complete and nothing it started
  is still running once ``close`` returns (also with no audio at all);
- a failing sink beside it never stops it: the stream's other sinks get
  everything and are closed;
- blocking work stays off the event loop: with the sink's own back end stalled
  (the WAV writer thread, the pipe's reader), the loop keeps running.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import wave
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from receiver.config import Settings
from receiver.events import Encoding, MediaFormat, MediaReceived, Platform, StreamStarted, Track
from receiver.logging import get_logger
from receiver.session import SessionStats
from receiver.sinks import AudioBlock, Sink, StreamInfo, StreamOutcome
from receiver.sinks import wav as wav_module
from receiver.sinks.wav import WavSink, repair_wav
from receiver.stream.pipeline import MediaSettings, StreamPipeline
from receiver.testing import RecordingSink
from receiver.transcription.plugins import plugin_sinks
from receiver.transcription.transcript import transcript_path

IN, OUT = Track.INBOUND, Track.OUTBOUND
RATE = 8000
BLOCK = 1600  # 200 ms
INFO = StreamInfo("str_c", "call_c", Platform.MINIVOICE, (IN, OUT), MediaFormat(Encoding.L16, RATE))
OUTCOME = StreamOutcome(reason="stop_stream", close_code=1000, duration_seconds=1.0, samples=RATE)
Audio = dict[Track, np.ndarray[Any, np.dtype[np.int16]]]


def voice(seconds: float, rate: int = RATE) -> np.ndarray[Any, np.dtype[np.int16]]:
    """A vowel-like sound (a 140 Hz voice with harmonics, slowly modulated): speech to a VAD, to the end."""
    t = np.arange(int(seconds * rate)) / rate
    signal = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 20)) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
    return (signal / np.abs(signal).max() * 12000).astype(np.int16)


def blocks(audio: Audio, *, hole_after: int | None = None) -> list[AudioBlock]:
    """The audio in 200 ms blocks, read-only; with ``hole_after``, the next block is lost (a hole)."""
    n = len(audio[IN])
    out = []
    for i, start in enumerate(range(0, n, BLOCK)):
        if hole_after is not None and i == hole_after + 1:
            continue
        channels = {t: audio[t][start : start + BLOCK].copy() for t in audio}
        for samples in channels.values():
            samples.flags.writeable = False
        out.append(AudioBlock(start, RATE, channels))
    return out


# -- the sinks, as the server builds them --------------------------------------------------


@dataclass
class Case:
    """One built-in sink: how it is built, and how to tell it finished its work."""

    make: Callable[[Path], Sink]
    finalised: Callable[[Sink, Path, Audio | None], None]


def _wav_finalised(sink: Sink, root: Path, audio: Audio | None) -> None:
    assert isinstance(sink, WavSink)
    expected = 0 if audio is None else len(audio[IN])
    for name in ("inbound", "outbound", "stereo"):
        path = root / "call_c" / f"str_c.{name}.wav"
        assert not repair_wav(path)  # the header agrees with the data
        with wave.open(str(path)) as w:
            assert w.getnframes() == expected
            data = np.frombuffer(w.readframes(expected), dtype="<i2").reshape(-1, w.getnchannels())
        if audio is not None and name != "stereo":
            assert np.array_equal(data[:, 0], audio[IN if name == "inbound" else OUT])


def _plugin(kind: str, **options: Any) -> Callable[[Path], Sink]:
    def make(root: Path) -> Sink:
        settings = Settings(recordings_dir=str(root), wav=False, sinks=({"plugin": kind, "options": options},))
        [factory] = plugin_sinks(settings)
        sink = factory(INFO)
        sink.outputs = factory.outputs  # type: ignore[attr-defined]  # for _transcripts_finalised
        return sink

    return make


def _transcripts_finalised(sink: Sink, root: Path, audio: Audio | None) -> None:
    outputs = sink.outputs  # type: ignore[attr-defined]
    assert outputs.live == {}  # released: every event written out
    assert [o.info.stream_id for o in outputs.finished] == ["str_c"]


def _vad_finalised(sink: Sink, root: Path, audio: Audio | None) -> None:
    _transcripts_finalised(sink, root, audio)
    path = transcript_path(root, "call_c")
    if audio is not None:  # speech to the last sample: only close can end the utterance
        assert path.read_text().count('"speech"') >= 2  # one per track at least


def _pipe_command(root: Path) -> list[str]:
    """A command that keeps its input: ``cat`` into ``{stream_id}.{track}.raw``."""
    return ["sh", "-c", 'cat > "$0"', f"{root}/{{stream_id}}.{{track}}.raw"]


def _pipe(root: Path) -> Sink:
    return _plugin("pipe", command=_pipe_command(root), sample_rate=8000)(root)


def _pipe_finalised(sink: Sink, root: Path, audio: Audio | None) -> None:
    _transcripts_finalised(sink, root, audio)
    for track, process in sink.plugin.processes.items():  # type: ignore[attr-defined]
        assert process.returncode == 0  # it read to the end of its input and exited
        data = (root / f"str_c.{track}.raw").read_bytes()
        assert len(data) == process.written
        if audio is not None:
            assert np.array_equal(np.frombuffer(data, dtype="<i2"), audio[track])


def _engine_finalised(sink: Sink, root: Path, audio: Audio | None) -> None:
    _transcripts_finalised(sink, root, audio)
    assert not any(t.running for t in sink.plugin._decoders.tracks)  # type: ignore[attr-defined]


def _recording_finalised(sink: Sink, root: Path, audio: Audio | None) -> None:
    assert isinstance(sink, RecordingSink)
    assert sink.calls[0] == "open" and sink.calls[-1] == "close" and sink.outcome is not None
    if audio is not None:
        assert np.array_equal(sink.audio(IN), audio[IN])


CASES = {
    "wav": Case(lambda root: WavSink(root), _wav_finalised),
    "pipe": Case(_pipe, _pipe_finalised),
    "vad": Case(_plugin("vad"), _vad_finalised),
    # Keyword spotting: the cheapest search, as the contract is about the sink, not the engine.
    "pocketsphinx": Case(_plugin("pocketsphinx", keywords=["cancel my order"]), _engine_finalised),
    "recording": Case(lambda root: RecordingSink(), _recording_finalised),
}


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> Case:
    return CASES[request.param]


@pytest.fixture
async def no_leftover_tasks() -> AsyncIterator[None]:
    """After the test, no task the sink started is still running (close waited for its work)."""
    before = asyncio.all_tasks()
    yield
    left = [t for t in asyncio.all_tasks() - before if not t.done() and t is not asyncio.current_task()]
    assert left == []


# -- the contract -------------------------------------------------------------------------


def test_every_built_in_sink_matches_the_protocol(case: Case, tmp_path: Path) -> None:
    sink = case.make(tmp_path)

    assert isinstance(sink, Sink)
    assert isinstance(sink.name, str) and sink.name
    assert isinstance(sink.interval, float | int) and sink.interval >= 0


async def test_open_write_close_with_a_hole_finalises_and_leaves_inputs_alone(
    case: Case, tmp_path: Path, no_leftover_tasks: None
) -> None:
    audio = {IN: voice(1.2), OUT: voice(1.2)[::-1].copy()}
    sent = blocks(audio, hole_after=2)
    copies = [{t: s.copy() for t, s in b.channels.items()} for b in sent]
    sink = case.make(tmp_path)

    await sink.open(INFO)
    for block in sent:
        await sink.write(block)
    await sink.close(OUTCOME)

    for block, copy in zip(sent, copies, strict=True):
        assert all(np.array_equal(block.channels[t], copy[t]) for t in copy)
    hole = BLOCK * 3
    expected = {t: np.concatenate([a[:hole], np.zeros(BLOCK, np.int16), a[hole + BLOCK :]]) for t, a in audio.items()}
    case.finalised(sink, tmp_path, expected)


async def test_close_right_after_open_finalises(case: Case, tmp_path: Path, no_leftover_tasks: None) -> None:
    sink = case.make(tmp_path)

    await sink.open(INFO)
    await sink.close(OUTCOME)

    case.finalised(sink, tmp_path, None)


class Failing:
    name = "failing"
    interval = 0.0

    async def open(self, stream: StreamInfo) -> None:
        pass

    async def write(self, block: AudioBlock) -> None:
        raise RuntimeError("this sink always fails")

    async def close(self, outcome: StreamOutcome) -> None:
        raise RuntimeError("and fails to close")


async def test_a_failing_sink_beside_it_changes_nothing_for_it(case: Case, tmp_path: Path) -> None:
    audio = {IN: voice(1.0), OUT: voice(1.0)}
    sink = case.make(tmp_path)
    started = StreamStarted(
        platform=Platform.MINIVOICE,
        stream_id="str_c",
        call_id="call_c",
        tracks=(IN, OUT),
        media_format=MediaFormat(Encoding.L16, RATE),
    )
    pipeline = StreamPipeline(started, MediaSettings(), [lambda i: Failing(), lambda i: sink], get_logger("test"))
    pipeline.start()
    for k in range(50):
        for track in (IN, OUT):
            payload = audio[track][k * 160 : (k + 1) * 160].astype("<i2").tobytes()
            pipeline.media(MediaReceived(track, k + 1, 20 * k, payload))
        await asyncio.sleep(0)  # the sinks take their blocks as a stream would give them time to

    outcome = await pipeline.finish(reason="stop_stream", close_code=1000, session=SessionStats())

    assert outcome.disabled_sinks == ("failing",)
    case.finalised(sink, tmp_path, audio)


# -- blocking work stays off the event loop ---------------------------------------------------


class Watchdog:
    """Releases a stalled back end once the event loop shows it is still running (or, failing that, at last)."""

    def __init__(self, release: Callable[[], None]) -> None:
        self.loop_ran = threading.Event()
        self.blocked = False
        self._release = release
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        # The long wait is a safety valve, not a measure: a loop that runs sets the event at once.
        if not self.loop_ran.wait(30):
            self.blocked = True
        self._release()


async def test_a_stalled_wav_writer_thread_never_stalls_the_event_loop(tmp_path: Path) -> None:
    gate = threading.Event()
    stalled = asyncio.get_running_loop().run_in_executor(wav_module._WRITER._executor, gate.wait)
    watchdog = Watchdog(gate.set)
    sink = WavSink(tmp_path)
    audio = {IN: voice(0.4), OUT: voice(0.4)}

    pending = asyncio.ensure_future(sink.open(INFO))
    await asyncio.sleep(0)
    asyncio.get_running_loop().call_soon(watchdog.loop_ran.set)  # runs only if the loop is free
    await pending
    for block in blocks(audio):
        await sink.write(block)
    await sink.close(OUTCOME)
    await stalled

    assert not watchdog.blocked
    _wav_finalised(sink, tmp_path, audio)


async def test_a_pipe_whose_command_stops_reading_never_stalls_write(tmp_path: Path) -> None:
    """The command reads nothing: ``write`` returns every time, the overflow is dropped and counted."""
    settings = Settings(
        recordings_dir=str(tmp_path),
        wav=False,
        sinks=(
            {
                "plugin": "pipe",
                "options": {"command": "sleep 60", "buffer_seconds": 0.5, "grace_seconds": 0.1, "kill_seconds": 5},
            },
        ),
    )
    [factory] = plugin_sinks(settings)
    sink = factory(INFO)
    audio = {IN: voice(10.0), OUT: voice(10.0)}

    await sink.open(INFO)
    for block in blocks(audio):
        await sink.write(block)  # 10 s of audio into a pipe nobody reads (the OS buffer holds ~4 s)
    await sink.close(OUTCOME)

    processes = sink.plugin.processes  # type: ignore[attr-defined]
    assert all(p.dropped > 0 and p.returncode is not None for p in processes.values())


def test_an_outcome_as_a_dict_is_what_dataclasses_asdict_gives_and_shares_nothing() -> None:
    outcome = StreamOutcome(
        reason="stop",
        close_code=1000,
        duration_seconds=1.5,
        samples=12_000,
        tracks={"inbound": {"frames": 75, "audio_gaps": 1}, "outbound": {"frames": 74, "audio_gaps": 0}},
        messages=151,
        sequence_gaps=2,
        audio_gaps=1,
        sink_losses={"wav": 0, "bus": 3},
        gap_spans={"inbound": ((160, 320), (800, 960))},
        sink_loss_spans={"bus": ((0, 480),)},
        disabled_sinks=("bus",),
        error="boom",
        files=("/r/a.inbound.wav", "/r/a.stereo.wav"),
        paused_seconds=0.5,
        pauses=({"start_seconds": 0.2, "end_seconds": 0.7, "behavior": "skip"},),
    )
    plain = outcome.as_dict()
    assert plain == dataclasses.asdict(outcome)
    assert [type(plain[k]) for k in ("tracks", "gap_spans", "files", "pauses")] == [dict, dict, tuple, tuple]
    assert type(plain["gap_spans"]["inbound"][0]) is tuple
    plain["tracks"]["inbound"]["frames"] = 0
    plain["pauses"][0]["behavior"] = "silence"
    assert outcome.tracks["inbound"]["frames"] == 75
    assert outcome.pauses[0]["behavior"] == "skip"
    assert StreamOutcome("stop", None, 0.0, 0).as_dict() == dataclasses.asdict(StreamOutcome("stop", None, 0.0, 0))
