"""A real ``receiver serve`` subprocess for tests: its port and its JSON log lines."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Self


class LoggedProcess:
    """A ``python -m receiver ...`` subprocess logging JSON to stderr, its lines read by a thread."""

    def __init__(self, args: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> None:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}
        environment.update(env or {})
        self.args = args
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "receiver", *args],
            cwd=cwd, env=environment, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        self.events: list[dict[str, Any]] = []
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip("\n")
            with self._changed:
                self.lines.append(line)
                try:
                    event = json.loads(line)
                except ValueError:
                    event = None
                if isinstance(event, dict):
                    self.events.append(event)
                self._changed.notify_all()
        self.proc.stderr.close()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, name: str, count: int = 1, timeout: float = 30.0, **fields: Any) -> dict[str, Any]:
        """The ``count``-th log event named ``name`` (with ``fields``); waits for it."""

        def found() -> list[dict[str, Any]]:
            return [e for e in self.events if e.get("event") == name and all(e.get(k) == v for k, v in fields.items())]

        with self._changed:
            ok = self._changed.wait_for(lambda: len(found()) >= count or not self._reader.is_alive(), timeout)
            matches = found()
        if not ok or len(matches) < count:
            tail = "\n".join(self.lines[-20:])
            raise AssertionError(f"no {name} ({fields}) in the receiver's log; exit={self.proc.poll()}\n{tail}")
        return matches[count - 1]

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 30.0) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(timeout)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self._reader.join(30)

    def wait_until(self, predicate: Any, timeout: float = 30.0, what: str = "a condition") -> None:
        """Wait until ``predicate(events)`` is true (checked at every new log line)."""
        with self._changed:
            ok = self._changed.wait_for(lambda: predicate(self.events) or not self._reader.is_alive(), timeout)
            done = predicate(self.events)
        if not ok or not done:
            tail = "\n".join(self.lines[-20:])
            raise AssertionError(f"{what} never came in the log of {self.args[:1]}; exit={self.proc.poll()}\n{tail}")

    def found(self, name: str, **fields: Any) -> list[dict[str, Any]]:
        """The log events named ``name`` (with ``fields``) so far."""
        with self._changed:
            return [e for e in self.events if e.get("event") == name and all(e.get(k) == v for k, v in fields.items())]

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


class ReceiverProcess(LoggedProcess):
    """``python -m receiver serve --port 0`` in ``workdir``, logging JSON to stderr (read by a thread)."""

    def __init__(self, workdir: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.recordings = workdir / "recordings"
        super().__init__(
            ["serve", "--port", "0", "--webhook-port", "0", "--log-format", "json",
             "--recordings-dir", str(self.recordings), *args],
            cwd=workdir, env=env,
        )  # fmt: skip
        self.port = int(self.wait_for("server_started")["port"])
