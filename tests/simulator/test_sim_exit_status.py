"""``receiver simulate`` exits non-zero on any failure, and its summary says which.

Each case runs the command as a subprocess against a real receiver (or a
closed port) on 127.0.0.1, as a CI script using the simulator would.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import pytest

from receiver.app import ReceiverServer
from receiver.config import Settings
from tests.conftest import wait_streams_done as streams_done

pytestmark = pytest.mark.one_loop


async def simulate(flow: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "receiver", "simulate", str(flow), "--allow-insecure", "--fast", "--no-progress", *args,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONWARNINGS": "error", **(env or {})},
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def flow_file(tmp_path: Path, stream_url: str) -> Path:
    flow = tmp_path / "flow.json"
    flow.write_text(
        json.dumps(
            {
                "actions": [
                    {"type": "start_stream", "stream_url": stream_url, "track": "both"},
                    {"type": "start_recording"},
                    {"type": "pause", "length": 0.4},
                    {"type": "hangup"},
                ]
            }
        )
    )
    return flow


async def test_a_closed_port_and_undelivered_webhooks_fail_the_run_and_are_named(
    tmp_path: Path, unused_tcp_port_factory: object
) -> None:
    port, hooks = unused_tcp_port_factory(), unused_tcp_port_factory()  # type: ignore[operator]
    flow = flow_file(tmp_path, f"ws://127.0.0.1:{port}/minivoice")
    webhooks = ["--webhook-url", f"http://127.0.0.1:{hooks}/webhooks", "--webhook-attempts", "1"]

    (code, out, err), (allowed, summary, _) = await asyncio.gather(
        simulate(flow, *webhooks), simulate(flow, *webhooks, "--allow-failures", "--json")
    )

    assert code == 1, out + err
    assert "result: FAILED" in out
    assert f"1 stream(s) could not connect, first: ws://127.0.0.1:{port}/minivoice" in out
    assert "2 webhook(s) not delivered, first: recording.completed after 1 attempt(s)" in out
    assert allowed == 0  # --allow-failures: for load runs that expect some
    streams, hooks_failed = json.loads(summary)["failures"]
    assert streams == (
        f"1 stream(s) could not connect, first: ws://127.0.0.1:{port}/minivoice: "
        "ConnectionRefusedError: [Errno 111] Connection refused"
    )
    assert hooks_failed.startswith("2 webhook(s) not delivered, first: recording.completed after 1 attempt(s): ")
    assert f"127.0.0.1:{hooks}" in hooks_failed


async def test_a_stream_the_receiver_refuses_fails_the_run(settings: Settings, tmp_path: Path) -> None:
    async with ReceiverServer(settings.replace(auth_bearer_tokens=("sesame",))) as server:
        flow = flow_file(tmp_path, f"ws://127.0.0.1:{server.port}/minivoice")

        code, out, _ = await simulate(flow)

    assert code == 1
    assert "1 stream(s) refused by the receiver, first: " in out and "HTTP 401" in out


async def test_a_clean_run_compared_with_the_recordings_exits_0(server: ReceiverServer, tmp_path: Path) -> None:
    flow = flow_file(tmp_path, f"ws://127.0.0.1:{server.port}/minivoice")
    recordings = Path(server.settings.recordings_dir)

    code, out, err = await simulate(flow, "--loss", "0.1", "--reorder-ms", "60", "--compare", str(recordings))
    await streams_done(server, 1)

    assert code == 0, out + err
    assert f"recordings: every file in {recordings} equals what was sent" in out
    assert out.rstrip().endswith("result: OK")


async def test_a_recording_that_differs_from_what_was_sent_fails_the_run(
    server: ReceiverServer, tmp_path: Path
) -> None:
    flow = flow_file(tmp_path, f"ws://127.0.0.1:{server.port}/minivoice")
    sent = tmp_path / "sent"
    code, _, _ = await simulate(flow, "--seed", "5", "--record-sent", str(sent))
    await streams_done(server, 1)
    assert code == 0
    # Another receiver's recordings: the same names, one of them a sample short.
    other = tmp_path / "other"
    shutil.copytree(sent, other)
    victim = next(other.rglob("*.inbound.wav"))
    with wave.open(str(victim), "rb") as w:
        params, frames = w.getparams(), w.readframes(w.getnframes())
    with wave.open(str(victim), "wb") as w:
        w.setparams(params)
        w.writeframes(frames[:-2])

    code, out, _ = await simulate(flow, "--seed", "5", "--compare", str(other), "--compare-timeout", "0.2")
    await streams_done(server, 2)

    assert code == 1
    assert "1 recording(s) differ from what was sent, first: " in out
    assert f"{victim.name}: {len(frames) // 2 - 1} samples, expected {len(frames) // 2}" in out


@pytest.mark.parametrize("option", [[], ["--config", "{config}"]], ids=["environment", "config-file"])
async def test_the_receiver_placeholder_follows_the_local_receivers_port_and_webhooks(
    settings: Settings, tmp_path: Path, unused_tcp_port_factory: object, option: list[str]
) -> None:
    from receiver.calls.listener import WebhookService

    port, hooks_port = unused_tcp_port_factory(), unused_tcp_port_factory()  # type: ignore[operator]
    configured = settings.replace(port=port, webhook_port=hooks_port, database=str(tmp_path / "calls.db"))
    flow = flow_file(tmp_path, "ws://{receiver}/minivoice")
    config = tmp_path / "receiver.toml"
    config.write_text(f"port = {port}\nwebhook_port = {hooks_port}\n")
    env = {"RECEIVER_PORT": str(port), "RECEIVER_WEBHOOK_PORT": str(hooks_port)} if not option else {}
    args = [a.replace("{config}", str(config)) for a in option]

    async with WebhookService(configured) as hooks, ReceiverServer(configured, observers=hooks.observers) as server:
        code, out, err = await simulate(flow, *args, "--seed", "11", env=env)
        await streams_done(server, 1)
        await hooks.store.flush()
        calls = await hooks.store.list_calls()

    assert code == 0, out + err
    assert "webhooks: 2 delivered, 0 failed" in out
    (call,) = calls
    assert call["status"] == "completed"


async def test_one_call_on_a_terminal_shows_its_progress(server: ReceiverServer, tmp_path: Path) -> None:
    flow = tmp_path / "flow.json"
    flow.write_text(
        json.dumps(
            {
                "actions": [
                    {"type": "start_stream", "stream_url": f"ws://127.0.0.1:{server.port}/x", "track": "both"},
                    {"type": "pause", "length": 1.3},
                    {"type": "hangup"},
                ]
            }
        )
    )
    controller, terminal = os.openpty()  # stderr is a terminal: progress is on by default
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "receiver", "simulate", str(flow), "--allow-insecure", "--loss", "0.2", "--seed", "3",
            stdout=subprocess.PIPE, stderr=terminal,
        )  # fmt: skip
        os.close(terminal)
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        err = await asyncio.to_thread(_read_all, controller)
    finally:
        os.close(controller)
    await streams_done(server, 1)

    assert proc.returncode == 0, out.decode() + err
    lines = [part for part in err.split("\r") if part.startswith("\033[Kcall ") and "/1.3 s | " in part]
    assert lines, err
    assert re.search(r"\| frames sent \d+/\d+ \| faults so far: \d+ lost \|", lines[0]), lines


def _read_all(fd: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the other side closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")
