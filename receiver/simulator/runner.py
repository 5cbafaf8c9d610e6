"""
Runs planned calls against a receiver: WebSocket streams, webhooks, load.

The only network code of the simulator. Talks to the receiver as the
platform does, over a WebSocket per stream (``websockets`` client), and to
the application over HTTP (``http.py``). Per frame it does one ``ws.send`` of
a message built at plan time, plus, on the real-time clock, a sleep to the
frame's due time and two float operations for the send lag.

Send lag is how late the simulator itself sent a message against its plan
(real-time mode): when it grows, the simulator, not the receiver, is the
bottleneck.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

import aiohttp
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.frames import Close
from websockets.typing import Subprotocol

from receiver.calls.actions import Action, InvalidActions, parse_actions
from receiver.errors import CloseCode, ReceiverError
from receiver.events import FRAME_MS
from receiver.logging import get_logger
from receiver.simulator.credentials import Credentials, upgrade_headers
from receiver.simulator.http import AnswerUrlError, Delivery, WebhookSettings, envelope, fetch_answer_url, post_webhook
from receiver.simulator.plan import (
    NOT_MEDIA,
    CallPlan,
    Faults,
    MediaSpec,
    StreamPlan,
    hold_call,
    new_call,
    plan_call,
)
from receiver.simulator.wire import StreamIdentity
from receiver.sinks.wav import safe_name

log = get_logger("receiver.simulator")

# A send later than one frame counts as late.
FRAME_SECONDS = FRAME_MS / 1000


class LiveCall(Protocol):
    """A call the REST API can act on while it is up (``api.LiveCall``)."""

    hung_up_early: bool
    reports: list[StreamReport]

    def flow_stream(self, sp: StreamPlan) -> StopSignal: ...

    async def sleep_until(self, loop: asyncio.AbstractEventLoop, when: float) -> None: ...

    def hang_up(self, early: bool = False) -> None: ...

    async def join(self) -> None: ...


class LiveCalls(Protocol):
    """The run's calls while they are up, as the REST API keeps them (``api.LiveCalls``)."""

    project: str

    def call_started(
        self, plan: CallPlan, t0: float, settings: RunSettings, stats: Stats, ticker: Ticker | None
    ) -> LiveCall: ...

    def call_ended(self, call_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class RunSettings:
    """How calls run (everything but the flow, the media and the faults)."""

    fast: bool = False
    allow_insecure: bool = False
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    record_sent: Path | None = None
    open_timeout: float = 10.0
    answer_timeout: float = 10.0
    credentials: Credentials = field(default_factory=Credentials)  # the carriers' upgrade signatures
    hold: float = 0.0  # seconds each call stays up after its actions (ended early by a hang-up over the API)
    live: LiveCalls | None = None  # the calls the REST API (``api.py``) can act on


@dataclass(slots=True)
class Stats:
    """Counters shared by every call of a run (read by the progress line)."""

    calls_started: int = 0
    calls_completed: int = 0
    calls_failed: int = 0
    streams: int = 0
    frames_sent: int = 0  # media messages sent (duplicates included)
    messages_sent: int = 0
    connection_errors: int = 0  # streams that could not connect (refused ones included)
    refused: int = 0  # streams the receiver answered with an HTTP error instead of upgrading
    receiver_closed: int = 0  # streams the receiver closed before the simulator was done
    lag_max: float = 0.0  # seconds
    lag_sum: float = 0.0
    lag_count: int = 0
    late_sends: int = 0  # messages sent more than one frame (20 ms) late
    webhooks_delivered: int = 0
    webhooks_failed: int = 0
    started_at: float = field(default_factory=time.monotonic)
    running: dict[str, tuple[float, CallPlan]] = field(default_factory=dict)  # call id -> (monotonic start, plan)

    def as_dict(self) -> dict[str, Any]:
        elapsed = time.monotonic() - self.started_at
        return {
            "calls_started": self.calls_started,
            "calls_completed": self.calls_completed,
            "calls_failed": self.calls_failed,
            "streams": self.streams,
            "frames_sent": self.frames_sent,
            "messages_sent": self.messages_sent,
            "elapsed_seconds": round(elapsed, 3),
            "frames_per_second": round(self.frames_sent / elapsed, 1) if elapsed > 0 else 0.0,
            "send_lag_ms": {
                "max": round(self.lag_max * 1000, 3),
                "mean": round(self.lag_sum / self.lag_count * 1000, 3) if self.lag_count else 0.0,
                "late_sends": self.late_sends,
            },
            "connection_errors": self.connection_errors,
            "refused": self.refused,
            "receiver_closed": self.receiver_closed,
            "webhooks_delivered": self.webhooks_delivered,
            "webhooks_failed": self.webhooks_failed,
        }


@dataclass(slots=True)
class StreamReport:
    stream_id: str
    stream_url: str
    track: str
    start_seconds: float
    end_seconds: float
    planned_end: str  # stop_stream, call_ended or dropped
    outcome: str = "pending"  # stopped, dropped, connect_failed, refused, closed_by_receiver
    close_code: int | None = None
    error: str | None = None
    frames_planned: int = 0
    media_sent: int = 0
    messages_sent: int = 0
    faults: dict[str, Any] = field(default_factory=dict)
    recorded: list[str] = field(default_factory=list)

    @classmethod
    def planned(cls, sp: StreamPlan) -> StreamReport:
        """The report of a stream that has not run yet."""
        return cls(
            stream_id=sp.ident.stream_id,
            stream_url=sp.action.stream_url,
            track=sp.action.track.value,
            start_seconds=round(sp.start_ms / 1000, 3),
            end_seconds=round(sp.end_ms / 1000, 3),
            planned_end=sp.end,
            frames_planned=sp.frames,
            faults={name: tf.as_dict() for name, tf in sp.faults.items()},
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "stream_id": self.stream_id,
            "stream_url": self.stream_url,
            "track": self.track,
            "start_seconds": self.start_seconds,
            "end_seconds": self.end_seconds,
            "planned_end": self.planned_end,
            "outcome": self.outcome,
            "close_code": self.close_code,
            "error": self.error,
            "frames_planned": self.frames_planned,
            "media_sent": self.media_sent,
            "messages_sent": self.messages_sent,
            "faults": self.faults,
            "recorded": self.recorded,
        }


@dataclass(slots=True)
class CallReport:
    call_id: str
    duration_seconds: float = 0.0
    streams: list[StreamReport] = field(default_factory=list)
    webhooks: list[Delivery] = field(default_factory=list)
    skipped_actions: list[str] = field(default_factory=list)
    unmatched_stop_streams: int = 0
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "duration_seconds": self.duration_seconds,
            "streams": [s.as_dict() for s in self.streams],
            "webhooks": [w.as_dict() for w in self.webhooks],
            "skipped_actions": self.skipped_actions,
            "unmatched_stop_streams": self.unmatched_stop_streams,
            "error": self.error,
        }


