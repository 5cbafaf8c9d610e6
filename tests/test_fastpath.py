"""The receive fast path (receiver/stream/fastpath.py) against the plain websockets path: same behaviour."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State
from websockets.server import ServerProtocol

from receiver.app import ReceiverServer
from receiver.config import Settings
from receiver.events import Track
from receiver.stream.fastpath import FrameReader, state_attribute
from receiver.testing import MiniVoiceMessages, RecordingSink

from .conftest import recording_sinks, wait_streams_done

FRAME = bytes(range(96, 256))  # 160 bytes of mu-law


@pytest.fixture(params=[True, False], ids=["fast", "plain"])
async def served(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[ReceiverServer, list[RecordingSink]]]:
    settings = Settings(
        host="127.0.0.1", port=0, recordings_dir=str(tmp_path / "rec"), log_format="json", fast_path=request.param
    )
    sinks, factory = recording_sinks()

    async with ReceiverServer(settings, sinks=[factory]) as server:
        yield server, sinks


async def _close_code(ws: object) -> int | None:
    try:
        async for _ in ws:  # type: ignore[attr-defined]
            pass
    except ConnectionClosed:
        pass
    return ws.close_code  # type: ignore[attr-defined]


async def test_a_stream_with_pings_and_fragments_is_recorded_whole_and_closes_normally(served) -> None:
    server, sinks = served
    mv = MiniVoiceMessages()
    async with connect(f"ws://127.0.0.1:{server.port}/s") as ws:
        await ws.send(mv.connected())
        await ws.send(mv.start())
        for i in range(10):
            await ws.send(mv.media("inbound", i + 1, 20 * i, FRAME))
            if i == 4:
                await (await ws.ping(b"keepalive"))
            await ws.send(mv.media("outbound", i + 1, 20 * i, FRAME))
        # A fragmented message, as a platform may send one: the rest goes the plain way.
        text = mv.media("inbound", 11, 200, FRAME)
        await ws.send([text[:50], text[50:]])
        await ws.send(mv.media("outbound", 11, 200, FRAME))
        await ws.send(mv.stop())
        code = await _close_code(ws)
    await wait_streams_done(server)

    assert code == 1000
    assert server.outcomes[-1].reason == "stop_stream"
    assert server.outcomes[-1].samples == 11 * 160
    assert len(sinks[0].audio(Track.INBOUND)) == 11 * 160
    assert sinks[0].calls[-1] == "close"


@pytest.mark.parametrize(
    ("bad", "expected_code", "expected_reason"),
    [
        (b"\xff\xfe not utf-8", 1007, "disconnected"),
        (b"binary", 4400, "malformed_message"),
        ("x" * 70_000, 1009, "message_too_big"),
        ('{"event": "media", "sequence_number": 9}', 4400, "malformed_message"),
    ],
    ids=["invalid-utf8", "binary", "too-big", "malformed"],
)
async def test_a_bad_frame_closes_with_the_same_code_on_either_path(
    served, bad, expected_code, expected_reason
) -> None:
    server, _ = served
    mv = MiniVoiceMessages()
    async with connect(f"ws://127.0.0.1:{server.port}/s", max_size=None) as ws:
        await ws.send(mv.connected())
        await ws.send(mv.start())
        await ws.send(mv.media("inbound", 1, 0, FRAME))
        if isinstance(bad, bytes) and bad.startswith(b"\xff"):
            await ws.send(bad, text=True)
        else:
            await ws.send(bad)
        code = await _close_code(ws)
    await wait_streams_done(server)

    assert code == expected_code
    assert server.outcomes[-1].reason.startswith(expected_reason.split("_")[0])


async def test_a_client_close_without_stop_ends_the_stream_as_closed(served) -> None:
    server, _ = served
    mv = MiniVoiceMessages()
    async with connect(f"ws://127.0.0.1:{server.port}/s") as ws:
        await ws.send(mv.connected())
        await ws.send(mv.start())
        await ws.send(mv.media("inbound", 1, 0, FRAME))
    await wait_streams_done(server)

    assert (server.outcomes[-1].reason, server.outcomes[-1].close_code) == ("closed", 1000)


async def test_shutdown_closes_live_streams_with_service_restart(served) -> None:
    server, _ = served
    mv = MiniVoiceMessages()
    async with connect(f"ws://127.0.0.1:{server.port}/s") as ws:
        await ws.send(mv.connected())
        await ws.send(mv.start())
        await ws.send(mv.media("inbound", 1, 0, FRAME))
        await (await ws.ping())  # the server has read everything before
        await server.stop()
        code = await _close_code(ws)

    assert code == 1012
    assert (server.outcomes[-1].reason, server.outcomes[-1].close_code) == ("shutdown", 1012)


async def test_every_read_goes_to_the_frame_reader_and_only_control_frames_reach_websockets(tmp_path: Path) -> None:
    """The event loop (asyncio and uvloop alike) calls the reader for each read: what it hands
    websockets' own ``data_received`` is the ping alone, never a media frame."""
    settings = Settings(host="127.0.0.1", port=0, recordings_dir=str(tmp_path / "rec"), log_format="json")
    sinks, factory = recording_sinks()

    handed: list[bytes] = []
    mv = MiniVoiceMessages()
    async with ReceiverServer(settings, sinks=[factory]) as server:
        async with connect(f"ws://127.0.0.1:{server.port}/s") as ws:
            await ws.send(mv.connected())
            await (await ws.ping(b"first"))  # the server holds the connection now
            (conn,) = server._server.connections  # type: ignore[union-attr]
            reader = conn._reader
            assert conn.data_received == reader.feed
            to_websockets = reader.websockets_data_received

            def note(data: bytes) -> None:
                handed.append(bytes(data))
                to_websockets(data)

            reader.websockets_data_received = note
            await ws.send(mv.start())
            for i in range(5):
                await ws.send(mv.media("inbound", i + 1, 20 * i, FRAME))
                await ws.send(mv.media("outbound", i + 1, 20 * i, FRAME))
            await (await ws.ping(b"second"))
            await ws.send(mv.stop())
            await _close_code(ws)
        await wait_streams_done(server)

    assert len(sinks[0].audio(Track.INBOUND)) == 5 * 160
    assert [data[0] & 0x0F for data in handed[:1]] == [0x9]  # the ping, whole and alone
    assert all(data[0] & 0x0F in (0x8, 0x9, 0xA) for data in handed)  # then, at most, the close
    assert reader.fast


