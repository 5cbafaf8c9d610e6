"""
Prometheus metrics: every metric defined once, here, and ``StreamMetrics``, which feeds them.

The receive path touches one metric only: ``receiver_message_seconds``, timed
on one media message in ``SAMPLE_EVERY`` (a bit test per message otherwise).
Everything else is copied from the counters the pure core already keeps
(``SessionStats``, the media clock's ``TrackStats``, the fan-out's losses and
cursors, the guard's counts): ``StreamMetrics`` is a stream observer that
adds what changed since it last looked, once a second, before every scrape
and when a stream ends. It sums the changes of every stream per label set
first, so a second costs a few dozen metric updates whatever the number of
streams. Webhooks, the call store and transcripts update their metrics where
they happen (rare, and never on the receive path).

``--workers N``: the parent sets ``PROMETHEUS_MULTIPROC_DIR`` to a fresh
directory before it starts the workers (``multiprocess_dir``), every worker
writes its values there, and ``/metrics`` on any worker reads them all
(prometheus-client's multiprocess mode). Live gauges count live processes only.

Names and meanings: ``docs/metrics.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from receiver.errors import MalformedMessage, StreamRefused, UnexpectedEvent, UnsupportedEncoding
from receiver.events import Encoding
from receiver.logging import get_logger
from receiver.security.limits import Limit

if TYPE_CHECKING:
    from receiver.session import SessionStats
    from receiver.sinks import StreamInfo, StreamOutcome
    from receiver.stream.pipeline import StreamPipeline
    from receiver.transcription.transcript import Transcript

METRICS_LOGGER: Final = "receiver.metrics"
MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
SAMPLE_EVERY: Final = 64  # one media message in 64 is timed (a power of two: a mask test)
SAMPLE_MASK: Final = SAMPLE_EVERY - 1
SYNC_SECONDS: Final = 1.0

log = get_logger(METRICS_LOGGER)

# The *_created series (when each labelled series first appeared) are of no use on a dashboard here.
disable_created_metrics()  # type: ignore[no-untyped-call]

# -- the metrics -------------------------------------------------------------------------

STREAMS_ACTIVE = Gauge(
    "receiver_streams_active", "Streams started and not yet ended.", ["platform"], multiprocess_mode="livesum"
)
STREAMS_STARTED = Counter("receiver_streams_started", "Streams whose start message was accepted.", ["platform"])
STREAMS_ENDED = Counter(
    "receiver_streams_ended", "Started streams that ended, by outcome and close code.", ["platform", "outcome", "code"]
)
MESSAGES = Counter("receiver_messages", "WebSocket messages received on started streams.", ["platform"])
FRAMES = Counter("receiver_media_frames", "Media frames placed on the media clock.", ["platform", "track"])
MEDIA_BYTES = Counter(
    "receiver_media_bytes", "Audio payload bytes of the media frames placed (decoded).", ["platform", "track"]
)
GAPS = Counter("receiver_media_gaps", "Holes in a track filled with silence.", ["platform", "track"])
GAP_SECONDS = Counter("receiver_media_gap_seconds", "Seconds of silence filled into holes.", ["platform", "track"])
LATE = Counter(
    "receiver_media_late_frames", "Frames dropped: their place had become silence already.", ["platform", "track"]
)
DUPLICATES = Counter(
    "receiver_media_duplicate_frames", "Frames dropped: their place held audio already.", ["platform", "track"]
)
DISCONTINUITIES = Counter(
    "receiver_media_discontinuities", "Timestamp jumps over max_gap_ms (the clock re-based).", ["platform"]
)
SEQUENCE_GAPS = Counter("receiver_sequence_gaps", "Messages missing by sequence number.", ["platform"])
SINK_LOST = Counter("receiver_sink_lost_seconds", "Audio a sink fell too far behind to read.", ["sink"])
SINK_FAILURES = Counter(
    "receiver_sink_failures", "Sinks disabled on a stream (raised, or too slow to close).", ["sink"]
)
SINK_BACKLOG = Gauge(
    "receiver_sink_backlog_seconds",
    "Committed audio the slowest stream's sink has yet to read.",
    ["sink"],
    multiprocess_mode="livemax",
)
LIMIT_HITS = Counter("receiver_limit_hits", "Connections that hit a limit.", ["limit"])
AUTH_REFUSALS = Counter("receiver_auth_refusals", "Stream upgrades or starts refused.", ["reason"])
WEBHOOKS = Counter("receiver_webhook_requests", "Webhook requests, by event and result.", ["event", "result"])
STORE_SECONDS = Histogram(
    "receiver_store_seconds",
    "Time a call-store job took on its thread.",
    ["op"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
MESSAGE_SECONDS = Histogram(
    "receiver_message_seconds",
    f"Processing time of one media message (parse, decode, place), sampled 1 in {SAMPLE_EVERY}.",
    buckets=(2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 5e-3, 0.025),
)
TRANSCRIPTS = Counter("receiver_transcripts", "Transcript events published, by engine and kind.", ["engine", "kind"])
TRANSCRIPTION_LAG = Histogram(
    "receiver_transcription_lag_seconds",
    "From the end of the words (stream start + media time) to the transcript event.",
    ["engine"],
    buckets=(0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 60.0),
)

# -- label values (bounded: peers choose some of these strings) ------------------------

WEBHOOK_EVENTS: Final = frozenset({"call.completed", "recording.completed", "recording.failed"})
_PEER_STOP_REASONS: Final = frozenset({"stop_stream", "call_ended", "error"})
_OUR_REASONS: Final = frozenset(
    {"disconnected", "closed", "shutdown", "message_too_big", "protocol_error"}
    | {cls.kind for cls in (MalformedMessage, UnexpectedEvent, UnsupportedEncoding, StreamRefused)}
    | {limit.value for limit in Limit}
)
_BYTES_PER_SAMPLE: Final = {Encoding.MULAW: 1, Encoding.ALAW: 1, Encoding.L16: 2}


def outcome_label(reason: str, close_code: int | None) -> str:
    """A stream's end as a label: our own reasons and the protocol's stop reasons as they are;
    a ``stop`` with any other reason is ``stop_other``."""
    if reason in _OUR_REASONS or reason in _PEER_STOP_REASONS:
        return reason
    return "stop_other" if close_code == 1000 else "other"


def webhook_event_label(event: str | None) -> str:
    if event is None:
        return "none"
    return event if event in WEBHOOK_EVENTS else "other"


# -- feeding them ----------------------------------------------------------------------

_Key = tuple[Any, tuple[str, ...]]  # (metric, label values)


class LiveStream(NamedTuple):
    """A started stream as the server holds it (read on the loop, never kept)."""

    pipeline: StreamPipeline
    session: SessionStats


class _Tracked:
    __slots__ = ("counts", "info")

    def __init__(self, info: StreamInfo) -> None:
        self.info = info
        self.counts: dict[_Key, float] = {}


class StreamMetrics:
    """A stream observer that copies the core's counters into the metrics.

    Args:
        live: The server's started streams (``StreamServer.live_streams``).
        guard_counts: The guard's refusal and limit counts (``Guard.counts``).
    """

    def __init__(
        self,
        live: Callable[[], Iterable[LiveStream]] = tuple,
        guard_counts: Callable[[], Mapping[str, int]] = dict,
    ) -> None:
        self.watch(live, guard_counts)
        self._guard_seen: Tally[str] = Tally()
        self._streams: dict[int, _Tracked] = {}
        self._started_at: dict[str, float] = {}  # live streams' wall-clock starts, by stream id
        self._sinks: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    def watch(self, live: Callable[[], Iterable[LiveStream]], guard_counts: Callable[[], Mapping[str, int]]) -> None:
        """Read these (the stream server's ``live_streams`` and ``guard.counts``)."""
        self._live = live
        self._guard_counts = guard_counts

    # StreamObserver: on the receive path, so a few dictionary updates only.

    def stream_started(self, info: StreamInfo) -> None:
        platform = info.platform.value
        STREAMS_STARTED.labels(platform).inc()
        STREAMS_ACTIVE.labels(platform).inc()
        self._streams[id(info)] = _Tracked(info)
        self._started_at[info.stream_id] = info.started_at

    def stream_ended(self, info: StreamInfo, outcome: StreamOutcome) -> None:
        platform = info.platform.value
        STREAMS_ACTIVE.labels(platform).dec()
        code = "none" if outcome.close_code is None else str(outcome.close_code)
        STREAMS_ENDED.labels(platform, outcome_label(outcome.reason, outcome.close_code), code).inc()
        for sink in outcome.disabled_sinks:
            SINK_FAILURES.labels(sink).inc()
        self._started_at.pop(info.stream_id, None)
        tracked = self._streams.pop(id(info), None)
        if tracked is not None:
            changes: dict[_Key, float] = {}
            _add_changes(changes, tracked, _final_counts(info, outcome))
            _apply(changes)

    def transcript_published(self, event: Transcript) -> None:
        """A ``TranscriptFeed`` listener: counts the event and, on a live stream, how late it came."""
        TRANSCRIPTS.labels(event.engine, event.kind).inc()
        started = self._started_at.get(event.stream_id)
        if event.final and started is not None:
            TRANSCRIPTION_LAG.labels(event.engine).observe(max(0.0, time.time() - started - event.end))

    # The periodic copy.

    def sync(self) -> None:
        """Add what the live streams and the guard counted since the last call."""
        changes: dict[_Key, float] = {}
        backlog: dict[str, float] = {}
        for pipeline, session in self._live():
            tracked = self._streams.get(id(pipeline.info))
            if tracked is None:
                continue
            _add_changes(changes, tracked, _live_counts(pipeline, session))
            rate = pipeline.info.sample_rate
            for sink, samples in pipeline.fanout.backlog.items():
                backlog[sink] = max(backlog.get(sink, 0.0), samples / rate)
        _apply(changes)
        self._sinks.update(backlog)
        for sink in self._sinks:
            SINK_BACKLOG.labels(sink).set(backlog.get(sink, 0.0))
        counts = self._guard_counts()
        for name, value in counts.items():
            delta = value - self._guard_seen[name]
            if delta <= 0:
                continue
            self._guard_seen[name] = value
            if name.startswith("refused_"):
                AUTH_REFUSALS.labels(name.removeprefix("refused_")).inc(delta)
            else:
                LIMIT_HITS.labels(name.removeprefix("limit_")).inc(delta)

    def start(self) -> None:
        """Sync once a second until ``stop`` (in every worker: none sees the others' streams)."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="metrics")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.sync()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(SYNC_SECONDS)
            try:
                self.sync()
            except Exception as exc:  # a bug here must not end the copying for good
                log.error("metrics_sync_failed", error=repr(exc)[:200])


def _live_counts(pipeline: StreamPipeline, session: SessionStats) -> dict[_Key, float]:
    info = pipeline.info
    out: dict[_Key, float] = {}
    platform = info.platform.value
    width = _BYTES_PER_SAMPLE.get(info.media_format.encoding, 2)
    rate = info.sample_rate
    for track, s in pipeline.clock.stats().items():
        _track_counts(
            out, platform, track.value, rate, width, s.frames, s.samples_received, s.audio_gaps, s.audio_gap_samples, s.late,
            s.duplicates,
        )  # fmt: skip
    out[(MESSAGES, (platform,))] = session.messages
    out[(SEQUENCE_GAPS, (platform,))] = session.sequence_gaps
    out[(DISCONTINUITIES, (platform,))] = pipeline.clock.discontinuities
    for sink, lost in pipeline.fanout.losses.items():
        out[(SINK_LOST, (sink,))] = lost / rate
    return out


def _final_counts(info: StreamInfo, outcome: StreamOutcome) -> dict[_Key, float]:
    out: dict[_Key, float] = {}
    platform = info.platform.value
    width = _BYTES_PER_SAMPLE.get(info.media_format.encoding, 2)
    rate = info.sample_rate
    for track, s in outcome.tracks.items():
        _track_counts(
            out, platform, track, rate, width, s["frames"], s["samples_received"], s["audio_gaps"], s["audio_gap_samples"],
            s["late"], s["duplicates"],
        )  # fmt: skip
    out[(MESSAGES, (platform,))] = outcome.messages
    out[(SEQUENCE_GAPS, (platform,))] = outcome.sequence_gaps
    out[(DISCONTINUITIES, (platform,))] = outcome.discontinuities
    for sink, lost in outcome.sink_losses.items():
        out[(SINK_LOST, (sink,))] = lost / rate
    return out


def _track_counts(
    out: dict[_Key, float],
    platform: str,
    track: str,
    rate: int,
    width: int,
    frames: int,
    samples: int,
    gaps: int,
    gap_samples: int,
    late: int,
    duplicates: int,
) -> None:
    labels = (platform, track)
    out[(FRAMES, labels)] = frames
    out[(MEDIA_BYTES, labels)] = samples * width
    out[(GAPS, labels)] = gaps
    out[(GAP_SECONDS, labels)] = gap_samples / rate
    out[(LATE, labels)] = late
    out[(DUPLICATES, labels)] = duplicates


def _add_changes(changes: dict[_Key, float], tracked: _Tracked, counts: Mapping[_Key, float]) -> None:
    seen = tracked.counts
    for key, value in counts.items():
        delta = value - seen.get(key, 0)
        if delta > 0:
            changes[key] = changes.get(key, 0) + delta
            seen[key] = value


def _apply(changes: Mapping[_Key, float]) -> None:
    for (metric, labels), delta in changes.items():
        metric.labels(*labels).inc(delta)


# -- exposition and multiprocess mode -----------------------------------------------------


def exposition() -> bytes:
    """The text format of every metric (of every worker, in multiprocess mode)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest()


@contextlib.contextmanager
def multiprocess_dir() -> Iterator[str]:
    """For the parent of ``--workers``: a fresh directory for the workers' values, set in the
    environment they inherit (unless the operator set one), removed at the end."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        # The operator's directory: stale files of an earlier run would be summed in.
        for stale in os.scandir(given):
            if stale.name.endswith(".db"):
                os.unlink(stale.path)
        yield given
        return
    path = tempfile.mkdtemp(prefix="receiver-metrics-")
    os.environ[MULTIPROC_ENV] = path
    try:
        yield path
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(path, ignore_errors=True)


def worker_exited(pid: int) -> None:
    """Drop a dead worker's live gauges (multiprocess mode; its counters stay)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