# -- one stream ----------------------------------------------------------------------


class Ticker:
    """Wakes every stream of a run from one timer per time bucket.

    A stream waiting for its next frame awaits the future of the bucket its due
    time falls in (rounded up to ``resolution``), so a hundred streams share a
    handful of timers instead of arming one each per frame: the per-frame cost
    of the real-time clock is one resumed coroutine.
    """

    __slots__ = ("_futures", "_loop", "_resolution")

    def __init__(self, loop: asyncio.AbstractEventLoop, resolution: float = 0.002) -> None:
        self._loop = loop
        self._resolution = resolution
        self._futures: dict[int, asyncio.Future[None]] = {}

    def at(self, when: float) -> asyncio.Future[None]:
        """A future done at ``when`` (at most ``resolution`` later)."""
        key = -int(-when // self._resolution)
        future = self._futures.get(key)
        if future is None:
            future = self._futures[key] = self._loop.create_future()
            self._loop.call_at(key * self._resolution, self._fire, key)
        return future

    def _fire(self, key: int) -> None:
        future = self._futures.pop(key)
        if not future.done():
            future.set_result(None)


class StopSignal:
    """Ends a stream before its plan does: the REST API's ``stopStream``, or a hang-up."""

    __slots__ = ("event", "reason")

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.reason = "stop_stream"

    def set(self, reason: str) -> None:
        if not self.event.is_set():
            self.reason = reason
            self.event.set()


async def run_stream(
    sp: StreamPlan,
    call_t0: float,
    settings: RunSettings,
    stats: Stats,
    ticker: Ticker | None = None,
    *,
    stop: StopSignal | None = None,
    on_connected: Callable[[], None] | None = None,
) -> StreamReport:
    """Connect, send every planned message on time (or at once with ``fast``), stop or drop.

    ``stop``, when set, ends the stream early as the platform does: a ``stop``
    message with its reason, then a normal close.
    """
    report = StreamReport.planned(sp)
    loop = asyncio.get_running_loop()
    base = call_t0 + sp.start_ms / 1000
    if not settings.fast:
        await _sleep_until(loop, base)
    stats.streams += 1
    ws = await _connect(sp, settings, stats, report)
    if ws is None:
        return report
    if on_connected is not None:
        on_connected()
    early = False
    extra = 0  # messages an early stop sent beyond the plan's items
    try:
        first = 0
        if sp.wire.answers:  # the receiver must answer the opening before the audio flows
            for _, message, _, _ in sp.items[:1]:
                await ws.send(message)
                report.messages_sent += 1
                first = 1
            await _reply(ws, "opened", settings.open_timeout)
        if settings.fast:
            await _send_at_once(ws, sp, stats, report, stop, first)
        else:
            await _send_on_time(ws, sp, base, ticker or Ticker(loop), stats, report, stop, first)
        early = stop is not None and stop.event.is_set() and report.messages_sent < len(sp.items)
        if early:
            assert stop is not None
            extra = await _stop_early(ws, sp, stop.reason, stats, report, settings)
        else:
            await _finish(ws, sp, None if settings.fast else call_t0 + sp.end_ms / 1000, stats, report, settings)
    except ReplyMissing as exc:
        report.outcome, report.error = "no_reply", str(exc)
        stats.receiver_closed += 1
        await ws.close()
    except ConnectionClosed as exc:
        _closed_by_receiver(report, stats, sp.ident, exc.rcvd)
    finally:
        stats.messages_sent += report.messages_sent
    if settings.record_sent is not None:
        cut = early or report.outcome not in ("stopped", "dropped")
        delivered = report.messages_sent - extra if cut else None  # the early stop is not one of the plan's items
        report.recorded = await asyncio.to_thread(write_expected, sp, settings.record_sent, delivered)
    log.info(
        "stream_done",
        call_id=sp.ident.call_id,
        stream_id=sp.ident.stream_id,
        outcome=report.outcome,
        media_sent=report.media_sent,
    )
    return report


async def _connect(
    sp: StreamPlan, settings: RunSettings, stats: Stats, report: StreamReport
) -> ClientConnection | None:
    """Open the stream's WebSocket as the platform does; None (counted and reported) when it cannot."""
    ident = sp.ident
    try:
        subprotocol = sp.wire.subprotocol
        ws = await connect(
            sp.action.stream_url,
            subprotocols=[Subprotocol(subprotocol)] if subprotocol else None,
            additional_headers={
                **sp.wire.headers(),
                **upgrade_headers(settings.credentials, sp.wire.wire, sp.action.stream_url, ident),
            },
            user_agent_header=sp.wire.user_agent(),
            compression=None,
            open_timeout=settings.open_timeout,
            ping_interval=None,
            max_size=2**20,
        )
    except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
        stats.connection_errors += 1
        if isinstance(exc, InvalidStatus):
            # The receiver is there and said no (auth 401/403, over capacity or draining 503).
            stats.refused += 1
            report.outcome, report.close_code = "refused", None
            report.error = f"HTTP {exc.response.status_code}"
        else:
            report.outcome, report.error = "connect_failed", f"{type(exc).__name__}: {exc}"[:200]
        log.warning(
            "stream_refused" if report.outcome == "refused" else "stream_connect_failed",
            call_id=ident.call_id,
            stream_id=ident.stream_id,
            url=sp.action.stream_url,
            error=report.error,
        )
        return None
    log.debug("stream_connected", call_id=ident.call_id, stream_id=ident.stream_id, url=sp.action.stream_url)
    return ws


async def _send_at_once(
    ws: ClientConnection,
    sp: StreamPlan,
    stats: Stats,
    report: StreamReport,
    stop: StopSignal | None = None,
    first: int = 0,
) -> None:
    stopped = stop.event if stop is not None else None
    for _, text, t, _ in sp.items[first:]:
        if stopped is not None and stopped.is_set():
            return
        await ws.send(text)
        report.messages_sent += 1
        if t != NOT_MEDIA:
            report.media_sent += 1
            stats.frames_sent += 1


async def _send_on_time(
    ws: ClientConnection,
    sp: StreamPlan,
    base: float,
    ticker: Ticker,
    stats: Stats,
    report: StreamReport,
    stop: StopSignal | None = None,
    first: int = 0,
) -> None:
    """Send each item at its due time after ``base`` (loop time), measuring how late each went out."""
    clock = asyncio.get_running_loop().time
    lag_max, lag_sum, late = stats.lag_max, 0.0, 0
    stopped = stop.event if stop is not None else None
    for due, text, t, _ in sp.items[first:]:
        when = base + due / 1000
        now = clock()
        if when > now:
            await ticker.at(when)
            now = clock()
        if stopped is not None and stopped.is_set():
            break
        lag = now - when
        lag_sum += lag
        if lag > lag_max:
            lag_max = lag
        if lag > FRAME_SECONDS:
            late += 1
        await ws.send(text)
        report.messages_sent += 1
        if t != NOT_MEDIA:
            report.media_sent += 1
            stats.frames_sent += 1
    stats.lag_max = max(stats.lag_max, lag_max)
    stats.lag_sum += lag_sum
    stats.lag_count += report.messages_sent
    stats.late_sends += late


async def _finish(
    ws: ClientConnection,
    sp: StreamPlan,
    end_at: float | None,
    stats: Stats,
    report: StreamReport,
    settings: RunSettings,
) -> None:
    """End the stream as planned: drop it (at loop time ``end_at``; None: now) or close it normally."""
    if sp.end == "dropped":
        if end_at is not None:
            await _sleep_until(asyncio.get_running_loop(), end_at)
        _drop(ws)
        report.outcome = "dropped"
        return
    if sp.wire.answers:
        # The closing message is a transaction: the receiver answers it, then either side closes.
        await _reply(ws, "closed", settings.open_timeout)
        await ws.close(CloseCode.NORMAL_CLOSURE)
        rcvd = ws.protocol.close_rcvd
        if rcvd is not None and rcvd.code == CloseCode.NORMAL_CLOSURE:
            report.outcome, report.close_code = "stopped", int(CloseCode.NORMAL_CLOSURE)
        else:
            _closed_by_receiver(report, stats, sp.ident, rcvd)
        return
    await ws.close(CloseCode.NORMAL_CLOSURE)
    rcvd = ws.protocol.close_rcvd
    if rcvd is None or ws.protocol.close_rcvd_then_sent or rcvd.code != CloseCode.NORMAL_CLOSURE:
        # The receiver closed first, dropped the connection, or answered our close
        # with an error: every message was written, but not every one was read.
        _closed_by_receiver(report, stats, sp.ident, rcvd)
    else:
        report.outcome, report.close_code = "stopped", int(CloseCode.NORMAL_CLOSURE)


async def _stop_early(
    ws: ClientConnection, sp: StreamPlan, reason: str, stats: Stats, report: StreamReport, settings: RunSettings
) -> int:
    """End the stream before the plan's end: the format's closing messages (``stop``
    numbered after the last frame sent; AudioHook's ``close``, answered), then a normal
    close. Returns how many messages that sent."""
    sent = sp.items[: report.messages_sent]
    last_frame = max((k for _, _, t, k in sent if t != NOT_MEDIA), default=-1)
    if sp.wire.binary:  # control messages count on their own (AudioHook's seq)
        sequence = 1 + sum(1 for it in sent if it[2] == NOT_MEDIA)
    else:
        sequence = 2 + (last_frame + 1) * len(sp.tracks)
    closing = sp.wire.closing(sequence, reason, (last_frame + 1) * FRAME_MS)
    for message in closing:
        await ws.send(message)
        report.messages_sent += 1
    report.planned_end = reason
    if sp.wire.answers:
        await _reply(ws, "closed", settings.open_timeout)
    await ws.close(CloseCode.NORMAL_CLOSURE)
    rcvd = ws.protocol.close_rcvd
    if (
        rcvd is None
        or (ws.protocol.close_rcvd_then_sent and not sp.wire.answers)
        or rcvd.code != CloseCode.NORMAL_CLOSURE
    ):
        _closed_by_receiver(report, stats, sp.ident, rcvd)
    else:
        report.outcome, report.close_code = "stopped", int(CloseCode.NORMAL_CLOSURE)
    return len(closing)


def _closed_by_receiver(report: StreamReport, stats: Stats, ident: StreamIdentity, rcvd: Close | None) -> None:
    stats.receiver_closed += 1
    report.outcome = "closed_by_receiver"
    report.close_code = None if rcvd is None else rcvd.code
    report.error = "connection lost" if rcvd is None else rcvd.reason[:200]
    log.warning(
        "stream_closed_by_receiver",
        call_id=ident.call_id,
        stream_id=ident.stream_id,
        close_code=report.close_code,
        reason=report.error,
        media_sent=report.media_sent,
    )


class ReplyMissing(ReceiverError):
    """The receiver did not answer a message its format requires it to answer."""


async def _reply(ws: ClientConnection, kind: str, seconds: float) -> None:
    """Read until the receiver's reply of type ``kind`` (other replies, such as pongs, are skipped).

    Raises:
        ReplyMissing: None came within ``seconds``, or the connection closed first.
    """
    try:
        async with asyncio.timeout(seconds):
            async for message in ws:
                if isinstance(message, str) and json.loads(message).get("type") == kind:
                    return
    except TimeoutError:
        raise ReplyMissing(f"no {kind} within {seconds} s") from None
    except (ConnectionClosed, ValueError):
        pass
    raise ReplyMissing(f"the receiver closed before answering {kind}")


def _drop(ws: ClientConnection) -> None:
    """Drop the connection without a close frame: what was written is still flushed, then FIN."""
    ws.transport.close()


async def _sleep_until(loop: asyncio.AbstractEventLoop, when: float) -> None:
    delay = when - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)


