"""The ``receiver`` command as a real subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import wave
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from receiver.cli import main
from receiver.testing import MiniVoiceMessages


async def start_receiver(tmp_path: Path, *args: str) -> tuple[asyncio.subprocess.Process, int]:
    env = {**os.environ, "RECEIVER_LOG_FORMAT": "json"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "receiver", "serve", "--port", "0", "--recordings-dir", str(tmp_path / "rec"), *args,
        stderr=asyncio.subprocess.PIPE, env=env, cwd=tmp_path,
    )
    assert proc.stderr is not None
    while True:
        line = await asyncio.wait_for(proc.stderr.readline(), 20)
        assert line, "receiver exited before it started"
        entry = json.loads(line)
        if entry["event"] == "server_started":
            return proc, int(entry["port"])


async def test_serve_answers_health_records_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    proc, port = await start_receiver(tmp_path)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        writer.close()

        m = MiniVoiceMessages(stream_id="str_cli", call_id="call_cli")
        ws = await connect(f"ws://127.0.0.1:{port}/stream")
        for text in [m.connected(), m.start(tracks=("inbound",)), *[m.media("inbound", k + 1, 20 * k, b"\xff" * 160) for k in range(25)]]:
            await ws.send(text)
        await ws.ping()  # every message before the ping has been read by the server
        proc.send_signal(signal.SIGTERM)  # mid-stream: the stream is closed and its files finalised
        await asyncio.wait_for(ws.wait_closed(), 20)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    with wave.open(str(tmp_path / "rec" / "call_cli" / "str_cli.inbound.wav")) as w:
        assert w.getnframes() == 25 * 160


def test_bad_configuration_exits_with_a_clear_message(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("port = 'eighty'\n")

    out = subprocess.run([sys.executable, "-m", "receiver", "serve", "--config", str(bad)], capture_output=True, text=True, timeout=30)

    assert out.returncode == 2
    assert "configuration error" in out.stderr


def test_repair_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "a.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
    with open(path, "ab") as f:
        f.write(b"\x01\x00" * 10)

    assert main(["repair", str(tmp_path)]) == 0

    assert "1 file(s) repaired" in capsys.readouterr().out
    with wave.open(str(path)) as w:
        assert w.getnframes() == 10