def _reader(**kwargs: object) -> FrameReader:
    return FrameReader(ServerProtocol(**kwargs), lambda data: None)  # type: ignore[arg-type]


def test_the_reader_sees_the_state_websockets_reports_as_the_connection_opens_and_closes() -> None:
    reader = _reader()
    protocol = reader.protocol
    seen = []
    for step in (None, "open", "close", "eof"):
        if step == "open":
            protocol.state = State.OPEN
        elif step == "close":
            protocol.send_close(1000)
        elif step == "eof":
            protocol.receive_eof()
        seen.append((protocol.state, reader.is_open()))
    assert seen == [(State.CONNECTING, False), (State.OPEN, True), (State.CLOSING, False), (State.CLOSED, False)]
    # websockets 15-17 (pyproject): its property returns ``_state``, so that is what the reader reads.
    assert reader.state_attr == "_state"


class _Computed:
    @property
    def state(self) -> State:
        return State.OPEN if self._open else State.CLOSED  # type: ignore[attr-defined]


class _Plain:
    state = State.OPEN


class _Overridden(ServerProtocol):
    """A protocol that keeps its state elsewhere: ``_state`` is never set."""

    @property
    def state(self) -> State:
        return self._kept  # type: ignore[no-any-return]

    @state.setter
    def state(self, value: State) -> None:
        self._kept = value


class _Inherited(ServerProtocol):
    pass


@pytest.mark.parametrize(
    ("cls", "attribute"),
    [
        (ServerProtocol, "_state"),
        (_Inherited, "_state"),
        (_Computed, "state"),
        (_Plain, "state"),
        (_Overridden, "state"),
    ],
)
def test_the_private_state_is_read_only_where_the_property_just_returns_it(cls: type, attribute: str) -> None:
    assert state_attribute(cls) == attribute


def test_a_protocol_whose_state_is_kept_elsewhere_is_read_through_its_property() -> None:
    protocol = _Overridden()
    reader = FrameReader(protocol, lambda data: None)
    assert reader.state_attr == "state" and not reader.is_open()
    protocol.state = State.OPEN
    assert reader.is_open() and not hasattr(protocol, "_state")


@pytest.mark.parametrize(("max_size", "limit"), [(None, -1), (1000, 1000), (2**20, 2**20)])
def test_the_size_limit_is_taken_once_from_the_protocol(max_size: int | None, limit: int) -> None:
    assert _reader(max_size=max_size).limit == limit
