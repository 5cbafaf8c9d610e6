"""The pipe plugin against real commands (Python scripts run with this interpreter)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from structlog.testing import capture_logs

from receiver.app import ReceiverServer
from receiver.config import Settings
from receiver.errors import ConfigError
from receiver.transcription.audio import convert
from receiver.transcription.pipe import PipeSink
from receiver.transcription.transcript import read_transcript, transcript_path

from ..conftest import wait_streams_done
from .helpers import stream_call, telephone

RECORD = """
import json, sys
out = open(sys.argv[1], "wb")
total = 0
said = False
while chunk := sys.stdin.buffer.read(4096):
    out.write(chunk)
    total += len(chunk)
    if total >= 16000 and not said:
        print("half a second in", flush=True)
        said = True
out.close()
print(json.dumps({"text": "read %d bytes" % total, "start": 0.25, "end": 1.5, "final": True}), flush=True)
"""

SLOW = """
import sys, time
while sys.stdin.buffer.read(64):
    time.sleep(0.01)
"""

CRASH = """
import sys
sys.stderr.write("model file missing\\nfatal: cannot start\\n")
sys.exit(3)
"""

NEVER_EXITS = """
import signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
while sys.stdin.buffer.read(4096):
    pass
print("stdin closed, staying on", flush=True)
while True:
    time.sleep(1)
"""


def _script(tmp_path: Path, name: str, source: str) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return str(path)


def _signal(seconds: float) -> np.ndarray:
    t = np.arange(int(8000 * seconds)) / 8000
    return (6000 * np.sin(2 * np.pi * 300 * t) * np.sin(2 * np.pi * 0.7 * t)).astype(np.int16)


def _settings(tmp_path: Path, command: list[str], **options: object) -> Settings:
    return Settings(
        host="127.0.0.1",
        port=0,
        recordings_dir=str(tmp_path / "recordings"),
        wav=False,
        sinks=({"plugin": "pipe", "options": {"command": command, **options}},),
    )


async def test_the_command_reads_the_stream_pcm_at_its_rate_and_its_lines_become_transcripts(tmp_path: Path) -> None:
    inbound, outbound = _signal(2.0), _signal(2.0)[::-1].copy()
    out = str(tmp_path / "{call_id}.{stream_id}.{track}.{rate}.pcm")
    settings = _settings(tmp_path, [sys.executable, _script(tmp_path, "record", RECORD), out], sample_rate=16000)
    async with ReceiverServer(settings) as server:
        await stream_call(server.port, inbound, outbound, call_id="call_pipe", stream_id="str_pipe")
        await wait_streams_done(server)

    for track, audio in (("inbound", inbound), ("outbound", outbound)):
        recorded = (tmp_path / f"call_pipe.str_pipe.{track}.16000.pcm").read_bytes()
        assert recorded == convert(telephone(audio), 8000, 16000).astype("<i2").tobytes()
    events = read_transcript(transcript_path(tmp_path / "recordings", "call_pipe"))
    for track in ("inbound", "outbound"):
        said = {e.text: e for e in events if e.track == track}
        assert sorted(said) == ["half a second in", "read 64000 bytes"]
        plain = said["half a second in"]  # plain text: timed at the audio fed so far
        assert 0.5 <= plain.start == plain.end <= 2.0
        final = said["read 64000 bytes"]  # JSON: its own times
        assert (final.start, final.end, final.final) == (0.25, 1.5, True)
    assert all(e.engine == "pipe" and e.call_id == "call_pipe" for e in events)


async def test_a_slow_command_loses_audio_counted_and_never_stalls_the_stream(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path,
        [sys.executable, _script(tmp_path, "slow", SLOW)],
        buffer_seconds=0.2,
        grace_seconds=0.2,
        kill_seconds=1.0,
    )
    # 20 s sent at once (faster than real time): no bound on media time's lead, so the burst reaches the command.
    settings = settings.replace(max_media_lead_seconds=0)
    with capture_logs() as logs:
        async with ReceiverServer(settings) as server:
            await stream_call(server.port, _signal(20.0))
            await wait_streams_done(server)

    closed = [e for e in logs if e["event"] == "pipe_closed"]
    assert len(closed) == 1
    assert closed[0]["bytes_dropped"] > 0
    assert closed[0]["bytes_written"] + closed[0]["bytes_dropped"] >= 2 * 16000 * 20 - 2 * 16000 * 0.2
    assert server.outcomes[-1].reason == "stop_stream" and server.outcomes[-1].disabled_sinks == ()


async def test_a_crashing_command_is_logged_with_its_stderr_and_exit_code_and_not_restarted(tmp_path: Path) -> None:
    settings = _settings(tmp_path, [sys.executable, _script(tmp_path, "crash", CRASH)])
    with capture_logs() as logs:
        async with ReceiverServer(settings) as server:
            await stream_call(server.port, _signal(2.0), _signal(2.0))
            await wait_streams_done(server)

    exited = [e for e in logs if e["event"] == "pipe_exited"]
    assert sorted(e["track"] for e in exited) == ["inbound", "outbound"]
    for e in exited:
        assert e["exit_code"] == 3 and e["restarted"] is False
        assert e["stderr_tail"] == ["model file missing", "fatal: cannot start"]
    assert server.outcomes[-1].reason == "stop_stream"


async def test_a_command_that_never_exits_gets_eof_then_terminate_then_kill(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path, [sys.executable, _script(tmp_path, "never", NEVER_EXITS)], grace_seconds=0.3, kill_seconds=0.3
    )
    with capture_logs() as logs:
        async with ReceiverServer(settings) as server:
            await stream_call(server.port, _signal(1.0), call_id="call_never")
            await wait_streams_done(server)

    assert [e["event"] for e in logs if e["event"].startswith("pipe_")] == ["pipe_terminated", "pipe_closed"]
    closed = next(e for e in logs if e["event"] == "pipe_closed")
    assert closed["exit_code"] == -9  # SIGTERM was ignored: killed
    assert closed["bytes_written"] == 16000 * 2
    events = read_transcript(transcript_path(tmp_path / "recordings", "call_never"))
    assert [e.text for e in events] == ["stdin closed, staying on"]  # it saw EOF


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"command": []}, "command is empty"),
        ({"command": ["no-such-command-xyz"]}, "not found"),
        ({"command": ["cat", "{callid}"]}, "may name"),
        ({"command": ["cat"], "sample_format": "int8"}, "sample_format"),
        ({"command": ["cat"], "color": "blue"}, "unexpected keyword"),
    ],
)
def test_bad_pipe_options_are_config_errors_at_start_up(
    tmp_path: Path, options: dict[str, object], message: str
) -> None:
    settings = Settings(recordings_dir=str(tmp_path), sinks=({"plugin": "pipe", "options": options},))

    with pytest.raises(ConfigError, match=message):
        ReceiverServer(settings)


def test_pipe_sink_formats_command_arguments() -> None:
    sink = PipeSink(command="cat --rate {rate} --track {track}")

    assert sink.args == ["cat", "--rate", "{rate}", "--track", "{track}"]
