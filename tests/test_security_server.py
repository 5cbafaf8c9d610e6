"""Authentication, limits, drain and TLS end to end, over real loopback sockets."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.client
import json
import ssl
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from receiver.app import ReceiverServer
from receiver.config import Settings
from receiver.security.auth import sign_stream_url, stream_token, twilio_signature
from receiver.sinks import StreamInfo
from receiver.testing import MiniVoiceMessages, RecordingSink, TwilioMessages

from .conftest import wait_streams_done

SECRET = "receiver-test-secret"
FRAME = b"\x7f" * 160


class Sinks:
    """A sink factory that keeps every sink it made."""

    def __init__(self) -> None:
        self.made: list[RecordingSink] = []
        self._changed = asyncio.Event()

    def __call__(self, info: StreamInfo) -> RecordingSink:
        sink = RecordingSink()
        self.made.append(sink)
        self._changed.set()
        return sink

    async def wait(self, count: int = 1) -> None:
        """Wait until ``count`` streams have started (their sinks exist)."""

        async def made() -> None:
            while len(self.made) < count:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(made(), 10)


@asynccontextmanager
async def running(settings: Settings, **changes: Any) -> AsyncIterator[tuple[ReceiverServer, Sinks]]:
    sinks = Sinks()
    async with ReceiverServer(settings.replace(wav=False, **changes), sinks=[sinks]) as server:
        yield server, sinks


def url(server: ReceiverServer, path: str = "/mv", scheme: str = "ws") -> str:
    return f"{scheme}://127.0.0.1:{server.port}{path}"


async def stream_minivoice(ws: ClientConnection, messages: MiniVoiceMessages, *, frames: int = 5, **start: Any) -> None:
    await ws.send(messages.connected())
    await ws.send(messages.start(**start))
    for i in range(frames):
        await ws.send(messages.media("inbound", i + 1, 20 * i, FRAME))


async def closed(ws: ClientConnection, within: float = 10.0) -> tuple[int | None, str | None]:
    await asyncio.wait_for(ws.wait_closed(), within)
    return ws.close_code, ws.close_reason


async def refused_status(target: str, **kwargs: Any) -> int:
    with pytest.raises(InvalidStatus) as caught:
        async with connect(target, **kwargs):
            pass
    return caught.value.response.status_code


async def no_streams(server: ReceiverServer, within: float = 10.0) -> None:
    """Wait until no stream is live (started or not)."""

    async def wait() -> None:
        while server.active_streams:
            server.stream_ended.clear()
            if not server.active_streams:
                return
            await server.stream_ended.wait()

    await asyncio.wait_for(wait(), within)


def signed(server: ReceiverServer, call_id: str = "call_test", expires_in: int = 60, secret: str = SECRET) -> str:
    return sign_stream_url(url(server), call_id=call_id, secret=secret, expires_at=int(time.time()) + expires_in)


# -- authentication --------------------------------------------------------------


async def test_no_auth_configured_warns_loudly_at_start(settings: Settings) -> None:
    with capture_logs() as logs:
        async with running(settings):
            pass

    assert [e for e in logs if e["event"] == "auth_disabled" and e["log_level"] == "warning"]


async def test_signed_stream_url_is_accepted_and_the_token_never_logged(settings: Settings) -> None:
    with capture_logs() as logs:
        async with running(settings, auth_secrets=(SECRET,)) as (server, sinks):
            target = signed(server)
            async with connect(target, additional_headers={"X-MiniVoice-Call-Id": "call_test"}) as ws:
                messages = MiniVoiceMessages()
                await stream_minivoice(ws, messages)
                await ws.send(messages.stop())
                assert await closed(ws) == (1000, "")
            await wait_streams_done(server)

    assert len(sinks.made) == 1 and sinks.made[0].outcome is not None
    assert sinks.made[0].outcome.reason == "stop_stream"
    token = target.split("token=")[1]
    assert token not in repr(logs) and SECRET not in repr(logs)
    assert any(e["event"] == "stream_authenticated" and e["method"] == "url_token" for e in logs)


@pytest.mark.parametrize("case", ["missing", "expired", "forged", "wrong_call_header"])
async def test_bad_stream_url_is_refused_at_the_handshake(settings: Settings, case: str) -> None:
    async with running(settings, auth_secrets=(SECRET,), auth_start_token=False) as (server, sinks):
        headers = {"X-MiniVoice-Call-Id": "call_test"}
        target = {
            "missing": url(server),
            "expired": signed(server, expires_in=-5),
            "forged": signed(server, secret="not-the-secret"),
            "wrong_call_header": signed(server, call_id="call_other"),
        }[case]

        status = await refused_status(target, additional_headers=headers)

    assert status == 401
    assert sinks.made == []
    assert server.active_streams == 0


async def test_url_token_replayed_for_another_call_is_closed_1008_before_any_sink(settings: Settings) -> None:
    async with running(settings, auth_secrets=(SECRET,)) as (server, sinks):
        async with connect(signed(server, call_id="call_a")) as ws:  # no call-id header: checked at start
            await stream_minivoice(ws, MiniVoiceMessages(call_id="call_b"))
            code, reason = await closed(ws)
        await no_streams(server)

    assert (code, reason) == (1008, "policy violation")
    assert sinks.made == []
    assert server.outcomes == []  # the stream never started a pipeline


@pytest.mark.parametrize("case", ["good", "missing", "expired", "forged", "other_call"])
async def test_start_parameter_token_for_twilio(settings: Settings, case: str) -> None:
    """Twilio strips query strings: the token comes in the start message's customParameters."""
    now = int(time.time())
    token = {
        "good": stream_token(call_id="CAtest", secret=SECRET, expires_at=now + 60),
        "missing": None,
        "expired": stream_token(call_id="CAtest", secret=SECRET, expires_at=now - 60),
        "forged": stream_token(call_id="CAtest", secret="guess", expires_at=now + 60),
        "other_call": stream_token(call_id="CAother", secret=SECRET, expires_at=now + 60),
    }[case]
    with capture_logs() as logs:
        async with running(settings, auth_secrets=(SECRET,)) as (server, sinks):
            async with connect(url(server, "/twilio")) as ws:
                messages = TwilioMessages()
                await ws.send(messages.connected())
                await ws.send(
                    messages.start(custom_parameters={"token": token, "agent": "x"} if token else {"agent": "x"})
                )
                for i in range(5):
                    await ws.send(messages.media("inbound", i + 1, 20 * i, FRAME))
                await ws.send(messages.stop())
                code, _ = await closed(ws)
            await no_streams(server)

    if case == "good":
        assert code == 1000
        assert sinks.made[0].info is not None
        assert dict(sinks.made[0].info.custom_parameters) == {"agent": "x"}  # the token is not passed on
        assert len(sinks.made[0].audio(sinks.made[0].info.tracks[0])) == 800
    else:
        assert code == 1008
        assert sinks.made == []
    if token:
        assert token not in repr(logs)


