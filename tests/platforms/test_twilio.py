"""The Twilio Media Streams parser, SignalWire's variant, and format detection."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from receiver.errors import MalformedMessage, UnknownEvent, UnsupportedEncoding
from receiver.events import (
    Connected,
    DtmfReceived,
    Encoding,
    MarkReceived,
    MediaReceived,
    Platform,
    StreamStarted,
    StreamStopped,
    Track,
)
from receiver.platforms import detect, twilio
from receiver.testing import MiniVoiceMessages, TwilioMessages


def msg(text: str) -> dict[str, Any]:
    value = orjson.loads(text)
    assert isinstance(value, dict)
    return value


def test_connected_twilio_and_signalwire() -> None:
    assert twilio.parse(msg(TwilioMessages().connected())) == Connected(Platform.TWILIO, "1.0.0")
    assert twilio.parse(msg(TwilioMessages(signalwire=True).connected())) == Connected(Platform.SIGNALWIRE, "0.2.0")


def test_start_with_string_counters() -> None:
    event = twilio.parse(msg(TwilioMessages(stream_sid="MZ1", call_sid="CA1").start(custom_parameters={"token": "t"})))

    assert isinstance(event, StreamStarted)
    assert (event.stream_id, event.call_id) == ("MZ1", "CA1")
    assert event.tracks == (Track.INBOUND, Track.OUTBOUND)
    assert event.custom_parameters == {"token": "t"}
    assert event.call.account_id == "ACtest"
    assert event.sequence == 1


def test_signalwire_start_without_top_level_stream_sid_and_l16() -> None:
    m = TwilioMessages(stream_sid="7d56cc11-536d-4d2a-8b23-6b1f1b0c2f8e", signalwire=True)

    event = twilio.parse(msg(m.start(encoding="audio/x-L16", sample_rate=24000)), Platform.SIGNALWIRE)

    assert isinstance(event, StreamStarted)
    assert event.stream_id == "7d56cc11-536d-4d2a-8b23-6b1f1b0c2f8e"
    assert event.media_format.encoding is Encoding.L16
    assert event.media_format.sample_rate == 24000
    assert event.platform is Platform.SIGNALWIRE


def test_start_without_custom_parameters_or_tracks() -> None:
    message = msg(TwilioMessages().start())
    del message["start"]["customParameters"]
    del message["start"]["tracks"]

    event = twilio.parse(message)

    assert isinstance(event, StreamStarted)
    assert event.custom_parameters == {}
    assert event.tracks == (Track.INBOUND,)


def test_start_with_unsupported_rate() -> None:
    with pytest.raises(UnsupportedEncoding):
        twilio.parse(msg(TwilioMessages().start(encoding="audio/x-mulaw", sample_rate=16000)))


@pytest.mark.parametrize(
    "mutate",
    [
        lambda m: (m.pop("streamSid"), m["start"].pop("streamSid")),
        lambda m: m["start"].pop("callSid"),
        lambda m: m["start"].pop("mediaFormat"),
        lambda m: m["start"]["mediaFormat"].update(sampleRate="8k"),
        lambda m: m.update(sequenceNumber="-1"),
        lambda m: m["start"].update(tracks=["inbound_track", "both"]),
    ],
)
def test_start_with_bad_fields_is_malformed(mutate: Any) -> None:
    message = msg(TwilioMessages().start())
    mutate(message)

    with pytest.raises(MalformedMessage):
        twilio.parse(message)


def test_media_counters_are_strings() -> None:
    event = twilio.parse(msg(TwilioMessages().media("inbound", 3, 52, b"\xff")))

    assert event == MediaReceived(Track.INBOUND, 3, 52, b"\xff", 1)


def test_signalwire_media_without_stream_sid() -> None:
    message = msg(TwilioMessages(signalwire=True).media("outbound", 1, 0, b"\x00\x00"))
    assert "streamSid" not in message

    event = twilio.parse(message, Platform.SIGNALWIRE)

    assert isinstance(event, MediaReceived)
    assert event.track is Track.OUTBOUND


def test_media_accepts_integer_counters_too() -> None:
    message = msg(TwilioMessages().media("inbound", 3, 52, b"\xff"))
    message["media"]["chunk"] = 3
    message["media"]["timestamp"] = 52

    event = twilio.parse(message)

    assert isinstance(event, MediaReceived)
    assert (event.chunk, event.timestamp_ms) == (3, 52)


@pytest.mark.parametrize("timestamp", ["5.2", "", "abc", None])
def test_media_with_bad_timestamp(timestamp: Any) -> None:
    message = msg(TwilioMessages().media("inbound", 1, 0, b"\xff"))
    if timestamp is None:
        message["media"]["timestamp"] = {"x": 1}
    else:
        message["media"]["timestamp"] = timestamp

    with pytest.raises(MalformedMessage):
        twilio.parse(message)


def test_dtmf_track_uses_the_suffixed_spelling() -> None:
    message = {
        "event": "dtmf",
        "streamSid": "MZ",
        "sequenceNumber": "5",
        "dtmf": {"track": "inbound_track", "digit": "1"},
    }

    assert twilio.parse(message) == DtmfReceived("1", Track.INBOUND, None, None, 5)


def test_signalwire_dtmf_with_duration_and_no_track() -> None:
    message = {"event": "dtmf", "sequenceNumber": "123", "dtmf": {"digit": "5", "duration": 2000}}

    assert twilio.parse(message) == DtmfReceived("5", None, None, 2000, 123)


def test_mark() -> None:
    message = {"event": "mark", "sequenceNumber": "103", "streamSid": "MZ", "mark": {"name": "my label"}}

    assert twilio.parse(message) == MarkReceived("my label", 103)


def test_mark_without_name_is_malformed() -> None:
    with pytest.raises(MalformedMessage):
        twilio.parse({"event": "mark", "streamSid": "MZ"})


def test_stop_with_body_and_bodyless_signalwire_stop() -> None:
    assert twilio.parse(msg(TwilioMessages().stop())) == StreamStopped("stop", 1)
    assert twilio.parse({"event": "stop", "sequenceNumber": "999"}) == StreamStopped("stop", 999)


def test_stop_with_non_object_body_is_malformed() -> None:
    with pytest.raises(MalformedMessage):
        twilio.parse({"event": "stop", "stop": "now"})


def test_unknown_event() -> None:
    with pytest.raises(UnknownEvent):
        twilio.parse({"event": "clear", "streamSid": "MZ"})


@pytest.mark.parametrize(
    ("text", "platform"),
    [
        (MiniVoiceMessages().connected(), Platform.MINIVOICE),
        (MiniVoiceMessages().start(), Platform.MINIVOICE),
        (MiniVoiceMessages().media("inbound", 1, 0, b""), Platform.MINIVOICE),
        (TwilioMessages().connected(), Platform.TWILIO),
        (TwilioMessages(signalwire=True).connected(), Platform.SIGNALWIRE),
        (TwilioMessages().start(), Platform.TWILIO),
        (TwilioMessages(signalwire=True).start(), Platform.TWILIO),  # without `connected`, the key style tells
    ],
)
def test_detect(text: str, platform: Platform) -> None:
    assert detect(msg(text)) is platform


def test_detect_start_by_its_media_format_key() -> None:
    assert detect({"event": "start", "start": {"media_format": {}}}) is Platform.MINIVOICE
    assert detect({"event": "start", "start": {"mediaFormat": {}}}) is Platform.TWILIO


def test_detect_rejects_an_unknown_format() -> None:
    with pytest.raises(MalformedMessage):
        detect({"event": "hello", "greeting": "hi"})
