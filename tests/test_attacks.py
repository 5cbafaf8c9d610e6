"""The attacks of issue #13 against a real receiver over loopback sockets: each is refused,
bounded or answered with a clear close code or HTTP status, and one log line."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import wave
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import orjson
import pytest
from structlog.testing import capture_logs
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from receiver.app import ReceiverServer
from receiver.calls.listener import WebhookService
from receiver.calls.webhooks import parse_webhook
from receiver.config import Settings
from receiver.errors import ConfigError
from receiver.security.auth import stream_token, twilio_signature
from receiver.testing import MiniVoiceMessages

from .conftest import wait_streams_done
from .test_security_server import SECRET, closed, no_streams, running, url
from .webhook_support import SEED_CALL_COMPLETED, webhook


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
        async with running(settings, auth_secrets=(SECRET,)) as (server, _):
            async with connect(url(server, f"/mv?a=1&{query}")) as ws:
                messages = MiniVoiceMessages()
                await ws.send(messages.connected())
                await ws.send(messages.start())  # no start token: refused with 1008
                assert (await closed(ws))[0] == 1008
            await no_streams(server)

    assert any("redacted" in str(e.get("path")) for e in logs)
    assert "hunter2secret" not in repr(logs)


# -- 1, 2: recordings and call records ---------------------------------------------------------

FRAMES = 25


@pytest.fixture
def hook_settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.replace(webhook_port=0, database=str(tmp_path / "calls.db"))


class Started:
    """An observer that counts started streams (to wait on, not sleep)."""

    def __init__(self) -> None:
        self.count = 0
        self.changed = asyncio.Event()

    def stream_started(self, info: object) -> None:
        self.count += 1
        self.changed.set()

    def stream_ended(self, info: object, outcome: object) -> None:
        pass

    async def wait(self, count: int) -> None:
        async with asyncio.timeout(10):
            while self.count < count:
                self.changed.clear()
                await self.changed.wait()


@asynccontextmanager
async def with_records(
    settings: Settings, started: Started | None = None
) -> AsyncIterator[tuple[WebhookService, ReceiverServer]]:
    observers = [] if started is None else [started]
    async with (
        WebhookService(settings) as hooks,
        ReceiverServer(settings, observers=[*hooks.observers, *observers]) as server,
    ):
        yield hooks, server


async def play(
    server: ReceiverServer,
    call_id: str,
    stream_id: str,
    byte: int,
    *,
    start: str | None = None,
    hold: asyncio.Event | None = None,
) -> None:
    """One two-track MiniVoice stream whose every payload byte is ``byte``; ``hold`` pauses it half way."""
    messages = MiniVoiceMessages(stream_id=stream_id, call_id=call_id)
    async with connect(f"ws://127.0.0.1:{server.port}/minivoice") as ws:
        await ws.send(messages.connected())
        await ws.send(start or messages.start())
        for chunk in range(1, FRAMES + 1):
            if hold is not None and chunk == FRAMES // 2:
                await hold.wait()
            for track in ("inbound", "outbound"):
                await ws.send(messages.media(track, chunk, (chunk - 1) * 20, bytes([byte]) * 160))
        await ws.send(messages.stop())
        await ws.wait_closed()


def wav_values(path: str) -> tuple[int, set[int]]:
    """A WAV file's frame count and the distinct sample values in it."""
    with wave.open(path) as w:
        frames = w.getnframes()
        return frames, set(np.frombuffer(w.readframes(frames), dtype="<i2").tolist())


async def test_two_streams_with_the_same_ids_at_once_each_keep_their_own_recording(hook_settings: Settings) -> None:
    started = Started()
    async with with_records(hook_settings, started) as (hooks, server):
        hold = asyncio.Event()
        first = asyncio.create_task(play(server, "call_dup", "str_dup", 0x7F, hold=hold))
        second = asyncio.create_task(play(server, "call_dup", "str_dup", 0x00, hold=hold))
        await started.wait(2)
        hold.set()  # both streams open, then both write
        await asyncio.gather(first, second)
        await wait_streams_done(server, 2)
        await hooks.store.flush()
        record = await hooks.store.get_call("call_dup")

    files = [path for outcome in server.outcomes for path in outcome.files]
    assert len(files) == len(set(files)) == 6
    values = [wav_values(path) for path in files if not path.endswith("stereo.wav")]
    assert [frames for frames, _ in values] == [FRAMES * 160] * 4
    assert all(len(distinct) == 1 for _, distinct in values)  # no file holds both streams' audio
    assert record is not None
    assert sorted(s["segment"] for s in record["streams"]) == [1, 2]
    assert sorted(len(s["files"]) for s in record["streams"]) == [3, 3]


