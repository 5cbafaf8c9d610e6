"""
A call, planned before it runs: the flow's timeline, every message of every
stream in send order, the faults applied, and the audio a correct receiver
must decode.

Pure: no I/O, no asyncio (audio sources are loaded by the caller). A flow is a
static list of actions, so the whole call is known up front:

- ``pause`` advances the call clock; ``start_stream`` opens a stream at the
  current call time; ``stop_stream`` ends the matching open streams (URL and
  track equal when given; none given: all); ``hangup`` or the end of the list
  ends the call, and every open stream ends with ``call_ended``.
- A stream that runs ``d`` ms carries ``ceil(d / 20)`` frames per track.
  Frame ``k`` (chunk ``k + 1``) has timestamp ``20 k`` and is due ``20 k`` ms
  after the stream started; ``stop`` is due at ``20 n``.
- Sequence numbers are given in the platform's order (``start`` is 1, then
  each 20 ms slot's frames, inbound first); faults then change what is sent:
  a lost frame's number is skipped, a duplicate repeats its number, and a
  reordered frame arrives after higher numbers.

Faults are drawn from ``numpy.random.default_rng([seed, call, stream,
track])``, so a call with the same seed, flow and options always alters the
same frames. Kinds (exclusive per frame, in this order): loss; duplicate
(sent twice in a row); reorder (sent after the frames of the next 1 ..
``reorder_ms / 20 - 1`` slots, so that when it arrives the newest audio is at
most ``reorder_ms`` past its start: the same measure as the receiver's
reorder window, so ``--reorder-ms`` up to that window never loses a frame);
delay (sent ``delay_ms`` late: after the frames of the next ``delay_ms / 20``
slots). Jitter only moves send times on the real-time
clock, never the order. ``drop_at`` closes every stream open at that call
time without ``stop``, after the messages due before it.

The expected audio follows the receiver's media clock: frame ``k`` of a
track fills samples ``[k F, (k + 1) F)``; a frame arriving when the newest
audio of the stream (any track) is more than the receiver's reorder window
past its start was given up as silence and is dropped (predicted ``late``);
duplicates change nothing; every track ends at the newest audio of any track.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from receiver.calls.actions import (
    Action,
    Hangup,
    OtherAction,
    Pause,
    StartRecording,
    StartStream,
    StopRecording,
    StopStream,
)
from receiver.codecs import decode, encode
from receiver.errors import InvalidValue
from receiver.events import FRAME_MS, Encoding, MediaFormat, Samples
from receiver.simulator import audio
from receiver.simulator.carriers import carried_tracks, make_wire
from receiver.simulator.wire import StreamIdentity, StreamWire, WireFormat

TRACK_ORDER = ("inbound", "outbound")


@dataclass(frozen=True, slots=True)
class Faults:
    """The faults to apply, and the receiver window the expected audio assumes."""

    seed: int = 0
    loss: float = 0.0
    duplicate: float = 0.0
    reorder_ms: int = 0
    reorder: float = 0.1  # probability that a frame is reordered, when reorder_ms > 0
    delay: float = 0.0
    delay_ms: int = 200
    jitter_ms: float = 0.0
    drop_at: float | None = None  # call seconds
    receiver_window_ms: int = 100

    def __post_init__(self) -> None:
        for name in ("loss", "duplicate", "reorder", "delay"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InvalidValue(f"{name} must be a probability between 0 and 1, not {value}")
        for name in ("reorder_ms", "delay_ms", "jitter_ms", "receiver_window_ms"):
            if getattr(self, name) < 0:
                raise InvalidValue(f"{name} must not be negative")
        if self.drop_at is not None and self.drop_at < 0:
            raise InvalidValue("drop_at must not be negative")

    @property
    def any(self) -> bool:
        return bool(
            self.loss
            or self.duplicate
            or (self.reorder_ms and self.reorder)
            or (self.delay and self.delay_ms)
            or self.drop_at is not None
        )


@dataclass(frozen=True, slots=True)
class CallInfo:
    """The call as the platform describes it in ``start`` and webhooks."""

    call_id: str
    customer_id: str = "cust_sim"
    application_id: str = "app_sim"
    direction: str = "inbound"
    from_number: str = "+15551230001"
    to_number: str = "+15551230002"

    def as_dict(self, status: str) -> dict[str, Any]:
        return {
            "id": self.call_id,
            "customer_id": self.customer_id,
            "application_id": self.application_id,
            "status": status,
            "direction": self.direction,
            "from": self.from_number,
            "to": self.to_number,
        }


@dataclass(frozen=True, slots=True)
class MediaSpec:
    """The stream format and each track's audio."""

    wire: WireFormat
    encoding: Encoding
    sample_rate: int
    audio: dict[str, audio.AudioSpec]  # track name -> source

    @property
    def frame_samples(self) -> int:
        return self.sample_rate * FRAME_MS // 1000


