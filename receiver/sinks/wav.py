"""
The WAV sink: each track to its own file, and both tracks to a stereo file.

Files go to ``{recordings_dir}/{call}/{stream}.{track}.wav`` and, for a
two-track stream, ``{stream}.stereo.wav`` (left inbound, right outbound),
16-bit PCM at the stream's rate. ``{call}`` and ``{stream}`` are the ids when
they are up to 64 letters, digits, ``_`` and ``-``; any other id is a
readable prefix, ``~`` and a hash of the exact id (``safe_name``), so two ids
never share a name. Files are created exclusively: a second stream with the
same ids (a reconnect, or anyone reusing them) gets the next free segment,
``{stream}.2.{track}.wav``, ``{stream}.3.{track}.wav``, ..., and never
overwrites or joins the first. Audio is written as it arrives, never held
in memory; the header is refreshed at least once a second, so a file cut
short by a crash holds every sample up to its last refresh, and
``repair_wav`` restores the rest at start-up. Audio a lagging writer lost is
written as silence, so every file stays exactly as long as the media clock.

File writes run on one writer thread per process; the blocks of every
stream written within 20 ms cross to it in one hand-off.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import hashlib
import os
import re
import struct
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import numpy as np

from receiver.errors import SinkStopped
from receiver.events import Track
from receiver.sinks import AudioBlock, StreamInfo, StreamOutcome
from receiver.sinks.disk import STREAM_LIMIT, DiskSpace

HEADER_SIZE: Final = 44
HEADER_REFRESH_SECONDS: Final = 1.0
MAX_SEGMENTS: Final = 1000  # recordings of one call and stream id; past it the WAV sink refuses
_VERBATIM = re.compile(r"[A-Za-z0-9_-]{1,64}")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def safe_name(value: str) -> str:
    """A peer-supplied id as one path component: injective, no separators, no dot-dirs.

    An id of 1 to 64 ASCII letters, digits, ``_`` and ``-`` is its own name.
    Any other id is a readable prefix of it (other characters as ``_``), ``~``
    and 80 bits of the SHA-256 of the exact id: no verbatim name contains
    ``~``, so ``victim/call`` and ``victim_call``, or two ids sharing their
    first characters, never share a name.
    """
    if _VERBATIM.fullmatch(value):
        return value
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:20]
    return f"{_UNSAFE.sub('_', value[:40])}~{digest}"


def wav_header(*, channels: int, sample_rate: int, data_bytes: int) -> bytes:
    """A canonical 44-byte PCM WAV header for 16-bit samples."""
    block_align = 2 * channels
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + data_bytes,
        b"WAVE",
        b"fmt ",
        16,
        1,  # PCM
        channels,
        sample_rate,
        sample_rate * block_align,
        block_align,
        16,
        b"data",
        data_bytes,
    )


class _WavFile:
    """One WAV file written through a raw descriptor (no user-space buffering)."""

    __slots__ = ("channels", "data_bytes", "fd", "header_bytes", "path", "sample_rate")

    def __init__(self, path: str, *, channels: int, sample_rate: int) -> None:
        self.path = path
        self.channels = channels
        self.sample_rate = sample_rate
        self.data_bytes = 0
        self.header_bytes = 0
        # O_EXCL: never truncate or join a file that exists (nor follow a link planted there).
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        try:
            os.write(self.fd, wav_header(channels=channels, sample_rate=sample_rate, data_bytes=0))
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        """Close and remove a file this sink just created (a segment it could not complete)."""
        os.close(self.fd)
        os.unlink(self.path)

    def append(self, data: bytes | memoryview) -> None:
        """Append bytes, or the memory of a C-contiguous array (``array.data``) as it lies."""
        view = memoryview(data).cast("B")
        size = len(view)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]
        self.data_bytes += size

    def refresh_header(self) -> None:
        if self.header_bytes != self.data_bytes:
            os.pwrite(
                self.fd,
                wav_header(channels=self.channels, sample_rate=self.sample_rate, data_bytes=self.data_bytes),
                0,
            )
            self.header_bytes = self.data_bytes

    def close(self, comment: str | None = None) -> None:
        try:
            self.refresh_header()
            if comment:
                self._append_info(comment)
        finally:
            os.close(self.fd)

    def _append_info(self, comment: str) -> None:
        """A ``LIST/INFO/ICMT`` chunk after the audio (readers skip chunks they do not know)."""
        text = comment.encode("ascii", "replace") + b"\0"
        text += b"\0" * (len(text) % 2)
        info = b"INFO" + struct.pack("<4sI", b"ICMT", len(text)) + text
        chunk = struct.pack("<4sI", b"LIST", len(info)) + info
        os.pwrite(self.fd, chunk, HEADER_SIZE + self.data_bytes)
        os.pwrite(self.fd, struct.pack("<I", 36 + self.data_bytes + len(chunk)), 4)


class _Writer:
    """WAV file work on one thread per process, handed over in batches.

    A hand-off to a thread costs the event loop's core context switches and GIL
    transfers: one ``run_in_executor`` per sink write (400 a second at 200
    calls) costs about 3.5 µs of CPU per media message, and a thread per write
    costs more (over 12,000 futex calls a second at 200 calls). So the work
    every sink submits within ``delay`` seconds crosses in one hand-off, and
    runs in submission order.
    """

    def __init__(self, delay: float) -> None:
        self._delay = delay
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="wav-writer")
        self._pending: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[_Job]] = weakref.WeakKeyDictionary()

    def run(self, fn: Callable[..., None], *args: Any) -> asyncio.Future[None]:
        """Run ``fn(*args)`` on the writer thread; the future settles with its outcome."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        jobs = self._pending.get(loop)
        if jobs is None:
            jobs = self._pending[loop] = []
            loop.call_later(self._delay, self._hand_over, loop)
        jobs.append((fn, args, future))
        return future

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        jobs = self._pending.pop(loop)
        done = loop.run_in_executor(self._executor, _run_jobs, jobs)
        done.add_done_callback(functools.partial(_settle, jobs))


