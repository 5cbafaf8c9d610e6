"""The stream handler's callback: the common media message in one call, every other one as the server takes it.

``StreamHandler.on_message`` is what the fast path calls for each message (compiled where the
install compiled the media path; ``make test-pure`` runs these on the ``.py``). Whatever it takes
itself must leave the stream exactly as the server's own ``_on_message`` would: the same counts,
the same audio, the same limits, the same log lines.
"""

from __future__ import annotations

import tempfile
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import structlog
from structlog.testing import capture_logs
from websockets.protocol import State

from receiver.app import ReceiverServer
from receiver.config import Settings
from receiver.events import Encoding, StreamStopped, Track
from receiver.metrics import MESSAGE_SECONDS, SAMPLE_EVERY
from receiver.security.limits import Limit, LimitExceeded
from receiver.simulator.carriers import make_wire
from receiver.simulator.wire import StreamIdentity, WireFormat
from receiver.stream.handler import MISSING, StreamHandler
from receiver.testing import MiniVoiceMessages

FRAME = 160


def _server(**overrides: Any) -> ReceiverServer:
    return ReceiverServer(Settings(wav=False, recordings_dir=tempfile.gettempdir(), **overrides))


def _handler(server: ReceiverServer, subprotocol: str | None = None) -> StreamHandler:
    # (closed to replies: AudioHook's ``opened`` is not sent)
    protocol = SimpleNamespace(state=State.CLOSED)
    ws = SimpleNamespace(subprotocol=subprotocol, request=None, remote_address=None, protocol=protocol)
    return StreamHandler(ws, structlog.get_logger(), server.guard.new_limits(), None, None)


def _payload(k: int) -> bytes:
    return bytes((k + i) % 256 for i in range(FRAME))


def _sampled_count() -> float:
    return sum(s.value for m in MESSAGE_SECONDS.collect() for s in m.samples if s.name.endswith("_count"))


async def _feed(handle: Any, messages: MiniVoiceMessages, frames: int) -> None:
    assert handle(messages.connected()) is None
    assert handle(messages.start()) is None
    for k in range(frames):
        for track in ("inbound", "outbound"):
            assert handle(messages.media(track, k + 1, 20 * k, _payload(k))) is None


async def test_the_callback_and_the_servers_own_path_leave_a_stream_alike() -> None:
    server = _server()
    frames = 2 * SAMPLE_EVERY + 7  # the sampled messages and the rest
    fast, general = _handler(server), _handler(server)
    before = _sampled_count()
    await _feed(server.message_handler(fast), MiniVoiceMessages(), frames)
    timed = _sampled_count() - before
    await _feed(lambda m: server._on_message(general, m), MiniVoiceMessages(), frames)

    messages = 2 + 2 * frames
    assert fast.received == general.received == messages
    assert fast.session.stats == general.session.stats
    assert fast.session.stats.media_messages == 2 * frames
    assert fast.first_media is general.first_media is False
    # one message in SAMPLE_EVERY is timed, on both paths
    assert timed == messages // SAMPLE_EVERY == _sampled_count() - before - timed
    for handler in (fast, general):
        assert handler.pipeline is not None
        handler.pipeline.clock.flush()
        for track in (Track.INBOUND, Track.OUTBOUND):
            assert handler.pipeline.buffers[track].head == FRAME * frames
    a, b = fast.pipeline, general.pipeline
    assert a is not None and b is not None
    for track in (Track.INBOUND, Track.OUTBOUND):
        got = a.buffers[track].read(0, FRAME * frames)
        assert got.any() and np.array_equal(got, b.buffers[track].read(0, FRAME * frames))
    for handler in (fast, general):
        assert handler.pipeline is not None
        await handler.pipeline.finish(reason="test", close_code=None, session=handler.session.stats)


async def test_a_stop_ends_the_stream_through_the_callback() -> None:
    server = _server()
    handler = _handler(server)
    handle = server.message_handler(handler)
    messages = MiniVoiceMessages()
    await _feed(handle, messages, 3)

    stopped = handle(messages.stop())

    assert isinstance(stopped, StreamStopped) and stopped.reason == "stop_stream"
    assert handler.pipeline is not None
    await handler.pipeline.finish(reason="stop_stream", close_code=1000, session=handler.session.stats)


