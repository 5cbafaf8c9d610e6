"""Format detection, routes and subprotocols, and what a stream that fits no format gets."""

from __future__ import annotations

from pathlib import Path

import pytest

from receiver.config import Settings
from receiver.errors import ConfigError, FormatMismatch, MalformedMessage, UnexpectedEvent
from receiver.events import Platform, StreamStarted, Track
from receiver.platforms import EXPECTED_FIRST, EXPECTED_TEXT, detect
from receiver.routes import Mix, Route, parse_routes, route_for
from receiver.session import StreamSession
from receiver.testing import MiniVoiceMessages, TwilioMessages
from tests.platforms import published


@pytest.mark.parametrize(
    ("message", "platform"),
    [
        ({"event": "connected", "version": "1.0.0"}, Platform.TELNYX),
        ({"event": "connected", "protocol": "Call", "version": "1.0.0"}, Platform.TWILIO),
        ({"event": "connected"}, Platform.EXOTEL),
        ({"event": "start", "stream_id": "S", "start": {"call_control_id": "v3:x"}}, Platform.TELNYX),
        ({"event": "start", "stream_id": "S", "start": {"call_id": "c", "media_format": {}}}, Platform.MINIVOICE),
        ({"event": "start", "stream_sid": "S", "start": {}}, Platform.EXOTEL),
        ({"event": "start", "sequenceNumber": 1, "start": {"streamId": "S", "callId": "C"}}, Platform.PLIVO),
        ({"event": "start", "sequenceNumber": "1", "start": {"streamSid": "S", "callSid": "C"}}, Platform.TWILIO),
        ({"event": "websocket:connected", "content-type": "audio/l16;rate=8000"}, Platform.VONAGE),
        ({"version": "2", "type": "open", "id": "I", "seq": 1}, Platform.AUDIOHOOK),
        ({"event": "MEDIA_START", "connection_id": "X"}, Platform.ASTERISK),
        ({"callSid": "C", "sampleRate": 8000, "mixType": "mono"}, Platform.JAMBONZ),
    ],
)
def test_detect_tells_each_first_message(message: dict[str, object], platform: Platform) -> None:
    assert detect(message) is platform


def test_plain_asterisk_media_start_is_told_before_json() -> None:
    session = StreamSession()

    event = session.receive_text("MEDIA_START connection_id:X channel:c format:ulaw optimal_frame_size:160")

    assert isinstance(event, StreamStarted) and event.platform is Platform.ASTERISK


@pytest.mark.parametrize("text", ['{"event": "hello"}', '{"greeting": "hi"}', '{"type": "open"}'])
def test_a_first_message_that_fits_no_format_names_what_was_expected(text: str) -> None:
    with pytest.raises(FormatMismatch) as info:
        StreamSession().receive_text(text)

    error = info.value
    assert (error.close_code, error.kind) == (4400, "format_mismatch")
    assert error.close_reason == "expected " + EXPECTED_FIRST
    assert len(error.close_reason.encode()) <= 123


def test_a_binary_first_frame_without_a_route_is_a_format_mismatch() -> None:
    with pytest.raises(FormatMismatch) as info:
        StreamSession().receive_binary(b"\x00\x01" * 160)

    assert info.value.close_reason == "expected " + EXPECTED_TEXT
    assert len(info.value.close_reason.encode()) <= 123


def test_binary_frames_stay_an_error_for_the_text_formats() -> None:
    session = StreamSession()
    for text in (TwilioMessages().connected(), TwilioMessages().start()):
        session.receive_text(text)

    with pytest.raises(MalformedMessage, match="binary frames are not part of the twilio protocol") as info:
        session.receive_binary(b"\xff" * 160)

    assert info.value.close_code == 4400
    assert not isinstance(info.value, FormatMismatch)


def test_audio_before_the_start_is_unexpected_on_a_binary_format() -> None:
    session = StreamSession(route=Route("/v", Platform.VONAGE))

    with pytest.raises(UnexpectedEvent):
        session.receive_binary(b"\x00\x00" * 160)