async def test_a_reconnect_with_the_same_ids_is_a_new_segment_and_the_first_stays(hook_settings: Settings) -> None:
    async with with_records(hook_settings) as (hooks, server):
        await play(server, "call_re", "str_re", 0x7F)
        await wait_streams_done(server, 1)
        first = dict((Path(p).name, wav_values(p)) for p in server.outcomes[0].files)
        await play(server, "call_re", "str_re", 0x00)
        await wait_streams_done(server, 2)
        await hooks.store.flush()
        record = await hooks.store.get_call("call_re")

    assert sorted(first) == ["str_re.inbound.wav", "str_re.outbound.wav", "str_re.stereo.wav"]
    second = {Path(p).name for p in server.outcomes[1].files}
    assert second == {"str_re.2.inbound.wav", "str_re.2.outbound.wav", "str_re.2.stereo.wav"}
    for path in server.outcomes[0].files:
        assert wav_values(path) == first[Path(path).name]  # untouched
    assert record is not None and [s["segment"] for s in record["streams"]] == [1, 2]


@pytest.mark.parametrize(
    "ids",
    [
        (("victim/call", "s"), ("victim_call", "s")),
        (("c", "x" * 128 + "a"), ("c", "x" * 128 + "b")),
        (("c", "é" * 5), ("c", "ü" * 5)),
        (("a:b", "c"), ("a", "b:c")),
    ],
    ids=["separator", "long-prefix", "non-ascii", "colon"],
)
async def test_ids_that_used_to_fold_together_keep_their_own_files_and_records(
    hook_settings: Settings, ids: tuple[tuple[str, str], tuple[str, str]]
) -> None:
    async with with_records(hook_settings) as (hooks, server):
        for n, (call_id, stream_id) in enumerate(ids):
            await play(server, call_id, stream_id, 0x7F if n else 0x00)
            await wait_streams_done(server, n + 1)
        await hooks.store.flush()
        records = [await hooks.store.get_call(call_id) for call_id, _ in ids]

    files = [path for outcome in server.outcomes for path in outcome.files]
    assert len(set(files)) == 6
    for outcome in server.outcomes:
        for path in outcome.files:
            if not path.endswith("stereo.wav"):
                frames, distinct = wav_values(path)
                assert frames == FRAMES * 160 and len(distinct) == 1
    for record, (_, stream_id) in zip(records, ids, strict=True):
        assert record is not None
        assert stream_id in [s["stream_id"] for s in record["streams"]]
        [stream] = [s for s in record["streams"] if s["stream_id"] == stream_id]
        assert len(stream["files"]) == 3 and stream["stop_reason"] == "stop_stream"


async def test_a_stream_start_never_replaces_what_the_webhooks_said_about_the_call(hook_settings: Settings) -> None:
    forged = orjson.loads(MiniVoiceMessages(stream_id="str_forged", call_id="call_123").start())
    forged["start"].update({"from": "+19990000000", "to": "+19990000001", "customer_id": "cust_evil"})
    async with with_records(hook_settings) as (hooks, server):
        # The platform's webhook first (dated before the stream), then the forged start ...
        await hooks.store.record_webhook(parse_webhook(orjson.dumps(SEED_CALL_COMPLETED)))
        await play(server, "call_123", "str_forged", 0x7F, start=orjson.dumps(forged).decode())
        await wait_streams_done(server)
        # ... and a forged start first, then a webhook dated before it.
        await play(
            server,
            "call_late",
            "str_forged",
            0x7F,
            start=orjson.dumps(forged | {"start": forged["start"] | {"call_id": "call_late"}}).decode(),
        )
        await wait_streams_done(server, 2)
        await hooks.store.flush()
        await hooks.store.record_webhook(
            parse_webhook(
                orjson.dumps(webhook(SEED_CALL_COMPLETED, call_id="call_late", created_at="2020-01-01T00:00:00Z"))
            )
        )
        records = [await hooks.store.get_call("call_123"), await hooks.store.get_call("call_late")]

    for record in records:
        assert record is not None
        assert (record["from"], record["to"], record["customer_id"]) == ("+15551230001", "+15551230002", "cust_123")
        assert len(record["streams"]) == 1  # the stream is still part of the record