async def test_bearer_token_on_the_upgrade(settings: Settings) -> None:
    async with running(settings, auth_bearer_tokens=("bearer-1",)) as (server, sinks):
        async with connect(url(server), additional_headers={"Authorization": "Bearer bearer-1"}) as ws:
            messages = MiniVoiceMessages()
            await stream_minivoice(ws, messages)
            await ws.send(messages.stop())
            assert (await closed(ws))[0] == 1000
        assert await refused_status(url(server), additional_headers={"Authorization": "Bearer bearer-2"}) == 401
        assert await refused_status(url(server)) == 401
    assert len(sinks.made) == 1


async def test_basic_credentials_on_the_upgrade(settings: Settings) -> None:
    async with running(settings, auth_basic_users=("signalwire:pa55",)) as (server, sinks):
        async with connect(f"ws://signalwire:pa55@127.0.0.1:{server.port}/sw") as ws:
            messages = MiniVoiceMessages()
            await stream_minivoice(ws, messages)
            await ws.send(messages.stop())
            assert (await closed(ws))[0] == 1000
        wrong = base64.b64encode(b"signalwire:nope").decode()
        assert await refused_status(url(server), additional_headers={"Authorization": f"Basic {wrong}"}) == 401
    assert len(sinks.made) == 1


async def test_twilio_signature_on_the_upgrade(settings: Settings) -> None:
    async with running(settings, twilio_auth_token="tw-token", public_base_url="wss://media.example.com") as (
        server,
        sinks,
    ):
        good = twilio_signature("tw-token", "wss://media.example.com:443/twilio")
        async with connect(url(server, "/twilio"), additional_headers={"X-Twilio-Signature": good}) as ws:
            messages = TwilioMessages()
            await ws.send(messages.connected())
            await ws.send(messages.start())
            await ws.send(messages.stop())
            assert (await closed(ws))[0] == 1000
        forged = twilio_signature("guess", "wss://media.example.com/twilio")
        assert await refused_status(url(server, "/twilio"), additional_headers={"X-Twilio-Signature": forged}) == 401
        replayed = twilio_signature("tw-token", "wss://media.example.com/other")
        assert await refused_status(url(server, "/twilio"), additional_headers={"X-Twilio-Signature": replayed}) == 401
    assert len(sinks.made) == 1


