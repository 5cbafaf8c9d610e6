"""
One short session per platform, shaped like the platform's published examples.

Field names, order and JSON types follow the examples quoted in
``shared/reference/stream-formats.md`` (its source tags: Telnyx S-TX1, Plivo
S-PL1, Exotel S-EX4, Vonage S-VG1, jambonz S-JB1, FreeSWITCH S-FS1, Asterisk
S-AS1, AudioHook from Genesys' reference implementation); ids are the
examples' own where they give one. Payloads carry a known signal per track,
so a test can check that the receiver gets back exactly the audio sent.

Written here, not with ``receiver.testing`` or the simulator: the fixtures
are the platforms' side and must not share the receiver's reading of them.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from receiver.codecs import decode_alaw, decode_ulaw, encode_alaw, encode_ulaw
from receiver.events import Platform, Track
from receiver.routes import Mix, Route

Samples = npt.NDArray[np.int16]

FRAMES = 10  # 200 ms of 20 ms frames per stream


def tone(n: int, rate: int, freq: float, amp: int = 6000, start: int = 0) -> Samples:
    t = np.arange(start, start + n) / rate
    return np.round(amp * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def dumps(obj: dict[str, Any]) -> str:
    # The published examples are compact JSON in their own key order.
    return json.dumps(obj, separators=(",", ":"))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class Published:
    """A session as a platform sends it, and what the receiver must make of it."""

    name: str
    platform: Platform
    messages: list[str | bytes]
    audio: dict[Track, Samples]  # what each declared track must hold
    call_id: str
    stream_id: str | None  # None: the format names none (the session names it)
    dtmf: list[str] = field(default_factory=list)
    stops: bool = True  # ends with a stop message (else: the socket closes)
    route: Route | None = None
    subprotocol: str | None = None
    replies: list[str] = field(default_factory=list)  # reply types the receiver must send, in order
    readings: dict[str, str] = field(default_factory=dict)  # readings the stream must report
    rate: int = 8000


def telnyx(encoding: str = "PCMU", rate: int = 8000, byteorder: str = "big") -> Published:
    """Telnyx: both tracks (``both_tracks``), PCMU or L16 (big-endian by RTP convention)."""
    n = rate // 50
    stream_id = "32DE0DEA-53CB-4B21-89A4-9E1819C043BC"
    call = "v3:u5OAKGEPT3Dx8SZSSDRWEMdNH2OripQhO"
    inbound, outbound = tone(n * FRAMES, rate, 440), tone(n * FRAMES, rate, 660)

    def payload(samples: Samples) -> bytes:
        if encoding == "PCMU":
            return encode_ulaw(samples)
        return samples.astype(">i2" if byteorder == "big" else "<i2").tobytes()

    messages: list[str | bytes] = [
        dumps({"event": "connected", "version": "1.0.0"}),
        dumps(
            {
                "event": "start",
                "sequence_number": "1",
                "start": {
                    "user_id": "3E6F995F-85F7-4705-9741-53B116D28237",
                    "call_control_id": call,
                    "call_session_id": "2ff3b6b8-ea18-11ee-9b45-02420a0d0d69",
                    "from": "+13122010094",
                    "to": "+13122123456",
                    "tags": ["TAG1"],
                    "client_state": "aGF2ZSBhIG5pY2UgZGF5ID1d",
                    "media_format": {"encoding": encoding, "sample_rate": rate, "channels": 1},
                },
                "stream_id": stream_id,
            }
        ),
    ]
    seq = 2
    for k in range(FRAMES):
        for track, samples in (("inbound", inbound), ("outbound", outbound)):
            messages.append(
                dumps(
                    {
                        "event": "media",
                        "sequence_number": str(seq),
                        "media": {
                            "track": track,
                            "chunk": str(k + 1),
                            "timestamp": str(20 * k),
                            "payload": b64(payload(samples[k * n : (k + 1) * n])),
                        },
                        "stream_id": stream_id,
                    }
                )
            )
            seq += 1
    messages.append(
        dumps(
            {
                "event": "dtmf",
                "stream_id": stream_id,
                "occurred_at": "2025-06-05T08:54:19.698408Z",
                "sequence_number": str(seq),
                "dtmf": {"digit": "1"},
            }
        )
    )
    messages.append(
        dumps(
            {
                "event": "stop",
                "sequence_number": str(seq + 1),
                "stop": {"user_id": "3E6F995F-85F7-4705-9741-53B116D28237", "call_control_id": call},
                "stream_id": stream_id,
            }
        )
    )
    if encoding == "PCMU":
        expected = {
            Track.INBOUND: decode_ulaw(encode_ulaw(inbound)),
            Track.OUTBOUND: decode_ulaw(encode_ulaw(outbound)),
        }
        readings = {}
    else:
        expected = {Track.INBOUND: inbound, Track.OUTBOUND: outbound}
        readings = {"l16_byteorder": f"{byteorder} (from the audio)"}
    return Published(
        f"telnyx-{encoding.lower()}-{rate}" + ("" if encoding == "PCMU" else f"-{byteorder}"),
        Platform.TELNYX,
        messages,
        expected,
        call_id=call,
        stream_id=stream_id,
        dtmf=["1"],
        readings={"timestamps": "ms from stream start", **readings},
        rate=rate,
    )


def plivo(content_type: str = "audio/x-mulaw", rate: int = 8000) -> Published:
    """Plivo: ``start`` first, integer counters, epoch-millisecond timestamps, no stop."""
    n = rate // 50
    call_id, stream_id = "ba0a7a1c-0e27-4f40-9f0b-6c1e3f4a7d20", "20170ada-f610-433b-8758-c02a2aab3662"
    inbound = tone(n * FRAMES, rate, 440)
    l16 = content_type == "audio/x-l16"
    epoch = 1705312200000
    messages: list[str | bytes] = [
        dumps(
            {
                "event": "start",
                "sequenceNumber": 1,
                "start": {
                    "callId": call_id,
                    "streamId": stream_id,
                    "accountId": "MAXXXXXXXXXXXXXXXXXX",
                    "tracks": ["inbound"],
                    "mediaFormat": {"encoding": content_type, "sampleRate": rate},
                },
                "extra_headers": "userId=12345;sessionId=abc-xyz",
            }
        )
    ]
    for k in range(FRAMES):
        frame = inbound[k * n : (k + 1) * n]
        payload = frame.astype("<i2").tobytes() if l16 else encode_ulaw(frame)
        messages.append(
            dumps(
                {
                    "event": "media",
                    "sequenceNumber": k + 2,
                    "streamId": stream_id,
                    "media": {
                        "track": "inbound",
                        "timestamp": str(epoch + 20 * k),
                        "chunk": k + 1,
                        "payload": b64(payload),
                    },
                    "extra_headers": "userId=12345;sessionId=abc-xyz",
                }
            )
        )
    messages.append(
        dumps(
            {
                "event": "dtmf",
                "sequenceNumber": FRAMES + 2,
                "streamId": stream_id,
                "dtmf": {"track": "inbound", "digit": "5", "timestamp": str(epoch + 20 * FRAMES)},
                "extra_headers": "userId=12345;sessionId=abc-xyz",
            }
        )
    )
    messages.append(
        dumps({"event": "playedStream", "sequenceNumber": FRAMES + 3, "streamId": stream_id, "name": "greeting"})
    )
    readings = {"timestamps": "epoch ms (from the first frame)", "extra_headers": "separated by ';'"}
    if l16:
        readings["l16_byteorder"] = "little (from the audio)"
    return Published(
        f"plivo-{'l16' if l16 else 'mulaw'}-{rate}",
        Platform.PLIVO,
        messages,
        {Track.INBOUND: inbound if l16 else decode_ulaw(encode_ulaw(inbound))},
        call_id=call_id,
        stream_id=stream_id,
        dtmf=["5"],
        stops=False,
        readings=readings,
        rate=rate,
    )


def exotel() -> Published:
    """Exotel: bare ``connected``, strings everywhere, raw L16 in 100 ms chunks."""
    rate, chunk_ms = 8000, 100
    n = rate * chunk_ms // 1000
    chunks = 3
    inbound = tone(n * chunks, rate, 440)
    stream_sid, call_sid = "b3f0e5c8a7d94a2b8c1e6f7a9d0b2c4e", "a1b2c3d4e5f60718293a4b5c6d7e8f90"
    messages: list[str | bytes] = [
        dumps({"event": "connected"}),
        dumps(
            {
                "event": "start",
                "sequence_number": "1",
                "stream_sid": stream_sid,
                "start": {
                    "stream_sid": stream_sid,
                    "call_sid": call_sid,
                    "account_sid": "exotel_account",
                    "from": "+919876543210",
                    "to": "+918012345678",
                    "custom_parameters": {"key1": "value1"},
                    "media_format": {"encoding": "audio/x-raw", "sample_rate": "8000", "bit_rate": "16"},
                },
            }
        ),
    ]
    for k in range(chunks):
        messages.append(
            dumps(
                {
                    "event": "media",
                    "sequence_number": str(k + 2),
                    "stream_sid": stream_sid,
                    "media": {
                        "chunk": str(k + 1),
                        "timestamp": str(chunk_ms * k),
                        "payload": b64(inbound[k * n : (k + 1) * n].astype("<i2").tobytes()),
                    },
                }
            )
        )
    seq = chunks + 2
    messages += [
        dumps(
            {
                "event": "dtmf",
                "sequence_number": str(seq),
                "stream_sid": stream_sid,
                "dtmf": {"digit": "5", "duration": "100"},
            }
        ),
        dumps({"event": "mark", "sequence_number": str(seq + 1), "stream_sid": stream_sid, "mark": {"name": "m1"}}),
        dumps(
            {
                "event": "stop",
                "sequence_number": str(seq + 2),
                "stream_sid": stream_sid,
                "stop": {"call_sid": call_sid, "account_sid": "exotel_account", "reason": "callended"},
            }
        ),
    ]
    return Published(
        "exotel",
        Platform.EXOTEL,
        messages,
        {Track.INBOUND: inbound},
        call_id=call_sid,
        stream_id=stream_sid,
        dtmf=["5"],
        readings={"timestamps": "ms from stream start", "encoding": "audio/x-raw"},
        rate=rate,
    )


def vonage(rate: int = 16000) -> Published:
    """Vonage: ``websocket:connected`` with flattened headers, then binary 20 ms L16."""
    n = rate // 50
    mix = tone(n * FRAMES, rate, 440)
    messages: list[str | bytes] = [
        dumps(
            {
                "event": "websocket:connected",
                "content-type": f"audio/l16;rate={rate}",
                "language": "en-GB",
                "callerID": "447700900123",
                "uuid": "aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
            }
        )
    ]
    for k in range(FRAMES):
        messages.append(mix[k * n : (k + 1) * n].astype("<i2").tobytes())
        if k == 4:
            messages.append(dumps({"event": "websocket:dtmf", "digit": "5", "duration": 260}))
    return Published(
        f"vonage-{rate}",
        Platform.VONAGE,
        messages,
        {Track.INBOUND: mix},
        call_id="aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
        stream_id=None,
        dtmf=["5"],
        stops=False,
        readings={"call_id": "header"},
        rate=rate,
    )


def jambonz(mix: str = "stereo", rate: int = 8000) -> Published:
    """jambonz ``listen``: call metadata without ``event``, then binary L16 (stereo interleaved)."""
    n = rate // 50
    caller, callee = tone(n * FRAMES, rate, 440), tone(n * FRAMES, rate, 660)
    call_sid = "9fb7f3c2-6f4a-4b8e-9d7c-0d9f1f2e3a4b"
    messages: list[str | bytes] = [
        dumps(
            {
                "callSid": call_sid,
                "direction": "inbound",
                "from": "+15083084809",
                "to": "+15083727420",
                "callId": "c5e0f8a6-sip-call-id",
                "sipStatus": 200,
                "callStatus": "in-progress",
                "accountSid": "fef61e75-cec3-496c-a7bc-8368e4d7a9a7",
                "applicationSid": "0e0681b0-d49f-4fb8-b973-b5a3c6758de1",
                "sampleRate": rate,
                "mixType": mix,
                "metadata": {"foo": "bar", "n": 1},
            }
        )
    ]
    for k in range(FRAMES):
        a, b = caller[k * n : (k + 1) * n], callee[k * n : (k + 1) * n]
        if mix == "stereo":
            frame = np.empty(2 * n, dtype=np.int16)
            frame[0::2], frame[1::2] = a, b
        else:
            frame = a
        messages.append(frame.astype("<i2").tobytes())
        if k == 2:
            messages.append(dumps({"event": "dtmf", "dtmf": "2", "duration": "1600"}))
    audio = {Track.INBOUND: caller, Track.OUTBOUND: callee} if mix == "stereo" else {Track.INBOUND: caller}
    readings = {"mix": mix}
    if mix == "stereo":
        readings["stereo_channels"] = "inbound,outbound (assumed)"
    return Published(
        f"jambonz-{mix}-{rate}",
        Platform.JAMBONZ,
        messages,
        audio,
        call_id=call_sid,
        stream_id=None,
        dtmf=["2"],
        stops=False,
        subprotocol="audio.jambonz.org",
        readings=readings,
        rate=rate,
    )


def audiofork(*, metadata: bool = True, mix: str = "stereo", rate: int = 16000) -> Published:
    """FreeSWITCH mod_audio_fork: optional metadata text, then binary L16 per the route."""
    n = rate // 50
    caller, callee = tone(n * FRAMES, rate, 440), tone(n * FRAMES, rate, 660)
    # The route says the legs arrive callee first, to check the route's channel order is honoured.
    route = Route(f"/fork/{mix}/{rate}", Platform.AUDIOFORK, rate, Mix(mix), (Track.OUTBOUND, Track.INBOUND))
    messages: list[str | bytes] = []
    if metadata:
        messages.append(dumps({"callSid": "fs-7f2c", "customer": "acme"}))
    for k in range(FRAMES):
        a, b = caller[k * n : (k + 1) * n], callee[k * n : (k + 1) * n]
        if mix == "stereo":
            frame = np.empty(2 * n, dtype=np.int16)
            frame[0::2], frame[1::2] = b, a
        else:
            frame = a
        messages.append(frame.astype("<i2").tobytes())
    audio = {Track.INBOUND: caller, Track.OUTBOUND: callee} if mix == "stereo" else {Track.INBOUND: caller}
    return Published(
        f"audiofork-{mix}-{rate}-{'metadata' if metadata else 'bare'}",
        Platform.AUDIOFORK,
        messages,
        audio,
        call_id="fs-7f2c" if metadata else "",
        stream_id=None,
        stops=False,
        route=route,
        readings={"metadata": "json" if metadata else "none", "mix": mix},
        rate=rate,
    )


def asterisk(*, json_control: bool = False, codec: str = "ulaw") -> Published:
    """Asterisk chan_websocket: MEDIA_START (plain or JSON), binary frames, DTMF_END."""
    rate = {"ulaw": 8000, "alaw": 8000, "slin": 8000, "slin16": 16000}[codec]
    n = rate // 50
    size = n if codec in ("ulaw", "alaw") else 2 * n
    inbound = tone(n * FRAMES, rate, 440)
    connection_id = "e226e283-c90a-4ea9-9e37-389000b9ef47"
    if json_control:
        start = dumps(
            {
                "event": "MEDIA_START",
                "connection_id": connection_id,
                "channel": "WebSocket/connection1-00000001",
                "channel_id": "1761245643.1",
                "format": codec,
                "optimal_frame_size": size,
                "ptime": 20,
                "channel_variables": {"DIALEDPEERNUMBER": "1000"},
            }
        )
        dtmf = dumps({"event": "DTMF_END", "digit": "7"})
    else:
        start = (
            f"MEDIA_START connection_id:{connection_id} channel:WebSocket/connection1-00000001 "
            f"format:{codec} optimal_frame_size:{size}"
        )
        dtmf = "DTMF_END digit:7"
    encode: Callable[[Samples], bytes] = {
        "ulaw": encode_ulaw,
        "alaw": encode_alaw,
    }.get(codec, lambda s: s.astype("<i2").tobytes())
    messages: list[str | bytes] = [start]
    for k in range(FRAMES):
        messages.append(encode(inbound[k * n : (k + 1) * n]))
        if k == 3:
            messages += [dtmf, "MEDIA_XOFF" if not json_control else dumps({"event": "MEDIA_XOFF"})]
    expected = {"ulaw": decode_ulaw(encode_ulaw(inbound)), "alaw": decode_alaw(encode_alaw(inbound))}.get(
        codec, inbound
    )
    return Published(
        f"asterisk-{'json' if json_control else 'plain'}-{codec}",
        Platform.ASTERISK,
        messages,
        {Track.INBOUND: expected},
        call_id="1761245643.1" if json_control else "WebSocket/connection1-00000001",
        stream_id=connection_id,
        dtmf=["7"],
        stops=False,
        readings={"control": "json" if json_control else "plain"},
        rate=rate,
    )


def audiohook(frames_ms: int = 100) -> Published:
    """Genesys AudioHook: ``open`` (three media offers), stereo PCMU frames, ``ping``, ``close``."""
    rate = 8000
    n = rate * frames_ms // 1000
    count = 4
    external, internal = tone(n * count, rate, 440), tone(n * count, rate, 660)
    session_id = "e160e428-53e2-487c-977d-96989bf5c99d"

    def message(kind: str, seq: int, position: str, parameters: dict[str, Any]) -> str:
        return dumps(
            {
                "version": "2",
                "type": kind,
                "seq": seq,
                "serverseq": seq - 1,
                "id": session_id,
                "position": position,
                "parameters": parameters,
            }
        )

    messages: list[str | bytes] = [
        message(
            "open",
            1,
            "PT0S",
            {
                "organizationId": "d7934305-0972-4844-938e-9060eef73d05",
                "conversationId": "090eaa2f-72fa-480a-83e0-8667ff89c0ec",
                "participant": {
                    "id": "883efee8-3d6c-4537-b500-6d7ca4b92fa0",
                    "ani": "+1-555-555-1234",
                    "aniName": "John Doe",
                    "dnis": "+1-800-555-6789",
                },
                "media": [
                    {"type": "audio", "format": "PCMU", "channels": ["external", "internal"], "rate": 8000},
                    {"type": "audio", "format": "PCMU", "channels": ["external"], "rate": 8000},
                    {"type": "audio", "format": "PCMU", "channels": ["internal"], "rate": 8000},
                ],
                "language": "en-US",
            },
        )
    ]
    for k in range(count):
        frame = np.empty(2 * n, dtype=np.int16)
        frame[0::2], frame[1::2] = external[k * n : (k + 1) * n], internal[k * n : (k + 1) * n]
        messages.append(encode_ulaw(frame))
        if k == 1:
            messages.append(message("ping", 2, f"PT{2 * frames_ms / 1000}S", {"rtt": "PT0.05S"}))
    messages.append(message("close", 3, f"PT{count * frames_ms / 1000}S", {"reason": "end"}))
    return Published(
        "audiohook",
        Platform.AUDIOHOOK,
        messages,
        {Track.INBOUND: decode_ulaw(encode_ulaw(external)), Track.OUTBOUND: decode_ulaw(encode_ulaw(internal))},
        call_id="090eaa2f-72fa-480a-83e0-8667ff89c0ec",
        stream_id=session_id,
        replies=["opened", "pong", "closed"],
        readings={"channels": "external,internal"},
        rate=rate,
    )


ALL: list[Callable[[], Published]] = [
    telnyx,
    lambda: telnyx("L16", 16000, "big"),
    lambda: telnyx("L16", 8000, "little"),
    plivo,
    lambda: plivo("audio/x-l16", 16000),
    exotel,
    vonage,
    lambda: vonage(8000),
    jambonz,
    lambda: jambonz("mono", 16000),
    audiofork,
    lambda: audiofork(metadata=False, mix="mono", rate=8000),
    asterisk,
    lambda: asterisk(json_control=True, codec="slin16"),
    lambda: asterisk(codec="alaw"),
    audiohook,
]
