"""The Docker image, built and run for real (``make docker-test``; not part of ``make test``).

Builds the image from the project's Dockerfile (on the stand-in base
``scripts/docker-base.sh`` makes where no registry is reachable), then runs it
as a user would, with host networking so every connection stays on loopback:
health on a non-default port, a simulated call into named volumes with its
webhooks in the call record, ``docker stop`` during a call, a bind-mounted
host directory, children reaped, no test tools in the image, a derived image
with a plugin.

Locally these tests skip when no Docker engine answers; with RECEIVER_CI=1
they fail instead.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from receiver.simulator.compare import compare_recordings

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "receiver:docker-test"
# The image's webhook port listens on 0.0.0.0, so it starts only with credentials (docs/security.md).
WEBHOOK_SECRET = "docker-test-webhook-secret"
PLUGIN_IMAGE = "receiver-loudness:docker-test"


def docker(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


def engine_available() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=60, check=False).returncode == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(what: str, check: Any, seconds: float = 60.0, every: float = 0.2) -> Any:
    """Poll ``check`` (a container's state has no event to wait on from outside) until it is truthy."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


@pytest.fixture(scope="module")
def image() -> str:
    if not engine_available():
        if os.environ.get("RECEIVER_CI"):
            pytest.fail("no Docker engine answers (docker info); .ci/run starts dockerd")
        pytest.skip("no Docker engine answers (docker info)")
    subprocess.run([str(ROOT / "scripts" / "docker-base.sh")], check=True, timeout=1800)
    started = time.monotonic()
    docker("build", "--network", "host", "-t", IMAGE, str(ROOT), timeout=1800)
    size = int(docker("image", "inspect", "-f", "{{.Size}}", IMAGE).stdout)
    print(f"\nimage {IMAGE}: {size / 1e6:.0f} MB, built in {time.monotonic() - started:.0f} s")
    return IMAGE


class Container:
    """One ``docker run -d`` of the image, removed at the end."""

    def __init__(
        self, image: str, *args: str, env: dict[str, str] | None = None, command: tuple[str, ...] = ()
    ) -> None:
        self.name = f"receiver-test-{uuid.uuid4().hex[:8]}"
        self.port, self.webhook_port = free_port(), free_port()
        env = {
            "RECEIVER_PORT": str(self.port),
            "RECEIVER_WEBHOOK_PORT": str(self.webhook_port),
            "RECEIVER_WEBHOOK_SECRET": WEBHOOK_SECRET,
            **(env or {}),
        }
        flags = [f"--env={k}={v}" for k, v in env.items()]
        docker("run", "-d", "--network", "host", "--name", self.name, *flags, *args, image, *command)

    def logs(self) -> list[dict[str, Any]]:
        out = docker("logs", self.name).stderr
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]

    def events(self) -> list[str]:
        return [entry["event"] for entry in self.logs()]

    def ready(self) -> dict[str, Any]:
        return wait_until(
            "receiver_ready", lambda: next((e for e in self.logs() if e["event"] == "receiver_ready"), None)
        )

    def state(self, field: str) -> str:
        return docker("inspect", "-f", "{{" + field + "}}", self.name).stdout.strip()

    def exec(self, *args: str) -> str:
        return docker("exec", self.name, *args).stdout

    def remove(self) -> None:
        docker("rm", "-f", "-v", self.name, check=False)


@pytest.fixture
def containers() -> Iterator[list[Container]]:
    started: list[Container] = []
    yield started
    for container in started:
        container.remove()


@pytest.fixture
def volumes() -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        docker("volume", "rm", "-f", name, check=False)


def flow(tmp_path: Path, seconds: float) -> Path:
    path = tmp_path / "flow.json"
    path.write_text(
        json.dumps(
            {
                "actions": [
                    {"type": "start_stream", "stream_url": "ws://{receiver}/minivoice", "track": "both"},
                    {"type": "start_recording"},
                    {"type": "pause", "length": seconds},
                    {"type": "stop_stream"},
                    {"type": "stop_recording"},
                    {"type": "hangup"},
                ]
            }
        )
    )
    return path