@pytest.mark.parametrize(
    ("route", "text"),
    [
        (Route("/j", Platform.JAMBONZ), TwilioMessages().connected()),
        (Route("/t", Platform.TWILIO), published.jambonz().messages[0]),
        (Route("/a", Platform.ASTERISK), MiniVoiceMessages().connected()),
        (Route("/h", Platform.AUDIOHOOK), '{"event": "websocket:connected", "content-type": "audio/l16;rate=8000"}'),
    ],
)
def test_a_route_refuses_a_stream_of_another_format(route: Route, text: str) -> None:
    with pytest.raises(FormatMismatch) as info:
        StreamSession(route=route).receive_text(text)

    assert info.value.close_reason == f"expected a {route.format.value} stream (route {route.path})"


def test_a_route_accepts_its_format_and_says_so_in_the_readings() -> None:
    sample = published.vonage()
    session = StreamSession(route=Route("/vonage", Platform.VONAGE))

    event = session.receive_text(sample.messages[0])  # type: ignore[arg-type]

    assert isinstance(event, StreamStarted)
    assert event.readings["format"] == "route /vonage"


def test_the_subprotocol_names_the_format() -> None:
    session = StreamSession(subprotocol="audio.drachtio.org")

    event = session.receive_binary(b"\x01\x00" * 160)

    assert isinstance(event, StreamStarted) and event.platform is Platform.AUDIOFORK
    assert event.readings["format"] == "subprotocol audio.drachtio.org"
    assert [type(e).__name__ for e in session.take_backlog()] == ["MediaReceived"]
    assert session.stats.messages == 1


def test_route_for_prefers_an_exact_path_then_the_longest_prefix() -> None:
    routes = parse_routes(
        [
            {"path": "/fork/*", "format": "audiofork"},
            {"path": "/fork/special/*", "format": "audiofork", "mix": "stereo"},
            {"path": "/fork/exact", "format": "jambonz"},
        ]
    )

    assert route_for(routes, "/fork/exact?x=1") is routes[2]
    assert route_for(routes, "/fork/special/a") is routes[1]
    assert route_for(routes, "/fork/b") is routes[0]
    assert route_for(routes, "/other") is None
    assert route_for((), "/fork/b") is None


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        ({"path": "/x"}, "must be a list of tables"),
        (["x"], "routes[0] must be a table"),
        ([{"path": "x", "format": "twilio"}], "path must be a path starting with /"),
        ([{"path": "/x", "format": "skype"}], "format must be one of"),
        ([{"path": "/x", "format": "audiofork", "sample_rate": 11025}], "sample_rate must be one of"),
        ([{"path": "/x", "format": "audiofork", "mix": "quad"}], "mix must be mono, mixed or stereo"),
        ([{"path": "/x", "format": "twilio", "mix": "mono"}], "apply to format audiofork only"),
        ([{"path": "/x", "format": "jambonz", "stereo_channels": ["inbound"]}], "stereo_channels"),
        ([{"path": "/x", "format": "jambonz", "colour": "red"}], "unknown key colour"),
        ([{"path": "/x", "format": "twilio"}, {"path": "/x", "format": "telnyx"}], "two routes for path /x"),
    ],
)
def test_bad_routes_are_config_errors(tables: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        parse_routes(tables)  # type: ignore[arg-type]


def test_routes_load_from_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[[routes]]\npath = "/fork"\nformat = "audiofork"\nsample_rate = 16000\nmix = "stereo"\n'
        'stereo_channels = ["outbound", "inbound"]\n\n[[routes]]\npath = "/jambonz"\nformat = "jambonz"\n'
    )

    settings = Settings.load(config, env={})

    assert settings.routes == (
        Route("/fork", Platform.AUDIOFORK, 16000, Mix.STEREO, (Track.OUTBOUND, Track.INBOUND)),
        Route("/jambonz", Platform.JAMBONZ),
    )