# -- 4, 8: the webhook port's credentials --------------------------------------------------------

START = '{"actions": [{"type": "start_stream", "stream_url": "wss://media.example.com/mv", "track": "both"}]}'


async def test_answer_refuses_to_sign_stream_urls_for_anyone_without_credentials(hook_settings: Settings) -> None:
    configured = hook_settings.replace(answer=True, answer_actions=START, auth_secrets=(SECRET,))

    with pytest.raises(ConfigError, match="anyone could get a valid stream URL"):
        async with WebhookService(configured):
            pass


async def test_with_credentials_answer_and_every_call_data_route_require_them(hook_settings: Settings) -> None:
    configured = hook_settings.replace(
        answer=True, answer_actions=START, auth_secrets=(SECRET,), webhook_secret="hook-secret"
    )
    async with WebhookService(configured) as hooks, aiohttp.ClientSession() as session:
        assert hooks.listener is not None
        base = f"http://127.0.0.1:{hooks.listener.port}"
        body = orjson.dumps({"event": "call.answered", "call": {"id": "victim"}})
        async with session.post(base + "/answer", data=body, headers={"Content-Type": "application/json"}) as r:
            assert r.status == 401
        for path in ("/calls", "/calls/victim", "/calls/victim/events", "/calls/victim/transcript"):
            async with session.get(base + path) as r:
                assert r.status == 401, path
        async with session.post(base + "/answer/hook-secret", data=body) as r:
            assert r.status == 200 and "token=v1." in (await r.json())["actions"][0]["stream_url"]


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "example.com"])
def test_the_webhook_port_beyond_loopback_needs_credentials_or_an_explicit_flag(host: str) -> None:
    from receiver.calls.listener import check_exposure

    settings = Settings(webhook_host=host)

    with pytest.raises(ConfigError, match="--insecure-webhooks"):
        check_exposure(settings)
    check_exposure(settings.replace(insecure_webhooks=True))
    check_exposure(settings.replace(webhook_secret="s"))
    check_exposure(settings.replace(webhook_host="127.0.0.1"))
    check_exposure(settings.replace(webhook_host="::1"))


