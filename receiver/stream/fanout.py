"""
Hands each stream's audio to its sinks, each at its own pace.

Every sink gets a task and a read cursor over the stream's per-track ring
buffers. The receive loop only writes to the buffers and calls ``notify``
(which sets a flag); it never waits for a sink. Telephony audio is real time
and the platform will not slow down for us, so a sink that falls further
behind than the buffers hold does not apply back-pressure: it loses the
overwritten audio, and the loss is counted for that sink alone. A sink that
raises is disabled and logged once; the stream and the other sinks go on.
Memory per stream is the buffers' fixed capacity, whatever the sinks do.

A paused recording (``pause``/``resume``, asked for by the application over
the API) is applied here, once for every sink: in a paused span the sinks get
silence (``silence``) or nothing at all (``skip``: the span is cut, and later
blocks are numbered as if it had never been). Nothing of a paused span
reaches a file or an engine; the media clock and the ring buffers run on.

Uses asyncio; never touches a socket.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from receiver.errors import SinkStopped
from receiver.events import Track
from receiver.logging import Logger
from receiver.ringbuffer import TrackBuffer
from receiver.sinks import AudioBlock, Sink, StreamInfo, StreamOutcome

PauseBehavior = Literal["skip", "silence"]


@dataclass(slots=True)
class Pause:
    """A span of the media clock kept from the sinks (``end`` is None while it lasts)."""

    start: int
    behavior: PauseBehavior
    end: int | None = None

    def overlap(self, start: int, end: int) -> tuple[int, int] | None:
        """The part of ``[start, end)`` inside this pause, if any."""
        lo = max(start, self.start)
        hi = end if self.end is None else min(end, self.end)
        return (lo, hi) if lo < hi else None

    def as_dict(self, sample_rate: int) -> dict[str, Any]:
        return {
            "start_seconds": self.start / sample_rate,
            "end_seconds": None if self.end is None else self.end / sample_rate,
            "behavior": self.behavior,
        }


MAX_LOSS_SPANS = 1000  # per sink: where its losses were, for the console and plots (counts go on)


class _Runner:
    __slots__ = ("closing", "cursor", "disabled", "loss_spans", "lost", "sink", "task", "wake")

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.wake = asyncio.Event()
        self.cursor = 0
        self.lost = 0
        self.loss_spans: list[tuple[int, int]] = []
        self.disabled = False
        self.closing = False
        self.task: asyncio.Task[None] | None = None


class Fanout:
    """The sinks of one stream.

    Args:
        info: The stream, as sinks see it when they open.
        buffers: The stream's ring buffers, one per track.
        committed: Returns the media-clock index every track is final up to.
        sinks: The sinks to feed.
        logger: A structlog logger bound to the stream (sink failures go there).
    """

    def __init__(
        self,
        info: StreamInfo,
        buffers: Mapping[Track, TrackBuffer],
        committed: Callable[[], int],
        sinks: Sequence[Sink],
        logger: Logger,
    ) -> None:
        self._info = info
        self._buffers = buffers
        self._tracks = tuple(buffers)
        self._committed = committed
        self._runners = [_Runner(sink) for sink in sinks]
        self._log = logger
        self._outcome: StreamOutcome | None = None
        # Whether a sink's wake-up may be clear (a runner sets it after clearing its own):
        # ``notify`` runs once per frame, and between two reads of a sink every frame but
        # the first would call ``Event.set`` on a set event (a Python call for nothing).
        self.armed = True
        self.pauses: list[Pause] = []

    @property
    def paused(self) -> Pause | None:
        """The pause in effect, if the recording is paused now."""
        return self.pauses[-1] if self.pauses and self.pauses[-1].end is None else None

    def pause(self, at: int, behavior: PauseBehavior) -> Pause:
        """Keep the audio from media-clock index ``at`` on from every sink, until ``resume``."""
        current = self.paused
        if current is not None:
            return current
        # Audio already handed to a sink cannot be taken back: the pause starts after it.
        at = max([at, *(r.cursor for r in self._runners)])
        pause = Pause(at, behavior)
        self.pauses.append(pause)
        return pause

    def resume(self, at: int) -> Pause | None:
        """End the pause in effect at media-clock index ``at`` (None if not paused)."""
        current = self.paused
        if current is not None:
            current.end = max(at, current.start)
        return current

    def paused_samples(self, end: int) -> int:
        """Samples of ``[0, end)`` kept from the sinks."""
        return sum(hi - lo for p in self.pauses if (span := p.overlap(0, end)) for lo, hi in (span,))

    def _skipped_before(self, index: int) -> int:
        return sum(
            hi - lo for p in self.pauses if p.behavior == "skip" and (span := p.overlap(0, index)) for lo, hi in (span,)
        )

    def start(self) -> None:
        for runner in self._runners:
            runner.task = asyncio.get_running_loop().create_task(
                self._run(runner), name=f"sink:{runner.sink.name}:{self._info.stream_id}"
            )

    def notify(self) -> None:
        """New audio is committed: wake the sinks (cheap; no await).

        The per-frame caller may test ``armed`` first and skip the call: nothing to do without it.
        """
        if self.armed:
            self.armed = False
            for runner in self._runners:
                runner.wake.set()

    @property
    def losses(self) -> dict[str, int]:
        return {r.sink.name: r.lost for r in self._runners}

    @property
    def loss_spans(self) -> dict[str, tuple[tuple[int, int], ...]]:
        """Where each sink lost audio: ``(start, end)`` media-clock sample indices."""
        return {r.sink.name: tuple(r.loss_spans) for r in self._runners if r.loss_spans}

    @property
    def backlog(self) -> dict[str, int]:
        """Samples of committed audio each working sink has yet to read (its queue depth)."""
        committed = self._committed()
        return {r.sink.name: max(0, committed - r.cursor) for r in self._runners if not r.disabled}

    @property
    def files(self) -> tuple[str, ...]:
        """The files the sinks report (a sink's optional ``paths`` attribute)."""
        return tuple(str(path) for r in self._runners for path in getattr(r.sink, "paths", ()))

    @property
    def disabled(self) -> tuple[str, ...]:
        return tuple(r.sink.name for r in self._runners if r.disabled)

    async def close(self, outcome: StreamOutcome, grace: float) -> None:
        """Let every sink read the rest, then close it with ``outcome``.

        A sink that does not finish within ``grace`` seconds is cancelled.
        """
        self._outcome = outcome
        for runner in self._runners:
            runner.closing = True
            runner.wake.set()
        tasks = [r.task for r in self._runners if r.task is not None]
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for runner in self._runners:
            if runner.task in pending:
                runner.disabled = True
                self._log.error("sink_close_timeout", sink=runner.sink.name, grace_seconds=grace)

    def _read(self, runner: _Runner, end: int) -> AudioBlock | None:
        """Copy the runner's next block out of the buffers (counting what it lost)."""
        oldest = max(buf.oldest for buf in self._buffers.values())
        if runner.cursor < oldest:
            runner.lost += oldest - runner.cursor
            if len(runner.loss_spans) < MAX_LOSS_SPANS:
                runner.loss_spans.append((runner.cursor, oldest))
            runner.cursor = oldest
        start = runner.cursor
        if end <= start:
            return None
        channels = {track: self._buffers[track].read(start, end) for track in self._tracks}
        runner.cursor = end
        block_start = start
        if self.pauses:
            block_start = start - self._skipped_before(start)
            channels = self._apply_pauses(channels, start, end)
            if not channels or not len(next(iter(channels.values()))):
                return None
        for samples in channels.values():
            samples.flags.writeable = False
        return AudioBlock(block_start, self._info.sample_rate, channels)

    def _apply_pauses(self, channels: dict[Track, Any], start: int, end: int) -> dict[Track, Any]:
        """Silence or cut the paused parts of ``[start, end)`` (the arrays are fresh copies)."""
        keep = np.ones(end - start, dtype=bool)
        for pause in self.pauses:
            span = pause.overlap(start, end)
            if span is None:
                continue
            lo, hi = span[0] - start, span[1] - start
            if pause.behavior == "silence":
                for samples in channels.values():
                    samples[lo:hi] = 0
            else:
                keep[lo:hi] = False
        if keep.all():
            return channels
        return {track: samples[keep] for track, samples in channels.items()}

    async def _run(self, runner: _Runner) -> None:
        sink = runner.sink.name
        phase = "open"
        try:
            await runner.sink.open(self._info)
            phase = "write"
            interval = max(0.0, float(getattr(runner.sink, "interval", 0.01)))
            while True:
                if not runner.closing:
                    await runner.wake.wait()
                runner.wake.clear()
                self.armed = True
                closing = runner.closing
                block = self._read(runner, self._committed())
                if block is not None:
                    await runner.sink.write(block)
                if closing and runner.cursor >= self._committed():
                    break
                if interval and not runner.closing:
                    # Coalesce: let audio gather instead of waking per frame.
                    await asyncio.sleep(interval)
            phase = "close"
            await runner.sink.close(self._close_outcome())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            runner.disabled = True
            if isinstance(exc, SinkStopped):
                self._log.warning("sink_stopped", sink=sink, reason=exc.reason, detail=str(exc)[:200])
            else:
                self._log.error("sink_failed", sink=sink, phase=phase, error=repr(exc)[:200])
            if phase == "write":
                # Give it a chance to release what it holds; its failure is already logged.
                with contextlib.suppress(Exception):
                    await runner.sink.close(self._close_outcome())

    def _close_outcome(self) -> StreamOutcome:
        outcome = self._outcome
        if outcome is None:  # closing after a failure, before the stream ended
            return StreamOutcome(reason="sink_failed", close_code=None, duration_seconds=0.0, samples=0)
        return replace(
            outcome,
            sink_losses=self.losses,
            sink_loss_spans=self.loss_spans,
            disabled_sinks=self.disabled,
            **self.pause_summary(outcome.samples),
        )

    def pause_summary(self, end: int) -> dict[str, Any]:
        """The ``StreamOutcome`` fields that say what was paused up to ``end``."""
        rate = self._info.sample_rate
        return {
            "paused_seconds": self.paused_samples(end) / rate,
            "pauses": tuple(p.as_dict(rate) for p in self.pauses),
        }
