"""The attacks of issue #13 against a real receiver over loopback sockets: each is refused,
bounded or answered with a clear close code or HTTP status, and one log line."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from structlog.testing import capture_logs
from websockets.asyncio.client import connect

from receiver.config import Settings
from receiver.security.auth import twilio_signature
from receiver.testing import MiniVoiceMessages

from .test_security_server import SECRET, closed, no_streams, running, url


async def raw_upgrade(port: int, path: str, headers: dict[str, str]) -> bytes:
    """Send one hand-written upgrade request; return the status line of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        lines = [f"GET {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers.items()]
        lines += ["Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                  "Sec-WebSocket-Version: 13"]  # fmt: skip
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()


def security_lines(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] in ("stream_refused", "limit_hit")]


# -- 6: a bad Host next to X-Twilio-Signature ----------------------------------------------


@pytest.mark.parametrize("host", ["a:b", "[::1", "media.example.com:70000"])
async def test_a_bad_host_with_a_twilio_signature_is_a_400_and_one_log_line(settings: Settings, host: str) -> None:
    with capture_logs() as logs:
        async with running(settings, twilio_auth_token="tw-token") as (server, _):
            status = await raw_upgrade(server.port, "/twilio", {"Host": host, "X-Twilio-Signature": "c2ln"})

    assert status.startswith(b"HTTP/1.1 400")
    assert [(e["reason"], e["status"]) for e in security_lines(logs)] == [("bad_host", 400)]
    assert not [e for e in logs if e["log_level"] in ("error", "critical")]
    assert server.guard.counts["refused_bad_host"] == 1


async def test_a_good_twilio_signature_still_passes_with_a_port_in_the_host(settings: Settings) -> None:
    async with running(settings, twilio_auth_token="tw-token") as (server, _):
        host = f"127.0.0.1:{server.port}"
        good = twilio_signature("tw-token", f"wss://{host}/twilio")
        status = await raw_upgrade(server.port, "/twilio", {"Host": host, "X-Twilio-Signature": good})

    assert status.startswith(b"HTTP/1.1 101")


# -- 7: credentials in logged paths ----------------------------------------------------------


@pytest.mark.parametrize(
    "query", ["TOKEN=hunter2secret", "Token=hunter2secret", "access_token=hunter2secret", "apiKey=hunter2secret",
              "x=v1.9999999999.Y2FsbA.hunter2secret", "Signature=hunter2secret"],
)  # fmt: skip
async def test_no_credential_looking_query_value_reaches_the_log(settings: Settings, query: str) -> None:
    with capture_logs() as logs:
        async with running(settings, auth_secrets=(SECRET,), start_timeout=0.2) as (server, _):
            async with connect(url(server, f"/mv?a=1&{query}")) as ws:
                messages = MiniVoiceMessages()
                await ws.send(messages.connected())
                await ws.send(messages.start())  # no start token: refused with 1008
                assert (await closed(ws))[0] == 1008
            await no_streams(server)

    assert any("redacted" in str(e.get("path")) for e in logs)
    assert "hunter2secret" not in repr(logs)
