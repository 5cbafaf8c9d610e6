"""
The Live page's data: each live stream's level per track, read from its ring
buffers when someone is watching (nothing is computed otherwise), and the
transcript events as they are published, fanned out to every watcher.

Runs on the event loop: reading the last quarter second of a ring buffer and
one RMS per track is a few microseconds. Never touches a socket; a watcher
that does not keep up loses the oldest transcript lines, not the stream.
"""

from __future__ import annotations

import asyncio
import collections
import math
from collections.abc import Callable, Iterable
from typing import Any, Final

import numpy as np

from receiver.metrics import LiveStream
from receiver.transcription.transcript import SPEAKERS, Transcript

LEVEL_SECONDS: Final = 0.25  # the window each level is measured over, and how often watchers get levels
FLOOR_DBFS: Final = -90.0
MAX_STREAMS: Final = 100  # the Live page lists at most this many streams
RECENT_LINES: Final = 50  # transcript lines a new watcher is shown first
WATCHER_QUEUE: Final = 256


def level_dbfs(samples: np.ndarray[Any, Any]) -> float:
    """The RMS level of int16 samples in dBFS (``FLOOR_DBFS`` for silence)."""
    if len(samples) == 0:
        return FLOOR_DBFS
    rms = math.sqrt(float(np.mean(np.square(samples, dtype=np.float64)))) / 32768.0
    return round(max(FLOOR_DBFS, 20 * math.log10(rms)) if rms > 0 else FLOOR_DBFS, 1)


def levels(live: Iterable[LiveStream]) -> list[dict[str, Any]]:
    """Every live stream (the first ``MAX_STREAMS``) with each track's level over the last ``LEVEL_SECONDS``."""
    out = []
    for pipeline, session in live:
        info = pipeline.info
        window = int(info.sample_rate * LEVEL_SECONDS)
        tracks = {}
        for track, buffer in pipeline.buffers.items():
            tracks[track.value] = level_dbfs(buffer.latest(window))
        out.append(
            {
                "call_id": info.call_id,
                "stream_id": info.stream_id,
                "platform": info.platform.value,
                "media_seconds": round(pipeline.clock.head / info.sample_rate, 2),
                "messages": session.messages,
                "levels": tracks,
            }
        )
        if len(out) >= MAX_STREAMS:
            break
    return out


def transcript_line(event: Transcript) -> dict[str, Any]:
    return {
        "call_id": event.call_id,
        "stream_id": event.stream_id,
        "speaker": SPEAKERS.get(event.track, event.track),
        "track": event.track,
        "start": event.start,
        "end": event.end,
        "text": event.text,
        "kind": event.kind,
        "engine": event.engine,
    }


class LiveFeed:
    """The live streams and transcript lines, for any number of watchers (the SSE handler)."""

    def __init__(self) -> None:
        self.live: Callable[[], Iterable[LiveStream]] = tuple
        self.recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=RECENT_LINES)
        self._watchers: set[asyncio.Queue[dict[str, Any]]] = set()
        self.closed = False

    def transcript_published(self, event: Transcript) -> None:
        """A ``TranscriptFeed`` listener (on the loop: put and return)."""
        if not event.final or event.kind == "speech":
            return
        line = transcript_line(event)
        self.recent.append(line)
        for queue in self._watchers:
            if queue.full():  # a slow watcher loses its oldest line
                queue.get_nowait()
            queue.put_nowait(line)

    def watch(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(WATCHER_QUEUE)
        self._watchers.add(queue)
        return queue

    def unwatch(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._watchers.discard(queue)

    def close(self) -> None:
        """Shutting down: every watcher's stream ends."""
        self.closed = True
        for queue in self._watchers:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait({})  # wakes the handler, which sees ``closed``
