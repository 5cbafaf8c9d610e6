"""deploy/compose.yaml brought up for real with docker-compose (``make docker-test``; not in ``make test``).

The file as a user runs it: every image built from the repository (the
receiver from the Dockerfile; PostgreSQL, Redis and HAProxy from Debian's
packages on the same base, which ``scripts/docker-base.sh`` makes where no
registry is reachable), host networking, only the ports moved to free ones
and HAProxy kept on loopback. Calls placed by ``receiver simulate`` through
HAProxy, webhooks through HAProxy too. Checks: every call's record complete
in the compose PostgreSQL, the recordings in the receivers' volumes equal to
what was sent, the workers' transcripts stored (the ``pipe`` plugin running
``wc -c``: the count equals the stream's audio); then ``docker-compose down
-v`` leaves no container and no volume behind.

The run's figures (build, ``up`` until HAProxy answers, memory and CPU
per service idle and per call) are printed (``-s`` shows them); RECEIVER_COMPOSE_CALLS
and RECEIVER_COMPOSE_SECONDS size the run (default 2 calls of 4 s, all at once).

Locally the test skips when no Docker engine answers or docker-compose is
missing; with RECEIVER_CI=1 it fails instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from receiver.simulator.compare import compare_recordings

from ..services import recorded_call
from .test_image import docker, engine_available, free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "deploy" / "compose.yaml"
# The docker-test run: 2 calls of 4 s at once; more for a steadier resource figure (docs/scale-out.md).
CALLS = int(os.environ.get("RECEIVER_COMPOSE_CALLS", "2"))
SECONDS = float(os.environ.get("RECEIVER_COMPOSE_SECONDS", "4"))
WEBHOOK_SECRET = "compose-test-webhook-secret"
POSTGRES_PASSWORD = "compose-test-password"

# The workers' plugin: `wc -c` prints how many bytes of 16-bit audio it was given, so the stored
# transcript says exactly how much of each stream reached a worker (deploy/worker.toml's
# pocketsphinx would say words, or nothing, for a test tone).
WORKER_TOML = """
[worker]
claim_timeout = 10.0