def write_expected(sp: StreamPlan, root: Path, delivered: int | None) -> list[str]:
    """Write what a correct receiver must decode: ``{call_id}/{stream_id}.{track}.wav`` (+ ``.stereo.wav``)."""
    expected = sp.expected(delivered)
    # The receiver's WAV sink's own file names (safe_name), so both sides give the same paths.
    directory = root / safe_name(sp.ident.call_id)
    directory.mkdir(parents=True, exist_ok=True)
    rate = sp.ident.sample_rate
    paths = []
    for name, samples in expected.items():
        path = directory / f"{safe_name(sp.ident.stream_id)}.{name}.wav"
        _write_wav(path, rate, 1, samples.astype("<i2").tobytes())
        paths.append(str(path))
    if len(expected) == 2:
        import numpy as np

        stereo = np.stack([expected["inbound"], expected["outbound"]], axis=1).astype("<i2")
        path = directory / f"{safe_name(sp.ident.stream_id)}.stereo.wav"
        _write_wav(path, rate, 2, stereo.tobytes())
        paths.append(str(path))
    return paths


def _write_wav(path: Path, rate: int, channels: int, data: bytes) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(data)


# -- one call --------------------------------------------------------------------------


async def run_call(
    plan: CallPlan,
    settings: RunSettings,
    stats: Stats,
    session: aiohttp.ClientSession | None,
    ticker: Ticker | None = None,
) -> CallReport:
    """Run a planned call: its streams side by side, its webhooks in order, call.completed last.

    With the REST API on (``settings.live``), the call is registered while it
    runs: its streams can be stopped, streams added, and the call hung up.
    """
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    report = CallReport(
        plan.call.call_id,
        round(plan.duration_ms / 1000, 3),
        skipped_actions=plan.skipped,
        unmatched_stop_streams=plan.unmatched_stops,
    )
    log.info("call_started", call_id=plan.call.call_id, streams=len(plan.streams))
    stats.running[plan.call.call_id] = (time.monotonic(), plan)
    live = settings.live.call_started(plan, t0, settings, stats, ticker) if settings.live is not None else None
    streams = [
        asyncio.ensure_future(
            run_stream(sp, t0, settings, stats, ticker, stop=live.flow_stream(sp) if live is not None else None)
        )
        for sp in plan.streams
    ]
    try:
        for hook in plan.webhooks:
            if hook.event == "call.completed":
                if live is not None:  # the call is up until its end, or a hang-up, whatever its streams do
                    await live.sleep_until(loop, t0 + hook.at_ms / 1000)
                    live.hang_up()
                    await live.join()
                # call.completed comes after the call ended, whether or not a receiver stayed.
                await asyncio.gather(*streams)
            if not settings.fast:
                when = t0 + hook.at_ms / 1000
                await (_sleep_until(loop, when) if live is None else live.sleep_until(loop, when))
            if session is not None and settings.webhooks.url:
                delivery = await post_webhook(
                    session, settings.webhooks, envelope(hook.event, plan.call, hook.status, hook.data)
                )
                report.webhooks.append(delivery)
                if delivery.delivered:
                    stats.webhooks_delivered += 1
                else:
                    stats.webhooks_failed += 1
        report.streams = list(await asyncio.gather(*streams))
        if live is not None:
            report.streams.extend(live.reports)
            report.duration_seconds = round((loop.time() - t0), 3) if live.hung_up_early else report.duration_seconds
    finally:
        stats.running.pop(plan.call.call_id, None)
        for task in streams:
            task.cancel()
        if settings.live is not None:
            settings.live.call_ended(plan.call.call_id)
    stats.calls_completed += 1
    log.info("call_ended", call_id=plan.call.call_id, duration_seconds=report.duration_seconds)
    return report


