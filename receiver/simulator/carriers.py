"""
The other carriers' wire formats, as each sends them (``shared/reference/stream-formats.md``
sections 3-8; AudioHook after Genesys' reference implementation).

Written from the references, not from the receiver's parsers (see ``wire.py``).
Where a reference leaves a fact open, the simulator sends one documented
reading and says which: Telnyx L16 goes big-endian (the RTP convention),
Plivo timestamps are Unix epoch milliseconds (its protocol reference), Plivo
L16 little-endian, jambonz and audio_fork stereo put the caller first.

Formats without a stream id on the wire (Vonage, jambonz, audio_fork) carry
the simulator's in the place the platform leaves to the application (NCCO
headers, the ``listen`` metadata, the fork metadata), so the receiver's file
names match ``--record-sent``'s.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from receiver.events import Encoding
from receiver.simulator.wire import StreamIdentity, StreamWire, Wire, WireFormat

BOTH: Final = ("inbound", "outbound")
INBOUND: Final = ("inbound",)


def _dumps(obj: Mapping[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"))


class Telnyx(StreamWire):
    """Telnyx media streaming: snake_case, counters as strings, ``stream_id`` at the top level."""

    byteorder = "big"  # RTP payloads; unconfirmed for L16 (the receiver tells it from the audio)
    _CODECS: Final = {Encoding.MULAW: "PCMU", Encoding.ALAW: "PCMA", Encoding.L16: "L16"}

    def __init__(self, wire: WireFormat, ident: StreamIdentity) -> None:
        super().__init__(wire, ident)
        self._media = (
            '{"event":"media","sequence_number":"%d","media":{"track":"%s","chunk":"%d","timestamp":"%d",'
            '"payload":"%s"},"stream_id":"' + ident.stream_id + '"}'
        )

    def declared(self, sent: tuple[str, ...]) -> tuple[str, ...]:
        return BOTH  # start names no tracks: a receiver declares both

    def opening(self) -> list[str]:
        i = self.ident
        start = {
            "event": "start",
            "sequence_number": "1",
            "start": {
                "user_id": i.account_id,
                "call_control_id": i.call_id,
                "call_session_id": i.stream_id.lower(),
                "from": i.from_number,
                "to": i.to_number,
                "custom_parameters": dict(i.parameters),
                "media_format": {"encoding": self._CODECS[i.encoding], "sample_rate": i.sample_rate, "channels": 1},
            },
            "stream_id": i.stream_id,
        }
        return [_dumps({"event": "connected", "version": "1.0.0"}), _dumps(start)]

    def media(self, sequence: int, track: str, chunk: int, timestamp: int, payload_b64: str) -> str:
        return self._media % (sequence, track, chunk, timestamp, payload_b64)

    def closing(self, sequence: int, reason: str, position_ms: int = 0) -> list[str]:
        i = self.ident
        stop = {
            "event": "stop",
            "sequence_number": str(sequence),
            "stop": {"user_id": i.account_id, "call_control_id": i.call_id},
            "stream_id": i.stream_id,
        }
        return [_dumps(stop)]


class Plivo(StreamWire):
    """Plivo audio streams: ``start`` first, integer counters, epoch-millisecond timestamps, no stop."""

    epoch = True
    _TYPES: Final = {Encoding.MULAW: "audio/x-mulaw", Encoding.L16: "audio/x-l16"}

    def __init__(self, wire: WireFormat, ident: StreamIdentity) -> None:
        super().__init__(wire, ident)
        # The call's wall-clock start, as Unix milliseconds (fixed per stream, so plans repeat).
        self.epoch_ms = 1_700_000_000_000 + int(ident.stream_id.replace("-", "")[:8], 16) % 10**9
        headers = ";".join(f"{k}={v}" for k, v in ident.parameters.items())
        self._extra = headers
        self._media = (
            '{"event":"media","sequenceNumber":%d,"streamId":"'
            + ident.stream_id
            + '","media":{"track":"%s","timestamp":"%d","chunk":%d,"payload":"%s"},"extra_headers":"'
            + headers
            + '"}'
        )

    def opening(self) -> list[str]:
        i = self.ident
        start = {
            "event": "start",
            "sequenceNumber": 1,
            "start": {
                "callId": i.call_id,
                "streamId": i.stream_id,
                "accountId": i.account_id,
                "tracks": list(i.tracks),
                "mediaFormat": {"encoding": self._TYPES[i.encoding], "sampleRate": i.sample_rate},
            },
            "extra_headers": self._extra,
        }
        return [_dumps(start)]

    def media(self, sequence: int, track: str, chunk: int, timestamp: int, payload_b64: str) -> str:
        return self._media % (sequence, track, self.epoch_ms + timestamp, chunk, payload_b64)


class Exotel(StreamWire):
    """Exotel stream/voicebot applets: a bare ``connected``, strings everywhere, raw L16, the caller only."""

    def __init__(self, wire: WireFormat, ident: StreamIdentity) -> None:
        super().__init__(wire, ident)
        self._media = (
            '{"event":"media","sequence_number":"%d","stream_sid":"'
            + ident.stream_id
            + '","media":{"chunk":"%d","timestamp":"%d","payload":"%s"}}'
        )

    @classmethod
    def carries(cls, requested: tuple[str, ...]) -> tuple[str, ...]:
        return INBOUND

    def opening(self) -> list[str]:
        i = self.ident
        start = {
            "event": "start",
            "sequence_number": "1",
            "stream_sid": i.stream_id,
            "start": {
                "stream_sid": i.stream_id,
                "call_sid": i.call_id,
                "account_sid": i.account_id,
                "from": i.from_number,
                "to": i.to_number,
                "custom_parameters": dict(i.parameters),
                "media_format": {"encoding": "audio/x-raw", "sample_rate": str(i.sample_rate), "bit_rate": "16"},
            },
        }
        return [_dumps({"event": "connected"}), _dumps(start)]

    def media(self, sequence: int, track: str, chunk: int, timestamp: int, payload_b64: str) -> str:
        return self._media % (sequence, chunk, timestamp, payload_b64)

    def closing(self, sequence: int, reason: str, position_ms: int = 0) -> list[str]:
        i = self.ident
        stop = {
            "event": "stop",
            "sequence_number": str(sequence),
            "stream_sid": i.stream_id,
            "stop": {"call_sid": i.call_id, "account_sid": i.account_id, "reason": "callended"},
        }
        return [_dumps(stop)]


class Vonage(StreamWire):
    """Vonage websockets: ``websocket:connected`` with the NCCO headers flattened, then binary L16 (the mix)."""

    binary = True
    positional = False

    @classmethod
    def carries(cls, requested: tuple[str, ...]) -> tuple[str, ...]:
        return INBOUND  # a participant hears one mix

    def opening(self) -> list[str]:
        i = self.ident
        first = {
            "event": "websocket:connected",
            "content-type": f"audio/l16;rate={i.sample_rate}",
            **i.parameters,
            "uuid": i.call_id,
            "stream_id": i.stream_id,
        }
        return [_dumps(first)]


class Jambonz(StreamWire):
    """jambonz ``listen``: call metadata (no ``event``), then binary L16; stereo when both legs stream."""

    binary = True
    positional = False
    subprotocol = "audio.jambonz.org"

    @classmethod
    def carries(cls, requested: tuple[str, ...]) -> tuple[str, ...]:
        return BOTH if len(requested) == 2 else INBOUND  # mono is the caller

    def __init__(self, wire: WireFormat, ident: StreamIdentity) -> None:
        super().__init__(wire, ident)
        self.interleaved = len(ident.tracks) == 2

    def opening(self) -> list[str]:
        i = self.ident
        metadata = {
            "callSid": i.call_id,
            "direction": i.direction,
            "from": i.from_number,
            "to": i.to_number,
            "callStatus": "in-progress",
            "accountSid": i.account_id,
            "applicationSid": i.application_id,
            "sampleRate": i.sample_rate,
            "mixType": "stereo" if len(i.tracks) == 2 else "mono",
            "metadata": {**i.parameters, "stream_id": i.stream_id},
        }
        return [_dumps(metadata)]


class AudioFork(Jambonz):
    """FreeSWITCH mod_audio_fork: JSON metadata, then binary L16 (the receiver's route gives rate and mix)."""

    subprotocol = "audio.drachtio.org"

    def opening(self) -> list[str]:
        i = self.ident
        return [_dumps({"callSid": i.call_id, "stream_id": i.stream_id, **i.parameters})]


class Asterisk(StreamWire):
    """Asterisk chan_websocket: plain ``MEDIA_START``, then binary frames in the channel's codec."""

    binary = True
    positional = False
    _CODECS: Final = {(Encoding.MULAW, 8000): "ulaw", (Encoding.ALAW, 8000): "alaw", (Encoding.L16, 8000): "slin"}

    @classmethod
    def carries(cls, requested: tuple[str, ...]) -> tuple[str, ...]:
        return INBOUND  # what the channel hears

    def opening(self) -> list[str]:
        i = self.ident
        codec = self._CODECS.get((i.encoding, i.sample_rate), f"slin{i.sample_rate // 1000}")
        size = i.sample_rate // 50 * (2 if i.encoding is Encoding.L16 else 1)
        return [f"MEDIA_START connection_id:{i.stream_id} channel:{i.call_id} format:{codec} optimal_frame_size:{size}"]


class AudioHook(StreamWire):
    """Genesys AudioHook: ``open`` (answered by ``opened``), binary PCMU or L16, ``ping``, ``close``."""

    binary = True
    positional = False
    answers = True
    ping_ms = 5000
    _CHANNELS: Final = {"inbound": "external", "outbound": "internal"}
    _FORMATS: Final = {Encoding.MULAW: "PCMU", Encoding.L16: "L16"}

    def __init__(self, wire: WireFormat, ident: StreamIdentity) -> None:
        super().__init__(wire, ident)
        self.interleaved = len(ident.tracks) == 2

    def _message(self, kind: str, seq: int, position_ms: int, parameters: Mapping[str, Any]) -> str:
        # serverseq: the server's replies so far (opened, then a pong per ping), if all arrived.
        body = {
            "version": "2",
            "id": self.ident.stream_id,
            "type": kind,
            "seq": seq,
            "serverseq": seq - 1,
            "position": f"PT{position_ms / 1000:g}S",
            "parameters": parameters,
        }
        return _dumps(body)

    def opening(self) -> list[str]:
        i = self.ident
        media = {
            "type": "audio",
            "format": self._FORMATS[i.encoding],
            "channels": [self._CHANNELS[t] for t in i.tracks],
            "rate": 8000,
        }
        parameters = {
            "organizationId": i.account_id,
            "conversationId": i.call_id,
            "participant": {"id": i.customer_id, "ani": i.from_number, "aniName": "", "dnis": i.to_number},
            "media": [media],
            "language": "en-US",
            "customConfig": dict(i.parameters),
        }
        return [self._message("open", 1, 0, parameters)]

    def ping(self, sequence: int, position_ms: int) -> str:
        return self._message("ping", sequence, position_ms, {})

    def closing(self, sequence: int, reason: str, position_ms: int = 0) -> list[str]:
        return [self._message("close", sequence, position_ms, {"reason": "end"})]


CLASSES: Final[Mapping[WireFormat, type[StreamWire]]] = {
    WireFormat.MINIVOICE: Wire,
    WireFormat.TWILIO: Wire,
    WireFormat.SIGNALWIRE: Wire,
    WireFormat.TELNYX: Telnyx,
    WireFormat.PLIVO: Plivo,
    WireFormat.EXOTEL: Exotel,
    WireFormat.VONAGE: Vonage,
    WireFormat.JAMBONZ: Jambonz,
    WireFormat.AUDIOFORK: AudioFork,
    WireFormat.ASTERISK: Asterisk,
    WireFormat.AUDIOHOOK: AudioHook,
}


def carried_tracks(wire: WireFormat, requested: tuple[str, ...]) -> tuple[str, ...]:
    """The tracks ``wire`` streams when a ``start_stream`` asks for ``requested``."""
    return CLASSES[wire].carries(requested)


def make_wire(wire: WireFormat, ident: StreamIdentity) -> StreamWire:
    return CLASSES[wire](wire, ident)