[[sinks]]
plugin = "pipe"
name = "count"
tracks = ["inbound", "outbound"]
options = { command = "wc -c", sample_rate = 8000 }
"""

PORTS = (
    "STREAMS_PORT",
    "WEBHOOKS_PORT",
    "RECEIVER1_PORT",
    "LISTENER1_PORT",
    "RECEIVER2_PORT",
    "LISTENER2_PORT",
    "POSTGRES_PORT",
    "REDIS_PORT",
)


@dataclass
class Deployment:
    project: str
    env: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)

    def compose(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["docker-compose", "-p", self.project, "-f", str(COMPOSE_FILE), *args],
            env=self.env, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise AssertionError(
                f"docker-compose {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}\n"
                f"{self.logs()[-6000:]}"
            )
        return result

    def logs(self, *services: str) -> str:
        result = subprocess.run(
            ["docker-compose", "-p", self.project, "-f", str(COMPOSE_FILE), "logs", "--no-color", *services],
            env=self.env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        return result.stdout

    def events(self, service: str) -> list[dict[str, Any]]:
        found = []
        for line in self.logs(service).splitlines():
            _, _, rest = line.partition("| ")
            if rest.startswith("{"):
                found.append(json.loads(rest))
        return found

    def container(self, service: str) -> str:
        return self.compose("ps", "-q", service).stdout.strip()

    def port(self, name: str) -> int:
        return int(self.env[name])

    @property
    def database(self) -> str:
        return f"postgresql://receiver:{POSTGRES_PASSWORD}@127.0.0.1:{self.port('POSTGRES_PORT')}/receiver"

    def leftovers(self) -> list[str]:
        label = f"label=com.docker.compose.project={self.project}"
        containers = docker("ps", "-a", "-q", "--filter", label).stdout.split()
        volumes = docker("volume", "ls", "-q", "--filter", label).stdout.split()
        return containers + volumes


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    in_ci = bool(os.environ.get("RECEIVER_CI"))
    for ok, why in (
        (engine_available(), "no Docker engine answers (docker info); .ci/run starts dockerd"),
        (shutil.which("docker-compose") is not None, "docker-compose is not installed (scripts/system-packages.txt)"),
    ):
        if not ok and in_ci:
            pytest.fail(why)
        if not ok:
            pytest.skip(why)
    subprocess.run([str(ROOT / "scripts" / "docker-base.sh")], check=True, timeout=1800)

    root = tmp_path_factory.mktemp("compose")
    (root / "worker.toml").write_text(WORKER_TOML)
    project = f"receivertest{uuid.uuid4().hex[:8]}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")},
        **{name: str(free_port()) for name in PORTS},
        "HAPROXY_BIND": "127.0.0.1",  # nothing of the test listens beyond loopback
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "POSTGRES_PASSWORD": POSTGRES_PASSWORD,
        "WORKER_CONFIG": str(root / "worker.toml"),
        "IMAGE_TAG": "compose-test",  # leaves a user's :latest images alone
    }
    d = Deployment(project, env)
    try:
        started = time.monotonic()
        d.compose("build", timeout=1800)
        d.timings["build"] = time.monotonic() - started
        started = time.monotonic()
        d.compose("up", "-d", timeout=600)
        d.timings["up -d"] = time.monotonic() - started
        streams, hooks = d.port("STREAMS_PORT"), d.port("WEBHOOKS_PORT")
        wait_until("HAProxy to a ready receiver", lambda: _answers(f"http://127.0.0.1:{streams}/readyz"), 120)
        wait_until("HAProxy to a listener", lambda: _answers(f"http://127.0.0.1:{hooks}/healthz"), 120)
        d.timings["up until HAProxy answers"] = time.monotonic() - started
        yield d
    finally:
        started = time.monotonic()
        d.compose("down", "-v", "--remove-orphans", "--timeout", "60", check=False, timeout=600)
        d.timings["down -v"] = time.monotonic() - started
        print("\ncompose: " + ", ".join(f"{k} {v:.1f} s" for k, v in d.timings.items()))
        assert d.leftovers() == [], "docker-compose down -v left containers or volumes behind"


class Stats:
    """What the deployment's containers use: memory from ``docker stats`` (sampled in a thread, one
    sample takes ~2 s), CPU time from each container's cgroup (exact, where the host's cgroup v1 or v2
    tree is readable; ``docker stats`` CPU percentages are one-second snapshots)."""

    def __init__(self, project: str) -> None:
        label = f"label=com.docker.compose.project={project}"
        self.project = project
        self.ids = docker("ps", "-q", "--no-trunc", "--filter", label).stdout.split()
        self.names = {i: self._service(docker("inspect", "-f", "{{.Name}}", i).stdout.strip()) for i in self.ids}
        self.samples: list[tuple[str, str, float]] = []  # (phase, service, memory MiB)
        self.cpu: list[tuple[float, dict[str, float]]] = []  # (monotonic time, CPU seconds per service)
        self.phase = "idle"
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _service(self, name: str) -> str:
        return name.lstrip("/").removeprefix(f"{self.project}_").rsplit("_", 1)[0]

    def _run(self) -> None:
        while not self.stop.is_set():
            phase = self.phase
            out = docker("stats", "--no-stream", "--format", "{{json .}}", *self.ids, check=False).stdout
            for line in out.splitlines():
                s = json.loads(line)
                self.samples.append((phase, self._service(s["Name"]), _mib(s["MemUsage"])))

    def mark(self) -> None:
        """Read every container's CPU time now."""
        used = {}
        for i in self.ids:
            v1 = Path(f"/sys/fs/cgroup/cpuacct/docker/{i}/cpuacct.usage")
            v2 = Path(f"/sys/fs/cgroup/system.slice/docker-{i}.scope/cpu.stat")
            if v1.exists():
                used[self.names[i]] = int(v1.read_text()) / 1e9
            elif v2.exists():
                usage = next(line for line in v2.read_text().splitlines() if line.startswith("usage_usec"))
                used[self.names[i]] = int(usage.split()[1]) / 1e6
        self.cpu.append((time.monotonic(), used))

    def summary(self, calls: int) -> str:
        """Per service: memory idle and at its peak during the calls; CPU seconds per call over idle."""
        lines = []
        cpu = len(self.cpu) == 3 and self.cpu[0][1]
        for service in sorted(set(self.names.values())):
            row = [f"{service:9}"]
            for phase in ("idle", "calls"):
                mine = [m for p, s, m in self.samples if p == phase and s == service]
                if mine:
                    row.append(f"{phase} mem {max(mine):6.1f} MiB")
            if cpu and service in self.cpu[0][1]:
                (t0, idle0), (t1, idle1), (t2, busy) = self.cpu
                rate = (idle1[service] - idle0[service]) / (t1 - t0)
                extra = busy[service] - idle1[service] - rate * (t2 - t1)
                row.append(f"idle cpu {100 * rate:5.1f}%  cpu per call {extra / calls:6.3f} s")
            lines.append("  ".join(row))
        return "\n".join(lines)


def _mib(usage: str) -> float:
    used = usage.split("/")[0].strip()
    number = re.match(r"[\d.]+", used)
    assert number, usage
    unit = used[number.end() :].strip()
    return float(number.group()) * {"B": 1 / 2**20, "KiB": 1 / 1024, "MiB": 1, "GiB": 1024, "kB": 1e3 / 2**20,
                                    "MB": 1e6 / 2**20, "GB": 1e9 / 2**20}[unit]  # fmt: skip