async def test_ip_allowlist_refuses_other_addresses_with_403(settings: Settings) -> None:
    async with running(settings, ip_allowlist=("192.0.2.0/24",)) as (server, sinks):
        assert await refused_status(url(server)) == 403
        # A forwarded address counts only from a trusted proxy.
        assert await refused_status(url(server), additional_headers={"X-Forwarded-For": "192.0.2.1"}) == 403
    async with running(settings, ip_allowlist=("192.0.2.0/24",), trusted_proxies=("127.0.0.1",)) as (server, sinks):
        async with connect(url(server), additional_headers={"X-Forwarded-For": "192.0.2.1"}) as ws:
            messages = MiniVoiceMessages()
            await stream_minivoice(ws, messages)
            await ws.send(messages.stop())
            assert (await closed(ws))[0] == 1000
        assert await refused_status(url(server), additional_headers={"X-Forwarded-For": "198.51.100.1"}) == 403
    async with running(settings, ip_allowlist=("127.0.0.0/8",)) as (server, sinks), connect(url(server)) as ws:
        await ws.send(MiniVoiceMessages().connected())
    assert server.guard.counts["refused_address_not_allowed"] == 0


async def test_refusals_are_counted_and_logged_without_secrets(settings: Settings) -> None:
    with capture_logs() as logs:
        async with running(
            settings, auth_secrets=(SECRET,), auth_bearer_tokens=("bearer-secret",), auth_start_token=False
        ) as (server, _):
            await refused_status(url(server), additional_headers={"Authorization": "Bearer guessed-token"})
            await refused_status(signed(server, expires_in=-1))
            counts = dict(server.guard.counts)

    assert counts == {"refused_bad_bearer_token": 1, "refused_token_expired": 1}
    refusals = [e for e in logs if e["event"] == "stream_refused"]
    assert [e["reason"] for e in refusals] == ["bad_bearer_token", "token_expired"]
    text = repr(logs)
    for secret in (SECRET, "bearer-secret", "guessed-token"):
        assert secret not in text
    assert "token=redacted" in refusals[1]["path"]


# -- limits ----------------------------------------------------------------------


async def test_over_max_streams_is_refused_with_503_at_the_handshake(settings: Settings) -> None:
    async with running(settings, max_streams=1) as (server, sinks):
        async with connect(url(server)) as first:
            await stream_minivoice(first, MiniVoiceMessages())
            await sinks.wait()
            assert await refused_status(url(server)) == 503
        assert server.guard.counts["limit_capacity"] == 1


