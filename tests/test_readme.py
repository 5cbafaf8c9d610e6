"""The README's quick start, run as written: its shell blocks, in a copy of the checkout.

Only the ports differ (RECEIVER_PORT / RECEIVER_WEBHOOK_PORT in the
environment, the way the README says to move them), and the virtualenv is this
checkout's (the copy links to it, so `make` finds it installed). `receiver` is
not on PATH until the README's activation line puts it there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STAMP = ROOT / ".venv" / ".installed"

pytestmark = pytest.mark.skipif(
    not STAMP.is_file() or shutil.which("make") is None, reason="needs `make install`'s .venv and make"
)


def quick_start() -> list[str]:
    """The ```sh blocks of the README's Quick start section, in order."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, re.S)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """What a fresh clone holds (the files the quick start uses), with this checkout's .venv."""
    copy = tmp_path / "receiver"
    copy.mkdir()
    for name in ("Makefile", "pyproject.toml", "setup.py", "config.toml", "README.md"):
        shutil.copy2(ROOT / name, copy / name)
    for name in ("examples", "scripts"):
        shutil.copytree(ROOT / name, copy / name)
    (copy / ".venv").symlink_to(ROOT / ".venv")
    # make compares these with the install stamp: installed already, nothing to redo.
    stamp = STAMP.stat().st_mtime
    for name in ("pyproject.toml", "setup.py"):
        os.utime(copy / name, (stamp - 1, stamp - 1))
    return copy


def shell_env(tmp_path: Path, port: int, webhook_port: int) -> dict[str, str]:
    venv_bin = str(ROOT / ".venv" / "bin")
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p != venv_bin)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RECEIVER_", "VIRTUAL_ENV"))}
    return {
        **env,
        "PATH": path,
        "HOME": str(tmp_path),
        "RECEIVER_PORT": str(port),
        "RECEIVER_WEBHOOK_PORT": str(webhook_port),
    }


def test_the_quick_start_works_as_written(checkout: Path, tmp_path: Path, unused_tcp_port_factory: object) -> None:
    demo, run, call = quick_start()
    assert demo.strip() == "make demo" and run.startswith("make run")
    port, webhook_port = unused_tcp_port_factory(), unused_tcp_port_factory()  # type: ignore[operator]
    env = shell_env(tmp_path, port, webhook_port)
    assert subprocess.run(["bash", "-c", "command -v receiver"], env=env, check=False).returncode != 0

    # 1. make demo: one call, and its complete record.
    done = subprocess.run(["bash", "-ec", demo], cwd=checkout, env=env, capture_output=True, text=True, timeout=600)

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "result: OK" in out and "recordings: every file in" in out  # streamed, recorded as sent
    assert "  status          completed" in out  # call.completed reached the record
    assert re.search(r"recording rec_call_\w+ completed", out)  # and recording.completed
    assert re.search(r"file .*\.stereo\.wav", out)
    assert "caller: <keyword> cancel my order  (spotter)" in out  # the transcript
    assert f"streams ws://127.0.0.1:{port}/" in out  # the port the environment chose

    # 2. make run in one terminal, 3. the README's commands in another.
    server = subprocess.Popen(
        ["bash", "-ec", run], cwd=checkout, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert server.stderr is not None
        for line in server.stderr:
            if line.startswith("{") and json.loads(line)["event"] == "receiver_ready":
                break
        else:
            raise AssertionError("make run stopped before the receiver was ready")
        called = subprocess.run(
            ["bash", "-ec", call], cwd=checkout, env=env, capture_output=True, text=True, timeout=300
        )
    finally:
        os.killpg(server.pid, signal.SIGINT)  # Ctrl-C
        _, err = server.communicate(timeout=60)

    assert called.returncode == 0, called.stdout[-3000:] + called.stderr[-3000:]
    assert "result: OK" in called.stdout and "webhooks: 2 delivered, 0 failed" in called.stdout
    listed = [line for line in called.stdout.splitlines() if line.startswith("call_")]
    assert len(listed) == 2 and all(" completed " in line for line in listed)  # the demo's call and this one
    assert '"event": "server_stopped"' in err  # Ctrl-C stopped it cleanly