_Job = tuple[Callable[..., None], tuple[Any, ...], "asyncio.Future[None]"]


def _run_jobs(jobs: list[_Job]) -> list[BaseException | None]:
    errors: list[BaseException | None] = []
    for fn, args, _ in jobs:
        try:
            fn(*args)
        except BaseException as exc:  # handed to the sink that submitted it
            errors.append(exc)
        else:
            errors.append(None)
    return errors


def _settle(jobs: list[_Job], done: asyncio.Future[list[BaseException | None]]) -> None:
    if done.cancelled():
        for _, _, future in jobs:
            future.cancel()
        return
    exc = done.exception()
    errors = [exc] * len(jobs) if exc is not None else done.result()
    for (_, _, future), error in zip(jobs, errors, strict=True):
        if future.done():  # cancelled: its sink stopped waiting (the work still ran, in order)
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


_WRITER = _Writer(delay=0.02)


class WavSink:
    """Records a stream to WAV files as the audio arrives."""

    name = "wav"
    interval = 0.5  # seconds of audio gathered per write

    def __init__(self, recordings_dir: str | os.PathLike[str], disk: DiskSpace | None = None) -> None:
        # Paths stay strings: pathlib interns every part of a path, and a part per stream
        # (ids are unique) churns the interpreter's table of interned strings.
        self._root = os.fspath(recordings_dir)
        self._files: dict[Track, _WavFile] = {}
        self._stereo: _WavFile | None = None
        self._disk = disk
        self._bytes = 0  # written to this stream's files
        self._frame_bytes = 0  # bytes one media-clock sample adds to them all
        self._written = 0  # media-clock samples written to every file
        self._last_refresh = 0.0
        self.paths: list[str] = []
        self.segment = 0  # 1 for the first recording of these ids, 2 for the next, ...

    async def open(self, stream: StreamInfo) -> None:
        await _WRITER.run(self._open, stream)

    async def write(self, block: AudioBlock) -> None:
        await _WRITER.run(self._write, block)

    async def close(self, outcome: StreamOutcome) -> None:
        await _WRITER.run(self._close, pause_comment(outcome))

    def _open(self, stream: StreamInfo) -> None:
        disk = self._disk
        if disk is not None:
            disk.refresh(at_most_every=1.0)
            reason = disk.refusal()
            if reason is not None:
                raise SinkStopped(reason, f"no recording started: {reason.replace('_', ' ')}")
        directory = os.path.join(self._root, safe_name(stream.call_id))
        os.makedirs(directory, exist_ok=True)
        base = safe_name(stream.stream_id)
        for segment in range(1, MAX_SEGMENTS + 1):
            stem = base if segment == 1 else f"{base}.{segment}"
            if self._claim(os.path.join(directory, stem), stream):
                self.segment = segment
                self._frame_bytes = 2 * (len(stream.tracks) + (2 if self._stereo is not None else 0))
                self._bytes = HEADER_SIZE * len(self._all())
                self._last_refresh = time.monotonic()
                return
        raise FileExistsError(f"{MAX_SEGMENTS} recordings of this call and stream id exist already")

    def _claim(self, stem: str, stream: StreamInfo) -> bool:
        """Create every file of one segment exclusively; False (nothing left behind) when one exists."""
        rate = stream.sample_rate
        wanted: list[tuple[Track | None, str, int]] = [(t, f"{stem}.{t.value}.wav", 1) for t in stream.tracks]
        if len(stream.tracks) == 2:
            wanted.append((None, f"{stem}.stereo.wav", 2))
        created: list[tuple[Track | None, _WavFile]] = []
        try:
            for kind, path, channels in wanted:
                created.append((kind, _WavFile(path, channels=channels, sample_rate=rate)))
        except FileExistsError:
            for _, wav in created:
                wav.discard()
            return False
        except BaseException:
            for _, wav in created:
                wav.discard()
            raise
        for kind, wav in created:
            if kind is None:
                self._stereo = wav
            else:
                self._files[kind] = wav
            self.paths.append(wav.path)
        return True

    def _write(self, block: AudioBlock) -> None:
        disk = self._disk
        if disk is None:
            self._append(block)
            return
        disk.refresh(at_most_every=1.0)
        reason = disk.refusal()
        if reason is None and disk.max_stream_bytes:
            room = (disk.max_stream_bytes - self._bytes) // self._frame_bytes  # media-clock samples that fit
            if block.end - self._written > room:
                reason = STREAM_LIMIT
                keep = max(0, room - max(0, block.start - self._written))
                if room > 0:  # what fits of it, then no more
                    self._account(disk, room)
                    part = {track: samples[:keep] for track, samples in block.channels.items()}
                    self._append(AudioBlock(block.start, block.sample_rate, part), end=self._written + room)
        if reason is not None:
            self._close()  # finalised: every file ends with the audio written so far
            raise SinkStopped(reason, f"recording finalised at {self._bytes} bytes: {reason.replace('_', ' ')}")
        self._account(disk, block.end - self._written)
        self._append(block)

    def _account(self, disk: DiskSpace, samples: int) -> None:
        size = samples * self._frame_bytes
        self._bytes += size
        disk.wrote(size)

    def _append(self, block: AudioBlock, end: int | None = None) -> None:
        """Write ``block`` (silence first for what this sink lost), up to media-clock sample ``end``."""
        if end is not None and end <= block.start:
            self._append_silence(end - self._written)
            self._written = end
            return
        if block.start > self._written:
            # Audio this sink lost while behind: keep the files on the media clock.
            self._append_silence(block.start - self._written)
        channels = block.channels
        for track, wav in self._files.items():
            # The samples' own memory: no bytes copy of every block (a copy only if a caller's
            # array is not little-endian int16 in one piece)
            wav.append(np.ascontiguousarray(channels[track], dtype="<i2").data)
        if self._stereo is not None:
            stereo = np.empty((len(block), 2), dtype="<i2")
            stereo[:, 0] = channels[Track.INBOUND]
            stereo[:, 1] = channels[Track.OUTBOUND]
            self._stereo.append(stereo.data)
        self._written = block.end
        now = time.monotonic()
        if now - self._last_refresh >= HEADER_REFRESH_SECONDS:
            self._refresh()
            self._last_refresh = now

    def _append_silence(self, n: int) -> None:
        chunk = 1 << 16
        while n > 0:
            k = min(n, chunk)
            zeros = bytes(2 * k)
            for wav in self._files.values():
                wav.append(zeros)
            if self._stereo is not None:
                self._stereo.append(zeros * 2)
            n -= k

    def _refresh(self) -> None:
        for wav in self._all():
            wav.refresh_header()

    def _all(self) -> list[_WavFile]:
        return [*self._files.values(), *([self._stereo] if self._stereo is not None else [])]

    def _close(self, comment: str | None = None) -> None:
        errors = []
        for wav in self._all():
            try:
                wav.close(comment)
            except OSError as exc:  # pragma: no cover - a failing disk at close
                errors.append(exc)
        self._files.clear()
        self._stereo = None
        if errors:  # pragma: no cover
            raise errors[0]