# -- a run: one call or many -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Flow:
    """Where the actions come from: a parsed file, or an answer_url fetched per call."""

    actions: tuple[Action, ...] | None = None
    answer_url: str | None = None


@dataclass(slots=True)
class RunReport:
    stats: Stats
    calls: list[CallReport]
    errors: list[str]
    # Recordings that differ from what was sent (``compare``): kind -> cases.
    mismatches: dict[str, list[str]] = field(default_factory=dict)

    def failures(self) -> list[str]:
        """What did not go as planned, one line per kind with a count and the first case.

        Empty when every call ran, every stream connected and ended as the flow
        said (a ``--drop-at`` drop is planned), and every webhook got a 2xx.
        """
        kinds: dict[str, list[str]] = {}
        for error in self.errors:
            kinds.setdefault("call(s) failed", []).append(error)
        for call in self.calls:
            for st in call.streams:
                if st.outcome == "connect_failed":
                    kinds.setdefault("stream(s) could not connect", []).append(f"{st.stream_url}: {st.error}")
                elif st.outcome == "refused":
                    kinds.setdefault("stream(s) refused by the receiver", []).append(f"{st.stream_url}: {st.error}")
                elif st.outcome == "closed_by_receiver":
                    code = "no close frame" if st.close_code is None else f"close {st.close_code}"
                    kinds.setdefault("stream(s) closed early by the receiver", []).append(
                        f"{st.stream_id} ({code}{': ' + st.error if st.error and st.close_code is not None else ''})"
                    )
            for hook in call.webhooks:
                if not hook.delivered:
                    kinds.setdefault("webhook(s) not delivered", []).append(
                        f"{hook.event} after {hook.attempts} attempt(s): {hook.error}"
                    )
        kinds.update(self.mismatches)
        return [f"{len(cases)} {kind}, first: {cases[0]}" for kind, cases in kinds.items()]

    def as_dict(self, *, details: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"summary": self.stats.as_dict(), "errors": self.errors[:20], "failures": self.failures()}
        if details:
            out["calls"] = [c.as_dict() for c in self.calls]
        return out