@dataclass(slots=True)
class TrackFaults:
    """Exactly what the simulator did to one track's frames (chunks, from 1)."""

    lost: list[int] = field(default_factory=list)
    duplicated: list[int] = field(default_factory=list)
    reordered: list[list[int]] = field(default_factory=list)  # [chunk, slots later]
    delayed: list[list[int]] = field(default_factory=list)  # [chunk, slots later]
    late: list[int] = field(default_factory=list)  # sent, but the receiver must drop them (predicted)
    unsent: list[int] = field(default_factory=list)  # due after the connection was dropped

    def as_dict(self) -> dict[str, Any]:
        return {
            "lost": self.lost,
            "duplicated": self.duplicated,
            "reordered": self.reordered,
            "delayed": self.delayed,
            "late": self.late,
            "unsent": self.unsent,
        }


# One message to send: (due ms after the stream started, message, track index, frame index or -1).
# The track index is NOT_MEDIA for control messages and ALL_TRACKS for a frame carrying every track.
Item = tuple[float, str | bytes, int, int]
NOT_MEDIA = -1
ALL_TRACKS = -2


@dataclass(slots=True)
class StreamPlan:
    """One stream of the call, every message planned."""

    index: int
    action: StartStream
    ident: StreamIdentity
    wire: StreamWire
    start_ms: float
    end_ms: float
    end: str  # stop_stream, call_ended or dropped
    frames: int  # per track
    tracks: tuple[str, ...]
    items: list[Item]
    media_items: int  # media messages in items (duplicates included)
    decoded: dict[str, Samples]  # per track, what the receiver decodes from every frame
    faults: dict[str, TrackFaults]
    frame_samples: int
    window_samples: int
    declared: tuple[str, ...] = ()  # the tracks a receiver records (default: the tracks sent)

    def expected(self, delivered: int | None = None) -> dict[str, Samples]:
        """The audio a correct receiver writes for each track, given the first
        ``delivered`` items reached it (default: all planned)."""
        items = self.items if delivered is None else self.items[:delivered]
        if not self.wire.positional:
            return self._in_arrival_order(items)
        F, W = self.frame_samples, self.window_samples
        placed = np.zeros((len(self.tracks), self.frames), dtype=bool)
        head = 0
        late: dict[int, list[int]] = {t: [] for t in range(len(self.tracks))}
        # Epoch timestamps: the receiver takes the first frame it gets as the stream's start;
        # a frame from before it lands before the recording and is dropped.
        origin = next((k for _, _, t, k in items if t != NOT_MEDIA), 0) if self.wire.epoch else 0
        for _, _, t, k in items:
            if t == NOT_MEDIA or placed[t, k] or k < origin:
                continue
            start = (k - origin) * F
            if head - W > start:
                late[t].append(k + 1)
                continue
            placed[t, k] = True
            head = max(head, start + F)
        out: dict[str, Samples] = {}
        for t, name in enumerate(self.tracks):
            track = np.zeros(head, dtype=np.int16)
            decoded = self.decoded[name]
            for k in np.flatnonzero(placed[t]).tolist():
                track[(k - origin) * F : (k - origin + 1) * F] = decoded[k * F : (k + 1) * F]
            out[name] = track
        for name in self.declared:
            out.setdefault(name, np.zeros(head, dtype=np.int16))  # declared, never sent: silence
        if delivered is None:
            for t, name in enumerate(self.tracks):
                self.faults[name].late = sorted(set(late[t]))
        return out

    def _in_arrival_order(self, items: Sequence[Item]) -> dict[str, Samples]:
        """Binary frames carry no place: a receiver writes each after the last, as they arrive
        (a lost frame is simply missing, a duplicate is audio twice, a reordered one moves)."""
        F = self.frame_samples
        parts: dict[str, list[Samples]] = {name: [] for name in self.tracks}
        for _, _, t, k in items:
            if t == NOT_MEDIA:
                continue
            for j in range(len(self.tracks)) if t == ALL_TRACKS else (t,):
                name = self.tracks[j]
                parts[name].append(self.decoded[name][k * F : (k + 1) * F])
        return {
            name: np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16) for name, chunks in parts.items()
        }


