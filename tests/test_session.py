"""StreamSession: the lifecycle table, sequence accounting, and its error contract."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from receiver.errors import MalformedMessage, StreamProtocolError, UnexpectedEvent
from receiver.events import Connected, MediaReceived, Platform, StreamStarted, StreamStopped
from receiver.session import SessionState, StreamSession
from receiver.testing import MiniVoiceMessages, TwilioMessages


def started(m: MiniVoiceMessages | None = None) -> tuple[StreamSession, MiniVoiceMessages]:
    m = m or MiniVoiceMessages()
    session = StreamSession()
    session.receive_text(m.connected())
    session.receive_text(m.start())
    return session, m


def test_full_lifecycle() -> None:
    m = MiniVoiceMessages()
    session = StreamSession()

    events = [session.receive_text(t) for t in (m.connected(), m.start(), m.media("inbound", 1, 0, b"\xff"), m.stop())]

    assert [type(e) for e in events] == [Connected, StreamStarted, MediaReceived, StreamStopped]
    assert session.state is SessionState.STOPPED
    assert session.platform is Platform.MINIVOICE
    assert session.stats.media_messages == 1


def test_start_without_connected_is_tolerated() -> None:
    m = MiniVoiceMessages()
    session = StreamSession()

    assert isinstance(session.receive_text(m.start()), StreamStarted)
    assert session.state is SessionState.STARTED


def test_media_before_start_is_unexpected() -> None:
    m = MiniVoiceMessages()
    session = StreamSession()
    session.receive_text(m.connected())

    with pytest.raises(UnexpectedEvent) as info:
        session.receive_text(m.media("inbound", 1, 0, b"\xff"))

    assert info.value.close_code == 4409


def test_second_start_is_unexpected() -> None:
    session, m = started()

    with pytest.raises(UnexpectedEvent):
        session.receive_text(m.start())


def test_stop_before_start_is_unexpected() -> None:
    m = MiniVoiceMessages()
    session = StreamSession()
    session.receive_text(m.connected())

    with pytest.raises(UnexpectedEvent):
        session.receive_text(m.stop())


def test_anything_after_stop_is_unexpected() -> None:
    session, m = started()
    session.receive_text(m.stop())

    with pytest.raises(UnexpectedEvent):
        session.receive_text(m.media("inbound", 1, 0, b""))


def test_unknown_events_are_skipped_and_counted() -> None:
    session, m = started()

    assert session.receive_text(orjson.dumps({"event": "heartbeat", "sequence_number": 2}).decode()) is None
    assert session.stats.unknown_events == 1
    assert session.state is SessionState.STARTED


@pytest.mark.parametrize("text", ["not json", "[1, 2]", "42", '"start"', "{", ""])
def test_non_object_messages_are_malformed(text: str) -> None:
    with pytest.raises(MalformedMessage) as info:
        StreamSession().receive_text(text)

    assert info.value.close_code == 4400


def test_first_message_of_unknown_format_is_malformed() -> None:
    with pytest.raises(MalformedMessage):
        StreamSession().receive_text('{"event": "hello"}')


def test_sequence_gaps_and_out_of_order_are_counted() -> None:
    session, m = started()  # start is sequence 1
    session.receive_text(m.media("inbound", 1, 0, b"", sequence=2))
    session.receive_text(m.media("inbound", 3, 40, b"", sequence=5))  # 3 and 4 missing
    session.receive_text(m.media("inbound", 2, 20, b"", sequence=3))  # late

    assert session.stats.sequence_gaps == 2
    assert session.stats.sequence_out_of_order == 1


def test_twilio_session_detects_and_parses() -> None:
    t = TwilioMessages()
    session = StreamSession()

    session.receive_text(t.connected())
    event = session.receive_text(t.start())

    assert isinstance(event, StreamStarted)
    assert session.platform is Platform.TWILIO
    assert session.started is event


def test_bytes_input_is_accepted_by_the_pure_session() -> None:
    m = MiniVoiceMessages()

    assert isinstance(StreamSession().receive_text(m.connected().encode()), Connected)


def test_bytes_that_are_not_utf8_are_a_malformed_message_after_start() -> None:
    # Found by the atheris harness: the typed media decoder raised UnicodeDecodeError.
    m = MiniVoiceMessages()
    session = StreamSession()
    session.receive_text(m.connected())
    session.receive_text(m.start())

    with pytest.raises(MalformedMessage):
        session.receive_text(m.media("inbound", 1, 0, b"\xff" * 160).encode()[:7] + b"\x8d")


_valid = MiniVoiceMessages()
_samples = [
    _valid.connected(),
    _valid.start(),
    _valid.media("inbound", 1, 0, b"\xff" * 160),
    _valid.media("outbound", 1, 0, b"\xff" * 160),
    _valid.dtmf("5", 40),
    _valid.stop(),
    TwilioMessages().start(),
    TwilioMessages().media("inbound", 1, 0, b"\x00"),
]


@given(
    st.lists(
        st.one_of(
            st.sampled_from(_samples),
            st.text(max_size=50),
            st.sampled_from(_samples).map(lambda s: s[: len(s) // 2]),  # truncated
            st.recursive(
                st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1) | st.text(max_size=10),
                lambda children: (
                    st.lists(children, max_size=3)
                    | st.dictionaries(
                        st.sampled_from(
                            ["event", "media", "start", "stop", "payload", "track", "sequence_number", "stream_id"]
                        ),
                        children,
                        max_size=4,
                    )
                ),
                max_leaves=10,
            ).map(json.dumps),  # stdlib: orjson cannot encode integers over 64 bits, a peer can send them
        ),
        max_size=12,
    )
)
def test_any_input_yields_events_or_a_protocol_error(texts: list[str]) -> None:
    """The contract: events, None, or a StreamProtocolError subclass; never anything else."""
    session = StreamSession()
    for text in texts:
        try:
            session.receive_text(text)
        except StreamProtocolError:
            return