async def run(
    flow: Flow,
    media: MediaSpec,
    faults: Faults,
    settings: RunSettings,
    *,
    calls: int = 1,
    concurrency: int = 1,
    ramp: float = 0.0,
    progress: TextIO | None = None,
    progress_interval: float = 1.0,
) -> RunReport:
    """Run ``calls`` calls of the flow, at most ``concurrency`` at once.

    The first ``concurrency`` calls start spread over ``ramp`` seconds; then a
    new call starts whenever one ends.
    """
    stats = Stats()
    reports: list[CallReport] = []
    errors: list[str] = []
    slots = asyncio.Semaphore(concurrency)
    loop = asyncio.get_running_loop()
    need_http = flow.answer_url is not None or settings.webhooks.url is not None
    connector = aiohttp.TCPConnector(limit=max(10, concurrency)) if need_http else None
    session = aiohttp.ClientSession(connector=connector) if need_http else None
    progress_task = asyncio.ensure_future(_progress(stats, calls, progress, progress_interval)) if progress else None
    t0 = loop.time()
    ticker = Ticker(loop)

    async def one(index: int) -> None:
        try:
            stats.calls_started += 1
            actions = flow.actions
            call = new_call(media.wire, faults.seed, index)
            if settings.live is not None:  # the REST API's project owns every call of the run
                call = (call[0], settings.live.project)
            if actions is None:
                assert flow.answer_url is not None and session is not None
                body = await fetch_answer_url(session, flow.answer_url, call[0], settings.answer_timeout)
                actions = tuple(parse_actions(body, allow_insecure=settings.allow_insecure))
            if settings.hold:
                actions = tuple(hold_call(actions, settings.hold))
            # Planning builds every message of the call: off the loop, so running calls keep their clock.
            plan = await asyncio.to_thread(plan_call, actions, media, faults, index=index, call=call)
            reports.append(await run_call(plan, settings, stats, session, ticker))
        except InvalidActions as exc:
            stats.calls_failed += 1
            errors.append(f"call {index}: answer_url_error: {exc.reason}")
            log.warning("answer_url_rejected", call_index=index, reason=exc.reason, body=exc.body)
        except AnswerUrlError as exc:
            stats.calls_failed += 1
            errors.append(f"call {index}: {exc}")
            log.warning("answer_url_failed", call_index=index, error=str(exc))
        finally:
            slots.release()

    tasks: list[asyncio.Future[None]] = []
    try:
        for index in range(calls):
            await slots.acquire()
            if ramp and index < concurrency:
                await _sleep_until(loop, t0 + ramp * index / concurrency)
            tasks.append(asyncio.ensure_future(one(index)))
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        if progress_task is not None:
            progress_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await progress_task
            _print_progress(stats, calls, progress, final=True)
        if session is not None:
            await session.close()
    return RunReport(stats, reports, errors)


