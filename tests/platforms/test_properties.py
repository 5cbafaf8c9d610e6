"""Property: any valid session of each format yields the audio it carries.

Sessions are generated per format (rate, encoding, tracks, frame sizes, counters
as the platform types them) and played through the session and the pipeline.
Telnyx's frames may arrive out of order (its docs say so): within the reorder
window the audio must still come out whole.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import structlog
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from receiver.codecs import decode_alaw, decode_ulaw
from receiver.errors import StreamProtocolError
from receiver.events import InterleavedMediaReceived, MediaReceived, Platform, StreamStarted, Track
from receiver.routes import Mix, Route
from receiver.session import StreamSession
from receiver.stream.pipeline import MediaSettings, StreamPipeline
from tests.platforms.player import play

Samples = npt.NDArray[np.int16]
PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TRACK_NAMES = {Track.INBOUND: "inbound", Track.OUTBOUND: "outbound"}


def dumps(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@st.composite
def speech_like(draw: st.DrawFn, n: int) -> Samples:
    """A smooth signal (a sum of two tones): what byte-order detection is documented for."""
    f1, f2 = draw(st.floats(100, 900)), draw(st.floats(100, 1200))
    a1, a2 = draw(st.integers(500, 12000)), draw(st.integers(0, 8000))
    t = np.arange(n) / 8000
    return np.round(a1 * np.sin(2 * np.pi * f1 * t) + a2 * np.sin(2 * np.pi * f2 * t + 1)).astype(np.int16)


def noise(draw: st.DrawFn, n: int) -> Samples:
    seed = draw(st.integers(0, 2**32 - 1))
    return np.random.default_rng(seed).integers(-32768, 32768, n).astype(np.int16)


def g711(draw: st.DrawFn, n: int, decode: Callable[[bytes], Samples]) -> tuple[bytes, Samples]:
    payload = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).integers(0, 256, n).astype(np.uint8).tobytes()
    return payload, decode(payload)


def split(total_ms: int, draw: st.DrawFn, sizes: st.SearchStrategy[int]) -> list[int]:
    """Frame lengths in ms adding up to ``total_ms``."""
    out: list[int] = []
    while sum(out) < total_ms:
        out.append(min(draw(sizes), total_ms - sum(out)))
    return out


def check(messages: list[str | bytes], expected: dict[Track, Samples], **kwargs: Any) -> None:
    played = play(messages, **kwargs)
    audio = played.audio()
    for track, samples in expected.items():
        np.testing.assert_array_equal(audio[track], samples)


# -- JSON formats with timestamps ----------------------------------------------------


@st.composite
def telnyx_sessions(draw: st.DrawFn) -> tuple[list[str | bytes], dict[Track, Samples]]:
    encoding, rate = draw(st.sampled_from([("PCMU", 8000), ("PCMA", 8000), ("L16", 8000), ("L16", 16000)]))
    byteorder = draw(st.sampled_from([">i2", "<i2"]))
    tracks = draw(st.sampled_from([(Track.INBOUND,), (Track.INBOUND, Track.OUTBOUND)]))
    spms = rate // 1000
    sizes = split(draw(st.integers(20, 400)), draw, st.integers(5, 60))
    starts = np.cumsum([0, *sizes[:-1]]).tolist()
    expected: dict[Track, Samples] = {}
    frames: list[tuple[int, int, str]] = []  # (start ms, end ms, message)
    seq = 2
    for track in tracks:
        total = sum(sizes) * spms
        if encoding == "L16":
            signal = draw(speech_like(total))
            expected[track] = signal
            payloads = [
                signal[s * spms : (s + d) * spms].astype(byteorder).tobytes()
                for s, d in zip(starts, sizes, strict=True)
            ]
        else:
            raw, decoded = g711(draw, total, decode_ulaw if encoding == "PCMU" else decode_alaw)
            expected[track] = decoded
            payloads = [raw[s * spms : (s + d) * spms] for s, d in zip(starts, sizes, strict=True)]
        suffix = draw(st.sampled_from(["", "_track"]))  # both spellings are read
        for k, (start, size, payload) in enumerate(zip(starts, sizes, payloads, strict=True)):
            media = {
                "track": TRACK_NAMES[track] + suffix,
                "chunk": str(k + 1),
                "timestamp": str(start),
                "payload": b64(payload),
            }
            message = dumps({"event": "media", "sequence_number": str(seq), "media": media, "stream_id": "S"})
            frames.append((start, start + size, message))
            seq += 1
    frames.sort(key=lambda f: f[0])
    # Order is not guaranteed: swap some neighbours. The receiver waits for a frame until
    # the newest audio is a reorder window (100 ms) past its start; later, it is late.
    for i in range(len(frames) - 1):
        if draw(st.booleans()):
            frames[i], frames[i + 1] = frames[i + 1], frames[i]
    newest = 0
    for start, end, _ in frames:
        assume(newest - start <= 100)
        newest = max(newest, end)
    start_message = {
        "event": "start",
        "sequence_number": "1",
        "start": {
            "call_control_id": "v3:c",
            "tracks": [TRACK_NAMES[t] for t in tracks],
            "media_format": {"encoding": encoding, "sample_rate": rate, "channels": 1},
        },
        "stream_id": "S",
    }
    messages: list[str | bytes] = [dumps({"event": "connected", "version": "1.0.0"}), dumps(start_message)]
    return [
        *messages,
        *(m for _, _, m in frames),
        dumps({"event": "stop", "sequence_number": str(seq), "stream_id": "S"}),
    ], expected


@given(telnyx_sessions())
@PROPERTY
def test_any_telnyx_session_yields_its_audio_in_any_order_within_the_window(case: Any) -> None:
    check(*case)


@st.composite
def plivo_sessions(draw: st.DrawFn) -> tuple[list[str | bytes], dict[Track, Samples]]:
    encoding, rate = draw(st.sampled_from([("audio/x-mulaw", 8000), ("audio/x-l16", 8000), ("audio/x-l16", 16000)]))
    strings = draw(st.booleans())  # the reference types counters as integers, SDKs parse strings too

    def counter(value: int) -> int | str:
        return str(value) if strings else value

    spms = rate // 1000
    sizes = split(draw(st.integers(20, 300)), draw, st.sampled_from([20, 20, 20, 40]))
    epoch = draw(st.sampled_from([0, 1_705_312_200_000 + draw(st.integers(0, 10**9))]))
    total = sum(sizes) * spms
    if encoding == "audio/x-mulaw":
        raw, expected = g711(draw, total, decode_ulaw)
    else:
        expected = draw(speech_like(total))
        raw = expected.astype("<i2").tobytes()
    bps = 1 if encoding == "audio/x-mulaw" else 2
    messages: list[str | bytes] = [
        dumps(
            {
                "event": "start",
                "sequenceNumber": counter(1),
                "start": {
                    "callId": "C",
                    "streamId": "S",
                    "tracks": ["inbound"],
                    "mediaFormat": {"encoding": encoding, "sampleRate": rate},
                },
            }
        )
    ]
    at = 0
    for k, d in enumerate(sizes):
        payload = raw[at * spms * bps : (at + d) * spms * bps]
        media = {"track": "inbound", "timestamp": str(epoch + at), "chunk": counter(k + 1), "payload": b64(payload)}
        messages.append(dumps({"event": "media", "sequenceNumber": counter(k + 2), "streamId": "S", "media": media}))
        at += d
    return messages, {Track.INBOUND: expected}


@given(plivo_sessions())
@PROPERTY
def test_any_plivo_session_yields_its_audio_with_epoch_or_relative_timestamps(case: Any) -> None:
    check(*case)


@st.composite
def exotel_sessions(draw: st.DrawFn) -> tuple[list[str | bytes], dict[Track, Samples]]:
    rate = draw(st.sampled_from([8000, 16000]))
    spms = rate // 1000
    sizes = split(draw(st.integers(50, 500)), draw, st.sampled_from([100, 100, 20, 60]))
    expected = noise(draw, sum(sizes) * spms)
    messages: list[str | bytes] = [
        dumps({"event": "connected"}),
        dumps(
            {
                "event": "start",
                "sequence_number": "1",
                "stream_sid": "S",
                "start": {
                    "stream_sid": "S",
                    "call_sid": "C",
                    "media_format": {"encoding": "audio/x-raw", "sample_rate": str(rate), "bit_rate": "16"},
                },
            }
        ),
    ]
    at = 0
    for k, d in enumerate(sizes):
        payload = expected[at * spms : (at + d) * spms].astype("<i2").tobytes()
        media = {"chunk": str(k + 1), "timestamp": str(at), "payload": b64(payload)}
        messages.append(dumps({"event": "media", "sequence_number": str(k + 2), "stream_sid": "S", "media": media}))
        at += d
    messages.append(
        dumps(
            {"event": "stop", "sequence_number": str(len(sizes) + 2), "stream_sid": "S", "stop": {"reason": "stopped"}}
        )
    )
    return messages, {Track.INBOUND: expected}


@given(exotel_sessions())
@PROPERTY
def test_any_exotel_session_yields_its_audio(case: Any) -> None:
    check(*case)


# -- binary formats ----------------------------------------------------------------


def frames_of(data: bytes, cuts: list[int]) -> list[bytes]:
    out, at = [], 0
    for cut in cuts:
        out.append(data[at : at + cut])
        at += cut
    return [f for f in out if f]


@st.composite
def byte_cuts(draw: st.DrawFn, total: int, unit: int) -> list[int]:
    """Frame sizes (multiples of ``unit`` bytes) adding up to ``total``."""
    cuts: list[int] = []
    while sum(cuts) < total:
        cuts.append(min(unit * draw(st.integers(1, 400)), total - sum(cuts)))
    return cuts


@st.composite
def vonage_sessions(draw: st.DrawFn) -> tuple[list[str | bytes], dict[Track, Samples]]:
    rate = draw(st.sampled_from([8000, 16000, 24000]))
    expected = noise(draw, draw(st.integers(1, 4000)))
    data = expected.astype("<i2").tobytes()
    messages: list[str | bytes] = [
        dumps({"event": "websocket:connected", "content-type": f"audio/l16;rate={rate}", "x": 1})
    ]
    for frame in frames_of(data, draw(byte_cuts(len(data), 2))):
        messages.append(frame)
        if draw(st.integers(0, 9)) == 0:
            messages.append(dumps({"event": "websocket:dtmf", "digit": "1", "duration": 100}))
    return messages, {Track.INBOUND: expected}


@given(vonage_sessions())
@PROPERTY
def test_any_vonage_session_yields_its_audio(case: Any) -> None:
    check(*case)


def interleave(channels: list[Samples]) -> Samples:
    out = np.empty(len(channels[0]) * len(channels), dtype=np.int16)
    for j, channel in enumerate(channels):
        out[j :: len(channels)] = channel
    return out


@st.composite
def raw_l16_sessions(draw: st.DrawFn) -> tuple[list[str | bytes], dict[Track, Samples], dict[str, Any]]:
    """jambonz (metadata names the layout) or audio_fork (the route does)."""
    platform = draw(st.sampled_from([Platform.JAMBONZ, Platform.AUDIOFORK]))
    mix = draw(st.sampled_from(list(Mix)))
    rate = draw(st.sampled_from([8000, 16000, 24000, 48000]))
    order = draw(st.sampled_from([(Track.INBOUND, Track.OUTBOUND), (Track.OUTBOUND, Track.INBOUND)]))
    n = draw(st.integers(1, 3000))
    channels = order if mix is Mix.STEREO else (Track.INBOUND,)
    audio = {track: noise(draw, n) for track in channels}
    data = interleave([audio[t] for t in channels]).astype("<i2").tobytes()
    route = Route(
        "/r",
        platform,
        rate if platform is Platform.AUDIOFORK else None,
        mix if platform is Platform.AUDIOFORK else None,
        order,
    )
    messages: list[str | bytes] = []
    if platform is Platform.JAMBONZ:
        messages.append(dumps({"callSid": "C", "sampleRate": rate, "mixType": mix.value}))
    elif draw(st.booleans()):
        messages.append(dumps({"uuid": "C"}) if draw(st.booleans()) else "free-form metadata")
    messages += frames_of(data, draw(byte_cuts(len(data), 2 * len(channels))))
    return messages, audio, {"route": route}


@given(raw_l16_sessions())
@PROPERTY
def test_any_jambonz_or_audiofork_session_yields_its_audio_on_the_routed_channels(case: Any) -> None:
    messages, expected, kwargs = case
    check(messages, expected, **kwargs)


@st.composite
def asterisk_sessions(draw: st.DrawFn) -> tuple[list[str | bytes], dict[Track, Samples]]:
    codec = draw(st.sampled_from(["ulaw", "alaw", "slin", "slin16", "slin48"]))
    n = draw(st.integers(1, 4000))
    if codec in ("ulaw", "alaw"):
        data, expected = g711(draw, n, decode_ulaw if codec == "ulaw" else decode_alaw)
        unit = 1
    else:
        expected = noise(draw, n)
        data, unit = expected.astype("<i2").tobytes(), 2
    if draw(st.booleans()):
        start = f"MEDIA_START connection_id:X channel:WebSocket/c-1 format:{codec} optimal_frame_size:160"
    else:
        start = dumps(
            {"event": "MEDIA_START", "connection_id": "X", "channel": "c", "format": codec, "optimal_frame_size": 160}
        )
    return [start, *frames_of(data, draw(byte_cuts(len(data), unit)))], {Track.INBOUND: expected}


@given(asterisk_sessions())
@PROPERTY
def test_any_asterisk_session_yields_its_audio(case: Any) -> None:
    check(*case)


@st.composite
def audiohook_sessions(draw: st.DrawFn) -> tuple[list[str | bytes], dict[Track, Samples]]:
    offer = draw(st.sampled_from([["external", "internal"], ["internal", "external"], ["external"], ["internal"]]))
    fmt = draw(st.sampled_from(["PCMU", "L16"]))
    tracks = [Track.INBOUND if c == "external" else Track.OUTBOUND for c in offer]
    n = draw(st.integers(1, 3000))
    if fmt == "PCMU":
        raw, decoded = g711(draw, n * len(tracks), decode_ulaw)
        expected = {track: decoded[j :: len(tracks)] for j, track in enumerate(tracks)}
        data, unit = raw, len(tracks)
    else:
        expected = {track: noise(draw, n) for track in tracks}
        data, unit = interleave([expected[t] for t in tracks]).astype("<i2").tobytes(), 2 * len(tracks)
    base = {"version": "2", "id": "I", "serverseq": 0, "position": "PT0S"}
    media = [{"type": "audio", "format": fmt, "channels": offer, "rate": 8000}]
    messages: list[str | bytes] = [
        dumps({**base, "type": "open", "seq": 1, "parameters": {"conversationId": "C", "media": media}})
    ]
    messages += frames_of(data, draw(byte_cuts(len(data), unit)))
    messages.append(dumps({**base, "type": "close", "seq": 2, "parameters": {"reason": "end"}}))
    return messages, expected


@given(audiohook_sessions())
@PROPERTY
def test_any_audiohook_session_yields_its_audio_on_the_offered_channels(case: Any) -> None:
    check(*case)


# -- the error contract -----------------------------------------------------------

_FIRSTS = [
    '{"event":"connected","version":"1.0.0"}',
    '{"event":"connected"}',
    '{"event":"start","sequenceNumber":1,"start":{"callId":"C","streamId":"S","mediaFormat":{"encoding":"audio/x-l16","sampleRate":8000}}}',
    '{"event":"websocket:connected","content-type":"audio/l16;rate=8000"}',
    '{"callSid":"C","sampleRate":8000,"mixType":"stereo"}',
    "MEDIA_START connection_id:X channel:c format:slin optimal_frame_size:320",
    '{"version":"2","type":"open","seq":1,"id":"I","parameters":{"conversationId":"C","media":[{"type":"audio","format":"PCMU","channels":["external","internal"],"rate":8000}]}}',
]
_LATER = [
    '{"event":"media","sequence_number":"2","media":{"track":"inbound","chunk":"1","timestamp":"0","payload":"AAA="}}',
    '{"event":"media","sequenceNumber":2,"media":{"timestamp":"1705312200000","chunk":1,"payload":"AAAA"}}',
    '{"event":"websocket:dtmf","digit":"1"}',
    '{"event":"dtmf","dtmf":"3"}',
    "DTMF_END digit:4",
    '{"version":"2","type":"ping","seq":2,"id":"I"}',
    '{"version":"2","type":"close","seq":3,"id":"I","parameters":{"reason":"end"}}',
    '{"event":"stop"}',
    "not json",
]


@st.composite
def any_messages(draw: st.DrawFn) -> list[str | bytes]:
    parts = st.one_of(
        st.sampled_from(_LATER),
        st.binary(max_size=64),
        st.text(max_size=40),
    )
    return [draw(st.sampled_from(_FIRSTS) | st.binary(max_size=8)), *draw(st.lists(parts, max_size=12))]


@given(
    any_messages(),
    st.sampled_from([None, *(Route("/r", p) for p in Platform), Route("/r", Platform.AUDIOFORK, 16000, Mix.STEREO)]),
)
@settings(max_examples=300, deadline=None)
def test_any_input_gives_events_or_a_close_coded_error(messages: list[str | bytes], route: Route | None) -> None:
    """The session's contract for every format: events, None, or a ``StreamProtocolError``."""
    session = StreamSession(route=route, connection_id="c")
    pipeline: StreamPipeline | None = None
    try:
        for message in messages:
            first = session.receive_text(message) if isinstance(message, str) else session.receive_binary(message)
            for event in [first, *session.take_backlog()]:
                if isinstance(event, StreamStarted):
                    pipeline = StreamPipeline(event, MediaSettings(), [], structlog.get_logger())
                elif isinstance(event, MediaReceived):
                    assert pipeline is not None
                    pipeline.media(event)
                elif isinstance(event, InterleavedMediaReceived):
                    assert pipeline is not None
                    pipeline.media_interleaved(event)
            session.take_replies()
    except StreamProtocolError as exc:
        assert len(exc.close_reason.encode()) <= 123
