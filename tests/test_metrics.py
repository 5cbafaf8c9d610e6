"""``GET /metrics`` on a real ``receiver serve``: it parses, counts what happened, is documented, sits
behind the port's credentials, and sums every worker of ``--workers``."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from receiver.metrics import SAMPLE_EVERY
from receiver.testing import MiniVoiceMessages

from .serve_process import ReceiverProcess

DOCS = Path(__file__).parent.parent / "docs" / "metrics.md"
FRAMES = 40  # per track: 80 media messages, so one of them is timed
assert 2 * FRAMES + 3 < 2 * SAMPLE_EVERY


def stream_call(port: int, call_id: str, *, lose: int | None = None, duplicate: int | None = None) -> None:
    """A two-track MiniVoice stream of FRAMES frames per track; optionally one frame lost or sent twice."""
    m = MiniVoiceMessages(stream_id=f"str_{call_id}", call_id=call_id)
    with connect(f"ws://127.0.0.1:{port}/minivoice") as ws:
        ws.send(m.connected())
        ws.send(m.start())
        for k in range(FRAMES):
            for track in ("inbound", "outbound"):
                if k == lose and track == "inbound":
                    continue
                ws.send(m.media(track, k + 1, 20 * k, b"\x7f" * 160))
                if k == duplicate and track == "outbound":
                    ws.send(m.media(track, k + 1, 20 * k, b"\x7f" * 160))
        ws.send(m.stop())
        with contextlib.suppress(ConnectionClosed):  # the receiver closes after stop
            ws.recv(timeout=10)


def scrape(port: int, query: str = "") -> dict[str, list[Sample]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics{query}", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        text = response.read().decode()
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def value(families: dict[str, list[Sample]], sample: str, **labels: str) -> float:
    name = sample.removesuffix("_total").removesuffix("_count").removesuffix("_sum")
    found = [
        s.value
        for s in families.get(name, [])
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    return sum(found)


def post_webhook(port: int, call_id: str, path: str = "/webhooks") -> int:
    body = {"event": "call.completed", "created_at": "2026-05-29T12:10:00Z", "call": {"id": call_id}, "data": {}}
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code


def test_metrics_count_streams_media_faults_webhooks_and_timing_and_every_one_is_documented(tmp_path: Path) -> None:
    with ReceiverProcess(tmp_path) as receiver:
        api = int(receiver.wait_for("webhooks_started")["port"])
        stream_call(receiver.port, "call_m1", lose=10, duplicate=20)
        receiver.wait_for("stream_ended", call_id="call_m1")
        assert post_webhook(api, "call_m1") == 200
        assert post_webhook(api, "call_m1") == 200  # the platform's retry: a duplicate
        assert post_webhook(api, "call_m1", "/webhooks?x=1") == 200
        families = scrape(api)

    assert value(families, "receiver_streams_started_total", platform="minivoice") == 1
    assert value(families, "receiver_streams_active", platform="minivoice") == 0
    assert value(families, "receiver_streams_ended_total", outcome="stop_stream", code="1000") == 1
    assert (
        value(families, "receiver_messages_total") == 2 + 2 * FRAMES + 1
    )  # connected, start, media (one lost, one twice), stop
    assert value(families, "receiver_media_frames_total", track="inbound") == FRAMES - 1
    assert value(families, "receiver_media_frames_total", track="outbound") == FRAMES
    assert value(families, "receiver_media_bytes_total", track="outbound") == FRAMES * 160
    assert value(families, "receiver_media_gaps_total", track="inbound") == 1
    assert value(families, "receiver_media_gap_seconds_total", track="inbound") == pytest.approx(0.02)
    assert value(families, "receiver_media_duplicate_frames_total", track="outbound") == 1
    assert value(families, "receiver_sink_lost_seconds_total", sink="wav") == 0
    assert value(families, "receiver_webhook_requests_total", event="call.completed", result="stored") == 1
    assert value(families, "receiver_webhook_requests_total", event="call.completed", result="duplicate") == 2
    assert value(families, "receiver_message_seconds_count") == 1  # message 64 of 83
    assert value(families, "receiver_store_seconds_count", op="write") >= 3
    documented = set(re.findall(r"`(receiver_[a-z_]+)`", DOCS.read_text()))
    ours = {name for name in families if name.startswith("receiver_")}
    assert ours <= {n.removesuffix("_total") for n in documented}, ours - documented


def test_metrics_ask_for_the_ports_credentials_when_configured(tmp_path: Path) -> None:
    with ReceiverProcess(tmp_path, env={"RECEIVER_WEBHOOK_SECRET": "m3trics"}) as receiver:
        api = int(receiver.wait_for("webhooks_started")["port"])
        with pytest.raises(urllib.error.HTTPError) as refused:
            scrape(api)
        assert post_webhook(api, "call_x", "/webhooks/wrong") == 401
        families = scrape(api, "?token=m3trics")

    refused.value.close()
    assert refused.value.code == 401
    assert value(families, "receiver_webhook_requests_total", event="none", result="unauthorized") == 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def until(check: Callable[[], bool], seconds: float = 30.0) -> None:
    """Poll ``check`` (an HTTP endpoint of another process) until it holds."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def test_workers_metrics_are_the_sum_of_every_worker_whichever_answers(tmp_path: Path) -> None:
    port, api = free_port(), free_port()
    calls = 8
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RECEIVER_", "PROMETHEUS_"))}
    with open(tmp_path / "log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "receiver", "serve", "--workers", "2", "--port", str(port), "--webhook-port", str(api),
             "--recordings-dir", str(tmp_path / "rec"), "--database", str(tmp_path / "calls.db"), "--log-format", "json"],
            cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
    try:
        until(lambda: answers(f"http://127.0.0.1:{port}/readyz") and answers(f"http://127.0.0.1:{api}/healthz"))
        for i in range(calls):  # the kernel spreads the connections over the workers
            stream_call(port, f"call_w{i}")
        until(lambda: value(scrape(api), "receiver_streams_ended_total") == calls)
        scrapes = [scrape(api) for _ in range(6)]  # new connections: either worker may answer each
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)

    for families in scrapes:
        assert value(families, "receiver_streams_started_total") == calls
        assert value(families, "receiver_streams_active") == 0
        assert value(families, "receiver_media_frames_total") == calls * 2 * FRAMES
    assert not list(Path(tempfile.gettempdir()).glob(f"receiver-metrics-*/*_{proc.pid}.db"))


def test_the_grafana_dashboard_uses_only_documented_metrics() -> None:
    dashboard = json.loads((Path(__file__).parent.parent / "deploy" / "grafana-dashboard.json").read_text())
    used = {
        re.sub(r"_(bucket|sum|count)$", "", name)
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"receiver_[a-z_]+", target["expr"])
    }
    documented = set(re.findall(r"`(receiver_[a-z_]+)`", DOCS.read_text()))

    assert len(used) >= 15
    assert used <= documented, used - documented
