"""
The messages a receiver must see, pre-encoded as client WebSocket frames.

The default format is MiniVoice's (``shared/minivoice/stream-protocol.md``; the same
JSON ``receiver.testing.MiniVoiceMessages`` builds): ``connected``, ``start``
(two tracks, mu-law, 8 kHz), then per track one ``media`` message every 20 ms
(160 bytes of mu-law, base64), then ``stop``. A media message looks like::

    {"event":"media","sequence_number":2,"stream_id":"str_b000001",
     "media":{"track":"inbound","chunk":1,"timestamp":0,"payload":"<216 chars>"}}

about 330 bytes of JSON. Every frame is masked as a client must (RFC 6455
5.3). Building a frame is byte formatting plus one XOR of the payload as a
Python integer (about 1 µs); the costly parts (base64 of the audio, the JSON
around it) are done once: each call cycles through a small pool of
pre-encoded payloads.

MiniVoice, Twilio and Vonage are built here by hand (``Call``). Every other
format the receiver speaks is built from the simulator's wire classes
(``receiver.simulator``, written from the platforms' references, not from
the receiver's parsers) and masked the same way (``WireCall``): see
``FORMATS``.
"""

from __future__ import annotations

import base64
import os
import struct
import zlib

import numpy as np
import orjson

from receiver.codecs import encode_ulaw
from receiver.events import Encoding
from receiver.simulator.carriers import make_wire
from receiver.simulator.wire import StreamIdentity, WireFormat

SAMPLE_RATE = 8000
FRAME_MS = 20
FRAME_BYTES = SAMPLE_RATE * FRAME_MS // 1000  # 160 bytes of mu-law
TRACKS = ("inbound", "outbound")
PAYLOAD_POOL = 50  # distinct 20 ms payloads per track (one second of a tone)


