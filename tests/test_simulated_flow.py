"""The whole loop: simulator → /answer → stream to the receiver → webhooks → one record per call.

Runs ``receiver simulate`` (the simulator issue) as a real subprocess against
a real ``ReceiverServer`` and ``WebhookService``; skipped where the simulator
is not installed.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
from pathlib import Path

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from receiver.app import ReceiverServer
from receiver.calls.listener import WebhookService
from receiver.config import Settings
from receiver.testing import MiniVoiceMessages

from .conftest import wait_streams_done

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("receiver.simulator") is None, reason="the simulator is not installed"
)

CALLS = 2


def all_files(paths: list[str]) -> bool:
    return all(Path(p).is_file() for p in paths)


@pytest.mark.parametrize("signed", [False, True], ids=["open", "signed-urls"])
async def test_a_simulated_flow_leaves_one_complete_record_per_call(
    settings: Settings, tmp_path: Path, signed: bool
) -> None:
    # signed: the receiver requires stream tokens, and /answer signs the stream URLs it returns for each call.
    async with ReceiverServer(settings) as probe:
        stream_url = f"ws://127.0.0.1:{probe.port}/minivoice"  # a free port for the real receiver below
    actions = {
        "actions": [
            {"type": "start_recording"},
            {"type": "start_stream", "stream_url": stream_url, "track": "both"},
            {"type": "pause", "length": 1},
            {"type": "stop_recording"},
            {"type": "stop_stream"},
            {"type": "hangup"},
        ]
    }
    configured = settings.replace(
        port=int(stream_url.rsplit(":", 1)[1].split("/")[0]),
        webhook_port=0,
        database=str(tmp_path / "calls.db"),
        answer=True,
        answer_allow_ws=True,
        answer_actions=orjson.dumps(actions).decode(),
        auth_secrets=("loop-secret",) if signed else (),
        webhook_secret="hook-secret" if signed else "",  # /answer signs: it must know who asks
    )
    async with WebhookService(configured) as hooks, ReceiverServer(configured, observers=hooks.observers) as server:
        assert hooks.listener is not None
        base = f"http://127.0.0.1:{hooks.listener.port}"
        hook = "/hook-secret" if signed else ""
        env = {k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "receiver", "simulate", f"{base}/answer{hook}", "--allow-insecure", "--fast",
            "--webhook-url", f"{base}/webhooks{hook}", "--calls", str(CALLS), "--no-progress",
            env=env, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        async with asyncio.timeout(60):
            out, err = await proc.communicate()
        assert proc.returncode == 0, (out.decode()[-2000:], err.decode()[-2000:])
        await wait_streams_done(server, CALLS)
        await hooks.store.flush()
        calls = await hooks.store.list_calls()

        assert len(calls) == CALLS
        for call in calls:
            record = await hooks.store.get_call(call["call_id"])
            timeline = await hooks.store.call_events(call["call_id"])
            assert record is not None and timeline is not None
            assert record["status"] == "completed"
            [stream] = record["streams"]
            assert (stream["stop_reason"], stream["close_code"], stream["tracks"]) == (
                "stop_stream",
                1000,
                ["inbound", "outbound"],
            )
            assert all_files(stream["files"]) and len(stream["files"]) == 3
            assert [r["status"] for r in record["recordings"]] == ["completed"]
            assert {"answer_url", "stream.started", "stream.ended", "recording.completed", "call.completed"} <= {
                e["kind"] for e in timeline
            }
        if signed:  # the URL as configured, without a call's token, is refused at start (1008)
            mv = MiniVoiceMessages()
            async with connect(stream_url) as ws:
                await ws.send(mv.connected())
                await ws.send(mv.start())
                with pytest.raises(ConnectionClosed):
                    await ws.recv()
            assert ws.close_code == 1008
