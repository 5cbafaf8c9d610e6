"""The typed media parser gives exactly what the general parser gives, or steps aside."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from receiver.errors import StreamProtocolError
from receiver.platforms import minivoice, twilio
from receiver.session import StreamSession
from receiver.testing import MiniVoiceMessages


def _general(text: str) -> object:
    try:
        return minivoice.parse(orjson.loads(text))
    except (StreamProtocolError, orjson.JSONDecodeError) as exc:
        return type(exc)


def test_a_well_formed_media_message_parses_to_the_same_event() -> None:
    text = MiniVoiceMessages().media("outbound", 7, 120, b"\x01\x02\xff")

    assert minivoice.parse_media_text(text) == _general(text)


@pytest.mark.parametrize(
    "media",
    [
        {"track": "inbound", "chunk": "1", "timestamp": 0, "payload": "AAAA"},
        {"track": "inbound", "chunk": True, "timestamp": 0, "payload": "AAAA"},
        {"track": "inbound", "chunk": 1, "timestamp": 1.5, "payload": "AAAA"},
        {"track": "sideways", "chunk": 1, "timestamp": 0, "payload": "AAAA"},
        {"track": "inbound", "chunk": 1, "timestamp": 0, "payload": "AAA"},
        {"track": "inbound", "chunk": 1, "timestamp": 0, "payload": "AAAA===="},  # binascii's strict mode takes it
        {"track": "inbound", "chunk": 1, "timestamp": 0},
        None,
    ],
)
def test_a_malformed_media_message_is_left_to_the_general_parser(media: object) -> None:
    text = orjson.dumps({"event": "media", "sequence_number": 2, "media": media}).decode()

    assert minivoice.parse_media_text(text) is None
    assert _general(text) is not None


@given(
    track=st.sampled_from(["inbound", "outbound", "inbound_track", "x", 3]),
    chunk=st.one_of(
        st.none(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.text(max_size=3),
        st.booleans(),
        st.floats(allow_nan=False),
    ),
    timestamp=st.one_of(st.none(), st.integers(), st.booleans()),
    payload=st.one_of(
        st.binary(max_size=12).map(lambda b: __import__("base64").b64encode(b).decode()), st.text(max_size=8)
    ),
    sequence=st.one_of(st.none(), st.integers(min_value=-(2**70), max_value=2**70), st.text(max_size=2)),
    event=st.sampled_from(["media", "dtmf", "start"]),
)
def test_the_fast_parser_never_disagrees_with_the_general_one(
    track, chunk, timestamp, payload, sequence, event
) -> None:
    message = {
        "event": event,
        "sequence_number": sequence,
        "media": {"track": track, "chunk": chunk, "timestamp": timestamp, "payload": payload},
    }
    text = json.dumps(message)

    fast = minivoice.parse_media_text(text)

    if fast is not None:
        assert fast == _general(text)


def test_the_session_counts_fast_media_like_any_other() -> None:
    mv = MiniVoiceMessages()
    session = StreamSession()
    for text in (mv.connected(), mv.start(), mv.media("inbound", 1, 0, b"\xff" * 160)):
        session.receive_text(text)
    mv.sequence += 2  # two messages lost
    session.receive_text(mv.media("inbound", 2, 20, b"\xff" * 160))
    session.receive_text(mv.media("inbound", 3, 40, b"\xff" * 160, sequence=3))  # late

    stats = session.stats
    assert (stats.messages, stats.media_messages, stats.sequence_gaps, stats.sequence_out_of_order) == (5, 3, 2, 1)


def _general_twilio(text: str) -> object:
    try:
        return twilio.parse(orjson.loads(text))
    except (StreamProtocolError, orjson.JSONDecodeError) as exc:
        return type(exc)


def test_a_well_formed_twilio_media_message_parses_to_the_same_event() -> None:
    text = (
        '{"event":"media","sequenceNumber":"4","streamSid":"MZ1",'
        '"media":{"track":"outbound","chunk":"3","timestamp":"40","payload":"AQL/"}}'
    )

    assert twilio.parse_media_text(text) == _general_twilio(text)
    assert twilio.parse_media_text(text) is not None


@pytest.mark.parametrize("counter", ["0", "007", "9" * 18, "9" * 19, "1" + "0" * 30])
def test_twilio_counters_of_any_length_parse_as_the_general_parser_reads_them(counter: str) -> None:
    text = orjson.dumps(
        {
            "event": "media",
            "sequenceNumber": counter,
            "media": {"track": "inbound", "chunk": counter, "timestamp": counter, "payload": "AAAA"},
        }
    ).decode()

    fast = twilio.parse_media_text(text)
    assert fast is not None
    assert fast == _general_twilio(text)
    assert fast.chunk == fast.timestamp_ms == fast.sequence == int(counter)


@pytest.mark.parametrize(
    "media",
    [
        {"track": "inbound", "chunk": "1a", "timestamp": "0", "payload": "AAAA"},
        {"track": "inbound", "chunk": "-1", "timestamp": "0", "payload": "AAAA"},
        {"track": "inbound", "chunk": "1", "timestamp": 1.5, "payload": "AAAA"},
        {"track": "inbound", "chunk": "1", "timestamp": "²", "payload": "AAAA"},
        {"track": "inbound", "chunk": "1", "timestamp": "\u0661", "payload": "AAAA"},  # ARABIC-INDIC ONE
        {"track": "inbound", "chunk": "", "timestamp": "0", "payload": "AAAA"},
        {"track": "inbound", "chunk": " 1", "timestamp": "0", "payload": "AAAA"},
        {"track": "inbound", "chunk": "1", "timestamp": "0 ", "payload": "AAAA"},
        {"track": "inbound", "chunk": "1", "timestamp": "1" * 19 + "x", "payload": "AAAA"},
        {"track": "sideways", "chunk": "1", "timestamp": "0", "payload": "AAAA"},
        {"track": "inbound", "chunk": "1", "timestamp": "0", "payload": "AAA"},
        {"track": "inbound", "chunk": "1", "timestamp": "0", "payload": "AAAA===="},
        {"track": "inbound", "chunk": "1", "timestamp": "0"},
        None,
    ],
)
def test_a_malformed_twilio_media_message_is_left_to_the_general_parser(media: object) -> None:
    text = orjson.dumps({"event": "media", "sequenceNumber": "2", "media": media}).decode()

    assert twilio.parse_media_text(text) is None
    assert _general_twilio(text) is not None


@given(
    track=st.sampled_from(["inbound", "outbound", "x", 3]),
    chunk=st.one_of(
        st.none(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.integers(min_value=0, max_value=2**70).map(str),
        st.text(max_size=3),
        st.booleans(),
        st.floats(allow_nan=False),
    ),
    timestamp=st.one_of(st.none(), st.integers(), st.integers(min_value=0).map(str), st.text(max_size=2)),
    payload=st.one_of(
        st.binary(max_size=12).map(lambda b: __import__("base64").b64encode(b).decode()), st.text(max_size=8)
    ),
    sequence=st.one_of(st.none(), st.integers(min_value=-(2**70), max_value=2**70), st.text(max_size=2)),
    event=st.sampled_from(["media", "dtmf", "start"]),
)
def test_the_twilio_fast_parser_never_disagrees_with_the_general_one(
    track, chunk, timestamp, payload, sequence, event
) -> None:
    message = {
        "event": event,
        "sequenceNumber": sequence,
        "media": {"track": track, "chunk": chunk, "timestamp": timestamp, "payload": payload},
    }
    text = json.dumps(message)

    fast = twilio.parse_media_text(text)

    if fast is not None:
        assert fast == _general_twilio(text)
