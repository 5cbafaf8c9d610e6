"""The new platforms' parsers: each message kind good, missing or mistyped fields, unknown events."""

from __future__ import annotations

from typing import Any

import pytest

from receiver.errors import FormatMismatch, MalformedMessage, UnknownEvent, UnsupportedEncoding
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
from receiver.platforms import asterisk, audiofork, audiohook, exotel, jambonz, plivo, telnyx, vonage
from receiver.routes import Mix, Route

TELNYX_START: dict[str, Any] = {
    "event": "start",
    "sequence_number": "1",
    "start": {"call_control_id": "v3:x", "media_format": {"encoding": "PCMA", "sample_rate": 8000, "channels": 1}},
    "stream_id": "S",
}


def test_telnyx_start_reads_the_bare_codec_name_and_declares_both_tracks_when_none_are_named() -> None:
    event = telnyx.parse(TELNYX_START)

    assert isinstance(event, StreamStarted)
    assert (event.stream_id, event.call_id, event.sequence) == ("S", "v3:x", 1)
    assert event.media_format.encoding is Encoding.ALAW
    assert event.tracks == (Track.INBOUND, Track.OUTBOUND)
    assert event.readings["tracks"] == "not named: both declared"
    assert not event.byteorder_unknown


@pytest.mark.parametrize(
    ("where", "value", "tracks"),
    [
        ("tracks", ["inbound"], (Track.INBOUND,)),
        ("stream_track", "outbound_track", (Track.OUTBOUND,)),
        ("stream_track", "both_tracks", (Track.INBOUND, Track.OUTBOUND)),
    ],
)
def test_telnyx_start_takes_tracks_where_named(where: str, value: object, tracks: tuple[Track, ...]) -> None:
    message = {**TELNYX_START, "start": {**TELNYX_START["start"], where: value}}

    event = telnyx.parse(message)

    assert isinstance(event, StreamStarted) and event.tracks == tracks


@pytest.mark.parametrize("key", ["custom_parameters", "customParameters"])
def test_telnyx_custom_parameters_are_read_under_either_name_and_the_reading_kept(key: str) -> None:
    message = {**TELNYX_START, "start": {**TELNYX_START["start"], key: {"token": "t"}}}

    event = telnyx.parse(message)

    assert isinstance(event, StreamStarted)
    assert event.custom_parameters == {"token": "t"}
    assert event.readings["custom_parameters"] == key


@pytest.mark.parametrize("track", ["inbound", "inbound_track"])
def test_telnyx_media_takes_both_track_spellings(track: str) -> None:
    message = {
        "event": "media",
        "sequence_number": "4",
        "media": {"track": track, "chunk": "2", "timestamp": "5", "payload": "/w=="},
    }

    assert telnyx.parse(message) == MediaReceived(Track.INBOUND, 2, 5, b"\xff", 4)


