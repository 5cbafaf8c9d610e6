"""
What a media stream says, as data.

Every platform parser (``receiver.platforms``) turns its own messages into
these events, so nothing downstream of the parsers knows which platform is
talking. Pure: no logic beyond small derived properties, no I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal, TypeAlias

import msgspec
import numpy as np
import numpy.typing as npt

__all__ = [
    "CallMetadata",
    "Connected",
    "DtmfReceived",
    "Encoding",
    "Event",
    "InterleavedMediaReceived",
    "MarkReceived",
    "MediaFormat",
    "MediaReceived",
    "Platform",
    "StreamStarted",
    "StreamStopped",
    "Track",
]


Samples: TypeAlias = npt.NDArray[np.int16]
"""Decoded audio: one track's samples, signed 16-bit."""

FRAME_MS: Final = 20
"""The frame every platform we speak sends, in milliseconds."""


class Track(enum.StrEnum):
    """One direction of a call's audio; each track is its own mono signal."""

    INBOUND = "inbound"  # the caller
    OUTBOUND = "outbound"  # what the platform plays or bridges to the caller


class Encoding(enum.StrEnum):
    """Audio encodings the receiver decodes."""

    MULAW = "audio/x-mulaw"
    ALAW = "audio/x-alaw"
    L16 = "audio/l16"


class Platform(enum.StrEnum):
    """Wire formats the parsers understand (for logs and labels only)."""

    MINIVOICE = "minivoice"
    TWILIO = "twilio"
    SIGNALWIRE = "signalwire"
    TELNYX = "telnyx"
    PLIVO = "plivo"
    VONAGE = "vonage"
    EXOTEL = "exotel"
    JAMBONZ = "jambonz"
    AUDIOFORK = "audiofork"  # FreeSWITCH mod_audio_fork / mod_audio_stream
    ASTERISK = "asterisk"  # chan_websocket
    AUDIOHOOK = "audiohook"  # Genesys Cloud AudioHook


@dataclass(frozen=True, slots=True)
class MediaFormat:
    """How a stream's payload bytes map to samples."""

    encoding: Encoding
    sample_rate: int
    byteorder: Literal["little", "big"] = "little"

    @property
    def bytes_per_sample(self) -> int:
        return 2 if self.encoding is Encoding.L16 else 1

    @property
    def samples_per_ms(self) -> int:
        return self.sample_rate // 1000


@dataclass(frozen=True, slots=True)
class Connected:
    """The platform opened the stream (``connected``)."""

    platform: Platform
    version: str


@dataclass(frozen=True, slots=True)
class CallMetadata:
    """What the start message says about the call, where the platform says it."""

    customer_id: str | None = None
    application_id: str | None = None
    account_id: str | None = None
    direction: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    stream_url: str | None = None
    requested_track: str | None = None


@dataclass(frozen=True, slots=True)
class StreamStarted:
    """The stream's metadata (``start``): ids, tracks and media format."""

    platform: Platform
    stream_id: str
    call_id: str
    tracks: tuple[Track, ...]
    media_format: MediaFormat
    custom_parameters: Mapping[str, str] = field(default_factory=dict)
    call: CallMetadata = field(default_factory=CallMetadata)
    sequence: int | None = None
    # How the parser read the facts its platform leaves unconfirmed (fact -> reading), for the log.
    readings: Mapping[str, str] = field(default_factory=dict)
    # L16 whose byte order the platform does not confirm: the pipeline tells it from the audio.
    byteorder_unknown: bool = False
    # Formats whose audio comes in binary frames: the track of each interleaved channel.
    # Empty: a binary frame is not part of the format.
    binary_channels: tuple[Track, ...] = ()


class MediaReceived(msgspec.Struct, gc=False):
    """One frame of one track, still encoded (``media``).

    ``timestamp_ms`` is milliseconds from the start of the stream on the clock
    both tracks share; ``chunk`` counts the track's frames from 1. A format
    may give either; the media clock prefers the timestamp. Treat it as
    read-only, like every event.
    """

    # A msgspec Struct, not a dataclass: one is built per frame, and a Struct's __init__ is C
    # (a dataclass's runs as a Python frame: about 1,800 instructions more per frame). Not
    # frozen (a format's epoch timestamps are rebased in place); gc=False: it holds nothing
    # that could make a reference cycle.

    track: Track
    chunk: int | None
    timestamp_ms: int | None
    payload: bytes
    sequence: int | None = None


@dataclass(slots=True)  # not frozen, like MediaReceived: one per frame
class InterleavedMediaReceived:
    """One frame carrying every track at once: sample ``i`` of track ``tracks[j]``
    is sample ``i * len(tracks) + j`` (stereo binary frames: jambonz, audio_fork,
    AudioHook). No timestamp: such frames follow each other on the stream clock.
    """

    tracks: tuple[Track, ...]
    payload: bytes


@dataclass(frozen=True, slots=True)
class DtmfReceived:
    """A key press (``dtmf``)."""

    digit: str
    track: Track | None = None
    timestamp_ms: int | None = None
    duration_ms: int | None = None
    sequence: int | None = None


@dataclass(frozen=True, slots=True)
class MarkReceived:
    """The echo of a mark the receiver sent (``mark``, bidirectional streams)."""

    name: str
    sequence: int | None = None


@dataclass(frozen=True, slots=True)
class StreamStopped:
    """The platform ended the stream (``stop``)."""

    reason: str
    sequence: int | None = None


Event: TypeAlias = (
    Connected | StreamStarted | MediaReceived | InterleavedMediaReceived | DtmfReceived | MarkReceived | StreamStopped
)