def pause_comment(outcome: StreamOutcome) -> str | None:
    """What the file's INFO comment says about a paused recording (None: never paused)."""
    if not outcome.pauses:
        return None
    spans = ", ".join(
        f"{p['start_seconds']:.3f}-{'end' if p['end_seconds'] is None else format(p['end_seconds'], '.3f')} {p['behavior']}"
        for p in outcome.pauses
    )
    return f"receiver: recording paused {outcome.paused_seconds:.3f} s of media time ({spans})"


def repair_wav(path: str | os.PathLike[str]) -> bool:
    """Make a WAV file's header agree with its length (after a crash).

    Returns True when the header was rewritten. Only canonical 44-byte PCM
    headers (as this sink writes) are touched.
    """
    with open(path, "r+b") as f:
        header = f.read(HEADER_SIZE)
        if (
            len(header) < HEADER_SIZE
            or header[:4] != b"RIFF"
            or header[8:16] != b"WAVEfmt "
            or header[36:40] != b"data"
        ):
            return False
        channels, rate = struct.unpack_from("<HI", header, 22)
        size = f.seek(0, os.SEEK_END)
        frame = 2 * channels
        data_bytes = (size - HEADER_SIZE) // frame * frame
        declared = struct.unpack_from("<I", header, 40)[0]
        if declared == data_bytes and size == HEADER_SIZE + data_bytes:
            return False
        if struct.unpack_from("<I", header, 4)[0] + 8 == size and HEADER_SIZE + declared < size:
            return False  # finished, with chunks after the audio (the pause comment)
        f.truncate(HEADER_SIZE + data_bytes)
        f.seek(0)
        f.write(wav_header(channels=channels, sample_rate=rate, data_bytes=data_bytes))
        return True


def repair_directory(root: str | os.PathLike[str]) -> list[Path]:
    """Repair every unfinished WAV file under ``root``; return the ones repaired."""
    repaired: list[Path] = []
    base = Path(root)
    if not base.is_dir():
        return repaired
    for path in sorted(base.rglob("*.wav")):
        try:
            if repair_wav(path):
                repaired.append(path)
        except OSError:
            continue
    return repaired