@dataclass(frozen=True, slots=True)
class Webhook:
    """A webhook the call sends at ``at_ms`` of call time."""

    at_ms: float
    event: str
    status: str
    data: dict[str, Any]


@dataclass(slots=True)
class CallPlan:
    index: int
    call: CallInfo
    duration_ms: float
    streams: list[StreamPlan]
    webhooks: list[Webhook]  # in order; call.completed last
    skipped: list[str]  # actions the simulator does not act on (play, collect_digits, ...)
    unmatched_stops: int


def _hex(rng: np.random.Generator, n: int) -> str:
    return "".join(f"{b:02x}" for b in rng.integers(0, 256, n))


def _ids(wire: WireFormat, rng: np.random.Generator) -> tuple[str, str]:
    """A (call id, account id) pair in the platform's style."""
    if wire is WireFormat.MINIVOICE:
        return "call_" + _hex(rng, 6), "acct_sim"
    if wire is WireFormat.TWILIO:
        return "CA" + _hex(rng, 16), "AC" + _hex(rng, 16)
    if wire is WireFormat.TELNYX:
        return "v3:" + _hex(rng, 16), _uuid(rng)
    if wire is WireFormat.EXOTEL:
        return _hex(rng, 16), "exotel_sim"
    if wire is WireFormat.ASTERISK:
        return f"WebSocket/sim-{_hex(rng, 4)}", "asterisk"
    return _uuid(rng), _uuid(rng)


def _uuid(rng: np.random.Generator) -> str:
    h = _hex(rng, 16)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _stream_id(wire: WireFormat, rng: np.random.Generator) -> str:
    if wire is WireFormat.MINIVOICE:
        return "str_" + _hex(rng, 6)
    if wire is WireFormat.TWILIO:
        return "MZ" + _hex(rng, 16)
    if wire is WireFormat.TELNYX:
        return _uuid(rng).upper()
    if wire is WireFormat.EXOTEL:
        return _hex(rng, 16)
    return _uuid(rng)


@functools.lru_cache(maxsize=64)
def _encoded_frames(
    spec: audio.AudioSpec, encoding: Encoding, rate: int, start: int, frames: int, byteorder: str = "little"
) -> tuple[tuple[str, ...], Samples]:
    """Base64 payloads of ``frames`` frames of a source from call sample ``start``, and their decoding.

    Cached: calls of a load run with the same flow share their payloads.
    """
    raw, decoded = _raw_frames((spec,), encoding, rate, start, frames, byteorder)
    return tuple(base64.b64encode(p).decode("ascii") for p in raw), decoded[0]


@functools.lru_cache(maxsize=64)
def _raw_frames(
    specs: tuple[audio.AudioSpec, ...], encoding: Encoding, rate: int, start: int, frames: int, byteorder: str
) -> tuple[tuple[bytes, ...], tuple[Samples, ...]]:
    """``frames`` frames of the sources from call sample ``start``, their channels
    interleaved (one source: mono), and each source's decoding."""
    F = rate * FRAME_MS // 1000
    fmt = MediaFormat(encoding, rate, "big" if byteorder == "big" else "little")
    tracks = [audio.span(audio.load(spec, rate), start, frames * F) for spec in specs]
    if len(tracks) == 1:
        samples = tracks[0]
    else:
        samples = np.empty(frames * F * len(tracks), dtype=np.int16)
        for j, track in enumerate(tracks):
            samples[j :: len(tracks)] = track
    payload = encode(fmt, samples)
    step = F * fmt.bytes_per_sample * len(tracks)
    raw = tuple(payload[i * step : (i + 1) * step] for i in range(frames))
    decoded = []
    for track in tracks:
        d = decode(fmt, encode(fmt, track))
        d.flags.writeable = False
        decoded.append(d)
    return raw, tuple(decoded)


