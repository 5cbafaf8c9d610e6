"""
The simulator as the platform's REST API, driven by real client libraries over TLS.

``twilio`` (Python) and ``@signalwire/compatibility-api`` (Node) call
startStream / stopStream / the call update on a simulated SignalWire call; the
real receiver records what it gets, and the recordings must equal what the
simulator says it sent (``--record-sent``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import uvloop
from aiohttp import web

from receiver.app import ReceiverServer
from receiver.calls.listener import WebhookService
from receiver.config import Settings
from receiver.sinks import StreamInfo, StreamOutcome
from tests.prereq import IN_CI, needs_program

PROJECT, TOKEN = "b3877c40-da60-4998-90ad-b792e98472af", "PTtoken"
JS = Path(__file__).parent.parent / "js"
needs_node_client = pytest.mark.skipif(
    not (JS / "node_modules" / "@signalwire" / "compatibility-api").exists() and not IN_CI,
    reason="npm install --no-package-lock in tests/js (.ci/run does it)",
)

pytestmark = [needs_program("openssl"), needs_program("node", "nodejs"), needs_node_client]


def make_ca(root: Path) -> tuple[Path, Path, Path]:
    """A test CA and a certificate it signed for 127.0.0.1: (ca.pem, cert.pem, key.pem)."""

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=root, check=True, capture_output=True)

    run(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=receiver test CA",
        "-keyout", "ca.key", "-out", "ca.pem", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "key.pem", "-out", "api.csr")
    (root / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    run(
        "x509", "-req", "-in", "api.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "1", "-out", "cert.pem", "-extfile", "ext.cnf",
    )  # fmt: skip
    return root / "ca.pem", root / "cert.pem", root / "key.pem"


class Streams:
    """A stream observer: the receiver's view of every stream, as it starts and ends."""

    def __init__(self) -> None:
        self.started: asyncio.Queue[StreamInfo] = asyncio.Queue()
        self.ended: asyncio.Queue[tuple[StreamInfo, StreamOutcome]] = asyncio.Queue()

    def stream_started(self, info: StreamInfo) -> None:
        self.started.put_nowait(info)

    def stream_ended(self, info: StreamInfo, outcome: StreamOutcome) -> None:
        self.ended.put_nowait((info, outcome))


TWILIO_CLIENT = """
import json, sys
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

base, project, token, verb, call, arg = sys.argv[1:7]
client = Client(project, token)
client.api.base_url = base + "/api/laml"  # SignalWire's compatibility API lives under /api/laml
calls = client.api.v2010.accounts(project).calls(call)
try:
    if verb == "start":
        s = calls.streams.create(url=arg, name="second", track="both_tracks", status_callback=sys.argv[7])
    elif verb == "stop":
        s = calls.streams(arg).update(status="stopped")
    elif verb == "update":
        s = calls.streams(arg).update(status=sys.argv[7])
    else:
        c = calls.update(status="completed")
        print(json.dumps({"sid": c.sid, "status": c.status}))
        sys.exit(0)
except TwilioRestException as exc:
    print(json.dumps({"error": exc.msg, "status": exc.status, "code": exc.code}))
    sys.exit(0)
print(json.dumps({"sid": s.sid, "account_sid": s.account_sid, "call_sid": s.call_sid, "name": s.name,
                  "status": s.status, "date_updated": s.date_updated.isoformat(), "uri": s.uri}))
"""


async def client(ca: Path, *args: str, node: bool = False) -> dict[str, Any]:
    """Run a client library in its own process (as the application would); its printed JSON."""
    env = {**os.environ, "REQUESTS_CA_BUNDLE": str(ca), "NODE_EXTRA_CA_CERTS": str(ca)}
    command = ["node", str(JS / "compat_client.js"), *args] if node else [sys.executable, "-c", TWILIO_CLIENT, *args]
    proc = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert out, err.decode()[-2000:]
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


@contextlib.asynccontextmanager
async def callbacks() -> AsyncIterator[tuple[str, asyncio.Queue[dict[str, str]]]]:
    """An application's StatusCallback endpoint (form posts)."""
    got: asyncio.Queue[dict[str, str]] = asyncio.Queue()

    async def hook(request: web.Request) -> web.Response:
        got.put_nowait({k: str(v) for k, v in (await request.post()).items()})
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/status", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/status", got
    await runner.cleanup()