async def test_over_max_streams_after_the_handshake_closes_1013(settings: Settings) -> None:
    async with running(settings, max_streams=1) as (server, sinks):
        server.guard.max_streams = 10  # let a second handshake through, as a race would
        async with connect(url(server)) as first:
            await stream_minivoice(first, MiniVoiceMessages())
            await sinks.wait()
            async with connect(url(server)) as second:
                assert await closed(second) == (1013, "capacity")


async def test_message_rate_limit_closes_4429(settings: Settings) -> None:
    with capture_logs() as logs:
        async with running(settings, max_messages_per_second=10, rate_window=100.0, max_media_lead_seconds=0) as (
            server,
            sinks,
        ):
            async with connect(url(server)) as ws:
                messages = MiniVoiceMessages()
                with contextlib.suppress(ConnectionClosed):  # sends may outrun the close
                    await stream_minivoice(ws, messages, frames=2000)
                assert await closed(ws) == (4429, "rate")
            await wait_streams_done(server)

    assert server.outcomes[0].reason == "rate"
    assert sinks.made[0].outcome is not None and sinks.made[0].outcome.close_code == 4429
    assert [e["limit"] for e in logs if e["event"] == "limit_hit"] == ["rate"]
    assert server.guard.counts["limit_rate"] == 1


async def test_idle_stream_closes_4408(settings: Settings) -> None:
    async with running(settings, idle_timeout=0.2) as (server, sinks):
        async with connect(url(server)) as ws:
            await stream_minivoice(ws, MiniVoiceMessages())
            assert await closed(ws) == (4408, "idle")
        await wait_streams_done(server)

    assert server.outcomes[0].reason == "idle"
    assert sinks.made[0].outcome is not None and sinks.made[0].outcome.samples == 800
    assert server.guard.counts["limit_idle"] == 1


async def test_no_start_in_time_closes_4408(settings: Settings) -> None:
    with capture_logs() as logs:
        async with running(settings, start_timeout=0.2) as (server, _), connect(url(server)) as ws:
            await ws.send(MiniVoiceMessages().connected())
            assert await closed(ws) == (4408, "start timeout")

    assert [e["limit"] for e in logs if e["event"] == "limit_hit"] == ["start_timeout"]


async def test_max_stream_duration_closes_1008(settings: Settings) -> None:
    async with running(settings, max_stream_seconds=0.3) as (server, sinks):
        async with connect(url(server)) as ws:
            messages = MiniVoiceMessages()
            await stream_minivoice(ws, messages)
            chunk = 6
            while ws.close_code is None:  # keep streaming until the server ends it
                try:
                    await ws.send(messages.media("inbound", chunk, 20 * (chunk - 1), FRAME))
                    await asyncio.wait_for(asyncio.shield(ws.wait_closed()), 0.02)
                except (ConnectionClosed, TimeoutError):
                    pass
                chunk += 1
            assert (ws.close_code, ws.close_reason) == (1008, "max duration")
        await wait_streams_done(server)

    assert server.outcomes[0].reason == "max_duration"


async def test_message_over_the_size_limit_closes_1009(settings: Settings) -> None:
    async with running(settings, max_message_bytes=1024) as (server, _):
        async with connect(url(server), max_size=None) as ws:
            await ws.send(MiniVoiceMessages().connected())
            await ws.send("x" * 2000)
            assert (await closed(ws))[0] == 1009
        await no_streams(server)
        assert server.guard.counts["limit_message_size"] == 1


