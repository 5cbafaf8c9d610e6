"""One record per call: a stream recorded by the real receiver and the platform's webhooks."""

from __future__ import annotations

import wave
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import orjson
import pytest
from websockets.asyncio.client import connect

from receiver.app import ReceiverServer
from receiver.calls.listener import WebhookService
from receiver.calls.observer import CallRecordObserver
from receiver.config import Settings
from receiver.testing import MiniVoiceMessages

from .conftest import wait_streams_done
from .webhook_support import SEED_CALL_COMPLETED, read_only, webhook

FRAMES = 25  # 0.5 s per track


@pytest.fixture
def hook_settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.replace(webhook_port=0, database=str(tmp_path / "calls.db"))


async def stream_a_call(server: ReceiverServer, call_id: str, stream_id: str, *, reason: str = "call_ended") -> None:
    """Play a MiniVoice stream of both tracks to the receiver, then ``stop``."""
    messages = MiniVoiceMessages(stream_id=stream_id, call_id=call_id)
    async with connect(f"ws://127.0.0.1:{server.port}/minivoice") as ws:
        await ws.send(messages.connected())
        await ws.send(messages.start())
        for chunk in range(1, FRAMES + 1):
            for track in ("inbound", "outbound"):
                await ws.send(
                    messages.media(track, chunk, (chunk - 1) * 20, bytes([0x7F if track == "inbound" else 0xFF]) * 160)
                )
        await ws.send(messages.stop(reason))
        await ws.wait_closed()


async def post(session: aiohttp.ClientSession, url: str, payload: object) -> tuple[int, dict[str, object]]:
    async with session.post(url, data=orjson.dumps(payload), headers={"Content-Type": "application/json"}) as response:
        return response.status, await response.json()


@pytest.fixture
async def both(hook_settings: Settings) -> AsyncIterator[tuple[WebhookService, ReceiverServer, aiohttp.ClientSession]]:
    async with (
        WebhookService(hook_settings) as hooks,
        ReceiverServer(hook_settings, observers=hooks.observers) as server,
        aiohttp.ClientSession() as session,
    ):
        yield hooks, server, session


