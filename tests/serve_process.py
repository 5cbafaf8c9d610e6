"""A real ``receiver serve`` subprocess for tests: its port and its JSON log lines."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any


class ReceiverProcess:
    """``python -m receiver serve --port 0`` in ``workdir``, logging JSON to stderr (read by a thread)."""

    def __init__(self, workdir: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.recordings = workdir / "recordings"
        environment = {k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}
        environment.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "receiver", "serve", "--port", "0", "--webhook-port", "0", "--log-format", "json",
             "--recordings-dir", str(self.recordings), *args],
            cwd=workdir, env=environment, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        self.events: list[dict[str, Any]] = []
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.port = int(self.wait_for("server_started")["port"])

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

    def __enter__(self) -> ReceiverProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()
