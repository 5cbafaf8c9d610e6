"""``receiver transcribe``: a recorded call through transcription plugins after the fact.

The command runs its own event loop, so these tests are plain functions.
"""

from __future__ import annotations

import asyncio
import io
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import structlog

from receiver import cli
from receiver.app import ReceiverServer
from receiver.cli.transcribe import ProgressBar
from receiver.config import Settings
from receiver.transcription.audio import convert
from receiver.transcription.sphinx import transcribe
from receiver.transcription.transcript import read_transcript, transcript_path

from ..conftest import wait_streams_done
from .helpers import needs_espeak, speak, stream_call

pytestmark = needs_espeak

CONFIG = """
[[sinks]]
plugin = "pocketsphinx"
name = "spotter"
tracks = ["inbound"]
options = { keywords = ["refund"] }

[[sinks]]
plugin = "vad"
"""


@pytest.fixture(autouse=True)
def _logging() -> Iterator[None]:
    """The command configures logging for the process (to the stderr pytest captures): put it back after."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.fixture
def recorded(tmp_path: Path) -> Path:
    """A call the receiver recorded live with only the VAD listening: caller and agent."""
    recordings = tmp_path / "recordings"
    settings = Settings(host="127.0.0.1", port=0, recordings_dir=str(recordings), sinks=({"plugin": "vad"},))
    caller = np.concatenate([np.zeros(4000, np.int16), speak("I want a refund please"), np.zeros(4000, np.int16)])
    agent = np.concatenate([speak("thank you for calling"), np.zeros(len(caller), np.int16)])[: len(caller)]

    async def call() -> None:
        async with ReceiverServer(settings) as server:
            await stream_call(server.port, caller, agent, call_id="call_b", stream_id="str_b")
            await wait_streams_done(server, limit=60)

    asyncio.run(call())
    return recordings


def _wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def test_a_recorded_call_is_transcribed_again_as_it_would_have_been_live(recorded: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(CONFIG)
    before = read_transcript(transcript_path(recorded, "call_b"))
    run = ["transcribe", "call_b", "--config", str(config), "--recordings-dir", str(recorded)]

    assert cli.main([*run, "--plugin", "pocketsphinx"]) == 0  # not configured: its defaults, both tracks
    assert cli.main([*run, "--plugin", "spotter"]) == 0  # configured: its options and tracks
    assert cli.main([*run, "--plugin", "pocketsphinx"]) == 0  # again: replaces its own events

    after = read_transcript(transcript_path(recorded, "call_b"))
    assert [e for e in after if e.engine == "vad"] == [e for e in before if e.engine == "vad"]
    sphinx = [(e.track, e.start, e.end, e.text) for e in after if e.engine == "pocketsphinx"]
    for track in ("inbound", "outbound"):
        offline = transcribe(convert(_wav(recorded / "call_b" / f"str_b.{track}.wav"), 8000, 16000))
        assert offline, f"nothing heard on {track}"
        expected = [(track, round(s, 3), round(e, 3), text) for s, e, text, _k in offline]
        assert [x for x in sphinx if x[0] == track] == expected
    keywords = [(e.track, e.text, e.kind) for e in after if e.engine == "spotter"]
    assert keywords == [("inbound", "refund", "keyword")]


def test_a_call_without_recordings_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.toml"
    config.write_text(CONFIG)

    assert cli.main(["transcribe", "nope", "--config", str(config), "--recordings-dir", str(tmp_path)]) == 1
    assert "no recordings of call 'nope'" in capsys.readouterr().err
    assert cli.main(["transcribe", "nope", "--config", str(config), "--plugin", "no-such-plugin"]) == 2


def test_the_progress_bar_redraws_one_line_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Terminal()
    bar = ProgressBar(out)
    bar(0.0, 10.0)
    bar(0.2, 10.0)  # too soon to redraw
    bar(5.0, 10.0)
    bar(10.0, 10.0)
    bar.finish()

    lines = out.getvalue().split("\r")[1:]
    assert len(lines) == 3
    assert "]  50%  5.0/10.0 s of audio" in lines[1]
    assert lines[2].startswith("[" + "#" * (lines[2].index("]") - 1) + "] 100%")
    assert out.getvalue().endswith("\n")
