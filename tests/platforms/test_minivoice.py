"""The MiniVoice parser: each message kind good, missing field, wrong type, unknown event."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from receiver.errors import MalformedMessage, UnknownEvent, UnsupportedEncoding
from receiver.events import (
    Connected,
    DtmfReceived,
    Encoding,
    MediaReceived,
    Platform,
    StreamStarted,
    StreamStopped,
    Track,
)
from receiver.platforms import minivoice
from receiver.testing import MiniVoiceMessages


def msg(text: str) -> dict[str, Any]:
    value = orjson.loads(text)
    assert isinstance(value, dict)
    return value


def test_connected() -> None:
    event = minivoice.parse(msg(MiniVoiceMessages().connected()))

    assert event == Connected(Platform.MINIVOICE, "1.0")


def test_start_carries_ids_tracks_format_and_call() -> None:
    m = MiniVoiceMessages(stream_id="str_9a1c2e7b", call_id="call_123")

    event = minivoice.parse(msg(m.start(custom_parameters={"token": "abc"})))

    assert isinstance(event, StreamStarted)
    assert event.stream_id == "str_9a1c2e7b"
    assert event.call_id == "call_123"
    assert event.tracks == (Track.INBOUND, Track.OUTBOUND)
    assert event.media_format.encoding is Encoding.MULAW
    assert event.media_format.sample_rate == 8000
    assert event.custom_parameters == {"token": "abc"}
    assert event.call.customer_id == "cust_test"
    assert event.call.from_number == "+15551230001"
    assert event.call.requested_track == "both"
    assert event.sequence == 1


def test_start_example_from_the_protocol_page() -> None:
    example = {
        "event": "start",
        "sequence_number": 1,
        "stream_id": "str_9a1c2e7b",
        "start": {
            "call_id": "call_123",
            "customer_id": "cust_123",
            "application_id": "app_123",
            "direction": "inbound",
            "from": "+15551230001",
            "to": "+15551230002",
            "stream_url": "wss://media.example.com/minivoice",
            "track": "both",
            "tracks": ["inbound", "outbound"],
            "media_format": {"encoding": "audio/x-mulaw", "sample_rate": 8000, "channels": 1},
            "custom_parameters": {},
        },
    }

    event = minivoice.parse(example)

    assert isinstance(event, StreamStarted)
    assert event.call.stream_url == "wss://media.example.com/minivoice"


@pytest.mark.parametrize(
    ("encoding", "rate"),
    [("audio/x-mulaw", 8000), ("audio/x-alaw", 8000), ("audio/l16", 8000), ("audio/l16", 16000), ("audio/l16", 24000)],
)
def test_start_accepts_every_documented_format(encoding: str, rate: int) -> None:
    event = minivoice.parse(msg(MiniVoiceMessages().start(encoding=encoding, sample_rate=rate)))

    assert isinstance(event, StreamStarted)
    assert event.media_format.sample_rate == rate
    assert event.media_format.byteorder == "little"


@pytest.mark.parametrize(
    ("encoding", "rate"),
    [("audio/opus", 48000), ("audio/x-mulaw", 16000), ("audio/l16", 44100), ("audio/x-alaw", 24000)],
)
def test_start_with_unsupported_format_is_rejected(encoding: str, rate: int) -> None:
    with pytest.raises(UnsupportedEncoding):
        minivoice.parse(msg(MiniVoiceMessages().start(encoding=encoding, sample_rate=rate)))


def test_start_with_two_channels_is_unsupported() -> None:
    message = msg(MiniVoiceMessages().start())
    message["start"]["media_format"]["channels"] = 2

    with pytest.raises(UnsupportedEncoding):
        minivoice.parse(message)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda m: m.pop("stream_id"),
        lambda m: m["start"].pop("call_id"),
        lambda m: m["start"].pop("media_format"),
        lambda m: m["start"].update(tracks=["speaker"]),
        lambda m: m["start"].update(tracks=[]),
        lambda m: m["start"].update(custom_parameters={"a": 1}),
        lambda m: m["start"].update(**{"from": 5}),
        lambda m: m.update(sequence_number="1"),  # MiniVoice counters are integers
        lambda m: m.update(start="nope"),
    ],
)
def test_start_with_bad_fields_is_malformed(mutate: Any) -> None:
    message = msg(MiniVoiceMessages().start())
    mutate(message)

    with pytest.raises(MalformedMessage):
        minivoice.parse(message)


def test_start_without_tracks_derives_them_from_track() -> None:
    message = msg(MiniVoiceMessages().start(tracks=("outbound",)))
    del message["start"]["tracks"]

    event = minivoice.parse(message)

    assert isinstance(event, StreamStarted)
    assert event.tracks == (Track.OUTBOUND,)


def test_media() -> None:
    event = minivoice.parse(msg(MiniVoiceMessages().media("outbound", 7, 120, b"\x01\x02")))

    assert event == MediaReceived(Track.OUTBOUND, 7, 120, b"\x01\x02", 1)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda m: m.pop("media"),
        lambda m: m["media"].update(track="both"),
        lambda m: m["media"].update(timestamp="120"),
        lambda m: m["media"].update(timestamp=1.5),
        lambda m: m["media"].update(chunk=True),
        lambda m: m["media"].update(payload="***"),
        lambda m: m["media"].update(payload=123),
        lambda m: m["media"].update(payload="AQI"),  # missing padding
    ],
)
def test_media_with_bad_fields_is_malformed(mutate: Any) -> None:
    message = msg(MiniVoiceMessages().media("inbound", 1, 0, b"\x01\x02"))
    mutate(message)

    with pytest.raises(MalformedMessage):
        minivoice.parse(message)


def test_media_payload_may_be_empty() -> None:
    message = msg(MiniVoiceMessages().media("inbound", 1, 0, b""))

    event = minivoice.parse(message)

    assert isinstance(event, MediaReceived)
    assert event.payload == b""


def test_dtmf() -> None:
    event = minivoice.parse(msg(MiniVoiceMessages().dtmf("#", 1100)))

    assert event == DtmfReceived("#", Track.INBOUND, 1100, None, 1)


def test_dtmf_with_bad_digit_is_malformed() -> None:
    message = msg(MiniVoiceMessages().dtmf("5", 0))
    message["dtmf"]["digit"] = "E"

    with pytest.raises(MalformedMessage):
        minivoice.parse(message)


@pytest.mark.parametrize("reason", ["stop_stream", "call_ended", "error"])
def test_stop(reason: str) -> None:
    event = minivoice.parse(msg(MiniVoiceMessages().stop(reason)))

    assert event == StreamStopped(reason, 1)


def test_stop_with_unknown_reason_is_malformed() -> None:
    with pytest.raises(MalformedMessage):
        minivoice.parse(msg(MiniVoiceMessages().stop("bored")))


def test_unknown_event_is_reported_as_unknown() -> None:
    with pytest.raises(UnknownEvent):
        minivoice.parse({"event": "mystery", "sequence_number": 3})


def test_event_of_wrong_type_is_malformed() -> None:
    with pytest.raises(MalformedMessage):
        minivoice.parse({"event": 5})


def test_payload_is_base64_decoded() -> None:
    payload = bytes(range(160))
    text = MiniVoiceMessages().media("inbound", 1, 0, payload)

    event = minivoice.parse(msg(text))

    assert isinstance(event, MediaReceived)
    assert base64.b64encode(event.payload) == base64.b64encode(payload)
