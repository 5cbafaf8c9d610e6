"""Delayed ACKs (receiver/stream/server.py): a stream's socket ACKs every second segment, not each read.

Read from the real socket's TCP_QUICKACK, which the kernel reports as whether the socket is in
its quick-ACK mode (1) or its delayed-ACK mode (0).
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs
from websockets.asyncio.client import ClientConnection, connect

from receiver.app import ReceiverServer
from receiver.config import Settings
from receiver.stream import server as server_module
from receiver.stream.handler import StreamHandler
from receiver.testing import MiniVoiceMessages

from .conftest import wait_streams_done

pytestmark = pytest.mark.skipif(not hasattr(socket, "TCP_QUICKACK"), reason="TCP_QUICKACK is Linux's")

FRAME = bytes(range(96, 256))


def _settings(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(host="127.0.0.1", port=0, recordings_dir=str(tmp_path / "rec"), log_format="json", **overrides)


def _server_socket(stream: StreamHandler) -> Any:
    return stream.ws.transport.get_extra_info("socket")


def _quick(stream: StreamHandler) -> int:
    """The server side's TCP_QUICKACK, read from its socket (not through the server's own helper)."""
    return int(_server_socket(stream).getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK))


def _only_stream(server: ReceiverServer) -> StreamHandler:
    (stream,) = server._streams.values()
    return stream


async def _started(server: ReceiverServer, mv: MiniVoiceMessages) -> AsyncIterator[ClientConnection]:
    async with connect(f"ws://127.0.0.1:{server.port}/s") as ws:
        await ws.send(mv.connected())
        await ws.send(mv.start())
        await (await ws.ping())  # the server has taken both
        yield ws


async def _media(ws: ClientConnection, mv: MiniVoiceMessages, k: int) -> None:
    """One inbound frame, then a ping answered: the server has taken the frame."""
    await ws.send(mv.media("inbound", k + 1, 20 * k, FRAME))
    await (await ws.ping())


def _set_quick(stream: StreamHandler) -> None:
    """Quick-ACK mode on the server's side. The kernel also enters delayed-ACK mode by itself
    when a socket answers what it receives (the server answered the handshake and the pings):
    the tests start from quick-ACK mode, as a socket is after a pause in its stream."""
    _server_socket(stream).setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
    assert _quick(stream) == 1


def _next_first_media(
    server: ReceiverServer, stream: StreamHandler, track: str = "inbound"
) -> asyncio.Future[tuple[int, int]]:
    """The socket's mode just before and just after the server takes the stream's next ``track``
    frame as its first media frame (``stream.first_media`` set again until then): no reply is
    sent meanwhile."""
    taken: asyncio.Future[tuple[int, int]] = asyncio.get_running_loop().create_future()
    first_media = server._first_media

    def noted(stream: StreamHandler, frame_track: str) -> None:
        before = _quick(stream)
        first_media(stream, frame_track)
        if frame_track != track:
            stream.first_media = True
        elif not taken.done():
            taken.set_result((before, _quick(stream)))

    server._first_media = noted  # type: ignore[method-assign]
    stream.first_media = True
    return taken


async def _first_frame(server: ReceiverServer, ws: ClientConnection, mv: MiniVoiceMessages) -> tuple[int, int]:
    taken = _next_first_media(server, _only_stream(server))
    await ws.send(mv.media("inbound", 1, 0, FRAME))
    return await asyncio.wait_for(taken, 10)


async def test_a_streams_socket_delays_its_acks_from_the_first_media_frame(tmp_path: Path) -> None:
    mv = MiniVoiceMessages()
    async with ReceiverServer(_settings(tmp_path)) as server:
        async for ws in _started(server, mv):
            stream = _only_stream(server)
            assert stream.ack_misses == -1
            _set_quick(stream)
            assert await _first_frame(server, ws, mv) == (1, 0)
            assert stream.ack_misses == 0
            await _media(ws, mv, 1)
            server._check_acks()  # still in the mode: nothing to do
            assert _quick(stream) == 0
            assert stream.ack_misses == 0
            await ws.send(mv.stop())
        await wait_streams_done(server)


async def test_delayed_acks_false_leaves_the_kernel_alone(tmp_path: Path) -> None:
    mv = MiniVoiceMessages()
    async with ReceiverServer(_settings(tmp_path, delayed_acks=False)) as server:
        assert server._acks_task is None
        async for ws in _started(server, mv):
            stream = _only_stream(server)
            _set_quick(stream)
            assert await _first_frame(server, ws, mv) == (1, 1)
            assert stream.ack_misses == -1
            server._check_acks()
            assert _quick(stream) == 1
            await ws.send(mv.stop())
        await wait_streams_done(server)


def test_delayed_acks_are_on_by_default_and_false_turns_them_off(tmp_path: Path) -> None:
    assert Settings().delayed_acks is True
    config = tmp_path / "c.toml"
    config.write_text("[media]\ndelayed_acks = false\n")
    assert Settings.load(config, env={}).delayed_acks is False
    assert Settings.load(None, env={"RECEIVER_DELAYED_ACKS": "false"}).delayed_acks is False


async def test_the_check_sets_the_mode_again_and_gives_a_stream_up_after_three_misses_in_a_row(
    tmp_path: Path,
) -> None:
    mv = MiniVoiceMessages()
    async with ReceiverServer(_settings(tmp_path)) as server:
        async for ws in _started(server, mv):
            await _media(ws, mv, 0)
            stream = _only_stream(server)
            kernel_leaves_the_mode = _set_quick  # as the kernel does when its delayed-ACK timer fires
            with capture_logs() as logs:
                for misses in (1, 2):
                    kernel_leaves_the_mode(stream)
                    server._check_acks()
                    assert (_quick(stream), stream.ack_misses) == (0, misses)
                server._check_acks()  # a check that finds the mode kept starts the count again
                assert stream.ack_misses == 0
                for misses in (1, 2):
                    kernel_leaves_the_mode(stream)
                    server._check_acks()
                    assert (_quick(stream), stream.ack_misses) == (0, misses)
                kernel_leaves_the_mode(stream)
                server._check_acks()  # the third in a row: left in quick-ACK mode
                assert (_quick(stream), stream.ack_misses) == (1, -1)
                server._check_acks()
                assert _quick(stream) == 1
            off = [line for line in logs if line["event"] == "delayed_acks_off"]
            assert len(off) == 1
            assert off[0]["checks"] == server_module.ACK_MISSES
            await ws.send(mv.stop())
        await wait_streams_done(server)


async def test_a_stream_whose_connection_closed_before_it_left_is_let_go(tmp_path: Path) -> None:
    mv = MiniVoiceMessages()
    async with ReceiverServer(_settings(tmp_path)) as server:
        async for ws in _started(server, mv):
            await _media(ws, mv, 0)
            stream = _only_stream(server)
            assert stream.ack_misses == 0
            await ws.send(mv.stop())
        await wait_streams_done(server)
        # The check can find a stream whose socket is closed but which the server has not let go yet.
        assert server_module._quick_acks(stream.ws) is None
        server._streams[stream.ws] = stream
        try:
            server._check_acks()
        finally:
            del server._streams[stream.ws]
        assert stream.ack_misses == -1


@pytest.mark.skipif(sys.platform != "linux", reason="the kernel's delayed-ACK timer")
async def test_a_sender_that_waits_for_acks_takes_the_socket_out_of_the_mode(tmp_path: Path) -> None:
    """A sender with Nagle's algorithm on holds a small segment while one is unacknowledged.
    In delayed-ACK mode the receiver's kernel ACKs the first only when its timer fires, and
    the timer's firing takes the socket back to quick-ACK mode: what the check counts."""
    mv = MiniVoiceMessages()
    async with ReceiverServer(_settings(tmp_path)) as server:
        async for ws in _started(server, mv):
            ws.transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)  # Nagle on
            stream = _only_stream(server)
            await _media(ws, mv, 0)  # armed; the ping answered, nothing unacknowledged either way
            assert _quick(stream) == 0
            # Frame 2 leaves at once; frame 3 waits for frame 2's ACK, which the server's kernel
            # sends when its delayed-ACK timer fires (40 ms at the least).
            await ws.send(mv.media("inbound", 2, 20, FRAME))
            taken = _next_first_media(server, stream, "outbound")
            sent = asyncio.get_running_loop().time()
            await ws.send(mv.media("outbound", 1, 0, FRAME))
            before, after = await asyncio.wait_for(taken, 10)
            waited = asyncio.get_running_loop().time() - sent
            assert (before, after) == (1, 0)  # the timer had fired; the first-media path set the mode again
            assert waited >= 0.02  # held back by the sender until the timer's ACK
            _set_quick(stream)  # as the timer left it
            server._check_acks()
            assert (_quick(stream), stream.ack_misses) == (0, 1)
            await ws.send(mv.stop())
        await wait_streams_done(server)
    assert server.outcomes[-1].reason == "stop_stream"
