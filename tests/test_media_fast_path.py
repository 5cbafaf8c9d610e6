"""The typed media parser gives exactly what the general parser gives, or steps aside."""

from __future__ import annotations

import json
from types import ModuleType

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from receiver.errors import MalformedMessage, StreamProtocolError
from receiver.platforms import exotel, minivoice, plivo, telnyx, twilio
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


# The formats that share the typed decoder of receiver/platforms/_typed.py: the parser's
# module, the top-level key of the sequence number, and the track of a message naming none.
TYPED = [
    pytest.param(twilio, "sequenceNumber", None, id="twilio"),
    pytest.param(telnyx, "sequence_number", None, id="telnyx"),
    pytest.param(plivo, "sequenceNumber", "inbound", id="plivo"),
    pytest.param(exotel, "sequence_number", "inbound", id="exotel"),
]


def _general_of(module: ModuleType, text: str) -> object:
    try:
        return module.parse(orjson.loads(text))
    except (StreamProtocolError, orjson.JSONDecodeError) as exc:
        return type(exc)


@pytest.mark.parametrize(("module", "key", "default"), TYPED)
def test_a_well_formed_media_message_of_each_format_parses_to_the_same_event(
    module: ModuleType, key: str, default: str | None
) -> None:
    text = orjson.dumps(
        {
            "event": "media",
            key: "4",
            "streamSid": "MZ1",
            "media": {"track": "outbound", "chunk": "3", "timestamp": "40", "payload": "AQL/"},
            "extra_headers": "a=b",
        }
    ).decode()

    fast = module.parse_media_text(text)
    assert fast is not None
    assert fast == _general_of(module, text)
    assert (fast.track.value, fast.chunk, fast.timestamp_ms, fast.payload, fast.sequence) == (
        "outbound", 3, 40, b"\x01\x02\xff", 4
    )  # fmt: skip


@pytest.mark.parametrize(("module", "key", "default"), TYPED)
def test_integer_counters_parse_as_the_general_parser_reads_them(
    module: ModuleType, key: str, default: str | None
) -> None:
    text = orjson.dumps(
        {"event": "media", key: 9, "media": {"track": "inbound", "chunk": 2, "timestamp": 20, "payload": "AAAA"}}
    ).decode()

    fast = module.parse_media_text(text)
    assert fast is not None
    assert fast == _general_of(module, text)


@pytest.mark.parametrize(("module", "key", "default"), TYPED)
def test_a_media_message_naming_no_track_is_the_formats_default_or_the_general_parsers(
    module: ModuleType, key: str, default: str | None
) -> None:
    text = orjson.dumps({"event": "media", key: "2", "media": {"chunk": "1", "timestamp": "0", "payload": "AAAA"}})

    fast = module.parse_media_text(text)

    if default is None:
        assert fast is None
        assert _general_of(module, text.decode()) is MalformedMessage
    else:
        assert fast is not None
        assert fast.track.value == default
        assert fast == _general_of(module, text.decode())


@pytest.mark.parametrize(("module", "key", "default"), TYPED)
@pytest.mark.parametrize("counter", ["0", "007", "9" * 18, "9" * 19, "1" + "0" * 30])
def test_counters_of_any_length_parse_as_the_general_parser_reads_them(
    module: ModuleType, key: str, default: str | None, counter: str
) -> None:
    text = orjson.dumps(
        {
            "event": "media",
            key: counter,
            "media": {"track": "inbound", "chunk": counter, "timestamp": counter, "payload": "AAAA"},
        }
    ).decode()

    fast = module.parse_media_text(text)
    assert fast is not None
    assert fast == _general_of(module, text)
    assert fast.chunk == fast.timestamp_ms == fast.sequence == int(counter)


@pytest.mark.parametrize(("module", "key", "default"), TYPED)
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
        {"track": None, "chunk": "1", "timestamp": "0", "payload": "AAAA"},
        {"track": "inbound", "chunk": "1", "timestamp": "0", "payload": "AAA"},
        {"track": "inbound", "chunk": "1", "timestamp": "0", "payload": "AAAA===="},
        {"track": "inbound", "chunk": "1", "timestamp": "0"},
        None,
    ],
)
def test_a_malformed_media_message_of_each_format_is_left_to_the_general_parser(
    module: ModuleType, key: str, default: str | None, media: object
) -> None:
    text = orjson.dumps({"event": "media", key: "2", "media": media}).decode()

    assert module.parse_media_text(text) is None
    assert _general_of(module, text) is not None


@pytest.mark.parametrize(("module", "key", "default"), TYPED)
@pytest.mark.parametrize("text", ['{"event":"media"', b'{"event":"media","media":"\xff"}', "[]", '{"event":"dtmf"}'])
def test_text_that_is_no_media_message_is_left_to_the_general_parser(
    module: ModuleType, key: str, default: str | None, text: str | bytes
) -> None:
    assert module.parse_media_text(text) is None


@pytest.mark.parametrize(("module", "key", "default"), TYPED)
@given(
    track=st.sampled_from(["inbound", "outbound", "inbound_track", "x", 3, None]),
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
    drop_track=st.booleans(),
)
def test_the_typed_parsers_never_disagree_with_the_general_ones(
    module: ModuleType, key: str, default: str | None, track, chunk, timestamp, payload, sequence, event, drop_track
) -> None:
    media = {"track": track, "chunk": chunk, "timestamp": timestamp, "payload": payload}
    if drop_track:
        del media["track"]
    text = json.dumps({"event": event, key: sequence, "media": media})

    fast = module.parse_media_text(text)

    if fast is not None:
        assert fast == _general_of(module, text)


def test_the_session_rebases_epoch_timestamps_of_typed_media() -> None:
    """Plivo sends Unix epoch milliseconds: a typed-decoded frame is rebased as a general one is."""
    session = StreamSession()
    start = {
        "event": "start",
        "sequenceNumber": 1,
        "start": {
            "callId": "c1",
            "streamId": "s1",
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000},
        },
    }
    session.receive_text(json.dumps(start))
    media = [
        {
            "event": "media",
            "sequenceNumber": 2 + k,
            "media": {"timestamp": str(1_700_000_000_000 + 20 * k), "payload": "AAAA"},
        }
        for k in range(2)
    ]

    events = [session.receive_text(json.dumps(m)) for m in media]

    assert plivo.parse_media_text(json.dumps(media[0])) is not None  # the typed path took them
    assert [e.timestamp_ms for e in events] == [0, 20]  # type: ignore[union-attr]
    assert session.readings["timestamps"] == "epoch ms (from the first frame)"
    assert session.stats.media_messages == 2