def test_calls_through_the_compose_deployment_are_recorded_stored_and_transcribed(
    deployment: Deployment, tmp_path: Path
) -> None:
    d = deployment
    stats = Stats(d.project)
    stats.mark()
    stats.thread.start()
    wait_until("an idle docker stats sample", lambda: len({s for _, s, _ in stats.samples}) >= 7, 60)
    stats.mark()

    url = f"ws://127.0.0.1:{d.port('STREAMS_PORT')}/minivoice"
    (tmp_path / "flow.json").write_text(json.dumps(recorded_call(url, SECONDS)))
    stats.phase = "calls"
    sim = subprocess.run(
        [sys.executable, "-m", "receiver", "simulate", str(tmp_path / "flow.json"), "--allow-insecure",
         "--calls", str(CALLS), "--concurrency", str(CALLS), "--json", "--no-progress",
         "--webhook-url", f"http://127.0.0.1:{d.port('WEBHOOKS_PORT')}/webhooks/{WEBHOOK_SECRET}",
         "--record-sent", str(tmp_path / "sent"), "--inbound-audio", "tone:440", "--outbound-audio", "tone:660"],
        cwd=tmp_path, env={k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")},
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert sim.returncode == 0, sim.stderr[-3000:]
    result = json.loads(sim.stdout)
    report = result["summary"]
    assert (report["calls_completed"], report["calls_failed"], report["connection_errors"]) == (CALLS, 0, 0)
    assert report["webhooks_failed"] == 0 and report["webhooks_delivered"] == 2 * CALLS
    call_ids = sorted(call["call_id"] for call in result["calls"])

    def transcripts() -> list[dict[str, Any]]:
        with psycopg.connect(d.database, row_factory=dict_row) as db:
            return db.execute("SELECT * FROM transcripts").fetchall()

    try:
        wait_until("every stream's transcripts", lambda: len(transcripts()) >= 2 * CALLS, 120, every=1.0)
    except AssertionError:
        raise AssertionError(f"transcripts: {transcripts()}\n{d.logs('worker1', 'worker2')[-6000:]}") from None
    # The calls and their transcription are over: what they cost over idle, per call.
    stats.mark()
    stats.stop.set()
    stats.thread.join(30)

    with psycopg.connect(d.database, row_factory=dict_row) as db:
        calls = db.execute("SELECT call_id, status FROM calls ORDER BY call_id").fetchall()
        streams = db.execute("SELECT * FROM streams").fetchall()
        timeline = db.execute("SELECT call_id, kind FROM events").fetchall()
        recordings = db.execute("SELECT call_id, status FROM recordings").fetchall()
        stored = db.execute("SELECT * FROM transcripts").fetchall()

    # Every call once and complete in the compose PostgreSQL: status, stream, webhooks.
    assert [(c["call_id"], c["status"]) for c in calls] == [(c, "completed") for c in call_ids]
    assert len(streams) == CALLS
    assert all(s["stop_reason"] == "stop_stream" and s["close_code"] == 1000 for s in streams)
    for call_id in call_ids:
        kinds = [e["kind"] for e in timeline if e["call_id"] == call_id]
        assert kinds.count("call.completed") == kinds.count("recording.completed") == 1, kinds
        assert kinds.count("stream.started") == kinds.count("stream.ended") == 1, kinds
    assert sorted((r["call_id"], r["status"]) for r in recordings) == [(c, "completed") for c in call_ids]
    # HAProxy spread the webhooks over both listeners.
    for receiver in ("receiver1", "receiver2"):
        assert any(e["event"] == "webhook_stored" for e in d.events(receiver)), receiver

    # The recordings in the receivers' volumes: what was sent, sample for sample.
    received = tmp_path / "received"
    received.mkdir()
    for receiver in ("receiver1", "receiver2"):
        docker("cp", f"{d.container(receiver)}:/data/recordings/.", str(received))
    sent = [p for call in result["calls"] for s in call["streams"] for p in s["recorded"]]
    assert len(sent) == 3 * CALLS  # inbound, outbound, stereo
    assert compare_recordings(sent, tmp_path / "sent", received, timeout=0) == []

    # The workers' transcripts: `wc -c` counted every byte of each track (16-bit samples).
    assert len({(t["stream_id"], t["track"]) for t in stored}) == len(stored) == 2 * CALLS
    for s in streams:
        samples = json.loads(s["outcome"])["samples"]
        assert samples >= SECONDS * 8000 * 0.9
        for track in ("inbound", "outbound"):
            [event] = [t for t in stored if t["stream_id"] == s["stream_id"] and t["track"] == track]
            assert int(event["text"]) == 2 * samples, (s["stream_id"], track)

    print(f"\ncompose: {CALLS} calls of {SECONDS:.0f} s at once; per service:\n{stats.summary(CALLS)}")