def simulate(container: Container, tmp_path: Path, *args: str, seconds: float = 1.0) -> subprocess.Popen[str]:
    """``receiver simulate`` from the host, as a user would: the flow's {receiver} follows RECEIVER_PORT."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")},
        "RECEIVER_PORT": str(container.port),
        "RECEIVER_WEBHOOK_PORT": str(container.webhook_port),
        "RECEIVER_WEBHOOK_SECRET": WEBHOOK_SECRET,  # the default --webhook-url carries it
    }
    return subprocess.Popen(
        [sys.executable, "-m", "receiver", "simulate", str(flow(tmp_path, seconds)), "--allow-insecure", "--json",
         "--no-progress", *args],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def finished(proc: subprocess.Popen[str]) -> tuple[int, dict[str, Any], str]:
    out, err = proc.communicate(timeout=120)
    return proc.returncode, json.loads(out), err


def get_json(url: str) -> Any:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
        return json.loads(response.read())


# Who runs what in the container: "uid command" per process (argv[0]'s name, then for Python its script).
OWNERS = """
import os
for pid in filter(str.isdigit, os.listdir("/proc")):
    argv = open(f"/proc/{pid}/cmdline", "rb").read().decode().split("\\0")
    name = os.path.basename(argv[0])
    if name.startswith("python") and len(argv) > 1:
        name = " ".join([os.path.basename(argv[1]), *argv[2:3]])
    print(os.stat(f"/proc/{pid}").st_uid, name)
