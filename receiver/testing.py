"""
Test doubles and message builders, shipped so users can test against us.

``RecordingSink`` keeps everything it is given. ``MiniVoiceMessages`` and
``TwilioMessages`` build the JSON text a platform would send.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from receiver.events import Track
from receiver.sinks import AudioBlock, StreamInfo, StreamOutcome

__all__ = [
    "MiniVoiceMessages",
    "RecordingSink",
    "TwilioMessages",
]


@dataclass
class RecordingSink:
    """A sink that records every call made to it (a test double)."""

    name: str = "recording"
    interval: float = 0.0
    info: StreamInfo | None = None
    blocks: list[AudioBlock] = field(default_factory=list)
    outcome: StreamOutcome | None = None
    calls: list[str] = field(default_factory=list)

    async def open(self, stream: StreamInfo) -> None:
        self.calls.append("open")
        self.info = stream

    async def write(self, block: AudioBlock) -> None:
        self.calls.append("write")
        self.blocks.append(block)

    async def close(self, outcome: StreamOutcome) -> None:
        self.calls.append("close")
        self.outcome = outcome

    def audio(self, track: Track) -> np.ndarray[Any, np.dtype[np.int16]]:
        """Everything received for ``track``, with silence where blocks were lost."""
        if not self.blocks:
            return np.zeros(0, dtype=np.int16)
        out = np.zeros(self.blocks[-1].end, dtype=np.int16)
        for block in self.blocks:
            out[block.start : block.end] = block.channels[track]
        return out


def _dumps(obj: dict[str, Any]) -> str:
    return orjson.dumps(obj).decode()


class MiniVoiceMessages:
    """Builds the messages of one MiniVoice stream (``sequence_number`` kept for you)."""

    def __init__(self, *, stream_id: str = "str_test", call_id: str = "call_test") -> None:
        self.stream_id = stream_id
        self.call_id = call_id
        self.sequence = 0

    def _next(self) -> int:
        self.sequence += 1
        return self.sequence

    def connected(self) -> str:
        return _dumps({"event": "connected", "protocol": "minivoice-stream", "version": "1.0"})

    def start(
        self,
        *,
        tracks: tuple[str, ...] = ("inbound", "outbound"),
        encoding: str = "audio/x-mulaw",
        sample_rate: int = 8000,
        custom_parameters: dict[str, str] | None = None,
        stream_url: str = "wss://media.example.com/minivoice",
    ) -> str:
        track = "both" if len(tracks) == 2 else tracks[0]
        return _dumps(
            {
                "event": "start",
                "sequence_number": self._next(),
                "stream_id": self.stream_id,
                "start": {
                    "call_id": self.call_id,
                    "customer_id": "cust_test",
                    "application_id": "app_test",
                    "direction": "inbound",
                    "from": "+15551230001",
                    "to": "+15551230002",
                    "stream_url": stream_url,
                    "track": track,
                    "tracks": list(tracks),
                    "media_format": {"encoding": encoding, "sample_rate": sample_rate, "channels": 1},
                    "custom_parameters": custom_parameters or {},
                },
            }
        )

    def media(self, track: str, chunk: int, timestamp: int, payload: bytes, *, sequence: int | None = None) -> str:
        return _dumps(
            {
                "event": "media",
                "sequence_number": self._next() if sequence is None else sequence,
                "stream_id": self.stream_id,
                "media": {
                    "track": track,
                    "chunk": chunk,
                    "timestamp": timestamp,
                    "payload": base64.b64encode(payload).decode(),
                },
            }
        )

    def dtmf(self, digit: str, timestamp: int, track: str = "inbound") -> str:
        return _dumps(
            {
                "event": "dtmf",
                "sequence_number": self._next(),
                "stream_id": self.stream_id,
                "dtmf": {"track": track, "digit": digit, "timestamp": timestamp},
            }
        )

    def stop(self, reason: str = "stop_stream") -> str:
        return _dumps(
            {
                "event": "stop",
                "sequence_number": self._next(),
                "stream_id": self.stream_id,
                "stop": {"call_id": self.call_id, "reason": reason},
            }
        )


class TwilioMessages:
    """Builds Twilio Media Streams messages (counters as strings); ``signalwire=True`` for its variant."""

    def __init__(self, *, stream_sid: str = "MZtest", call_sid: str = "CAtest", signalwire: bool = False) -> None:
        self.stream_sid = stream_sid
        self.call_sid = call_sid
        self.signalwire = signalwire
        self.sequence = 0

    def _next(self) -> str:
        self.sequence += 1
        return str(self.sequence)

    def connected(self) -> str:
        return _dumps({"event": "connected", "protocol": "Call", "version": "0.2.0" if self.signalwire else "1.0.0"})

    def start(
        self,
        *,
        tracks: tuple[str, ...] = ("inbound", "outbound"),
        encoding: str = "audio/x-mulaw",
        sample_rate: int = 8000,
        custom_parameters: dict[str, str] | None = None,
    ) -> str:
        message: dict[str, Any] = {
            "event": "start",
            "sequenceNumber": self._next(),
            "start": {
                "accountSid": "ACtest",
                "streamSid": self.stream_sid,
                "callSid": self.call_sid,
                "tracks": list(tracks),
                "customParameters": custom_parameters or {},
                "mediaFormat": {"encoding": encoding, "sampleRate": sample_rate, "channels": 1},
            },
        }
        if not self.signalwire:
            message["streamSid"] = self.stream_sid
        return _dumps(message)

    def media(self, track: str, chunk: int, timestamp: int, payload: bytes) -> str:
        message: dict[str, Any] = {
            "event": "media",
            "sequenceNumber": self._next(),
            "media": {
                "track": track,
                "chunk": str(chunk),
                "timestamp": str(timestamp),
                "payload": base64.b64encode(payload).decode(),
            },
        }
        if not self.signalwire:
            message["streamSid"] = self.stream_sid
        return _dumps(message)

    def stop(self) -> str:
        if self.signalwire:
            return _dumps({"event": "stop", "sequenceNumber": self._next()})
        return _dumps(
            {
                "event": "stop",
                "sequenceNumber": self._next(),
                "streamSid": self.stream_sid,
                "stop": {"accountSid": "ACtest", "callSid": self.call_sid},
            }
        )
