"""
Real PostgreSQL and Redis servers of our own for tests, benches and ``make cluster``.

Each starts in a fresh temporary directory on a free loopback port and is
stopped (and its directory removed) at the end, so tests need no system
service and never meet another test's or another checkout's data.
PostgreSQL refuses to run as root (CI runs as root): there ``initdb`` and the
server run as the ``postgres`` user the Debian package creates (``nobody``
where there is none), through ``runuser``.

When a program is missing the caller skips, unless ``RECEIVER_CI`` is set:
then it fails, so CI cannot pass by skipping.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from .prereq import IN_CI


def missing(what: str) -> None:
    """Skip (or, in CI, fail) a test whose prerequisite is not installed (as ``prereq.needs_program``)."""
    message = f"{what} is not installed (scripts/system-packages.txt)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_until(check: object, timeout: float, what: str) -> None:
    """Poll ``check()`` (a server coming up has nothing to wait on but its port)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():  # type: ignore[operator]
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not come up within {timeout} s")
        time.sleep(0.05)


def recorded_call(stream_url: str, seconds: float) -> dict[str, Any]:
    """A MiniVoice flow: stream both tracks and record for ``seconds``, stop both, hang up."""
    return {
        "actions": [
            {"type": "start_stream", "stream_url": stream_url, "track": "both"},
            {"type": "start_recording"},
            {"type": "pause", "length": seconds},
            {"type": "stop_stream", "stream_url": stream_url, "track": "both"},
            {"type": "stop_recording"},
            {"type": "hangup"},
        ]
    }


def _postgres_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PostgresServer:
    """``initdb`` + ``pg_ctl start`` in a temporary directory, listening on 127.0.0.1:``port`` only."""

    def __init__(self) -> None:
        bindir = _postgres_bindir()
        if bindir is None:
            missing("PostgreSQL (initdb, pg_ctl)")
        assert bindir is not None
        self.bindir = bindir
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="receiver-pg-"))
        self.data = self.dir / "data"
        self.user = "postgres"
        self._as: list[str] = []
        if os.geteuid() == 0:
            account = "postgres" if _has_user("postgres") else "nobody"
            self._as = ["runuser", "-u", account, "--"]
            os.chown(self.dir, pwd.getpwnam(account).pw_uid, pwd.getpwnam(account).pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8", "--no-sync")
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "log"), "-o", options, "-w", "start")
        self._databases = 0

    def _run(self, program: str, *args: str) -> None:
        subprocess.run(
            [*self._as, str(self.bindir / program), *args],
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=self.dir,
        )

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """A fresh, empty place for a schema; returns its URL.

        A schema of its own in the one database (``search_path`` in the URL):
        as separate as a database for our tables, and made in milliseconds.
        """
        import psycopg

        self._databases += 1
        name = name or f"t{self._databases}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
            conn.execute(f'CREATE SCHEMA "{name}"')
        return self.url() + f"?options=-csearch_path%3D{name}"

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


class RedisServer:
    """``redis-server`` on 127.0.0.1:``port``, no persistence, in a temporary directory."""

    def __init__(self, *, maxmemory: str = "") -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            missing("redis-server")
        assert binary is not None
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="receiver-redis-"))
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", str(self.dir), "--logfile", str(self.dir / "log")]
        if maxmemory:
            args += ["--maxmemory", maxmemory]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, cwd=self.dir)
        wait_until(self._ping, 20.0, "redis-server")

    def _ping(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {self.proc.returncode}: {self.log()}")
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return (self.dir / "log").read_text()[-2000:]
        return ""

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)
