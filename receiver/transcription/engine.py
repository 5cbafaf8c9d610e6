"""
What every speech engine plugin shares: decoder processes, and each track's VAD → queue → decode → publish.

An engine plugin (``sphinx``, ``whisper``) runs one ``TrackDecoder`` per
track. The track's audio goes through the VAD (``vad.Segmenter``); each
utterance it cuts waits in a bounded queue and is decoded whole in a pool of
worker processes (``worker_pool``): the engines hold the GIL for much of
their work (pocketsphinx all of it, faster-whisper its feature extraction and
Python loop), so a thread would stall the event loop, and processes use every
core. Results come back in order per track and go to the engine's ``publish``
callable, which puts them on the stream's media clock.

A track whose decoding falls behind by more than ``max_pending`` utterances
drops the newest (counted), so memory stays bounded. With ``partial_seconds``
set, the utterance still being spoken is also decoded every that many
seconds of it (``final=False``), but only while the track has nothing else
waiting: partial results never delay a final one.

Uses asyncio and logging; never touches the media socket.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import functools
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from receiver.errors import InvalidValue
from receiver.events import Track
from receiver.logging import Logger, get_logger
from receiver.sinks import AudioBlock, StreamInfo, StreamOutcome
from receiver.transcription.transcript import TRANSCRIPTS, Transcripts
from receiver.transcription.vad import Segmenter, Utterance, VadOptions

_log = get_logger(TRANSCRIPTS)

# A decode call for the pool: the function (importable, so a worker can run it) and its arguments.
DecodeCall = tuple[Callable[..., Any], tuple[Any, ...]]

# -- worker processes ------------------------------------------------------------------------------


def _worker_init() -> None:
    """Die with the receiver: a killed receiver must not leave decoders behind (Linux)."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


_pools: dict[str, concurrent.futures.ProcessPoolExecutor] = {}


def worker_pool(engine: str, workers: int = 0) -> concurrent.futures.ProcessPoolExecutor:
    """The process-wide pool of ``engine``'s decoder processes (started on first use; a broken one is replaced).

    Each engine has its own pool, so a slow engine never queues another's work.
    The first caller's ``workers`` (0: one per CPU) sizes it.
    """
    pool = _pools.get(engine)
    if pool is None or getattr(pool, "_broken", False):
        if not _pools:
            atexit.register(shutdown_pools)
        count = workers or os.cpu_count() or 1
        # spawn: never fork a process that runs an event loop and threads.
        pool = _pools[engine] = concurrent.futures.ProcessPoolExecutor(
            count, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init
        )
    return pool


def shutdown_pools() -> None:
    """Stop every engine's decoder processes (at exit; the next use starts new ones)."""
    pools = list(_pools.values())
    _pools.clear()
    for pool in pools:
        pool.shutdown(wait=True, cancel_futures=True)


# -- one track ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Job:
    """An utterance to decode: ``final`` once the VAD has ended it, a partial while it is being spoken."""

    utterance: Utterance
    final: bool = True


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """How an engine's tracks run (the options every engine shares)."""

    engine: str  # the pool's name
    workers: int = 0
    max_pending: int = 20
    vad: VadOptions = VadOptions()
    partial_seconds: float = 0.0  # 0: no partial results

    def __post_init__(self) -> None:
        if self.workers < 0 or self.max_pending < 1:
            raise InvalidValue("workers must be >= 0 and max_pending >= 1")
        if self.partial_seconds < 0:
            raise InvalidValue("partial_seconds must not be negative")


class TrackDecoder:
    """One track of one stream: its utterances decoded in order in the engine's worker processes.

    ``call(job)`` says what to run in a worker for a job; ``publish(job,
    result)`` gets the worker's result, on the event loop.
    """

    def __init__(
        self,
        track: Track,
        rate: int,
        settings: EngineSettings,
        *,
        call: Callable[[Job], DecodeCall],
        publish: Callable[[Job, Any], None],
        log: Logger,
    ) -> None:
        self.track = track
        self.settings = settings
        self.segmenter = Segmenter(rate, settings.vad)
        self.decoded = 0
        self.partials = 0
        self.dropped = 0
        self.failed = 0
        self.decode_seconds = 0.0
        self._call = call
        self._publish = publish
        self._log = log
        self._queue: asyncio.Queue[Job | None] = asyncio.Queue(settings.max_pending)
        self._busy = False
        self._progress = asyncio.Event()
        self._partial_at = 0  # samples of the current utterance when its last partial was queued
        self._task: asyncio.Task[None] | None = asyncio.get_running_loop().create_task(
            self._run(), name=f"{settings.engine}:{track}"
        )

    @property
    def running(self) -> bool:
        """Whether the track's decoding task is still going (``finish`` waits until it is not)."""
        return self._task is not None and not self._task.done()

    @property
    def pending(self) -> int:
        """Jobs waiting or being decoded."""
        return self._queue.qsize() + self._busy

    def push(self, samples: npt.NDArray[np.int16]) -> None:
        """Feed the track's next samples (never blocks: a full queue drops the utterance, counted)."""
        for utterance in self.segmenter.push(samples):
            self._partial_at = 0
            self._put(Job(utterance))
        self._maybe_partial()

    async def finish(self) -> None:
        """End of the track: decode what is left, then stop."""
        for utterance in self.segmenter.flush():
            self._put(Job(utterance))
        await self._queue.put(None)
        task, self._task = self._task, None
        if task is not None:
            try:
                await task
            finally:
                if not task.done():
                    task.cancel()

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def wait_ready(self) -> None:
        """Return once nothing waits to be decoded (a batch run feeds no faster than the engine decodes)."""
        while self._queue.qsize():
            self._progress.clear()
            await self._progress.wait()

    async def idle(self) -> None:
        """Return once nothing is waiting or being decoded."""
        while self.pending:
            self._progress.clear()
            await self._progress.wait()

    def _maybe_partial(self) -> None:
        every = self.settings.partial_seconds
        if not every or self.pending:
            return
        current = self.segmenter.current()
        if current is None or len(current.samples) - self._partial_at < every * current.rate:
            return
        self._partial_at = len(current.samples)
        self._queue.put_nowait(Job(current, final=False))

    def _put(self, job: Job) -> None:
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped == 1:
                self._log.warning("engine_behind", track=str(self.track), max_pending=self.settings.max_pending)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while (job := await self._queue.get()) is not None:
            started = time.monotonic()
            fn, args = self._call(job)
            self._busy = True
            try:
                result = await loop.run_in_executor(worker_pool(self.settings.engine, self.settings.workers), fn, *args)
            except concurrent.futures.BrokenExecutor:
                # A worker died (killed, out of memory): a new pool serves the next utterance.
                self._log.error("engine_worker_died", track=str(self.track))
                continue
            except Exception as exc:  # the decoder failed on this utterance: count it, go on with the next
                self.failed += 1
                if self.failed == 1:
                    self._log.error("engine_decode_failed", track=str(self.track), error=repr(exc)[:300])
                continue
            finally:
                self._busy = False
                self._progress.set()
            self.decode_seconds += time.monotonic() - started
            if job.final:
                self.decoded += 1
            else:
                self.partials += 1
            self._publish(job, result)


