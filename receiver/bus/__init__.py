"""
The audio bus: every stream's audio and lifecycle on Redis Streams, for workers on other hosts.

Keys (``prefix`` is the ``bus_prefix`` setting, ``receiver`` by default)::

    {prefix}:streams            one entry per stream started: the work queue. The
                                consumer group ``workers`` hands each entry to one
                                worker; the entry stays pending (owned) until that
                                worker is done with the stream.
    {prefix}:audio:{connection}:{stream_id}
                                the stream's audio, then its end: one ``audio`` entry
                                per block (``bus_block_ms``, every track), one ``end``
                                entry with the outcome. Trimmed to ``bus_max_seconds``
                                of audio (MAXLEN ~); deleted when a worker finishes the
                                stream, else expires ``bus_retention_seconds`` after
                                its last entry. ``{connection}`` is the stream's
                                ``connection_id``: two streams with the same ids (a
                                reconnect, or anyone reusing them) never share a key.
    {prefix}:events             lifecycle for anyone watching: ``started`` and ``ended``
                                (with the outcome), trimmed by age (MINID ~).

Entry fields (Redis field names and values are bytes; numbers are ASCII):

=========  ===========================================================
``t``      ``started``, ``audio``, ``end`` or ``ended``
``stream_id``, ``call_id``  on the work queue and lifecycle entries
``info``   the stream (JSON: ids, platform, tracks, encoding, rate, call)
``start``  an audio block's first sample on the stream's media clock
``rate``   its sample rate; ``fmt`` is always ``s16le`` (decoded PCM)
``inbound``, ``outbound``  each track's samples for the block, same length
``outcome`` the stream's ``StreamOutcome`` (JSON)
=========  ===========================================================

This module is the pure half: keys, and entries to and from the values
sinks speak (``StreamInfo``, ``AudioBlock``, ``StreamOutcome``). The
publisher (``publisher.py``) and the worker (``worker.py``) do the I/O.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final

import numpy as np
import orjson

from receiver.errors import ReceiverError
from receiver.events import CallMetadata, Encoding, MediaFormat, Platform, Track
from receiver.sinks import AudioBlock, StreamInfo, StreamOutcome

GROUP: Final = "workers"
SAMPLE_FORMAT: Final = b"s16le"
_LITTLE: Final = sys.byteorder == "little"

Fields = Mapping[bytes, bytes]


class BadEntry(ReceiverError, ValueError):
    """A bus entry this version cannot read (another writer, or a newer format)."""


@dataclass(frozen=True, slots=True)
class BusKeys:
    """The Redis keys of one deployment's bus."""

    prefix: str = "receiver"

    @property
    def streams(self) -> str:
        return f"{self.prefix}:streams"

    @property
    def events(self) -> str:
        return f"{self.prefix}:events"

    def audio(self, info: StreamInfo) -> str:
        # The connection id first: fixed-length hex, so no stream id can forge another's key.
        return f"{self.prefix}:audio:{info.connection_id}:{info.stream_id}"


# -- stream info ----------------------------------------------------------------------


def info_json(info: StreamInfo) -> bytes:
    fmt = info.media_format
    return orjson.dumps(
        {
            "stream_id": info.stream_id,
            "call_id": info.call_id,
            "platform": info.platform.value,
            "tracks": [t.value for t in info.tracks],
            "encoding": fmt.encoding.value,
            "sample_rate": fmt.sample_rate,
            "byteorder": fmt.byteorder,
            "custom_parameters": dict(info.custom_parameters),
            "call": asdict(info.call),
            "started_at": info.started_at,
            "connection_id": info.connection_id,
        }
    )


def started_entry(info: StreamInfo) -> dict[bytes, bytes]:
    return {
        b"t": b"started",
        b"stream_id": info.stream_id.encode(),
        b"call_id": info.call_id.encode(),
        b"info": info_json(info),
    }


def decode_info(fields: Fields) -> StreamInfo:
    """The ``StreamInfo`` of a work-queue or ``started`` entry.

    Raises:
        BadEntry: It is not one.
    """
    try:
        data = orjson.loads(fields[b"info"])
        return StreamInfo(
            stream_id=str(data["stream_id"]),
            call_id=str(data["call_id"]),
            platform=Platform(data["platform"]),
            tracks=tuple(Track(t) for t in data["tracks"]),
            media_format=MediaFormat(Encoding(data["encoding"]), int(data["sample_rate"]), data["byteorder"]),
            custom_parameters={str(k): str(v) for k, v in data["custom_parameters"].items()},
            call=CallMetadata(**data["call"]),
            started_at=float(data["started_at"]),
            connection_id=str(data["connection_id"]),
        )
    except (KeyError, TypeError, ValueError, orjson.JSONDecodeError) as exc:
        raise BadEntry(f"not a stream entry: {exc!r}") from None


# -- audio ------------------------------------------------------------------------------


def audio_entry(block: AudioBlock) -> dict[bytes, bytes]:
    entry = {b"t": b"audio", b"start": b"%d" % block.start, b"rate": b"%d" % block.sample_rate, b"fmt": SAMPLE_FORMAT}
    for track, samples in block.channels.items():
        entry[track.value.encode()] = (samples if _LITTLE else samples.astype("<i2")).tobytes()
    return entry


def decode_audio(fields: Fields, tracks: tuple[Track, ...]) -> AudioBlock:
    """The block of an ``audio`` entry (read-only arrays).

    Raises:
        BadEntry: Not an audio entry of these tracks, or tracks of unequal length.
    """
    try:
        if fields[b"fmt"] != SAMPLE_FORMAT:
            raise BadEntry(f"unknown sample format {fields[b'fmt']!r}")
        channels = {}
        for track in tracks:
            samples = np.frombuffer(fields[track.value.encode()], dtype="<i2")
            if not _LITTLE:
                samples = samples.astype(np.int16)
                samples.flags.writeable = False
            channels[track] = samples
        block = AudioBlock(int(fields[b"start"]), int(fields[b"rate"]), channels)
    except (KeyError, ValueError) as exc:
        raise BadEntry(f"not an audio entry: {exc!r}") from None
    if len({len(s) for s in channels.values()}) > 1:
        raise BadEntry("tracks of unequal length")
    return block


# -- the end ----------------------------------------------------------------------------


def end_entry(outcome: StreamOutcome, *, kind: bytes = b"end", info: StreamInfo | None = None) -> dict[bytes, bytes]:
    entry = {b"t": kind, b"outcome": orjson.dumps(outcome.as_dict())}
    if info is not None:
        entry[b"stream_id"] = info.stream_id.encode()
        entry[b"call_id"] = info.call_id.encode()
    return entry


def decode_outcome(fields: Fields) -> StreamOutcome:
    """The outcome of an ``end`` entry.

    Raises:
        BadEntry: It has none, or not one this version reads.
    """
    try:
        data: dict[str, Any] = orjson.loads(fields[b"outcome"])
        data["disabled_sinks"] = tuple(data.get("disabled_sinks", ()))
        data["files"] = tuple(data.get("files", ()))
        data["pauses"] = tuple(data.get("pauses", ()))
        return StreamOutcome(**data)
    except (KeyError, TypeError, orjson.JSONDecodeError) as exc:
        raise BadEntry(f"not an end entry: {exc!r}") from None


def kind(fields: Fields) -> bytes:
    return fields.get(b"t", b"")