def test_telnyx_l16_byte_order_is_left_to_the_audio() -> None:
    message = {
        **TELNYX_START,
        "start": {**TELNYX_START["start"], "media_format": {"encoding": "L16", "sample_rate": 16000}},
    }

    event = telnyx.parse(message)

    assert isinstance(event, StreamStarted) and event.byteorder_unknown


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"event": "connected", "version": "1.0.0"}, Connected(Platform.TELNYX, "1.0.0")),
        ({"event": "dtmf", "sequence_number": "5", "dtmf": {"digit": "1"}}, DtmfReceived("1", sequence=5)),
        ({"event": "mark", "sequence_number": "5", "mark": {"name": "m"}}, MarkReceived("m", 5)),
        ({"event": "error", "payload": {"code": 100003, "title": "malformed_frame"}}, None),
        ({"event": "stop", "sequence_number": "9", "stop": {"call_control_id": "v3:x"}}, StreamStopped("stop", 9)),
    ],
)
def test_telnyx_other_events(message: dict[str, Any], expected: object) -> None:
    assert telnyx.parse(message) == expected


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({**TELNYX_START, "stream_id": None}, MalformedMessage),
        ({**TELNYX_START, "start": {**TELNYX_START["start"], "call_control_id": 7}}, MalformedMessage),
        (
            {
                **TELNYX_START,
                "start": {**TELNYX_START["start"], "media_format": {"encoding": "OPUS", "sample_rate": 48000}},
            },
            UnsupportedEncoding,
        ),
        (
            {
                **TELNYX_START,
                "start": {**TELNYX_START["start"], "media_format": {"encoding": "PCMU", "sample_rate": 16000}},
            },
            UnsupportedEncoding,
        ),
        ({"event": "media", "media": {"track": "both", "payload": ""}}, MalformedMessage),
        ({"event": "media", "media": {"track": "inbound", "payload": "!!"}}, MalformedMessage),
        ({"event": "dtmf", "dtmf": {"digit": "x"}}, MalformedMessage),
        ({"event": "error", "payload": "boom"}, MalformedMessage),
        ({"event": "stop", "stop": "now"}, MalformedMessage),
        ({"event": "clear"}, UnknownEvent),
        ({"event": 3}, MalformedMessage),
    ],
)
def test_telnyx_rejects(message: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        telnyx.parse(message)


# -- Plivo -------------------------------------------------------------------------

PLIVO_START: dict[str, Any] = {
    "event": "start",
    "sequenceNumber": 1,
    "start": {
        "callId": "C",
        "streamId": "S",
        "accountId": "MA1",
        "tracks": ["inbound", "outbound"],
        "mediaFormat": {"encoding": "audio/x-l16", "sampleRate": 16000},
    },
    "extra_headers": "a=1,b=2",
}


def test_plivo_start_reads_extra_headers_with_either_separator() -> None:
    event = plivo.parse(PLIVO_START)

    assert isinstance(event, StreamStarted)
    assert event.custom_parameters == {"a": "1", "b": "2"}
    assert event.readings["extra_headers"] == "separated by ','"
    assert event.tracks == (Track.INBOUND, Track.OUTBOUND)
    assert event.call.account_id == "MA1"
    assert event.byteorder_unknown


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            {
                "event": "media",
                "sequenceNumber": 3,
                "media": {"track": "outbound", "timestamp": "1705312200000", "chunk": 2, "payload": ""},
            },
            MediaReceived(Track.OUTBOUND, 2, 1705312200000, b"", 3),
        ),
        (
            {"event": "media", "sequenceNumber": "3", "media": {"timestamp": 40, "chunk": "2", "payload": ""}},
            MediaReceived(Track.INBOUND, 2, 40, b"", 3),
        ),
        (
            {"event": "dtmf", "sequenceNumber": 5, "dtmf": {"track": "inbound", "digit": "#", "timestamp": "7"}},
            DtmfReceived("#", Track.INBOUND, 7, sequence=5),
        ),
        ({"event": "playedStream", "sequenceNumber": 6, "name": "cp"}, MarkReceived("cp", 6)),
        ({"event": "clearedAudio", "sequenceNumber": 7}, None),
        ({"event": "stop", "sequenceNumber": 8}, StreamStopped("stop", 8)),
        ({"event": "stop", "stop": {"reason": "hangup"}}, StreamStopped("hangup")),
    ],
)
def test_plivo_events(message: dict[str, Any], expected: object) -> None:
    assert plivo.parse(message) == expected


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({**PLIVO_START, "extra_headers": "novalue"}, MalformedMessage),
        ({**PLIVO_START, "extra_headers": 5}, MalformedMessage),
        ({**PLIVO_START, "start": {**PLIVO_START["start"], "streamId": ""}}, MalformedMessage),
        (
            {
                **PLIVO_START,
                "start": {**PLIVO_START["start"], "mediaFormat": {"encoding": "audio/x-alaw", "sampleRate": 8000}},
            },
            UnsupportedEncoding,
        ),
        ({"event": "media", "media": {"chunk": 1.5, "payload": ""}}, MalformedMessage),
        ({"event": "playedStream"}, MalformedMessage),
        ({"event": "sendDTMF"}, UnknownEvent),
    ],
)
def test_plivo_rejects(message: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        plivo.parse(message)


# -- Exotel ------------------------------------------------------------------------

EXOTEL_START: dict[str, Any] = {
    "event": "start",
    "sequence_number": "1",
    "stream_sid": "S",
    "start": {
        "stream_sid": "S",
        "call_sid": "C",
        "media_format": {"encoding": "audio/x-raw", "sample_rate": "16000", "bit_rate": "16"},
    },
}


def test_exotel_start_with_string_rates() -> None:
    event = exotel.parse(EXOTEL_START)

    assert isinstance(event, StreamStarted)
    assert (event.media_format.encoding, event.media_format.sample_rate) == (Encoding.L16, 16000)
    assert event.tracks == (Track.INBOUND,)


def test_exotel_beta_media_format_names_the_rate_in_the_encoding() -> None:
    start = {
        **EXOTEL_START["start"],
        "media_format": {"encoding": "audio/x-mulaw;rate=8000"},
        "tracks": ["inbound", "outbound"],
    }

    event = exotel.parse({**EXOTEL_START, "start": start})

    assert isinstance(event, StreamStarted)
    assert (event.media_format.encoding, event.media_format.sample_rate) == (Encoding.MULAW, 8000)
    assert event.tracks == (Track.INBOUND, Track.OUTBOUND)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"event": "connected"}, Connected(Platform.EXOTEL, "")),
        (
            {"event": "media", "sequence_number": "3", "media": {"chunk": "2", "timestamp": "200", "payload": ""}},
            MediaReceived(Track.INBOUND, 2, 200, b"", 3),
        ),
        (
            {"event": "dtmf", "sequence_number": "7", "dtmf": {"digit": "5", "duration": "100"}},
            DtmfReceived("5", duration_ms=100, sequence=7),
        ),
        ({"event": "mark", "mark": {"name": "n"}}, MarkReceived("n")),
        ({"event": "stop", "stop": {"reason": "callended"}}, StreamStopped("callended")),
    ],
)
def test_exotel_events(message: dict[str, Any], expected: object) -> None:
    assert exotel.parse(message) == expected


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (
            {**EXOTEL_START, "stream_sid": None, "start": {**EXOTEL_START["start"], "stream_sid": None}},
            MalformedMessage,
        ),
        (
            {
                **EXOTEL_START,
                "start": {
                    **EXOTEL_START["start"],
                    "media_format": {"encoding": "audio/x-raw", "sample_rate": "8000", "bit_rate": "8"},
                },
            },
            MalformedMessage,
        ),
        (
            {
                **EXOTEL_START,
                "start": {**EXOTEL_START["start"], "media_format": {"encoding": "audio/x-raw", "sample_rate": "11025"}},
            },
            UnsupportedEncoding,
        ),
        ({"event": "stop", "stop": []}, MalformedMessage),
        ({"event": "clear"}, UnknownEvent),
    ],
)
def test_exotel_rejects(message: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        exotel.parse(message)


# -- Vonage ------------------------------------------------------------------------


def test_vonage_connected_is_the_start_with_string_headers_as_parameters() -> None:
    message = {
        "event": "websocket:connected",
        "content-type": "audio/l16;rate=24000",
        "language": "en-GB",
        "n": 1,
        "call_uuid": "U",
    }

    event = vonage.parse(message)

    assert isinstance(event, StreamStarted)
    assert event.platform is Platform.VONAGE
    assert (event.stream_id, event.call_id) == ("", "U")
    assert event.custom_parameters == {"language": "en-GB", "call_uuid": "U"}
    assert (event.media_format.encoding, event.media_format.sample_rate) == (Encoding.L16, 24000)
    assert event.binary_channels == (Track.INBOUND,)


@pytest.mark.parametrize(
    "message",
    [
        {"event": "websocket:dtmf", "digit": "5", "duration": 260},
        {"event": "websocket:dtmf", "dtmf": {"digit": "5", "duration": 260}},
    ],
)
def test_vonage_dtmf_under_either_spelling(message: dict[str, Any]) -> None:
    assert vonage.parse(message) == DtmfReceived("5", duration_ms=260)


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"event": "websocket:connected", "content-type": "audio/l16;rate=44100"}, UnsupportedEncoding),
        ({"event": "websocket:connected", "content-type": "audio/pcmu;rate=8000"}, UnsupportedEncoding),
        ({"event": "websocket:connected"}, MalformedMessage),
        ({"event": "websocket:dtmf", "digit": 5}, MalformedMessage),
        ({"event": "websocket:other"}, UnknownEvent),
    ],
)
def test_vonage_rejects(message: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        vonage.parse(message)


def test_vonage_cleared_and_notify_carry_nothing() -> None:
    assert vonage.parse({"event": "websocket:cleared"}) is None
    assert vonage.parse({"event": "websocket:notify", "payload": {}}) is None


# -- jambonz and audio_fork --------------------------------------------------------


def test_jambonz_stereo_metadata_follows_the_routes_channel_order() -> None:
    route = Route("/j", Platform.JAMBONZ, stereo_channels=(Track.OUTBOUND, Track.INBOUND))

    event = jambonz.parse({"callSid": "C", "sampleRate": 16000, "mixType": "stereo", "metadata": {"k": "v"}}, route)

    assert isinstance(event, StreamStarted)
    assert event.binary_channels == (Track.OUTBOUND, Track.INBOUND)
    assert event.tracks == (Track.INBOUND, Track.OUTBOUND)
    assert event.readings["stereo_channels"] == "outbound,inbound (route)"
    assert event.custom_parameters == {"k": "v"}


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"event": "dtmf", "dtmf": "2", "duration": "1600"}, DtmfReceived("2")),
        ({"type": "mark", "data": {"name": "m", "event": "playout"}}, MarkReceived("m")),
    ],
)
def test_jambonz_events(message: dict[str, Any], expected: object) -> None:
    assert jambonz.parse(message) == expected


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"callSid": "C"}, FormatMismatch),
        ({"sampleRate": 11025}, UnsupportedEncoding),
        ({"sampleRate": 8000, "mixType": "quad"}, MalformedMessage),
        ({"type": "playDone"}, UnknownEvent),
        ({"event": 4}, MalformedMessage),
    ],
)
def test_jambonz_rejects(message: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        jambonz.parse(message)


def test_audiofork_start_comes_from_the_route_and_text_metadata_is_kept() -> None:
    route = Route("/f", Platform.AUDIOFORK, 16000, Mix.MIXED)

    event = audiofork.parse_text("caller=alice", route, first=True)

    assert isinstance(event, StreamStarted)
    assert event.media_format.sample_rate == 16000
    assert event.binary_channels == (Track.INBOUND,)
    assert event.custom_parameters == {"metadata": "caller=alice"}
    assert event.readings["metadata"] == "text"


def test_audiofork_defaults_without_a_route_and_later_text_is_unknown() -> None:
    event = audiofork.started(None)

    assert (event.media_format.sample_rate, event.tracks) == (8000, (Track.INBOUND,))
    with pytest.raises(UnknownEvent):
        audiofork.parse_text("{}", None)


# -- Asterisk ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "codec"),
    [
        ("MEDIA_START connection_id:X channel:WebSocket/c-1 format:slin16 optimal_frame_size:640", "slin16"),
        ("MEDIA_START connection_id:X channel:WebSocket/c-1 optimal_frame_size:320", "slin (from optimal_frame_size)"),
        ('{"event":"MEDIA_START","connection_id":"X","channel":"c","format":"alaw","optimal_frame_size":160}', None),
    ],
)
def test_asterisk_media_start(text: str, codec: str | None) -> None:
    event = asterisk.parse_text(text, True)

    assert isinstance(event, StreamStarted)
    assert event.stream_id == "X"
    if codec and "from" in codec:
        assert event.readings["format"] == codec


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("DTMF_END digit:1", FormatMismatch),
        ("MEDIA_START channel:c format:ulaw", MalformedMessage),
        ("MEDIA_START connection_id:X format:opus", UnsupportedEncoding),
        ("MEDIA_START connection_id:X optimal_frame_size:999", MalformedMessage),
        ('{"event": "MEDIA_START", "connection_id": "X", "format": 3}', MalformedMessage),
        ("{not json", MalformedMessage),
        ("[1]", MalformedMessage),
    ],
)
def test_asterisk_rejects_a_first_message(text: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        asterisk.parse_text(text, True)


def test_asterisk_later_notifications() -> None:
    assert asterisk.parse_text("DTMF_END digit:#") == DtmfReceived("#")
    assert asterisk.parse_text('{"event":"DTMF_END","digit":"9"}') == DtmfReceived("9")
    assert asterisk.parse_text("MEDIA_XON") is None
    assert asterisk.parse_text("STATUS queue_length:43 xon_level:800") is None
    with pytest.raises(UnknownEvent):
        asterisk.parse_text("SOMETHING_NEW a:b")


# -- AudioHook ---------------------------------------------------------------------


def _hook(kind: str, seq: int = 1, **parameters: Any) -> dict[str, Any]:
    return {
        "version": "2",
        "id": "I",
        "type": kind,
        "seq": seq,
        "serverseq": 0,
        "position": "PT0S",
        "parameters": parameters,
    }


def test_audiohook_open_takes_the_offer_that_carries_both_parties() -> None:
    media = [
        {"type": "audio", "format": "PCMU", "channels": ["internal"], "rate": 8000},
        {"type": "audio", "format": "OPUS", "channels": ["external", "internal"], "rate": 8000},
        {"type": "audio", "format": "L16", "channels": ["internal", "external"], "rate": 8000},
    ]

    event = audiohook.parse(_hook("open", conversationId="C", organizationId="O", media=media))

    assert isinstance(event, StreamStarted)
    assert event.media_format.encoding is Encoding.L16
    assert event.binary_channels == (Track.OUTBOUND, Track.INBOUND)
    assert event.call.account_id == "O"


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (
            _hook(
                "open",
                conversationId="C",
                media=[{"type": "audio", "format": "OPUS", "channels": ["external"], "rate": 8000}],
            ),
            UnsupportedEncoding,
        ),
        (
            _hook(
                "open",
                conversationId="C",
                media=[{"type": "audio", "format": "PCMU", "channels": ["external"], "rate": 16000}],
            ),
            UnsupportedEncoding,
        ),
        (_hook("open", conversationId="C", media={}), MalformedMessage),
        (
            _hook("open", media=[{"type": "audio", "format": "PCMU", "channels": ["external"], "rate": 8000}]),
            MalformedMessage,
        ),
        (_hook("ping", seq=0), MalformedMessage),
        (_hook("opened"), UnknownEvent),
        ({"version": "2", "id": "I", "seq": 1}, MalformedMessage),
    ],
)
def test_audiohook_rejects(message: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        audiohook.parse(message)


def test_audiohook_close_names_its_reason_and_others_carry_nothing() -> None:
    assert audiohook.parse(_hook("close", 4, reason="disconnect")) == StreamStopped("disconnect", 4)
    for kind in ("ping", "paused", "resumed", "discarded", "update", "error"):
        assert audiohook.parse(_hook(kind, 2)) is None


def test_audiohook_dialogue_answers_only_what_needs_an_answer() -> None:
    dialogue = audiohook.AudioHookDialogue()

    assert dialogue.reply(_hook("paused", 3)) is None
    pong = dialogue.reply(_hook("ping", 4))

    assert pong is not None and '"type":"pong","seq":1,"clientseq":4' in pong