async def test_the_rate_limit_is_checked_at_its_count_on_the_callback() -> None:
    server = _server(max_messages_per_second=1, rate_window=10.0)  # a budget of 10 messages per 10 s
    handler = _handler(server)
    handle = server.message_handler(handler)
    messages = MiniVoiceMessages()
    handle(messages.connected())
    handle(messages.start())
    with capture_logs() as logs, pytest.raises(LimitExceeded) as hit:
        for k in range(100):
            handle(messages.media("inbound", k + 1, 20 * k, _payload(k)))

    assert hit.value.limit is Limit.RATE
    assert handler.received == 10  # the budget's message is the one that hit it
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["limit_hit"]
    assert handler.pipeline is not None
    await handler.pipeline.finish(reason="rate", close_code=None, session=handler.session.stats)


async def test_a_discontinuity_on_the_callback_is_logged_once_by_the_server() -> None:
    server = _server(max_media_lead_seconds=0)
    handler = _handler(server)
    handle = server.message_handler(handler)
    messages = MiniVoiceMessages()
    await _feed(handle, messages, 3)  # first media taken: the next frame goes the callback's own way
    jump = 20 * 3 + 120_000  # two minutes on: past max_gap_ms

    with capture_logs() as logs:
        assert handle(messages.media("inbound", 4, jump, _payload(4))) is None

    assert [e["event"] for e in logs] == ["media_discontinuity"]
    assert logs[0]["timestamp_ms"] == jump and logs[0]["track"] == "inbound"
    assert handler.pipeline is not None and handler.pipeline.clock.discontinuities == 1
    await handler.pipeline.finish(reason="test", close_code=None, session=handler.session.stats)


def test_a_handler_calls_nowhere_before_the_server_routes_it() -> None:
    handler = _handler(_server())

    assert handler.unauthenticated is MISSING
    with pytest.raises(RuntimeError, match="route_to"):
        handler.on_message(MiniVoiceMessages().connected())


# Binary formats: (wire, tracks, encoding). The handler hands their frames to the pipeline
# itself, with no event object: one track (Vonage, Asterisk) or interleaved (jambonz, AudioHook).
BINARY = {
    "vonage": (("inbound",), Encoding.L16),
    "asterisk": (("inbound",), Encoding.MULAW),
    "jambonz": (("inbound", "outbound"), Encoding.L16),
    "audiohook": (("inbound", "outbound"), Encoding.MULAW),
}


@pytest.mark.parametrize("fmt", sorted(BINARY))
async def test_binary_frames_on_the_callback_leave_a_stream_as_the_servers_own_path(fmt: str) -> None:
    tracks, encoding = BINARY[fmt]
    ident = StreamIdentity(
        stream_id="5ee0c3a2-0000-4000-8000-000000000000",
        call_id="call_binary",
        stream_url="ws://127.0.0.1/s",
        track="both" if len(tracks) == 2 else "inbound",
        tracks=tracks,
        encoding=encoding,
        sample_rate=8000,
    )
    wire = make_wire(WireFormat(fmt), ident)
    width = 2 if encoding is Encoding.L16 else 1
    # Every sample frame distinct, so a channel written to the wrong track or place shows.
    frames = [bytes((k * 7 + i) % 251 for i in range(FRAME * width * len(tracks))) for k in range(2 * SAMPLE_EVERY + 5)]
    server = _server()
    fast, general = _handler(server, wire.subprotocol), _handler(server, wire.subprotocol)
    for handle in (server.message_handler(fast), lambda m: server._on_message(general, m)):
        for text in wire.opening():
            assert handle(text) is None
        for payload in frames:
            assert handle(wire.frame(payload)) is None

    assert fast.received == general.received == len(wire.opening()) + len(frames)
    assert fast.session.stats == general.session.stats
    assert fast.session.stats.media_messages == len(frames)
    a, b = fast.pipeline, general.pipeline
    assert a is not None and b is not None
    samples = FRAME * len(frames)
    for track in tracks:
        t = Track(track)
        assert a.buffers[t].head == b.buffers[t].head == samples
        got = a.buffers[t].read(0, samples)
        assert got.any() and np.array_equal(got, b.buffers[t].read(0, samples))
    if len(tracks) == 2:  # the two channels went to their own tracks
        assert not np.array_equal(a.buffers[Track.INBOUND].read(0, samples), a.buffers[Track.OUTBOUND].read(0, samples))
    for pipeline, handler in ((a, fast), (b, general)):
        await pipeline.finish(reason="test", close_code=None, session=handler.session.stats)