async def test_handshake_timeout_drops_a_silent_connection(settings: Settings) -> None:
    with capture_logs() as logs:
        async with running(settings, handshake_timeout=0.2) as (server, _):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            assert await asyncio.wait_for(reader.read(), 10) == b""  # the server hung up
            writer.close()
            await writer.wait_closed()
            counts = dict(server.guard.counts)

    assert counts.get("limit_handshake_timeout") == 1
    assert [e["limit"] for e in logs if e["event"] == "limit_hit"] == ["handshake_timeout"]


# -- drain -----------------------------------------------------------------------


def _get(port: int, path: str) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


async def test_drain_refuses_new_streams_lets_live_ones_finish_then_closes_the_rest_1012(settings: Settings) -> None:
    async with running(settings) as (server, sinks):
        first, second = MiniVoiceMessages(stream_id="s1", call_id="c1"), MiniVoiceMessages(stream_id="s2", call_id="c2")
        async with connect(url(server)) as ws1, connect(url(server)) as ws2:
            await stream_minivoice(ws1, first)
            await stream_minivoice(ws2, second)
            await sinks.wait(2)
            hurry = asyncio.Event()
            draining = asyncio.create_task(server.drain(3600, hurry=hurry))
            await asyncio.sleep(0)  # one step of the drain task: it turns draining on before it awaits
            assert server.draining

            assert (await asyncio.to_thread(_get, server.port, "/readyz"))[0] == 503
            assert (await asyncio.to_thread(_get, server.port, "/healthz"))[0] == 200
            assert await refused_status(url(server)) == 503
            # A live stream goes on, and ends normally.
            await ws1.send(first.media("inbound", 6, 100, FRAME))
            await ws1.send(first.stop())
            assert (await closed(ws1))[0] == 1000
            assert not draining.done()
            hurry.set()  # a second signal
            assert await closed(ws2) == (1012, "service restart")
            await draining

    outcomes = {s.info.stream_id: s.outcome for s in sinks.made if s.info and s.outcome}
    assert outcomes["s1"].reason == "stop_stream" and outcomes["s1"].samples == 960
    assert outcomes["s2"].reason == "shutdown" and outcomes["s2"].close_code == 1012 and outcomes["s2"].samples == 800


async def test_drain_timeout_closes_what_is_left_with_1012(settings: Settings) -> None:
    async with running(settings) as (server, sinks), connect(url(server)) as ws:
        await stream_minivoice(ws, MiniVoiceMessages())
        await sinks.wait()
        await server.drain(0.1)
        assert await closed(ws) == (1012, "service restart")

    assert sinks.made[0].outcome is not None and sinks.made[0].outcome.close_code == 1012


# -- TLS -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_tls_serves_wss_with_a_self_signed_certificate(
    settings: Settings, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    client = ssl.create_default_context(cafile=str(cert))
    async with running(settings, tls_certfile=str(cert), tls_keyfile=str(key), auth_bearer_tokens=("tok",)) as (
        server,
        sinks,
    ):
        async with connect(
            url(server, scheme="wss"), ssl=client, additional_headers={"Authorization": "Bearer tok"}
        ) as ws:
            messages = MiniVoiceMessages()
            await stream_minivoice(ws, messages)
            await ws.send(messages.stop())
            assert (await closed(ws))[0] == 1000
        # Plain ws:// to the TLS port does not get a WebSocket.
        with pytest.raises((InvalidStatus, ConnectionError, OSError, EOFError, Exception)):  # noqa: B017
            async with connect(url(server), open_timeout=5):
                pass
        # A client that does not trust the certificate refuses it.
        with pytest.raises(ssl.SSLCertVerificationError):
            async with connect(url(server, scheme="wss"), ssl=ssl.create_default_context(), open_timeout=5):
                pass
    assert sinks.made[0].outcome is not None and sinks.made[0].outcome.samples == 800


def test_tls_with_a_bad_key_is_a_config_error(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    from receiver.errors import ConfigError
    from receiver.security.tls import server_context

    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    with pytest.raises(ConfigError):
        server_context(str(certificate[0]), str(bad))
