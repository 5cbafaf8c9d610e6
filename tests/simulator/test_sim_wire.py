"""The wire formats: each as its platform sends it, and each read back by the receiver's session."""

from __future__ import annotations

import base64
import json

import pytest

from receiver.calls import actions as a
from receiver.codecs import decode
from receiver.events import Encoding, MediaReceived, Platform, StreamStarted, StreamStopped, Track
from receiver.session import StreamSession
from receiver.simulator.audio import AudioSpec
from receiver.simulator.plan import Faults, MediaSpec, plan_call
from receiver.simulator.wire import WireFormat, check_format

URL = "wss://media.example.com/minivoice"

CASES = [
    (WireFormat.MINIVOICE, Encoding.MULAW, 8000, Platform.MINIVOICE),
    (WireFormat.MINIVOICE, Encoding.ALAW, 8000, Platform.MINIVOICE),
    (WireFormat.MINIVOICE, Encoding.L16, 8000, Platform.MINIVOICE),
    (WireFormat.MINIVOICE, Encoding.L16, 24000, Platform.MINIVOICE),
    (WireFormat.TWILIO, Encoding.MULAW, 8000, Platform.TWILIO),
    (WireFormat.SIGNALWIRE, Encoding.MULAW, 8000, Platform.SIGNALWIRE),
    (WireFormat.SIGNALWIRE, Encoding.L16, 16000, Platform.SIGNALWIRE),
]


def stream(wire: WireFormat, encoding: Encoding, rate: int):  # type: ignore[no-untyped-def]
    spec = MediaSpec(wire, encoding, rate, {"inbound": AudioSpec("tone", "440"), "outbound": AudioSpec("tone", "660")})
    return plan_call([a.start_stream(URL, "both", {"token": "t1"}), a.pause(0.1)], spec, Faults()).streams[0]


@pytest.mark.parametrize(("wire", "encoding", "rate", "platform"), CASES)
def test_the_receivers_session_reads_every_format_back(
    wire: WireFormat, encoding: Encoding, rate: int, platform: Platform
) -> None:
    sp = stream(wire, encoding, rate)
    session = StreamSession()

    events = [session.receive_text(text) for _, text, _, _ in sp.items]

    started = events[1]
    assert isinstance(started, StreamStarted)
    assert started.platform is platform
    assert started.stream_id == sp.ident.stream_id and started.call_id == sp.ident.call_id
    assert started.tracks == (Track.INBOUND, Track.OUTBOUND)
    assert (started.media_format.encoding, started.media_format.sample_rate) == (encoding, rate)
    assert dict(started.custom_parameters) == {"token": "t1"}
    media = [e for e in events if isinstance(e, MediaReceived)]
    assert len(media) == 10
    inbound = b"".join(m.payload for m in media if m.track is Track.INBOUND)
    assert (decode(started.media_format, inbound) == sp.decoded["inbound"]).all()
    assert [m.timestamp_ms for m in media if m.track is Track.OUTBOUND] == [0, 20, 40, 60, 80]
    assert [m.chunk for m in media if m.track is Track.OUTBOUND] == [1, 2, 3, 4, 5]
    assert isinstance(events[-1], StreamStopped)
    assert session.stats.sequence_gaps == 0 and session.stats.unknown_events == 0


def test_twilio_messages_have_string_counters_and_stream_sids() -> None:
    sp = stream(WireFormat.TWILIO, Encoding.MULAW, 8000)
    connected, start, media, *_, stop = [json.loads(t) for _, t, _, _ in sp.items]

    assert connected == {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    assert start["sequenceNumber"] == "1" and start["streamSid"] == start["start"]["streamSid"]
    assert start["streamSid"].startswith("MZ") and len(start["streamSid"]) == 34
    assert start["start"]["callSid"].startswith("CA") and start["start"]["accountSid"].startswith("AC")
    assert start["start"]["mediaFormat"] == {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
    assert media["media"]["chunk"] == "1" and media["media"]["timestamp"] == "0" and media["sequenceNumber"] == "2"
    assert media["streamSid"] == start["streamSid"]
    assert stop["stop"] == {"accountSid": start["start"]["accountSid"], "callSid": start["start"]["callSid"]}


def test_signalwire_messages_follow_its_differences() -> None:
    sp = stream(WireFormat.SIGNALWIRE, Encoding.L16, 16000)
    connected, start, media, *_, stop = [json.loads(t) for _, t, _, _ in sp.items]

    assert connected["version"] == "0.2.0"
    assert "streamSid" not in start and len(start["start"]["streamSid"]) == 36
    assert start["start"]["mediaFormat"]["encoding"] == "audio/x-L16"
    assert "streamSid" not in media
    assert len(base64.b64decode(media["media"]["payload"])) == 640
    assert stop == {"event": "stop", "sequenceNumber": "12"}


def test_minivoice_upgrade_names_the_call() -> None:
    sp = stream(WireFormat.MINIVOICE, Encoding.MULAW, 8000)

    assert sp.wire.headers() == {"X-MiniVoice-Call-Id": sp.ident.call_id}
    assert sp.wire.user_agent() == "MiniVoice/1.0"


@pytest.mark.parametrize(
    ("wire", "encoding", "rate"),
    [
        (WireFormat.TWILIO, Encoding.L16, 8000),
        (WireFormat.TWILIO, Encoding.ALAW, 8000),
        (WireFormat.SIGNALWIRE, Encoding.ALAW, 8000),
        (WireFormat.SIGNALWIRE, Encoding.L16, 8000),
        (WireFormat.MINIVOICE, Encoding.MULAW, 16000),
    ],
)
def test_formats_a_platform_never_sends_are_refused(wire: WireFormat, encoding: Encoding, rate: int) -> None:
    with pytest.raises(ValueError, match="never"):
        check_format(wire, encoding, rate)