def samples(path: str | Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def test_client_libraries_start_and_stop_streams_of_a_simulated_call(tmp_path: Path) -> None:
    # Once, on uvloop: the simulator and the clients are processes of their own, whatever loop runs the test.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(scenario(tmp_path))


async def scenario(tmp_path: Path) -> None:
    ca, cert, key = make_ca(tmp_path)
    settings = Settings(
        host="127.0.0.1",
        port=0,
        recordings_dir=str(tmp_path / "recordings"),
        log_format="json",
        webhook_port=0,
        database=str(tmp_path / "calls.db"),
    )
    streams = Streams()
    async with (
        callbacks() as (callback_url, status_events),
        WebhookService(settings) as hooks,
        ReceiverServer(settings, observers=[*hooks.observers, streams]) as server,
    ):
        target = f"ws://127.0.0.1:{server.port}/signalwire"
        flow = tmp_path / "flow.json"
        flow.write_text(json.dumps({"actions": [{"type": "start_stream", "stream_url": target, "track": "both"}]}))
        sim = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "receiver", "simulate", str(flow), "--format", "signalwire", "--allow-insecure"],
            *["--api-port", "0", "--api-project", PROJECT, "--api-token", TOKEN, "--hold", "60"],
            *["--api-cert", str(cert), "--api-key", str(key), "--record-sent", str(tmp_path / "sent"), "--json"],
            *["--inbound-audio", "tone:440", "--outbound-audio", "tone:660", "--seed", "7"],
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            assert sim.stderr is not None
            base = ""
            async with asyncio.timeout(30):
                while not base:
                    line = (await sim.stderr.readline()).decode()
                    assert line, "the simulator exited before serving its API"
                    if line.startswith("REST API: "):
                        base = line.split()[2].split("/api/laml")[0]
            assert base.startswith("https://127.0.0.1:")
            host = base.removeprefix("https://")
            first = await asyncio.wait_for(streams.started.get(), 30)
            call = first.call_id

            # startStream, from the twilio Python library: a second stream of the same call.
            started = await client(ca, base, PROJECT, TOKEN, "start", call, target, callback_url)
            assert (started["status"], started["call_sid"], started["name"]) == ("in-progress", call, "second")
            assert (
                started["uri"] == f"/api/laml/2010-04-01/Accounts/{PROJECT}/Calls/{call}/Streams/{started['sid']}.json"
            )
            second = await asyncio.wait_for(streams.started.get(), 30)
            assert (second.call_id, second.stream_id) == (call, started["sid"])
            assert (await asyncio.wait_for(status_events.get(), 30))["StreamEvent"] == "stream-started"

            # stopStream, from SignalWire's Node library: the flow's stream stops at the receiver.
            stopped = await client(ca, host, PROJECT, TOKEN, "stop", call, first.stream_id, node=True)
            assert (stopped["sid"], stopped["callSid"], stopped["status"]) == (first.stream_id, call, "stopped")
            assert stopped["accountSid"] == PROJECT
            info, outcome = await asyncio.wait_for(streams.ended.get(), 30)
            assert (info.stream_id, outcome.close_code, outcome.reason) == (first.stream_id, 1000, "stop")

            # The compatibility API's errors, as the library reports them.
            bad = await client(ca, base, PROJECT, TOKEN, "update", call, started["sid"], "paused")
            assert (bad["status"], bad["code"]) == (400, 21218)
            missing = await client(ca, base, PROJECT, TOKEN, "stop", call, "no-such-stream")
            assert missing["status"] == 404
            wrong = await client(ca, base, PROJECT, "not-the-token", "stop", call, started["sid"])
            assert wrong["status"] == 401

            # stopStream from Python too, then hang the call up.
            done = await client(ca, base, PROJECT, TOKEN, "stop", call, started["sid"])
            assert done["status"] == "stopped"
            info, outcome = await asyncio.wait_for(streams.ended.get(), 30)
            assert (info.stream_id, outcome.close_code) == (started["sid"], 1000)
            assert (await asyncio.wait_for(status_events.get(), 30))["StreamEvent"] == "stream-stopped"
            hung = await client(ca, base, PROJECT, TOKEN, "hangup", call, "")
            assert hung["status"] == "completed"
            out, err = await asyncio.wait_for(sim.communicate(), 60)
        finally:
            if sim.returncode is None:
                sim.kill()
                await sim.wait()
    assert sim.returncode == 0, err.decode()[-2000:]
    summary = orjson.loads(out)
    [call_report] = summary["calls"]
    outcomes = {s["stream_id"]: (s["outcome"], s["planned_end"]) for s in call_report["streams"]}
    assert outcomes == {first.stream_id: ("stopped", "stop_stream"), started["sid"]: ("stopped", "stop_stream")}
    assert call_report["duration_seconds"] < 60  # the hang-up ended the hold

    # Both streams' recordings are sample-exact against what the simulator sent.
    for stream_id in (first.stream_id, started["sid"]):
        for track in ("inbound", "outbound"):
            recorded = tmp_path / "recordings" / call / f"{stream_id}.{track}.wav"
            sent = tmp_path / "sent" / call / f"{stream_id}.{track}.wav"
            assert len(samples(sent)) > 0
            assert np.array_equal(samples(recorded), samples(sent)), (stream_id, track)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--api-port", "0"], "--api-port needs --api-project and --api-token"),
        (["--api-port", "0", "--api-project", "p", "--api-token", "t", "--format", "minivoice"], "--format signalwire"),
        (["--api-token", "t"], "need --api-port"),
        (["--api-port", "0", "--api-project", "p", "--api-token", "t", "--api-cert", "c.pem"], "go together"),
        (["--hold", "-1"], "--hold must be"),
    ],
)
def test_api_options_are_checked_before_anything_runs(tmp_path: Path, extra: list[str], message: str) -> None:
    flow = tmp_path / "flow.json"
    flow.write_text(json.dumps({"actions": [{"type": "hangup"}]}))
    args = [sys.executable, "-m", "receiver", "simulate", str(flow), "--format", "signalwire", *extra]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert message in done.stderr