async def _progress(stats: Stats, total: int, out: TextIO | None, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        _print_progress(stats, total, out)


def _print_progress(stats: Stats, total: int, out: TextIO | None, final: bool = False) -> None:
    if out is None:
        return
    s = stats.as_dict()
    if total == 1 and stats.running and not final:
        line = _call_progress(stats, *next(iter(stats.running.values())))
    else:
        active = stats.calls_started - stats.calls_completed - stats.calls_failed
        line = (
            f"calls {stats.calls_completed}/{total} done, {active} active, {stats.calls_failed} failed | "
            f"frames {stats.frames_sent} ({s['frames_per_second']:.0f}/s) | "
            f"lag max {s['send_lag_ms']['max']:.1f} ms | conn errors {stats.connection_errors}"
        )
    tty = out.isatty()
    # On a terminal the line is rewritten in place (cleared first: a later line may be shorter).
    out.write(("\r\033[K" + line + ("\n" if final else "")) if tty else line + "\n")
    out.flush()


FAULT_KINDS = ("lost", "duplicated", "reordered", "delayed")


def _call_progress(stats: Stats, started: float, plan: CallPlan) -> str:
    """One call as it runs: call time, frames sent of those planned, and the faults applied so far."""
    elapsed_ms = (time.monotonic() - started) * 1000
    planned = sum(sp.media_items for sp in plan.streams)
    applied = dict.fromkeys(FAULT_KINDS, 0)
    for sp in plan.streams:
        now = elapsed_ms - sp.start_ms  # on the stream's own clock: frame k is due at 20 k ms
        for tf in sp.faults.values():
            for kind in FAULT_KINDS:
                chunks = getattr(tf, kind)
                applied[kind] += sum(1 for c in chunks if ((c[0] if isinstance(c, list) else c) - 1) * 20 <= now)
    faults = ", ".join(f"{n} {kind}" for kind, n in applied.items() if n) or "none"
    return (
        f"call {min(elapsed_ms, plan.duration_ms) / 1000:.1f}/{plan.duration_ms / 1000:.1f} s | "
        f"frames sent {stats.frames_sent}/{planned} | faults so far: {faults} | "
        f"conn errors {stats.connection_errors} | webhooks {stats.webhooks_delivered} ok, {stats.webhooks_failed} failed"
    )