def test_receiver_serve_on_every_address_without_webhook_credentials_exits_with_a_clear_message(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")} | {"RECEIVER_WEBHOOK_HOST": "0.0.0.0"}
    done = subprocess.run(
        [sys.executable, "-m", "receiver", "serve", "--port", "0", "--webhook-port", "0"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert done.returncode == 2
    assert "configuration error" in done.stderr and "--insecure-webhooks" in done.stderr
    assert "Traceback" not in done.stderr


async def test_an_open_webhook_port_on_loopback_warns_loudly(hook_settings: Settings) -> None:
    with capture_logs() as logs:
        async with WebhookService(hook_settings):
            pass

    assert [e["log_level"] for e in logs if e["event"] == "webhooks_unauthenticated"] == ["warning"]


# -- 5: token replay ---------------------------------------------------------------------------------


async def test_a_stream_url_opens_at_most_its_budget_of_streams(settings: Settings) -> None:
    from .test_security_server import signed

    with capture_logs() as logs:
        async with running(settings, auth_secrets=(SECRET,), auth_token_max_streams=2) as (server, sinks):
            target = signed(server, call_id="call_test")
            for n in range(2):
                async with connect(target) as ws:
                    messages = MiniVoiceMessages(stream_id=f"str_{n}")
                    await ws.send(messages.connected())
                    await ws.send(messages.start())
                    await ws.send(messages.stop())
                    assert (await closed(ws))[0] == 1000
            with pytest.raises(InvalidStatus) as refused:
                async with connect(target):
                    pass
            # The same budget holds for the token in the start message (Twilio strips query strings).
            token = target.split("token=")[1]
            for n in range(3):
                async with connect(url(server)) as ws:
                    messages = MiniVoiceMessages(stream_id=f"str_start_{n}")
                    await ws.send(messages.connected())
                    start = orjson.loads(messages.start())
                    start["start"]["custom_parameters"] = {"token": token}
                    await ws.send(orjson.dumps(start).decode())
                    await ws.send(messages.stop())
                    codes = await closed(ws)
            await no_streams(server)

    assert refused.value.response.status_code == 403
    assert [e["reason"] for e in logs if e["event"] == "stream_refused"] == ["token_used_up"]
    assert codes == (1008, "policy violation")  # the start token's budget was already used up
    assert len(sinks.made) == 2


def test_a_token_budget_forgets_tokens_once_they_expire() -> None:
    from receiver.security.replay import TokenBudget

    budget = TokenBudget(max_streams=1, capacity=2)
    token = stream_token(call_id="c", secret=SECRET, expires_at=100)

    assert budget.claim(token, now=50) and not budget.claim(token, now=99)
    assert budget.claim(stream_token(call_id="d", secret=SECRET, expires_at=200), now=101)
    assert len(budget) == 1  # the expired one is gone


# -- 9: media time may not run ahead of wall time ------------------------------------------------


def recorded_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*.wav"))


async def test_timestamp_jumps_just_under_max_gap_close_the_stream_instead_of_filling_the_disk(
    settings: Settings,
) -> None:
    messages = MiniVoiceMessages(stream_id="str_jump", call_id="call_jump")
    with capture_logs() as logs:
        async with ReceiverServer(settings) as server:
            async with connect(f"ws://127.0.0.1:{server.port}/mv") as ws:
                await ws.send(messages.connected())
                await ws.send(messages.start())
                for n in range(30):  # 30 jumps of 29.9 s: 56 MB of silence before the bound
                    for track in ("inbound", "outbound"):
                        await ws.send(messages.media(track, n + 1, n * 29_900, b"\xff" * 160))
                code, reason = await closed(ws)
            await wait_streams_done(server)

    assert (code, reason) == (4425, "media ahead of clock")
    assert recorded_bytes(Path(settings.recordings_dir)) < 200_000  # what 5 s of lead could hold, at most
    [line] = [e for e in logs if e["event"] == "stream_rejected"]
    assert (line["error_kind"], line["close_code"]) == ("media_ahead_of_clock", 4425)
    assert server.outcomes[0].reason == "media_ahead_of_clock"


async def test_audio_sent_faster_than_real_time_is_bounded_by_the_lead(settings: Settings) -> None:
    """65 KB L16 messages at full speed wrote 6,000 s of audio in 1.3 s."""
    messages = MiniVoiceMessages(stream_id="str_fast", call_id="call_fast")
    big = b"\x01\x00" * 24_000  # 1.5 s of 16 kHz L16 per message (64 KB of JSON)
    async with ReceiverServer(settings) as server:
        async with connect(f"ws://127.0.0.1:{server.port}/mv", max_size=None) as ws:
            await ws.send(messages.connected())
            await ws.send(messages.start(tracks=("inbound",), encoding="audio/L16", sample_rate=16_000))
            with contextlib.suppress(ConnectionClosed):
                for n in range(100):
                    await ws.send(messages.media("inbound", n + 1, n * 1500, big))
            code, _ = await closed(ws)
        await wait_streams_done(server)

    assert code == 4425
    assert server.outcomes[0].duration_seconds < 10  # not 150 s


async def test_one_stream_may_record_at_most_max_recording_bytes(settings: Settings) -> None:
    messages = MiniVoiceMessages(stream_id="str_big", call_id="call_big")
    with capture_logs() as logs:
        async with ReceiverServer(settings.replace(max_recording_bytes=20_000)) as server:
            async with connect(f"ws://127.0.0.1:{server.port}/mv") as ws:
                await ws.send(messages.connected())
                await ws.send(messages.start())
                for chunk in range(1, 101):  # 2 s: 64 KB of files, three times the budget
                    for track in ("inbound", "outbound"):
                        await ws.send(messages.media(track, chunk, 20 * (chunk - 1), b"\xff" * 160))
                await ws.send(messages.stop())
                assert (await closed(ws))[0] == 1000  # the stream goes on; its recording stopped
            await wait_streams_done(server)

    assert recorded_bytes(Path(settings.recordings_dir)) <= 20_000
    for path in server.outcomes[0].files:
        with wave.open(path) as w:  # finalised: every file is whole and readable
            assert w.getnframes() > 0
    [line] = [e for e in logs if e["event"] == "sink_stopped"]
    assert (line["sink"], line["reason"], line["log_level"]) == ("wav", "recording_limit", "warning")


async def test_below_min_free_disk_new_streams_get_503_and_live_recordings_are_finalised(settings: Settings) -> None:
    messages = MiniVoiceMessages(stream_id="str_live", call_id="call_live")
    with capture_logs() as logs:
        async with ReceiverServer(settings) as server:
            assert server.disk is not None
            async with connect(f"ws://127.0.0.1:{server.port}/mv") as ws:
                await ws.send(messages.connected())
                await ws.send(messages.start())
                for chunk in range(1, 26):
                    await ws.send(messages.media("inbound", chunk, 20 * (chunk - 1), b"\xff" * 160))
                # The disk fills up (a floor above what is free stands in for it) ...
                server.disk.min_free_bytes = 1 << 62
                await asyncio.to_thread(server.disk.refresh)
                with pytest.raises(InvalidStatus) as refused:
                    async with connect(f"ws://127.0.0.1:{server.port}/mv"):
                        pass
                # ... and the live stream goes on, its recording finalised at the next write.
                for chunk in range(26, 76):
                    await ws.send(messages.media("inbound", chunk, 20 * (chunk - 1), b"\xff" * 160))
                await ws.send(messages.stop())
                assert (await closed(ws))[0] == 1000
            await wait_streams_done(server)

    assert refused.value.response.status_code == 503
    assert b"disk_low" in refused.value.response.body
    assert [e["reason"] for e in logs if e["event"] == "stream_refused"] == ["disk_low"]
    assert [e["reason"] for e in logs if e["event"] == "sink_stopped"] == ["disk_low"]
    assert server.outcomes[0].samples == 75 * 160  # every frame reached the other sinks


# -- 10: ring buffers go back to the OS when their stream ends ------------------------------------


def mapped(address: int) -> bool:
    """Whether ``address`` is inside a mapping of this process."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            start, _, end = line.split()[0].partition("-")
            if int(start, 16) <= address < int(end, 16):
                return True
    return False


async def test_a_streams_ring_buffers_are_unmapped_when_it_ends_without_a_gc_pass(settings: Settings) -> None:
    import gc

    messages, started = MiniVoiceMessages(), Started()
    gc.collect()
    gc.disable()  # what a stream's end frees must not wait for the collector
    try:
        async with ReceiverServer(settings.replace(wav=False), sinks=[], observers=[started]) as server:
            async with connect(f"ws://127.0.0.1:{server.port}/mv") as ws:
                await ws.send(messages.connected())
                await ws.send(messages.start())
                await ws.send(messages.media("inbound", 1, 0, b"\xff" * 160))
                await started.wait(1)
                pipeline = next(iter(server._streams.values())).pipeline
                assert pipeline is not None
                addresses = [b._buf.ctypes.data for b in pipeline.buffers.values()]
                del pipeline
                assert all(mapped(a) for a in addresses)
                await ws.send(messages.stop())
                await closed(ws)
            await wait_streams_done(server)
            assert not any(mapped(a) for a in addresses)
    finally:
        gc.enable()


# -- 11: pings and pongs count in the rate limit ---------------------------------------------------


@pytest.mark.parametrize("fast_path", [True, False])
async def test_a_ping_flood_is_closed_by_the_rate_limit(settings: Settings, fast_path: bool) -> None:
    messages, started = MiniVoiceMessages(), Started()
    limited = settings.replace(max_messages_per_second=100, rate_window=1.0, fast_path=fast_path)
    with capture_logs() as logs:
        async with ReceiverServer(limited, observers=[started]) as server:
            async with connect(f"ws://127.0.0.1:{server.port}/mv") as ws:
                await ws.send(messages.connected())
                await ws.send(messages.start())
                await started.wait(1)
                with contextlib.suppress(ConnectionClosed):
                    for n in range(1000):  # ten times the budget of a window
                        await ws.ping(n.to_bytes(4, "big"))
                    await ws.send(messages.stop())
                code, reason = await closed(ws)
            await wait_streams_done(server)

    assert (code, reason) == (4429, "rate")
    assert [(e["limit"], e["close_code"]) for e in logs if e["event"] == "limit_hit"] == [("rate", 4429)]
    assert server.outcomes[0].reason == "rate"


# -- 3: connections without credentials cannot starve authenticated streams ------------------------


async def test_a_pre_auth_flood_never_takes_the_places_of_signed_streams(settings: Settings) -> None:
    from .test_security_server import signed

    with capture_logs() as logs:
        async with running(settings, auth_secrets=(SECRET,), max_streams=5) as (server, sinks):
            async with contextlib.AsyncExitStack() as held:
                refused = 0
                for _ in range(20):  # no credential, no start: waiting for a start token
                    try:
                        await held.enter_async_context(connect(url(server)))
                    except InvalidStatus as exc:
                        assert exc.response.status_code == 503
                        refused += 1
                # A signed stream still gets in, and streams.
                async with connect(signed(server)) as ws:
                    messages = MiniVoiceMessages()
                    await ws.send(messages.connected())
                    await ws.send(messages.start())
                    await ws.send(messages.stop())
                    assert (await closed(ws))[0] == 1000
            await no_streams(server)

    assert refused == 20 - settings.max_unauthenticated_per_client
    lines = [e for e in logs if e["event"] == "stream_refused"]
    assert [e["reason"] for e in lines] == ["too_many_unauthenticated_from_client"]  # one line a second, at most
    assert lines[0]["suppressed"] == 0
    assert server.guard.counts["refused_too_many_unauthenticated_from_client"] == refused
    assert len(sinks.made) == 1 and server.guard.unauthenticated == 0  # every place given back


async def test_a_stream_authenticated_by_its_start_token_moves_to_max_streams(settings: Settings) -> None:
    async with running(settings, auth_secrets=(SECRET,), max_streams=1) as (server, sinks):
        token = stream_token(call_id="call_test", secret=SECRET, expires_at=int(time.time()) + 60)
        async with connect(url(server)) as first, connect(url(server)) as second:
            for ws in (first, second):
                messages = MiniVoiceMessages()
                await ws.send(messages.connected())
                await ws.send(messages.start(custom_parameters={"token": token}))
            for ws in (first, second):
                with contextlib.suppress(ConnectionClosed):  # one of them was closed at start
                    await ws.send(MiniVoiceMessages().stop())
            first_code, second_code = (await closed(first))[0], (await closed(second))[0]
        await no_streams(server)

    assert sorted([first_code, second_code]) == [1000, 1013]  # the second over max_streams at start
    assert server.guard.unauthenticated == 0


async def test_slow_upgrades_beyond_max_handshakes_are_dropped_at_once(settings: Settings) -> None:
    async with running(settings, max_handshakes=10, handshake_timeout=2.0) as (server, _):

        async def slowloris() -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET /mv HTTP/1.1\r\nHost: x\r\nUpgrade: websock")
            try:
                return await reader.read()
            except ConnectionResetError:
                return b""
            finally:
                writer.close()

        await asyncio.gather(*(slowloris() for _ in range(30)))
        # Gone: the stream port works again.
        async with connect(url(server)) as ws:
            await ws.send(MiniVoiceMessages().connected())

    assert server.guard.counts["refused_too_many_handshakes"] == 20
    assert server.guard.counts["limit_handshake_timeout"] == 10