async def test_a_stream_and_call_completed_end_up_in_one_record(
    both: tuple[WebhookService, ReceiverServer, aiohttp.ClientSession],
) -> None:
    hooks, server, session = both
    assert hooks.listener is not None
    base = f"http://127.0.0.1:{hooks.listener.port}"

    await stream_a_call(server, "call_e2e", "str_e2e")
    await wait_streams_done(server)
    await hooks.store.flush()
    completed = webhook(
        SEED_CALL_COMPLETED, call_id="call_e2e", created_at=(datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    )
    status, _ = await post(session, base + "/webhooks", completed)
    assert status == 200

    async with session.get(base + "/calls/call_e2e") as response:
        record = await response.json()
    async with session.get(base + "/calls/call_e2e/events") as response:
        timeline = (await response.json())["events"]

    assert record["status"] == "completed"
    assert (record["customer_id"], record["direction"]) == ("cust_123", "inbound")  # the webhook's, newest
    assert record["from"] == "+15551230001"
    [stream] = record["streams"]
    assert stream["stream_id"] == "str_e2e"
    assert (stream["platform"], stream["track"], stream["tracks"]) == ("minivoice", "both", ["inbound", "outbound"])
    assert (stream["encoding"], stream["sample_rate"]) == ("audio/x-mulaw", 8000)
    assert (stream["stop_reason"], stream["close_code"]) == ("call_ended", 1000)
    assert stream["outcome"]["duration_seconds"] == pytest.approx(FRAMES * 0.02)
    assert stream["outcome"]["messages"] == 3 + 2 * FRAMES  # connected, start, media, stop
    assert sorted(Path(p).name for p in stream["files"]) == [
        "str_e2e.inbound.wav",
        "str_e2e.outbound.wav",
        "str_e2e.stereo.wav",
    ]
    for path in stream["files"]:
        with wave.open(path) as wav:
            assert wav.getnframes() == FRAMES * 160
    assert [e["kind"] for e in timeline] == ["stream.started", "stream.ended", "call.completed"]
    assert [e["source"] for e in timeline] == ["stream", "stream", "webhook"]


async def test_a_call_completed_arriving_before_the_stream_end_keeps_the_status(
    both: tuple[WebhookService, ReceiverServer, aiohttp.ClientSession],
) -> None:
    hooks, server, session = both
    assert hooks.listener is not None
    completed = webhook(SEED_CALL_COMPLETED, call_id="call_early", created_at=datetime.now(UTC).isoformat())
    assert (await post(session, f"http://127.0.0.1:{hooks.listener.port}/webhooks", completed))[0] == 200

    await stream_a_call(server, "call_early", "str_early")
    await wait_streams_done(server)
    await hooks.store.flush()
    record = await hooks.store.get_call("call_early")

    assert record is not None
    assert record["status"] == "completed"
    assert record["last_step"] == "stream.ended: call_ended"
    assert record["streams"][0]["stop_reason"] == "call_ended"


async def test_with_the_store_read_only_webhooks_get_503_and_streams_keep_recording(hook_settings: Settings) -> None:
    async with WebhookService(hook_settings):
        pass  # create the database
    database = Path(hook_settings.database)
    with read_only(database):
        async with (
            WebhookService(hook_settings) as hooks,
            ReceiverServer(hook_settings, observers=hooks.observers) as server,
            aiohttp.ClientSession() as session,
        ):
            assert hooks.listener is not None
            url = f"http://127.0.0.1:{hooks.listener.port}/webhooks"
            completed = webhook(SEED_CALL_COMPLETED, call_id="call_ro")

            status, body = await post(session, url, completed)
            await stream_a_call(server, "call_ro", "str_ro")
            await wait_streams_done(server)
            await hooks.store.flush()

            assert (status, body["error"]) == (
                503,
                {"code": "store_unavailable", "message": "call store unavailable, retry later"},
            )
            [outcome] = server.outcomes
            assert (outcome.reason, outcome.close_code, outcome.disabled_sinks) == ("call_ended", 1000, ())
            assert len(outcome.files) == 3
            for path in outcome.files:
                with wave.open(path) as wav:
                    assert wav.getnframes() == FRAMES * 160
            assert hooks.store.backlog == 2  # the stream's start and end wait for the store
    # Writable again: the platform's retry is stored, and the stream's lifecycle with it.
    async with WebhookService(hook_settings) as hooks, aiohttp.ClientSession() as session:
        assert hooks.listener is not None
        assert (await post(session, f"http://127.0.0.1:{hooks.listener.port}/webhooks", completed))[0] == 200


async def test_the_observer_never_waits_for_the_store(hook_settings: Settings) -> None:
    """A store whose writes block forever still lets the stream run to its end."""

    class StuckStore:
        def __init__(self) -> None:
            self.calls: list[str] = []

        def stream_started(self, start: object) -> None:
            self.calls.append("started")

        def stream_ended(self, end: object) -> None:
            self.calls.append("ended")

    store = StuckStore()
    async with ReceiverServer(hook_settings, observers=[CallRecordObserver(store)]) as server:  # type: ignore[arg-type]
        await stream_a_call(server, "call_obs", "str_obs")
        await wait_streams_done(server)

    assert store.calls == ["started", "ended"]


async def test_a_failing_observer_does_not_end_the_stream(hook_settings: Settings) -> None:
    class Broken:
        def stream_started(self, info: object) -> None:
            raise RuntimeError("boom")

        def stream_ended(self, info: object, outcome: object) -> None:
            raise RuntimeError("boom")

    async with ReceiverServer(hook_settings, observers=[Broken()]) as server:  # type: ignore[list-item]
        await stream_a_call(server, "call_broken", "str_broken")
        await wait_streams_done(server)

    [outcome] = server.outcomes
    assert (outcome.reason, outcome.close_code, outcome.samples) == ("call_ended", 1000, FRAMES * 160)