"""


def test_without_webhook_credentials_the_image_refuses_to_start_and_says_why(
    image: str, containers: list[Container]
) -> None:
    c = Container(image, env={"RECEIVER_WEBHOOK_SECRET": ""})
    containers.append(c)

    wait_until("exited", lambda: c.state(".State.Status") == "exited")
    assert c.state(".State.ExitCode") != "0"
    assert "--insecure-webhooks" in docker("logs", c.name).stderr


def test_healthy_on_a_non_default_port_and_runs_as_its_own_user(image: str, containers: list[Container]) -> None:
    # The image's own HEALTHCHECK command, checked every second instead of every 10.
    c = Container(image, "--health-interval=1s", "--health-start-period=30s")
    containers.append(c)

    wait_until("healthy", lambda: c.state(".State.Health.Status") == "healthy")

    assert c.port != 8080
    ready = c.ready()
    assert ready["streams"] == f"ws://127.0.0.1:{c.port}/<any path>"
    owners = c.exec("python", "-c", OWNERS).splitlines()
    assert "10001 receiver serve" in owners and "0 tini" in owners, owners


def _stream_ended(record: dict[str, Any]) -> dict[str, Any] | None:
    return record if record["streams"] and all(s["stop_reason"] for s in record["streams"]) else None


def test_a_simulated_call_records_into_named_volumes_and_its_webhooks_reach_the_record(
    image: str, containers: list[Container], volumes: list[str], tmp_path: Path
) -> None:
    rec, calls = f"receiver-test-rec-{uuid.uuid4().hex[:8]}", f"receiver-test-calls-{uuid.uuid4().hex[:8]}"
    volumes += [rec, calls]
    c = Container(image, "-v", f"{rec}:/data/recordings", "-v", f"{calls}:/data/calls")
    containers.append(c)
    c.ready()

    code, summary, err = finished(simulate(c, tmp_path, "--record-sent", str(tmp_path / "sent"), "--loss", "0.05"))

    assert code == 0, (summary.get("failures"), err[-2000:])
    (call,) = summary["calls"]
    call_id = call["call_id"]
    url = f"http://127.0.0.1:{c.webhook_port}/calls/{call_id}?token={WEBHOOK_SECRET}"
    # The webhooks and the stream reach the record on their own paths: the stream's end once the
    # receiver has finalised its files, which may come after the simulator's last webhook.
    record = wait_until("the stream's end in the record", lambda: _stream_ended(get_json(url)), 30)
    assert record["status"] == "completed"  # call.completed reached the record
    assert [r["status"] for r in record["recordings"]] == ["completed"]
    (stream,) = record["streams"]
    assert stream["stop_reason"] == "stop_stream" and len(stream["files"]) == 3
    assert all(path.startswith(f"/data/recordings/{call_id}/") for path in stream["files"])
    # The files in the volume equal what was sent, sample for sample.
    docker("cp", f"{c.name}:/data/recordings/{call_id}", str(tmp_path / "got"))
    sent = [p for s in call["streams"] for p in s["recorded"]]
    (tmp_path / "received").mkdir()
    shutil.move(str(tmp_path / "got"), str(tmp_path / "received" / call_id))
    assert compare_recordings(sent, tmp_path / "sent", tmp_path / "received", timeout=0) == []
    # The record outlives the container: a new one on the same volumes reads it.
    c.remove()
    d = Container(image, "-v", f"{rec}:/data/recordings", "-v", f"{calls}:/data/calls")
    containers.append(d)
    d.ready()
    assert call_id in d.exec("receiver", "calls")


def test_docker_stop_during_a_call_drains_it_and_finalises_the_files(
    image: str, containers: list[Container], tmp_path: Path
) -> None:
    c = Container(image)
    containers.append(c)
    c.ready()
    sim = simulate(c, tmp_path, seconds=4)
    wait_until("a live stream", lambda: "stream_started" in c.events())

    started = time.monotonic()
    docker("stop", c.name, timeout=60)  # SIGTERM; SIGKILL only after 10 s
    stopped_after = time.monotonic() - started
    code, summary, err = finished(sim)

    events = c.events()
    assert c.state(".State.ExitCode") == "0" and stopped_after < 10
    assert events.index("server_draining") < events.index("stream_ended") < events.index("server_stopped")
    ended = next(e for e in c.logs() if e["event"] == "stream_ended")
    assert ended["reason"] == "stop_stream" and ended["close_code"] == 1000  # the call finished during the drain
    assert code == 0, (summary.get("failures"), err[-2000:])
    call_id = summary["calls"][0]["call_id"]
    check = (
        "import sys, wave, pathlib; files = sorted(pathlib.Path(sys.argv[1]).glob('*.wav'));"
        "print(len(files), {wave.open(str(f)).getnframes() * wave.open(str(f)).getsampwidth() "
        "* wave.open(str(f)).getnchannels() + 44 == f.stat().st_size for f in files})"
    )
    docker("start", c.name)  # the same container, its anonymous volumes still attached
    c.ready()
    assert c.exec("python", "-c", check, f"/data/recordings/{call_id}").split() == ["3", "{True}"]


@pytest.mark.parametrize("as_user", [False, True], ids=["entrypoint-fixes-ownership", "docker-run-user"])
def test_a_bind_mounted_host_directory_takes_the_recordings(
    image: str, containers: list[Container], tmp_path: Path, as_user: bool
) -> None:
    host, calls = tmp_path / "host-recordings", tmp_path / "host-calls"
    for directory in (host, calls):
        directory.mkdir(mode=0o755)  # owned by whoever runs the tests, not by the image's uid 10001
    # --user: the host user's own ids (the directories' owner); as root, another user's.
    uid = os.getuid() or 4321
    user: list[str] = []
    if as_user:
        for directory in (host, calls):
            if os.getuid() == 0:
                os.chown(directory, uid, uid)
        user = ["--user", f"{uid}:{uid}"]
    c = Container(image, "-v", f"{host}:/data/recordings", "-v", f"{calls}:/data/calls", *user)
    containers.append(c)
    c.ready()

    code, summary, err = finished(simulate(c, tmp_path))

    assert code == 0, (summary.get("failures"), err[-2000:])
    call_id = summary["calls"][0]["call_id"]
    assert sorted(p.name.split(".", 1)[1] for p in (host / call_id).glob("*.wav")) == [
        "inbound.wav",
        "outbound.wav",
        "stereo.wav",
    ]
    if as_user:
        assert (host / call_id).stat().st_uid == uid
    else:
        assert (host / call_id).stat().st_uid == 10001
        assert (calls / "receiver.db").stat().st_uid == 10001
        # Leave nothing the test runner cannot delete.
        docker("run", "--rm", "--network", "none", "-v", f"{tmp_path}:/d", "--entrypoint", "rm", image, "-rf",
               "/d/host-recordings", "/d/host-calls")  # fmt: skip


ORPHAN = "sh -c 'sleep 1 & exec cat > /dev/null'"  # the pipe command leaves an orphan behind


def processes(c: Container) -> list[tuple[str, str]]:
    """(command, state) of every process in the container."""
    out = c.exec("sh", "-c", "for f in /proc/[0-9]*/stat; do cat $f 2>/dev/null; echo; done")
    found = []
    for line in out.splitlines():
        if ")" in line:
            name = line[line.index("(") + 1 : line.rindex(")")]
            found.append((name, line[line.rindex(")") + 2]))
    return found


@pytest.mark.parametrize("init", [True, False], ids=["tini", "without-tini"])
def test_the_children_of_plugin_commands_are_reaped(
    image: str, containers: list[Container], tmp_path: Path, init: bool
) -> None:
    sinks = json.dumps([{"plugin": "pipe", "tracks": ["inbound"], "options": {"command": ORPHAN}}])
    # Without tini (the entrypoint run directly), the receiver is PID 1: what shows that the test can fail.
    entry = [] if init else ["--entrypoint", "receiver-entrypoint"]
    c = Container(image, *entry, env={"RECEIVER_SINKS": sinks}, command=() if init else ("receiver", "serve"))
    containers.append(c)
    c.ready()

    code, summary, err = finished(simulate(c, tmp_path))
    assert code == 0, (summary.get("failures"), err[-2000:])

    if init:
        wait_until("the orphaned sleep to be reaped", lambda: all(name != "sleep" for name, _ in processes(c)))
        assert [p for p in processes(c) if p[1] == "Z"] == []
    else:
        assert wait_until("a zombie", lambda: [p for p in processes(c) if p[1] == "Z"]) == [("sleep", "Z")]


def test_the_runtime_image_holds_no_test_tools(image: str) -> None:
    probe = (
        "for tool in espeak-ng sox soxi gcc pytest debootstrap docker; do "
        'command -v $tool >/dev/null && echo "$tool"; done; '
        "python -c 'import pytest' 2>/dev/null && echo pytest-module; true"
    )
    found = docker("run", "--rm", "--network", "none", "--entrypoint", "sh", image, "-c", probe).stdout.split()

    assert found == []


def test_the_image_runs_the_compiled_media_path(image: str) -> None:
    """The build stage compiled receiver/_native.pyx and the modules with a .pxd; the image imports them
    (and has no compiler, above)."""
    probe = (
        "import receiver.speedups as s, receiver._native as n;"
        "print(s.COMPILED, s.next_frame is n.next_frame, s.build(), all(s.compiled_sources().values()))"
    )
    out = docker("run", "--rm", "--network", "none", "--entrypoint", "python", image, "-c", probe).stdout.split()
    version = docker("run", "--rm", "--network", "none", "--entrypoint", "receiver", image, "--version").stdout

    assert out == ["True", "True", "compiled", "True"]
    assert "(compiled media path)" in version


def test_a_derived_image_adds_a_plugin(image: str, containers: list[Container], tmp_path: Path) -> None:
    examples = ROOT / "examples"
    docker("build", "--network", "host", "--build-arg", f"BASE={image}", "-t", PLUGIN_IMAGE,
           "-f", str(examples / "plugin.Dockerfile"), str(examples), timeout=1800)  # fmt: skip
    c = Container(PLUGIN_IMAGE)
    containers.append(c)

    assert "loudness (plugin loudness, tracks inbound)" in c.ready()["sinks"]
    code, summary, err = finished(simulate(c, tmp_path))
    assert code == 0, (summary.get("failures"), err[-2000:])
    call_id = summary["calls"][0]["call_id"]
    transcript = wait_until(
        "the loudness events", lambda: (out := c.exec("receiver", "transcript", call_id)) and "loud (" in out and out
    )
    assert "caller: loud (" in transcript