def new_call(wire: WireFormat, seed: int, index: int) -> tuple[CallInfo, str]:
    """The ids of call ``index`` of a run: (call, account id), the same for the same seed."""
    rng = np.random.default_rng([seed, index, 0x5EED])
    call_id, account_id = _ids(wire, rng)
    return CallInfo(call_id), account_id


def hold_call(actions: Sequence[Action], seconds: float) -> list[Action]:
    """The flow with the call held ``seconds`` longer: a pause before its hang-up (or at its end)."""
    out = list(actions)
    at = next((i for i, act in enumerate(out) if isinstance(act, Hangup)), len(out))
    out.insert(at, Pause(seconds))
    return out


def plan_call(
    actions: Sequence[Action],
    media: MediaSpec,
    faults: Faults,
    *,
    index: int = 0,
    call: tuple[CallInfo, str] | None = None,
) -> CallPlan:
    """Plan one call of the flow (``index`` tells the calls of a load run apart)."""
    call_info, account_id = call or new_call(media.wire, faults.seed, index)
    call_id = call_info.call_id
    rng = np.random.default_rng([faults.seed, index, 0x57])
    t = 0.0
    open_streams: list[tuple[int, StartStream, float, str]] = []  # index, action, start, stream id
    closed: list[tuple[int, StartStream, float, str, float, str]] = []
    webhooks: list[Webhook] = []
    skipped: list[str] = []
    unmatched = 0
    recording_started: float | None = None
    recordings = 0
    counter = itertools.count()
    for act in actions:
        if isinstance(act, Pause):
            t += act.length * 1000
        elif isinstance(act, StartStream):
            open_streams.append((next(counter), act, t, _stream_id(media.wire, rng)))
        elif isinstance(act, StopStream):
            keep = []
            for entry in open_streams:
                if act.matches(entry[1].stream_url, entry[1].track):
                    closed.append((*entry, t, "stop_stream"))
                else:
                    keep.append(entry)
            if len(keep) == len(open_streams):
                unmatched += 1
            open_streams = keep
        elif isinstance(act, StartRecording):
            if recording_started is None:
                recording_started = t
        elif isinstance(act, StopRecording):
            if recording_started is None:
                webhooks.append(
                    Webhook(t, "recording.failed", "in_progress", {"status": "failed", "error": "no active recording"})
                )
            else:
                recordings += 1
                webhooks.append(_recording_completed(call_id, recordings, t - recording_started, t))
                recording_started = None
        elif isinstance(act, Hangup):
            break
        elif isinstance(act, OtherAction):
            skipped.append(act.type)
    end = t
    for entry in open_streams:
        closed.append((*entry, end, "call_ended"))
    if recording_started is not None:  # the call ended the recording
        recordings += 1
        webhooks.append(_recording_completed(call_id, recordings, end - recording_started, end))
    webhooks.append(Webhook(end, "call.completed", "completed", {}))
    closed.sort(key=lambda c: c[0])
    streams = [
        _plan_stream(i, act, start, stop, reason, sid, call_info, account_id, media, faults, index)
        for i, act, start, sid, stop, reason in closed
    ]
    return CallPlan(index, call_info, end, streams, webhooks, skipped, unmatched)


def _recording_completed(call_id: str, number: int, duration_ms: float, at: float) -> Webhook:
    seconds = duration_ms / 1000
    recording_id = f"rec_{call_id}" if number == 1 else f"rec_{call_id}_{number}"
    # The size of the recording as 16-bit 8 kHz mono WAV (the simulator records nothing itself).
    size = 44 + int(round(seconds * 8000)) * 2
    data = {
        "recording_id": recording_id,
        "status": "completed",
        "duration_seconds": round(seconds, 3),
        "size_bytes": size,
    }
    return Webhook(at, "recording.completed", "in_progress", data)


