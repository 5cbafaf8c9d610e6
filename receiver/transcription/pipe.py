"""
The ``pipe`` plugin: each track's audio to an external command, its stdout back as transcripts.

Per stream and track, ``command`` is started (its arguments may name
``{call_id}``, ``{stream_id}``, ``{track}`` and ``{rate}``) and gets raw PCM on
stdin as the audio arrives (little-endian int16 or float32 at ``sample_rate``).
Each line it prints on stdout is a transcript event: a JSON object
(``{"text": ..., "start": s, "end": s, "final": true}``, times in seconds from
the start of the track; ``"kind": "keyword"`` marks a keyword hit) or plain
text (timed at the audio fed so far).

The stream never waits for the command: audio goes into a bounded buffer
(``buffer_seconds``) that a writer task drains into the pipe; when the
buffer is full, new audio is dropped and counted. A command that exits early
or crashes (exit code not 0, or an exit before the end of its input) is
logged once with its exit code and the tail of its stderr, and is not
restarted. At stream end the buffer is flushed, stdin is closed (EOF), the
command gets ``grace_seconds`` to finish, then SIGTERM, then SIGKILL after
``kill_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import shutil
from collections import deque
from collections.abc import Sequence
from typing import Any, Final

import orjson

from receiver.errors import InvalidValue
from receiver.logging import Logger, get_logger
from receiver.sinks import AudioBlock, StreamInfo, StreamOutcome
from receiver.transcription.audio import SAMPLE_FORMATS
from receiver.transcription.transcript import TRANSCRIPTS, Transcripts

log = get_logger(TRANSCRIPTS)
STDERR_TAIL: Final = 20
LINE_LIMIT: Final = 1 << 20


class _Process:
    """One command for one track."""

    def __init__(self, track: Any, bytes_per_second: int, max_bytes: int) -> None:
        self.track = track
        self.bytes_per_second = bytes_per_second
        self.max_bytes = max_bytes
        self.proc: asyncio.subprocess.Process | None = None
        self.buffer: deque[bytes] = deque()
        self.buffered = 0
        self.wake = asyncio.Event()
        self.drained = asyncio.Event()  # set whenever the buffer shrank (a batch run waits on it)
        self.closing = False
        self.eof_sent = False
        self.signalled = False
        self.written = 0
        self.fed = 0  # bytes accepted into the buffer or dropped: the track's audio so far
        self.dropped = 0
        self.stderr: deque[str] = deque(maxlen=STDERR_TAIL)
        self.exited = asyncio.Event()
        self.returncode: int | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.stderr_task: asyncio.Task[None] | None = None
        self.events = 0

    def offer(self, data: bytes) -> None:
        self.fed += len(data)
        if self.exited.is_set() or self.proc is None or self.buffered + len(data) > self.max_bytes:
            self.dropped += len(data)
            return
        self.buffer.append(data)
        self.buffered += len(data)
        self.wake.set()

    @property
    def seconds_fed(self) -> float:
        return self.fed / self.bytes_per_second


class PipeSink:
    """Pipes each track to a command and publishes what it prints."""

    name = "pipe"
    interval = 0.1

    def __init__(
        self,
        *,
        command: str | Sequence[str],
        sample_rate: int | None = 16000,
        sample_format: str = "int16",
        buffer_seconds: float = 5.0,
        grace_seconds: float = 5.0,
        kill_seconds: float = 2.0,
    ) -> None:
        args = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
        if not args:
            raise InvalidValue("command is empty")
        try:
            for arg in args:
                arg.format_map({"call_id": "c", "stream_id": "s", "track": "inbound", "rate": 8000})
        except (KeyError, IndexError, ValueError) as exc:
            raise InvalidValue(
                f"command arguments may name {{call_id}}, {{stream_id}}, {{track}} and {{rate}} only ({exc!r})"
            ) from None
        if shutil.which(args[0]) is None:
            raise InvalidValue(f"command {args[0]!r} not found")
        if sample_format not in SAMPLE_FORMATS:
            raise InvalidValue(f"sample_format must be one of {SAMPLE_FORMATS}")
        if buffer_seconds <= 0 or grace_seconds < 0 or kill_seconds < 0:
            raise InvalidValue("buffer_seconds must be positive, grace_seconds and kill_seconds not negative")
        self.args = args
        self.sample_rate = sample_rate
        self.sample_format = sample_format
        self.buffer_seconds = buffer_seconds
        self.grace_seconds = grace_seconds
        self.kill_seconds = kill_seconds
        self.transcripts: Transcripts | None = None
        self.processes: dict[Any, _Process] = {}
        self._log: Logger = log

    async def open(self, stream: StreamInfo) -> None:
        rate = self.sample_rate or stream.sample_rate
        name = self.transcripts.engine if self.transcripts is not None else self.name  # the name config.toml gave it
        self._log = log.bind(stream_id=stream.stream_id, call_id=stream.call_id, sink=name)
        width = 2 if self.sample_format == "int16" else 4
        for track in stream.tracks:
            fields = {"call_id": stream.call_id, "stream_id": stream.stream_id, "track": str(track), "rate": rate}
            args = [arg.format_map(fields) for arg in self.args]
            p = self.processes[track] = _Process(track, rate * width, int(self.buffer_seconds * rate * width))
            try:
                p.proc = await asyncio.create_subprocess_exec(
                    *args,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    limit=LINE_LIMIT,
                    start_new_session=True,
                )
            except OSError as exc:
                p.exited.set()
                self._log.error("pipe_start_failed", track=str(track), command=args[0], error=str(exc))
                continue
            loop = asyncio.get_running_loop()
            p.stderr_task = loop.create_task(self._read_stderr(p))
            p.tasks.add(p.stderr_task)
            for coro in (self._feed(p), self._read(p), self._wait(p)):
                p.tasks.add(loop.create_task(coro))

    async def write(self, block: AudioBlock) -> None:
        dtype = "<i2" if self.sample_format == "int16" else "<f4"
        for track, p in self.processes.items():
            if not p.fed and block.start:  # a resumed stream: event times stay on the stream's clock
                p.fed = block.start * (p.bytes_per_second // block.sample_rate)
            p.offer(block.channels[track].astype(dtype, copy=False).tobytes())

    async def wait_ready(self) -> None:
        """Return once every command's buffer is at most half full (a batch run never outpaces a command)."""
        for p in self.processes.values():
            while p.buffered > p.max_bytes // 2 and not p.exited.is_set():
                p.drained.clear()
                await p.drained.wait()

    async def close(self, outcome: StreamOutcome) -> None:
        await asyncio.gather(*(self._stop(p) for p in self.processes.values()))

    async def _stop(self, p: _Process) -> None:
        p.closing = True
        p.wake.set()
        proc = p.proc
        if proc is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(p.exited.wait(), self.grace_seconds)
            if not p.exited.is_set():
                self._log.warning("pipe_terminated", track=str(p.track), grace_seconds=self.grace_seconds)
                p.signalled = True
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(p.exited.wait(), self.kill_seconds)
            if not p.exited.is_set():
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await p.exited.wait()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*p.tasks, return_exceptions=True), self.kill_seconds)
        for task in p.tasks:
            task.cancel()
        self._log.info(
            "pipe_closed",
            track=str(p.track),
            exit_code=p.returncode,
            bytes_written=p.written,
            bytes_dropped=p.dropped,
            events=p.events,
            stderr_tail=list(p.stderr) if p.returncode else None,
        )

    async def _feed(self, p: _Process) -> None:
        assert p.proc is not None and p.proc.stdin is not None
        stdin = p.proc.stdin
        try:
            while True:
                if not p.buffer:
                    if p.closing:
                        break
                    p.wake.clear()
                    await p.wake.wait()
                    continue
                data = p.buffer.popleft()
                p.buffered -= len(data)
                stdin.write(data)
                await stdin.drain()
                p.written += len(data)
                p.drained.set()
            stdin.write_eof()
            p.eof_sent = True
            await stdin.drain()
            stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            p.dropped += p.buffered
            p.buffer.clear()
            p.buffered = 0
            p.drained.set()

    async def _read(self, p: _Process) -> None:
        assert p.proc is not None and p.proc.stdout is not None
        stdout = p.proc.stdout
        while True:
            try:
                line = await stdout.readline()
            except ValueError:  # a line over the limit: skip it
                continue
            if not line:
                return
            self._publish(p, line)

    def _publish(self, p: _Process, line: bytes) -> None:
        text = line.decode("utf-8", "replace").strip()
        if not text or self.transcripts is None:
            return
        now = p.seconds_fed
        start, end, final, kind = now, now, True, "transcript"
        if text.startswith("{"):
            try:
                data = orjson.loads(text)
            except orjson.JSONDecodeError:
                data = None
            if isinstance(data, dict):
                text = str(data.get("text", ""))
                start = _number(data.get("start"), now)
                end = _number(data.get("end"), max(start, now))
                final = bool(data.get("final", True))
                kind = "keyword" if data.get("kind") == "keyword" else "transcript"
        p.events += 1
        self.transcripts.publish(p.track, start, end, text, final=final, kind=kind)

    async def _read_stderr(self, p: _Process) -> None:
        assert p.proc is not None and p.proc.stderr is not None
        while line := await p.proc.stderr.readline():
            p.stderr.append(line.decode("utf-8", "replace").rstrip()[:500])

    async def _wait(self, p: _Process) -> None:
        assert p.proc is not None
        code = await p.proc.wait()
        p.returncode = code
        p.exited.set()
        p.drained.set()
        if not p.signalled and (code != 0 or not p.eof_sent):
            # It crashed, or quit before its input ended: never restarted (a broken command would loop).
            if p.stderr_task is not None:  # let stderr reach its end so the tail is complete
                await asyncio.wait([p.stderr_task], timeout=1.0)
            self._log.error(
                "pipe_exited", track=str(p.track), exit_code=code, stderr_tail=list(p.stderr), restarted=False
            )


def _number(value: Any, default: float) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default