def _payloads(track_index: int) -> list[bytes]:
    """One second of a tone per track, as base64 of mu-law, frame by frame."""
    t = np.arange(SAMPLE_RATE * PAYLOAD_POOL * FRAME_MS // 1000) / SAMPLE_RATE
    freq = 440.0 if track_index == 0 else 660.0
    pcm = (8000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)
    ulaw = encode_ulaw(pcm)
    return [base64.b64encode(ulaw[i * FRAME_BYTES : (i + 1) * FRAME_BYTES]) for i in range(PAYLOAD_POOL)]


PAYLOADS: tuple[list[bytes], ...] = (_payloads(0), _payloads(1))
VONAGE_RATE = 16000  # Vonage's usual rate: 640 bytes of L16 per 20 ms binary frame


def _l16_payloads() -> list[bytes]:
    """One second of a tone as raw little-endian L16 at ``VONAGE_RATE``, frame by frame."""
    n = VONAGE_RATE * FRAME_MS // 1000
    t = np.arange(n * PAYLOAD_POOL) / VONAGE_RATE
    pcm = (8000 * np.sin(2 * np.pi * 440.0 * t)).astype("<i2").tobytes()
    return [pcm[i * 2 * n : (i + 1) * 2 * n] for i in range(PAYLOAD_POOL)]


L16_PAYLOADS: list[bytes] = _l16_payloads()


def frame(payload: bytes, *, opcode: int = 0x1, key: bytes | None = None) -> bytes:
    """One final, masked client frame (text by default)."""
    key = os.urandom(4) if key is None else key
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + key + mask(payload, key)


def mask(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    if not n:
        return payload
    reps = -(-n // 4)
    k = int.from_bytes((key * reps)[:n], "big")
    return (int.from_bytes(payload, "big") ^ k).to_bytes(n, "big")


class Call:
    """The messages of one two-track stream, built frame by frame.

    ``fmt`` is ``minivoice``, ``twilio`` (Twilio Media Streams: camelCase,
    counters as JSON strings, as Twilio and SignalWire send them) or
    ``vonage`` (a ``websocket:connected`` text frame, then one binary frame of
    L16 per 20 ms: one track, no stop message; the frames are masked once per
    call, from a pool).
    """

    __slots__ = ("_binary", "_head", "_key", "_keyint", "_tail", "call_id", "fmt", "seq", "stream_id", "tick")
    subprotocol: str | None = None  # none of the three offers one

    def __init__(self, index: int, *, t0: float | None = None, run: str = "b", fmt: str = "minivoice") -> None:
        self.fmt = fmt
        twilio = fmt == "twilio"
        self.stream_id = f"MZ{run}{index:030d}" if twilio else f"str_{run}{index:06d}"
        self.call_id = f"CA{run}{index:030d}" if twilio else f"call_{run}{index:06d}"
        self.seq = 0
        self.tick = 0  # 20 ms frames sent per track
        self._key = os.urandom(4)
        # The key repeated over the longest media message, as one integer (masking is one XOR).
        self._keyint = int.from_bytes(self._key * 128, "big")
        self._binary = [frame(p, opcode=0x2, key=self._key) for p in L16_PAYLOADS] if fmt == "vonage" else []
        if twilio:
            self._head = b'{"event":"media","sequenceNumber":"%d","streamSid":"' + self.stream_id.encode()
            self._head += b'","media":{"track":"'
            self._tail = b'%s","chunk":"%d","timestamp":"%d","payload":"%s"}}'
        else:
            self._head = b'{"event":"media","sequence_number":%d,"stream_id":"' + self.stream_id.encode()
            self._head += b'","media":{"track":"'
            self._tail = b'%s","chunk":%d,"timestamp":%d,"payload":"%s"}}'

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    def _text(self, message: dict[str, object]) -> bytes:
        return frame(orjson.dumps(message), key=self._key)

    def connected(self) -> bytes:
        if self.fmt == "vonage":
            return b""  # its first frame is the start
        if self.fmt == "twilio":
            return self._text({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        return self._text({"event": "connected", "protocol": "minivoice-stream", "version": "1.0"})

    def start(self, custom_parameters: dict[str, str] | None = None) -> bytes:
        if self.fmt == "vonage":
            return self._text(
                {
                    "event": "websocket:connected",
                    "content-type": f"audio/l16;rate={VONAGE_RATE}",
                    "uuid": self.call_id,
                    "stream_id": self.stream_id,
                    **(custom_parameters or {}),
                }
            )
        if self.fmt == "twilio":
            return self._text(
                {
                    "event": "start",
                    "sequenceNumber": str(self._next()),
                    "streamSid": self.stream_id,
                    "start": {
                        "streamSid": self.stream_id,
                        "accountSid": "AC" + "0" * 32,
                        "callSid": self.call_id,
                        "tracks": ["inbound", "outbound"],
                        "customParameters": custom_parameters or {},
                        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": SAMPLE_RATE, "channels": 1},
                    },
                }
            )
        return self._text(
            {
                "event": "start",
                "sequence_number": self._next(),
                "stream_id": self.stream_id,
                "start": {
                    "call_id": self.call_id,
                    "customer_id": "cust_bench",
                    "application_id": "app_bench",
                    "direction": "inbound",
                    "from": "+15551230001",
                    "to": "+15551230002",
                    "stream_url": "wss://media.example.com/minivoice",
                    "track": "both",
                    "tracks": list(TRACKS),
                    "media_format": {"encoding": "audio/x-mulaw", "sample_rate": SAMPLE_RATE, "channels": 1},
                    "custom_parameters": custom_parameters or {},
                },
            }
        )

    def media(self, track: int) -> bytes:
        """The next 20 ms of one track (0 inbound, 1 outbound) as one masked frame."""
        tick = self.tick
        self.seq += 1
        body = (self._head % self.seq) + (
            self._tail
            % (
                b"inbound" if track == 0 else b"outbound",
                tick + 1,
                tick * FRAME_MS,
                PAYLOADS[track][tick % PAYLOAD_POOL],
            )
        )
        n = len(body)
        shift = 8 * (512 - n)
        masked = (int.from_bytes(body, "big") ^ (self._keyint >> shift)).to_bytes(n, "big")
        return (b"\x81\xfe" + n.to_bytes(2, "big") if n >= 126 else bytes((0x81, 0x80 | n))) + self._key + masked

    def pair(self) -> tuple[bytes, ...]:
        """Every track's next 20 ms (inbound first); advances the call by one frame."""
        if self._binary:
            tick = self.tick
            self.tick += 1
            return (self._binary[tick % PAYLOAD_POOL],)
        a = self.media(0)
        b = self.media(1)
        self.tick += 1
        return a, b

    def stop(self, reason: str = "stop_stream") -> bytes:
        if self.fmt == "vonage":
            return b""  # the stream ends with the close
        if self.fmt == "twilio":
            return self._text(
                {
                    "event": "stop",
                    "sequenceNumber": str(self._next()),
                    "streamSid": self.stream_id,
                    "stop": {"accountSid": "AC" + "0" * 32, "callSid": self.call_id},
                }
            )
        return self._text(
            {
                "event": "stop",
                "sequence_number": self._next(),
                "stream_id": self.stream_id,
                "stop": {"call_id": self.call_id, "reason": reason},
            }
        )

    def close(self, code: int = 1000) -> bytes:
        return frame(struct.pack("!H", code), opcode=0x8, key=self._key)

    def ping(self, data: bytes) -> bytes:
        return frame(data, opcode=0x9, key=self._key)


# Every wire format the generator speaks: (encoding, tracks, frames a call sends per 20 ms).
# A binary format with two tracks interleaves them in one frame (jambonz stereo, AudioHook).
FORMATS: dict[str, tuple[Encoding, tuple[str, ...], int]] = {
    "minivoice": (Encoding.MULAW, TRACKS, 2),
    "twilio": (Encoding.MULAW, TRACKS, 2),
    "vonage": (Encoding.L16, ("inbound",), 1),
    "signalwire": (Encoding.MULAW, TRACKS, 2),
    "telnyx": (Encoding.MULAW, TRACKS, 2),
    "plivo": (Encoding.MULAW, TRACKS, 2),
    "exotel": (Encoding.L16, ("inbound",), 1),  # raw L16 in JSON, the caller only
    "jambonz": (Encoding.L16, TRACKS, 1),  # stereo L16
    "audiofork": (Encoding.L16, ("inbound",), 1),  # mono L16 (its default without a route)
    "asterisk": (Encoding.MULAW, ("inbound",), 1),  # binary mu-law, what the channel hears
    "audiohook": (Encoding.MULAW, TRACKS, 1),  # binary PCMU, both channels interleaved
}


def frames_per_tick(fmt: str) -> int:
    """Media messages one call sends per 20 ms."""
    return FORMATS[fmt][2]


def _l16_8k(track_index: int) -> list[bytes]:
    """``PAYLOADS``' tone for one track as little-endian L16 at 8 kHz, frame by frame."""
    t = np.arange(SAMPLE_RATE * PAYLOAD_POOL * FRAME_MS // 1000) / SAMPLE_RATE
    pcm = (8000 * np.sin(2 * np.pi * (440.0 if track_index == 0 else 660.0) * t)).astype("<i2")
    return [pcm[i * FRAME_BYTES : (i + 1) * FRAME_BYTES].tobytes() for i in range(PAYLOAD_POOL)]


def _binary_pool(fmt: str, encoding: Encoding, tracks: tuple[str, ...]) -> list[bytes]:
    """One second of a binary format's 20 ms frames (two tracks interleaved sample by sample)."""
    if encoding is Encoding.L16:
        legs = [np.frombuffer(b"".join(_l16_8k(k)), "<i2") for k in range(len(tracks))]
        width = 2
    else:
        legs = [np.frombuffer(b"".join(base64.b64decode(p) for p in PAYLOADS[k]), np.uint8) for k in range(len(tracks))]
        width = 1
    audio = np.stack(legs, axis=1).tobytes()  # one leg: the leg itself
    size = FRAME_BYTES * width * len(tracks)
    return [audio[i * size : (i + 1) * size] for i in range(PAYLOAD_POOL)]


class WireCall:
    """One stream in a format the simulator builds (``FORMATS`` beyond MiniVoice, Twilio and
    Vonage): its opening and closing messages, then per 20 ms one JSON ``media`` message per
    track, or one binary frame. The same interface as ``Call``."""

    def __init__(self, index: int, *, run: str = "b", fmt: str) -> None:
        encoding, tracks, _ = FORMATS[fmt]
        self.fmt = fmt
        # A UUID (SignalWire, Plivo and AudioHook send one; Plivo's wire reads it as hex).
        self.stream_id = f"{zlib.crc32(run.encode()) & 0xFFFF:04x}{index:04x}-0000-4000-8000-000000000000"
        self.call_id = f"call_{run}{index:06d}"
        self.tracks = tracks
        self.seq = 0
        self.tick = 0
        self._key = os.urandom(4)
        self._encoding = encoding
        self._wire = make_wire(WireFormat(fmt), self._identity({}))  # start() makes it again with the parameters
        self.subprotocol = self._wire.subprotocol
        self._binary = (
            [frame(p, opcode=0x2, key=self._key) for p in _binary_pool(fmt, encoding, tracks)]
            if self._wire.binary
            else []
        )
        self._payloads = (
            [[base64.b64encode(p).decode() for p in _l16_8k(k)] for k in range(len(tracks))]
            if encoding is Encoding.L16
            else [[p.decode() for p in PAYLOADS[k]] for k in range(len(tracks))]
        )

    def _identity(self, parameters: dict[str, str]) -> StreamIdentity:
        return StreamIdentity(
            stream_id=self.stream_id,
            call_id=self.call_id,
            stream_url="ws://127.0.0.1/bench",
            track="both" if len(self.tracks) == 2 else "inbound",
            tracks=self.tracks,
            encoding=self._encoding,
            sample_rate=SAMPLE_RATE,
            parameters=parameters,
        )

    def _text(self, text: str) -> bytes:
        return frame(text.encode(), key=self._key)

    def connected(self) -> bytes:
        return b""  # in the opening (start)

    def start(self, custom_parameters: dict[str, str] | None = None) -> bytes:
        self._wire = make_wire(WireFormat(self.fmt), self._identity(dict(custom_parameters or {})))
        opening = self._wire.opening()
        self.seq = len(opening)
        return b"".join(self._text(message) for message in opening)

    def pair(self) -> tuple[bytes, ...]:
        """Every track's next 20 ms: one binary frame, or one JSON message per track."""
        tick = self.tick
        self.tick += 1
        if self._binary:
            return (self._binary[tick % PAYLOAD_POOL],)
        out = []
        for k, track in enumerate(self.tracks):
            self.seq += 1
            text = self._wire.media(self.seq, track, tick + 1, tick * FRAME_MS, self._payloads[k][tick % PAYLOAD_POOL])
            out.append(self._text(text))
        return tuple(out)

    def stop(self, reason: str = "stop_stream") -> bytes:
        self.seq += 1
        return b"".join(self._text(m) for m in self._wire.closing(self.seq, reason, self.tick * FRAME_MS))

    def close(self, code: int = 1000) -> bytes:
        return frame(struct.pack("!H", code), opcode=0x8, key=self._key)

    def ping(self, data: bytes) -> bytes:
        return frame(data, opcode=0x9, key=self._key)


def make_call(index: int, *, run: str = "b", fmt: str = "minivoice") -> Call | WireCall:
    """One stream's messages in ``fmt`` (a key of ``FORMATS``)."""
    if fmt in ("minivoice", "twilio", "vonage"):
        return Call(index, run=run, fmt=fmt)
    return WireCall(index, run=run, fmt=fmt)
