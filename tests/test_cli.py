"""The ``receiver`` command as a real subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import wave
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from receiver.cli import main
from receiver.testing import MiniVoiceMessages


async def start_receiver(tmp_path: Path, *args: str) -> tuple[asyncio.subprocess.Process, int]:
    # No drain grace: SIGTERM closes live streams (1012) at once (drain itself: test_drain_process.py).
    env = {**os.environ, "RECEIVER_LOG_FORMAT": "json", "RECEIVER_DRAIN_TIMEOUT": "0"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "receiver",
        "serve",
        "--port",
        "0",
        "--webhook-port",
        "0",
        "--recordings-dir",
        str(tmp_path / "rec"),
        *args,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=tmp_path,
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
        for text in [
            m.connected(),
            m.start(tracks=("inbound",)),
            *[m.media("inbound", k + 1, 20 * k, b"\xff" * 160) for k in range(25)],
        ]:
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

    out = subprocess.run(
        [sys.executable, "-m", "receiver", "serve", "--config", str(bad)], capture_output=True, text=True, timeout=30
    )

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_workers_share_the_stream_and_webhook_ports_and_one_call_store(tmp_path: Path) -> None:
    port, webhook_port = free_port(), free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}, "RECEIVER_DRAIN_TIMEOUT": "0"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "receiver", "serve", "--workers", "2", "--port", str(port), "--webhook-port", str(webhook_port),
        "--database", str(tmp_path / "calls.db"), "--recordings-dir", str(tmp_path / "rec"), "--log-format", "json",
        stderr=asyncio.subprocess.PIPE, env=env, cwd=tmp_path, start_new_session=True,
    )  # fmt: skip
    assert proc.stderr is not None
    try:
        started: list[dict[str, object]] = []
        webhooks_started = 0
        while len(started) < 2 or webhooks_started < 2:
            line = await asyncio.wait_for(proc.stderr.readline(), 30)
            assert line, "receiver exited before its workers started"
            entry = json.loads(line)
            started += [entry] if entry["event"] == "server_started" else []
            webhooks_started += entry["event"] == "webhooks_started"
        assert {int(str(e["port"])) for e in started} == {port}
        drain = asyncio.ensure_future(proc.stderr.read())  # keep the log pipe flowing while the calls run

        calls = [MiniVoiceMessages(stream_id=f"str_w{i}", call_id=f"call_w{i}") for i in range(6)]
        for m in calls:  # the kernel spreads the connections over the workers
            async with connect(f"ws://127.0.0.1:{port}/minivoice") as ws:
                for text in [
                    m.connected(),
                    m.start(),
                    *[m.media(t, k + 1, 20 * k, b"\xff" * 160) for k in range(5) for t in ("inbound", "outbound")],
                    m.stop(),
                ]:
                    await ws.send(text)
                await asyncio.wait_for(ws.wait_closed(), 30)
        body = b'{"event": "call.completed", "created_at": "2026-05-29T12:10:00Z", "call": {"id": "call_w0", "status": "completed"}, "variables": {}, "data": {}}'
        for _ in range(4):  # the platform's retries, which may land on any worker
            reader, writer = await asyncio.open_connection("127.0.0.1", webhook_port)
            writer.write(
                b"POST /webhooks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                % (len(body), body)
            )
            assert (await asyncio.wait_for(reader.readline(), 30)).startswith(b"HTTP/1.1 200")
            writer.close()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        await asyncio.wait_for(drain, 30)  # EOF once every worker has gone too
    finally:
        # The workers are in the receiver's process group: none may outlive a failed test
        # (an orphan keeps the log pipe open and the next test's ports busy).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()

    for m in calls:
        with wave.open(str(tmp_path / "rec" / m.call_id / f"{m.stream_id}.stereo.wav")) as w:
            assert w.getnframes() == 5 * 160
    with sqlite3.connect(tmp_path / "calls.db") as db:
        streams = db.execute("SELECT call_id, stop_reason FROM streams ORDER BY call_id").fetchall()
        status = db.execute("SELECT status FROM calls WHERE call_id = 'call_w0'").fetchone()
        completed = db.execute("SELECT count(*) FROM events WHERE kind = 'call.completed'").fetchone()
    assert streams == [(m.call_id, "stop_stream") for m in calls]
    assert status == ("completed",)
    assert completed == (1,)


@pytest.mark.parametrize("flag", ["--port", "--webhook-port"])
def test_a_port_in_use_is_one_error_line_and_exit_1(tmp_path: Path, flag: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ports = {"--port": "0", "--webhook-port": "0", flag: str(port)}
        env = {k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}
        out = subprocess.run(
            [sys.executable, "-m", "receiver", "serve", *[x for kv in ports.items() for x in kv], "--log-format", "json",
             "--recordings-dir", str(tmp_path / "rec"), "--database", str(tmp_path / "calls.db")],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60,
        )  # fmt: skip
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    failed = [entry for entry in map(json.loads, out.stderr.splitlines()) if entry["event"] == "listen_failed"]
    setting = "webhook_port" if flag == "--webhook-port" else "host/port"
    assert len(failed) == 1 and f"127.0.0.1:{port}" in failed[0]["error"] and setting in failed[0]["error"]
    assert "in use" in failed[0]["error"]