def plan_stream(
    act: StartStream,
    start_ms: float,
    end_ms: float,
    stream_id: str,
    plan: CallPlan,
    account_id: str,
    media: MediaSpec,
    faults: Faults,
) -> StreamPlan:
    """One more stream of a planned call (a ``startStream`` over the REST API), ending with the call."""
    index = len(plan.streams) + 1000 + int(start_ms)
    return _plan_stream(
        index, act, start_ms, end_ms, "call_ended", stream_id, plan.call, account_id, media, faults, plan.index
    )


def _plan_stream(
    index: int,
    act: StartStream,
    start_ms: float,
    end_ms: float,
    end: str,
    stream_id: str,
    call: CallInfo,
    account_id: str,
    media: MediaSpec,
    faults: Faults,
    call_index: int,
) -> StreamPlan:
    """Every message of one stream in send order, with the faults applied."""
    rate = media.sample_rate
    tracks = carried_tracks(media.wire, tuple(tr.value for tr in act.track.tracks))
    ident = _identity(act, stream_id, tracks, call, account_id, media)
    wire = make_wire(media.wire, ident)
    n = max(0, -int(-(end_ms - start_ms) // FRAME_MS))  # frames per track: ceil
    drop_rel: float | None = None
    if faults.drop_at is not None and start_ms <= faults.drop_at * 1000 < end_ms:
        drop_rel = faults.drop_at * 1000 - start_ms
        end, end_ms = "dropped", faults.drop_at * 1000
    start_sample = int(round(start_ms * rate / 1000))
    sends: list[_Send] = []
    track_faults: dict[str, TrackFaults] = {}
    decoded: dict[str, Samples] = {}
    if wire.interleaved:
        # One frame carries every track: faults hit the frame, so every track alike.
        specs = tuple(media.audio[name] for name in tracks)
        frames, channels = _raw_frames(specs, media.encoding, rate, start_sample, n, wire.byteorder)
        decoded = dict(zip(tracks, channels, strict=True))
        rng = np.random.default_rng([faults.seed, call_index, index, 0])
        shared = _fault_track(rng, faults, ALL_TRACKS, [wire.frame(f) for f in frames], sends)
        track_faults = {name: dataclasses.replace(shared) for name in tracks}
    for t, name in enumerate(tracks if not wire.interleaved else ()):
        messages: list[str | bytes]
        if wire.binary:
            raw, (decoded[name],) = _raw_frames(
                (media.audio[name],), media.encoding, rate, start_sample, n, wire.byteorder
            )
            messages = [wire.frame(p) for p in raw]
        else:
            payloads, decoded[name] = _encoded_frames(
                media.audio[name], media.encoding, rate, start_sample, n, wire.byteorder
            )
            messages = [wire.media(2 + k * len(tracks) + t, name, k + 1, k * FRAME_MS, payloads[k]) for k in range(n)]
        rng = np.random.default_rng([faults.seed, call_index, index, t])
        track_faults[name] = _fault_track(rng, faults, t, messages, sends)
    items = _schedule(wire, sends, n)
    if drop_rel is None:
        sequence = 2 + (n * len(tracks) if not wire.binary else _pings(wire, n))
        for message in wire.closing(sequence, end, n * FRAME_MS):
            items.append((max(items[-1][0], n * FRAME_MS), message, NOT_MEDIA, -1))
    else:
        items = _cut_at_drop(items, drop_rel, tracks, track_faults, n)
    plan = StreamPlan(
        index=index,
        action=act,
        ident=ident,
        wire=wire,
        start_ms=start_ms,
        end_ms=end_ms,
        end=end,
        frames=n,
        tracks=tracks,
        items=items,
        media_items=sum(1 for it in items if it[2] != NOT_MEDIA),
        decoded=decoded,
        faults=track_faults,
        frame_samples=media.frame_samples,
        window_samples=rate * faults.receiver_window_ms // 1000,
        declared=wire.declared(tracks),
    )
    if faults.any:
        plan.expected()  # fills in the predicted late frames
    return plan


def _identity(
    act: StartStream, stream_id: str, tracks: tuple[str, ...], call: CallInfo, account_id: str, media: MediaSpec
) -> StreamIdentity:
    return StreamIdentity(
        stream_id=stream_id,
        call_id=call.call_id,
        stream_url=act.stream_url,
        track=act.track.value,
        tracks=tracks,
        encoding=media.encoding,
        sample_rate=media.sample_rate,
        parameters=dict(act.parameters),
        account_id=account_id,
        customer_id=call.customer_id,
        application_id=call.application_id,
        direction=call.direction,
        from_number=call.from_number,
        to_number=call.to_number,
    )


# One media message placed in time: (slot, phase, frame, track, copy, jitter ms, text).
# Sorted on the first five: by 20 ms slot; within a slot the frames due there
# (phase 0) before those moved there (phase 1); then frame, track, copy.
_Send = tuple[int, int, int, int, int, float, str | bytes]


def _fault_track(
    rng: np.random.Generator, faults: Faults, t: int, texts: Sequence[str | bytes], sends: list[_Send]
) -> TrackFaults:
    """Append track ``t``'s frames to ``sends``, each in the slot its fault moves it to; return the faults."""
    n = len(texts)
    max_reorder = faults.reorder_ms // FRAME_MS - 1
    delay_slots = faults.delay_ms // FRAME_MS
    u = rng.random((5, n))
    disp = rng.integers(1, max(1, max_reorder) + 1, n)
    lost = u[0] < faults.loss
    dup = ~lost & (u[1] < faults.duplicate)
    reo = ~lost & (max_reorder > 0) & (u[2] < faults.reorder)
    dly = ~lost & ~reo & (delay_slots > 0) & (u[3] < faults.delay)
    jitter = u[4] * faults.jitter_ms
    tf = TrackFaults()
    for k in range(n):
        chunk = k + 1
        if lost[k]:
            tf.lost.append(chunk)
            continue
        shift = int(disp[k]) if reo[k] else delay_slots if dly[k] else 0
        slot = min(k + shift, n - 1)
        if slot > k:
            (tf.reordered if reo[k] else tf.delayed).append([chunk, slot - k])
        phase = 1 if slot > k else 0
        sends.append((slot, phase, k, t, 0, float(jitter[k]), texts[k]))
        if dup[k]:
            tf.duplicated.append(chunk)
            sends.append((slot, phase, k, t, 1, float(jitter[k]), texts[k]))
    return tf


def _schedule(wire: StreamWire, sends: list[_Send], frames: int) -> list[Item]:
    """The opening messages, then the media in send order (and the format's keep-alives on
    their own clock); jitter delays a send, never reorders."""
    sends.sort(key=lambda x: x[:5])
    items: list[Item] = [(0.0, message, NOT_MEDIA, -1) for message in wire.opening()]
    pings = [(k * wire.ping_ms, 2 + k - 1) for k in range(1, _pings(wire, frames) + 1)]
    due = 0.0
    for slot, _, k, t, _, jit, text in sends:
        due = max(due, slot * FRAME_MS + jit)
        while pings and pings[0][0] <= due:
            at, sequence = pings.pop(0)
            items.append((max(items[-1][0], at), wire.ping(sequence, at), NOT_MEDIA, -1))
        items.append((due, text, t, k))
    return items


def _pings(wire: StreamWire, frames: int) -> int:
    """How many keep-alives a stream of ``frames`` frames sends (while its audio runs)."""
    return (frames * FRAME_MS - 1) // wire.ping_ms if wire.ping_ms and frames else 0


def _cut_at_drop(
    items: list[Item], drop_ms: float, tracks: tuple[str, ...], track_faults: dict[str, TrackFaults], n: int
) -> list[Item]:
    """The items due before the drop; frames due after it are reported as unsent, and only as unsent."""
    items = [it for it in items if it[0] < drop_ms]
    for t, name in enumerate(tracks):
        tf = track_faults[name]
        sent = {it[3] + 1 for it in items if it[2] in (t, ALL_TRACKS)}
        tf.lost = [c for c in tf.lost if (c - 1) * FRAME_MS < drop_ms]
        tf.duplicated = [c for c in tf.duplicated if c in sent]
        tf.reordered = [r for r in tf.reordered if r[0] in sent]
        tf.delayed = [d for d in tf.delayed if d[0] in sent]
        gone = set(tf.lost) | sent
        tf.unsent = [c for c in range(1, n + 1) if c not in gone]
    return items