class StreamDecoders:
    """A stream's tracks, one ``TrackDecoder`` each: what an engine plugin's ``write``, ``wait_ready`` and ``close`` do.

    Empty until ``open``s, so a plugin never opened writes and closes nothing.
    """

    __slots__ = ("_log", "tracks")

    def __init__(self, tracks: list[TrackDecoder] | None = None, log: Logger | None = None) -> None:
        self.tracks = tracks or []
        self._log = log

    @classmethod
    def open(
        cls,
        stream: StreamInfo,
        rate: int,
        settings: EngineSettings,
        *,
        call: Callable[[Job], DecodeCall],
        publish: Callable[[Track, Job, Any], None],
        log: Logger,
    ) -> StreamDecoders:
        """A decoder per track of ``stream``; ``publish`` gets the track with each result."""
        tracks = [
            TrackDecoder(track, rate, settings, call=call, publish=functools.partial(publish, track), log=log)
            for track in stream.tracks
        ]
        return cls(tracks, log)

    def push(self, block: AudioBlock) -> None:
        for decoder in self.tracks:
            decoder.push(block.channels[decoder.track])

    async def wait_ready(self) -> None:
        for decoder in self.tracks:
            await decoder.wait_ready()

    async def close(self) -> None:
        """Decode what is left of every track, stop, and log the engine's summary line."""
        try:
            await asyncio.gather(*(decoder.finish() for decoder in self.tracks))
        finally:
            for decoder in self.tracks:
                decoder.cancel()
        if self._log is not None:
            log_summary(self._log, self.tracks)


class EngineSink:
    """An engine plugin's ``Sink`` methods: a ``StreamDecoders`` per stream, fed, waited on and closed.

    A subclass sets ``name`` and ``sample_rate``, sets up ``options`` in its
    ``__init__`` (calling this one), and says in ``decoders`` how its tracks decode.
    """

    name: str
    sample_rate: int
    interval = 0.2
    sample_format = "int16"

    def __init__(self) -> None:
        self.transcripts: Transcripts | None = None
        self._decoders = StreamDecoders()
        self._log: Logger = _log

    def decoders(self, stream: StreamInfo) -> StreamDecoders:
        """The stream's decoders (``StreamDecoders.open``), logging to ``self._log``."""
        raise NotImplementedError

    async def open(self, stream: StreamInfo) -> None:
        engine = self.transcripts.engine if self.transcripts is not None else self.name  # the name config.toml gave it
        self._log = _log.bind(stream_id=stream.stream_id, call_id=stream.call_id, engine=engine)
        self._decoders = self.decoders(stream)

    async def write(self, block: AudioBlock) -> None:
        self._decoders.push(block)

    async def wait_ready(self) -> None:
        await self._decoders.wait_ready()

    async def close(self, outcome: StreamOutcome) -> None:
        await self._decoders.close()


def log_summary(log: Logger, tracks: list[TrackDecoder]) -> None:
    """The engine's one line at stream end."""
    log.info(
        "engine_summary",
        utterances={str(t.track): t.decoded for t in tracks},
        partials={str(t.track): t.partials for t in tracks} if any(t.partials for t in tracks) else None,
        dropped={str(t.track): t.dropped for t in tracks},
        failed={str(t.track): t.failed for t in tracks},
        decode_seconds=round(sum(t.decode_seconds for t in tracks), 3),
    )


def on_clock(utterance: Utterance, start: float, end: float) -> tuple[float, float]:
    """Times relative to an utterance (as engines give them), on the track's media clock, within the utterance."""
    base, limit = utterance.start_seconds, utterance.end_seconds
    return min(base + start, limit), min(base + end, limit)
