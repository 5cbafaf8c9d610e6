"""
The scale-out topology end to end, every piece real, with faults.

HAProxy on 127.0.0.1 (``deploy/haproxy.cfg`` itself) in front of two
receivers on 127.0.0.2 and 127.0.0.3 (each with its webhook listener), one
PostgreSQL call store, one Redis bus, workers running the ``pipe`` plugin
with ``wc -c``, and ``receiver simulate`` placing calls through HAProxy with
its webhooks spread over both listeners. Faults: the worker holding the
first streams is SIGKILLed mid-call (another takes its streams over and a
third joins), then one receiver gets SIGTERM (it drains: its calls run to
their end, new calls go to the other).

Checks: every call's record complete and once in PostgreSQL; every stream's
recording sample-exact against what the simulator sent; every stream
transcribed (``wc -c`` counts exactly the bytes due: the whole stream where
its worker kept it, from the first unacknowledged block on where a worker
took it over); no event stored twice; the bus empty and small at the end.

The run's figures (takeover time, streams resumed, bus memory) are printed
(``-s`` shows them; ``make cluster`` does).

Size: ``RECEIVER_CLUSTER_CALLS`` calls of ``RECEIVER_CLUSTER_SECONDS``
seconds, ``RECEIVER_CLUSTER_CONCURRENCY`` at once (the suite's short run: 6
calls of 4 s, 2 at once; ``make cluster``: 20 calls of 8 s, 4 at once).
``RECEIVER_CLUSTER_MONITOR=1`` records every Redis command of the run in
``monitor.log`` beside the processes' files (for a failure to be read later).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import wave
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
import redis
from psycopg.rows import dict_row

from ..serve_process import LoggedProcess
from ..services import PostgresServer, RedisServer, free_port, missing, recorded_call, wait_until

ROOT = Path(__file__).resolve().parents[2]
CALLS = int(os.environ.get("RECEIVER_CLUSTER_CALLS", "6"))
SECONDS = float(os.environ.get("RECEIVER_CLUSTER_SECONDS", "4"))
CONCURRENCY = int(os.environ.get("RECEIVER_CLUSTER_CONCURRENCY", "2"))
CLAIM_TIMEOUT = 4.0  # short for the test; a loaded 2-core machine still renews well within it
PREFIX = "cluster"

WORKER_TOML = """
[[sinks]]
plugin = "pipe"
name = "count"
options = { command = "wc -c", sample_rate = 8000 }
"""


def _ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


class Cluster:
    def __init__(self, root: Path, pg: PostgresServer, bus: RedisServer) -> None:
        self.root = root
        self.database = pg.create_database("cluster")
        self.bus = bus
        self.env = {
            "RECEIVER_DATABASE": self.database,
            "RECEIVER_BUS_URL": bus.url,
            "RECEIVER_BUS_PREFIX": PREFIX,
            "RECEIVER_LOG_FORMAT": "json",
            "RECEIVER_DRAIN_TIMEOUT": "120",
            "RECEIVER_WORKER_CLAIM_TIMEOUT": str(CLAIM_TIMEOUT),
            "RECEIVER_WORKER_STREAMS": "64",
        }
        self.receivers: dict[str, LoggedProcess] = {}
        self.workers: dict[str, LoggedProcess] = {}
        self.addresses: dict[str, tuple[str, int, int]] = {}
        self.haproxy: subprocess.Popen[bytes] | None = None
        self.open_files: list[Any] = []

    def start(self) -> None:
        root = self.root
        if os.environ.get("RECEIVER_CLUSTER_MONITOR"):
            mon = open(root / "monitor.log", "wb")  # noqa: SIM115
            self.open_files.append(mon)
            self.monitor = subprocess.Popen(["redis-cli", "-p", str(self.bus.port), "monitor"], stdout=mon)
        for name, host in (("r1", "127.0.0.2"), ("r2", "127.0.0.3")):
            port, hooks = free_port(host), free_port(host)
            self.addresses[name] = (host, port, hooks)
            (root / name).mkdir()
            env = {**self.env, "RECEIVER_HOST": host, "RECEIVER_WEBHOOK_HOST": host}
            self.receivers[name] = LoggedProcess(
                [
                    "serve",
                    "--port",
                    str(port),
                    "--webhook-port",
                    str(hooks),
                    "--recordings-dir",
                    str(root / name / "rec"),
                ],
                cwd=root / name,
                env=env,
            )
        (root / "worker.toml").write_text(WORKER_TOML)
        for proc in self.receivers.values():
            proc.wait_for("server_started")
        self.streams_port, self.hooks_port = free_port(), free_port()
        haproxy_log = open(root / "haproxy.log", "wb")  # noqa: SIM115 (closed in stop)
        self.open_files.append(haproxy_log)
        (h1, p1, w1), (h2, p2, w2) = self.addresses["r1"], self.addresses["r2"]
        self.haproxy = subprocess.Popen(
            ["haproxy", "-db", "-f", str(ROOT / "deploy" / "haproxy.cfg")],
            env={
                **os.environ,
                "STREAMS_BIND": f"127.0.0.1:{self.streams_port}",
                "WEBHOOKS_BIND": f"127.0.0.1:{self.hooks_port}",
                "RECEIVER1": f"{h1}:{p1}",
                "RECEIVER2": f"{h2}:{p2}",
                "LISTENER1": f"{h1}:{w1}",
                "LISTENER2": f"{h2}:{w2}",
                "CHECK_INTERVAL": "300ms",
            },
            stdin=subprocess.DEVNULL,
            stdout=haproxy_log,
            stderr=subprocess.STDOUT,
        )
        wait_until(lambda: _ok(f"http://127.0.0.1:{self.streams_port}/readyz"), 20, "haproxy (streams)")
        wait_until(lambda: _ok(f"http://127.0.0.1:{self.hooks_port}/healthz"), 20, "haproxy (webhooks)")

    def start_worker(self, name: str) -> LoggedProcess:
        (self.root / name).mkdir()
        proc = LoggedProcess(
            ["worker", "--config", str(self.root / "worker.toml"), "--name", name,
             "--recordings-dir", str(self.root / name / "rec")],
            cwd=self.root / name,
            env=self.env,
        )  # fmt: skip
        proc.wait_for("worker_started")
        self.workers[name] = proc
        return proc

    sim: subprocess.Popen[bytes]

    def simulate(self) -> subprocess.Popen[bytes]:
        url = f"ws://127.0.0.1:{self.streams_port}/minivoice"
        (self.root / "flow.json").write_text(json.dumps(recorded_call(url, SECONDS)))
        out = open(self.root / "simulate.json", "wb")  # noqa: SIM115 (closed in stop)
        self.open_files.append(out)
        self.sim = subprocess.Popen(
            [sys.executable, "-m", "receiver", "simulate", str(self.root / "flow.json"), "--allow-insecure",
             "--calls", str(CALLS), "--concurrency", str(CONCURRENCY), "--seed", "17", "--json",
             "--webhook-url", f"http://127.0.0.1:{self.hooks_port}/webhooks", "--webhook-backoff", "0.2",
             "--record-sent", str(self.root / "sent"), "--inbound-audio", "tone:440", "--outbound-audio", "tone:660"],
            cwd=self.root, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        return self.sim

    def stop(self) -> None:
        for proc in [*self.workers.values(), *self.receivers.values()]:
            proc.kill()
        for popen in (self.haproxy, getattr(self, "sim", None)):
            if popen is not None and popen.poll() is None:
                popen.kill()
            if popen is not None:
                popen.wait(10)
        for f in self.open_files:
            f.close()


@pytest.fixture
def cluster(tmp_path: Path, postgres_server: PostgresServer, redis_server: RedisServer) -> Any:
    if shutil.which("haproxy") is None:
        missing("haproxy")
    if shutil.which("wc") is None:
        missing("wc")
    c = Cluster(tmp_path, postgres_server, redis_server)
    try:
        c.start()
        yield c
    finally:
        c.stop()


def _stamp(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()


def _live_streams(events: list[dict[str, Any]]) -> int:
    started = sum(1 for e in events if e.get("event") == "stream_started")
    ended = sum(1 for e in events if e.get("event") == "stream_ended" and e.get("started", True))
    return started - ended


def test_calls_through_haproxy_survive_a_killed_worker_and_a_draining_receiver(cluster: Cluster) -> None:
    r1, r2 = cluster.receivers["r1"], cluster.receivers["r2"]
    bus = redis.Redis.from_url(cluster.bus.url)
    pool = [cluster.start_worker("w1"), cluster.start_worker("w2")]
    sim = cluster.simulate()

    # Fault 1: the worker that took the first stream is killed mid-call, once it has acknowledged a second of it.
    wait_until(lambda: any(w.found("bus_stream_taken") for w in pool), 30, "a worker taking a stream")
    victim = next(w for w in pool if w.found("bus_stream_taken"))
    survivor = next(w for w in pool if w is not victim)
    first = victim.found("bus_stream_taken")[0]
    # The audio key carries the stream's connection id before its stream id (receiver.bus.BusKeys).
    pattern = f"{PREFIX}:audio:*:{first['stream_id']}"
    wait_until(
        lambda: any(_acknowledged(bus, key.decode()) >= 5 for key in bus.scan_iter(pattern)),
        30,
        "the first second acknowledged",
    )
    killed_at = time.time()
    victim.proc.send_signal(signal.SIGKILL)
    victim.wait(10)
    held = {e["stream_id"] for e in victim.found("bus_stream_taken")} - {
        e["stream_id"] for e in victim.found("bus_stream_done")
    }
    taken = survivor.wait_for("bus_stream_taken", timeout=30, stream_id=first["stream_id"], resumed=True)
    takeover_seconds = _stamp(taken) - killed_at
    cluster.start_worker("w3")  # a new worker joins and shares what comes next

    # Fault 2: once both listeners have stored webhooks, the first receiver seen with a live call is drained.
    for receiver in (r1, r2):
        receiver.wait_for("webhook_stored", timeout=60)
    wait_until(lambda: any(_live_streams(r.events) for r in (r1, r2)), 60, "a live stream on a receiver")
    drained, other = (r1, r2) if _live_streams(r1.events) else (r2, r1)
    drained.signal(signal.SIGTERM)
    drained_live = _live_streams(drained.events)

    assert sim.wait(300) == 0
    assert drained.wait(120) == 0
    other.signal(signal.SIGTERM)  # the run is over: it finishes its files and its writes, and exits cleanly
    assert other.wait(120) == 0
    report = json.loads((cluster.root / "simulate.json").read_text())["summary"]
    streams = report["streams"]
    workers = list(cluster.workers.values())
    try:
        wait_until(lambda: len(_done(workers)) >= streams, 120, "every stream transcribed")
    except TimeoutError:
        summary = {
            n: [
                (e["event"], e.get("stream_id"), e.get("reason"))
                for e in w.events
                if str(e.get("event", "")).startswith("bus_")
            ]
            for n, w in cluster.workers.items()
        }
        raise AssertionError(f"{len(_done(workers))} of {streams} streams done: {json.dumps(summary)[:6000]}") from None

    # The simulator: every call completed, every webhook delivered (through HAProxy).
    assert (report["calls_completed"], report["calls_failed"], report["connection_errors"]) == (CALLS, 0, 0)
    assert report["webhooks_failed"] == 0
    assert drained.found("server_drained") and drained_live > 0
    assert drained.found("server_drained")[0]["remaining_streams"] == 0  # its calls ran to their end
    assert r1.found("webhook_stored") and r2.found("webhook_stored")  # webhooks spread over both listeners

    # Recordings: what the simulator sent, sample for sample, whichever receiver took the stream.
    sent = cluster.root / "sent"
    recorded = {
        p.relative_to(cluster.root / r / "rec"): p
        for r in ("r1", "r2")
        for p in (cluster.root / r / "rec").rglob("*.wav")
    }
    sent_files = sorted(p.relative_to(sent) for p in sent.rglob("*.wav"))
    assert sent_files and set(sent_files) <= set(recorded)
    for rel in sent_files:
        assert np.array_equal(_samples(recorded[rel]), _samples(sent / rel)), rel
    call_ids = sorted(p.name for p in sent.iterdir() if p.is_dir())
    assert len(call_ids) == CALLS

    with psycopg.connect(cluster.database, row_factory=dict_row) as db:
        calls = db.execute("SELECT call_id, status FROM calls ORDER BY call_id").fetchall()
        stream_rows = db.execute("SELECT * FROM streams").fetchall()
        timeline = db.execute("SELECT call_id, source, kind, detail FROM events").fetchall()
        transcripts = db.execute("SELECT * FROM transcripts").fetchall()

    # Every call once, complete: its status, its stream started and ended, its webhooks.
    assert [(c["call_id"], c["status"]) for c in calls] == [(c, "completed") for c in call_ids]
    assert len(stream_rows) == streams
    assert all(s["stopped_at"] and s["stop_reason"] == "stop_stream" and s["close_code"] == 1000 for s in stream_rows)
    kinds = sorted((e["call_id"], e["kind"]) for e in timeline)
    for call_id in call_ids:
        mine = [k for c, k in kinds if c == call_id]
        assert mine.count("call.completed") == 1 and mine.count("stream.started") == mine.count("stream.ended") == 1
        assert mine.count("recording.completed") == 1
    assert len({(e["call_id"], e["kind"], e["detail"]) for e in timeline}) == len(timeline)  # nothing twice

    # Transcripts: wc -c heard every byte due, once per stream and track.
    resumed = {e["stream_id"]: e["from_sample"] for w in workers for e in w.found("bus_stream_resumed")}
    assert first["stream_id"] in resumed and set(resumed) == held
    assert resumed[first["stream_id"]] > 0  # w1 had acknowledged blocks: the taker began after them
    by_stream: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for t in transcripts:
        by_stream.setdefault((t["stream_id"], t["track"]), []).append(t)
    assert len(by_stream) == 2 * streams
    for s in stream_rows:
        samples = json.loads(s["outcome"])["samples"]
        due = samples - resumed.get(s["stream_id"], 0)
        for track in ("inbound", "outbound"):
            [event] = by_stream[(s["stream_id"], track)]
            assert int(event["text"]) == 2 * due, (s["stream_id"], track, resumed.get(s["stream_id"]))

    # The bus: nothing left behind, and it stayed small.
    assert not list(bus.scan_iter(f"{PREFIX}:audio:*"))
    assert bus.xlen(f"{PREFIX}:streams") == 0
    assert bus.xlen(f"{PREFIX}:events") == 2 * streams
    memory = bus.info("memory")
    assert memory["used_memory_peak"] < 64 * 1024 * 1024
    bus.close()

    print(
        f"\ncluster: {CALLS} calls, {streams} streams; takeover {takeover_seconds:.2f} s after SIGKILL "
        f"(claim timeout {CLAIM_TIMEOUT} s); {len(held)} stream(s) resumed; "
        f"bus peak memory {memory['used_memory_peak'] / 1e6:.1f} MB"
    )


def _acknowledged(bus: redis.Redis, key: str) -> int:
    """Blocks of ``key`` acknowledged so far: the worker trims the key up to the last one it acknowledged."""
    first = bus.xrange(key, "-", "+", count=1)
    if not first or first[0][1].get(b"t") != b"audio":
        return 0
    return int(first[0][1][b"start"]) // 1600


def _done(workers: list[LoggedProcess]) -> set[str]:
    return {e["stream_id"] for w in workers for e in w.found("bus_stream_done")}


def _samples(path: Path) -> np.ndarray[Any, np.dtype[np.int16]]:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2")
