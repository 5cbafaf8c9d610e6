"""A stream rejected while its peer is still sending fast ends at once, not after close_timeout."""

from __future__ import annotations

import asyncio

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from receiver.app import ReceiverServer
from receiver.testing import MiniVoiceMessages


async def test_a_rejected_stream_ends_while_the_peer_keeps_sending(server: ReceiverServer) -> None:
    """Before the fix the peer's close frame sat unread behind a full queue for 10 s."""
    m = MiniVoiceMessages()
    async with connect(f"ws://127.0.0.1:{server.port}/x", max_queue=None) as ws:
        await ws.send(m.connected())
        await ws.send(m.start())
        for k in range(40):
            await ws.send(m.media("inbound", k + 1, 20 * k, b"\xff" * 160))
        await ws.send("{not json")
        try:
            for k in range(40, 400):
                await ws.send(m.media("inbound", k + 1, 20 * k, b"\xff" * 160))
        except ConnectionClosed:
            pass

        async def ended() -> None:
            while not server.outcomes or server.active_streams:
                server.stream_ended.clear()
                if server.outcomes and not server.active_streams:
                    return
                await server.stream_ended.wait()

        # Well under websockets' 10 s close_timeout, which the bug waited out.
        await asyncio.wait_for(ended(), 5)
        await ws.wait_closed()

    assert server.outcomes[-1].reason == "malformed_message"
    assert server.outcomes[-1].close_code == 4400
    assert ws.close_code == 4400
