"""Plugins by entry point, chosen per track in config.toml, fed converted audio."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from receiver.app import ReceiverServer
from receiver.config import Settings
from receiver.errors import ConfigError
from receiver.events import Encoding, MediaFormat, Platform, Track
from receiver.sinks import AudioBlock, StreamInfo, StreamOutcome
from receiver.transcription.audio import convert
from receiver.transcription.plugins import (
    PluginSink,
    SinkSpec,
    TranscriptOutputs,
    available_plugins,
    load_plugin,
    parse_specs,
)
from receiver.transcription.transcript import read_transcript, transcript_path

from ..conftest import wait_streams_done
from .helpers import stream_call

EXAMPLE = Path(__file__).parents[2] / "examples" / "receiver-loudness"


def test_the_built_in_plugins_are_registered_as_entry_points() -> None:
    assert {"wav", "pipe", "pocketsphinx", "vad"} <= set(available_plugins())


def test_sinks_come_from_config_toml(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        """
[recording]
recordings_dir = "rec"

[[sinks]]
plugin = "pocketsphinx"
tracks = ["inbound"]
options = { keywords = ["refund", "cancel my order"], kws_threshold = 1e-25 }

[[sinks]]
plugin = "pipe"
name = "asr"
options = { command = ["cat"] }
"""
    )
    settings = Settings.load(config, env={})
    specs = parse_specs(settings.sinks)

    assert [(s.plugin, s.name, s.tracks) for s in specs] == [
        ("pocketsphinx", "pocketsphinx", (Track.INBOUND,)),
        ("pipe", "asr", (Track.INBOUND, Track.OUTBOUND)),
    ]
    assert len(ReceiverServer(settings)._sinks) == 3  # wav, and the two plugins


def test_sinks_from_the_environment_are_json() -> None:
    settings = Settings.load(None, env={"RECEIVER_SINKS": '[{"plugin": "vad", "tracks": "outbound"}]'})

    assert parse_specs(settings.sinks) == [SinkSpec("vad", "vad", (Track.OUTBOUND,), {})]


@pytest.mark.parametrize(
    ("sinks", "message"),
    [
        ([{"plugin": "no-such-plugin"}], "unknown sink plugin 'no-such-plugin' \\(installed: .*pocketsphinx"),
        ([{"plugin": "vad", "tracks": ["left"]}], "tracks must name inbound, outbound or both"),
        ([{"plugin": "vad", "option": {}}], "unknown key"),
        ([{"plugin": "vad"}, {"plugin": "vad"}], "two sinks are named 'vad'"),
        ([{"plugin": "vad", "options": {"aggressiveness": 7}}], "aggressiveness"),
        (
            [{"plugin": "pocketsphinx", "options": {"keywords": ["xyzzyq"]}}],
            "not in the pronunciation dictionary: xyzzyq",
        ),
        ([{"plugin": "pocketsphinx", "options": {"keywords": "refund"}}], "list of phrases"),
        ([{"plugin": "pocketsphinx", "options": {"grammar": "/nonexistent.gram"}}], "not found"),
        ([{"plugin": "pocketsphinx", "options": {"decoder": {"nosuchsetting": 1}}}], "nosuchsetting"),
        ([{"plugin": "pocketsphinx", "options": {"decoder": {"samprate": 8000}}}], "the plugin owns: samprate"),
        ([{"plugin": "wav"}], "bad options"),
        ("[not json", "not valid JSON"),
        ({"plugin": "vad"}, "list of tables"),
    ],
)
def test_unknown_plugins_and_bad_options_are_config_errors_at_start_up(
    tmp_path: Path, sinks: Any, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        ReceiverServer(Settings(recordings_dir=str(tmp_path), sinks=sinks))


@dataclass
class _Probe:
    """A plugin that keeps what it gets, at 16 kHz float32."""

    name: str = "probe"
    interval: float = 0.0
    sample_rate: int = 16000
    sample_format: str = "float32"
    stream: StreamInfo | None = None
    blocks: list[AudioBlock] = field(default_factory=list)
    closed: StreamOutcome | None = None

    async def open(self, stream: StreamInfo) -> None:
        self.stream = stream

    async def write(self, block: AudioBlock) -> None:
        self.blocks.append(block)

    async def close(self, outcome: StreamOutcome) -> None:
        self.closed = outcome


def _info(tracks: tuple[Track, ...] = (Track.INBOUND, Track.OUTBOUND)) -> StreamInfo:
    return StreamInfo("str_1", "call_1", Platform.MINIVOICE, tracks, MediaFormat(Encoding.MULAW, 8000))


async def test_a_plugin_gets_only_its_tracks_converted_to_its_rate_and_format_with_lost_audio_as_silence(
    tmp_path: Path,
) -> None:
    probe = _Probe()
    sink = PluginSink(
        probe,
        SinkSpec("probe", "probe", (Track.OUTBOUND,), {}),
        TranscriptOutputs(recordings_dir=str(tmp_path), callback_url=None),
    )
    rng = np.random.default_rng(1)
    audio = {t: rng.integers(-8000, 8000, 8000).astype(np.int16) for t in Track}
    await sink.open(_info())
    for start, end in ((0, 1600), (1600, 3000), (5000, 8000)):  # 3000-5000 was lost by the fan-out
        await sink.write(AudioBlock(start, 8000, {t: audio[t][start:end] for t in Track}))
    outcome = StreamOutcome(reason="stop", close_code=1000, duration_seconds=1.0, samples=8000)
    await sink.close(outcome)

    assert probe.stream is not None and probe.stream.tracks == (Track.OUTBOUND,)
    assert all(set(b.channels) == {Track.OUTBOUND} and b.sample_rate == 16000 for b in probe.blocks)
    assert all(b.channels[Track.OUTBOUND].dtype == np.float32 for b in probe.blocks)
    starts = [b.start for b in probe.blocks]
    assert starts == [0, *np.cumsum([len(b) for b in probe.blocks])[:-1]]
    got = np.concatenate([b.channels[Track.OUTBOUND] for b in probe.blocks])
    expected_input = audio[Track.OUTBOUND].copy()
    expected_input[3000:5000] = 0
    np.testing.assert_allclose(got, convert(expected_input, 8000, 16000, "float32"), atol=1e-5)
    assert probe.closed == outcome


async def test_a_plugin_whose_tracks_are_not_in_the_stream_is_never_opened(tmp_path: Path) -> None:
    probe = _Probe()
    sink = PluginSink(
        probe,
        SinkSpec("probe", "probe", (Track.OUTBOUND,), {}),
        TranscriptOutputs(recordings_dir=str(tmp_path), callback_url=None),
    )
    await sink.open(_info((Track.INBOUND,)))
    await sink.write(AudioBlock(0, 8000, {Track.INBOUND: np.zeros(160, dtype=np.int16)}))
    await sink.close(StreamOutcome(reason="stop", close_code=1000, duration_seconds=0.02, samples=160))

    assert probe.stream is None and probe.blocks == [] and probe.closed is None


@pytest.fixture(scope="module")
def example_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example plugin package, pip-installed into a directory of its own."""
    target = tmp_path_factory.mktemp("site")
    build = tmp_path_factory.mktemp("build")
    source = shutil.copytree(EXAMPLE, build / EXAMPLE.name)  # setuptools builds in the source tree: not in the repo
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        capture_output=True,
        cwd=build,
    )
    return target


async def test_an_installed_third_party_plugin_is_loaded_through_its_entry_point(
    example_plugin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError):
        load_plugin("loudness")
    monkeypatch.syspath_prepend(str(example_plugin))
    assert load_plugin("loudness").__module__ == "receiver_loudness"
    settings = Settings(
        host="127.0.0.1",
        port=0,
        recordings_dir=str(tmp_path / "rec"),
        wav=False,
        sinks=({"plugin": "loudness", "tracks": "inbound", "options": {"threshold_db": -12}},),
    )
    t = np.arange(16000) / 8000
    loud = (20000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)  # about -4 dBFS
    inbound = np.concatenate([np.zeros(8000, dtype=np.int16), loud])  # quiet for 1 s, then loud for 2 s
    async with ReceiverServer(settings) as server:
        await stream_call(server.port, inbound, loud, call_id="call_loud")
        await wait_streams_done(server)
    events = read_transcript(transcript_path(tmp_path / "rec", "call_loud"))

    assert events and {(e.track, e.engine, e.kind) for e in events} == {("inbound", "loudness", "loudness")}
    assert min(e.start for e in events) >= 0.9
    assert max(e.end for e in events) >= 2.9
