"""The application stops a live stream, or pauses and resumes its recording, over the API port."""

from __future__ import annotations

import asyncio
import base64
import struct
import sys
import wave
from collections.abc import AsyncIterator
from email.utils import parsedate_to_datetime
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection, connect

from receiver.app import ReceiverServer
from receiver.calls.listener import WebhookService
from receiver.codecs import decode_ulaw
from receiver.config import Settings
from receiver.sinks.wav import repair_wav
from receiver.testing import MiniVoiceMessages

from .conftest import wait_streams_done

CALL, STREAM = "call_ctl", "str_ctl"
COPY = "import shutil, sys; shutil.copyfileobj(sys.stdin.buffer, open(sys.argv[1], 'wb'))"


def payload(chunk: int, track: str) -> bytes:
    """A different mu-law byte per chunk and track, so every span of the recording can be told apart."""
    return bytes([1 + (chunk * 3 + (track == "outbound")) % 120]) * 160


Service = tuple[WebhookService, ReceiverServer, aiohttp.ClientSession, str]


@pytest.fixture
def control_settings(settings: Settings, tmp_path: Path) -> Settings:
    command = [sys.executable, "-c", COPY, str(tmp_path / "{track}.pcm")]
    pipe = {"plugin": "pipe", "options": {"command": command, "sample_rate": 8000}}
    return settings.replace(
        webhook_port=0, database=str(tmp_path / "calls.db"), sinks=({**pipe, "tracks": ["inbound"]},)
    )


@pytest.fixture
async def service(control_settings: Settings) -> AsyncIterator[Service]:
    async with (
        WebhookService(control_settings) as hooks,
        ReceiverServer(control_settings, observers=hooks.observers) as server,
        aiohttp.ClientSession() as session,
    ):
        assert hooks.listener is not None
        hooks.listener.streams.control = server  # as receiver.app.run_server wires them
        yield hooks, server, session, f"http://127.0.0.1:{hooks.listener.port}/calls/{CALL}/streams/{STREAM}"


class Caller:
    """A MiniVoice stream of both tracks, sent chunk by chunk."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.messages = MiniVoiceMessages(stream_id=STREAM, call_id=CALL)
        self.chunk = 0

    async def begin(self) -> None:
        await self.ws.send(self.messages.connected())
        await self.ws.send(self.messages.start())

    async def send(self, frames: int) -> None:
        for _ in range(frames):
            self.chunk += 1
            for track in ("inbound", "outbound"):
                await self.ws.send(
                    self.messages.media(track, self.chunk, (self.chunk - 1) * 20, payload(self.chunk, track))
                )


async def placed(server: ReceiverServer, ws: ClientConnection, seconds: float) -> None:
    """Make sure the receiver has placed ``seconds`` of the stream on its media clock.

    The fast path handles each message as it is read, so once the pong of a
    ping sent after the frames is back, the frames before it were placed.
    """
    await asyncio.wait_for(await ws.ping(), 10)
    state = server.stream_state(CALL, STREAM)
    assert state is not None and state.media_seconds >= seconds


async def update(session: aiohttp.ClientSession, url: str, **fields: str) -> tuple[int, dict[str, object]]:
    async with session.post(url, data=fields) as response:
        return response.status, await response.json()


def expected(chunks: list[int], track: str) -> np.ndarray:
    return decode_ulaw(b"".join(payload(k, track) for k in chunks))


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


@pytest.mark.parametrize("behavior", ["skip", "silence"])
async def test_a_paused_span_reaches_no_file_and_no_plugin(service: Service, tmp_path: Path, behavior: str) -> None:
    hooks, server, session, url = service
    async with connect(f"ws://127.0.0.1:{server.port}/minivoice") as ws:
        caller = Caller(ws)
        await caller.begin()
        await caller.send(50)
        await placed(server, ws, 1.0)
        status, paused = await update(session, url, Status="paused", PauseBehavior=behavior)
        assert status == 200
        assert (paused["status"], paused["pause_behavior"], paused["sid"], paused["call_sid"]) == (
            "paused",
            behavior,
            STREAM,
            CALL,
        )
        await caller.send(50)  # chunks 51-100: said while paused
        await placed(server, ws, 2.0)
        status, resumed = await update(session, url, Status="in-progress")
        assert (status, resumed["status"], resumed["paused_seconds"]) == (200, "in-progress", 1.0)
        await caller.send(50)
        await ws.send(caller.messages.stop("call_ended"))
        await ws.wait_closed()
    await wait_streams_done(server)
    await hooks.store.flush()

    before, after = list(range(1, 51)), list(range(101, 151))  # chunks 51-100 were said while paused
    for track in ("inbound", "outbound"):
        audio = read_wav(tmp_path / "recordings" / CALL / f"{STREAM}.{track}.wav")
        if behavior == "skip":  # the paused second is cut
            assert np.array_equal(audio, np.concatenate([expected(before, track), expected(after, track)]))
        else:  # the paused second is silence
            assert np.array_equal(audio[:8000], expected(before, track))
            assert not audio[8000:16000].any()
            assert np.array_equal(audio[16000:], expected(after, track))
    # The transcription plugin heard exactly what the recording holds.
    piped = np.frombuffer((tmp_path / "inbound.pcm").read_bytes(), dtype="<i2")
    assert np.array_equal(piped, read_wav(tmp_path / "recordings" / CALL / f"{STREAM}.inbound.wav"))

    # The WAV file and the record say how much was paused; the timeline has both steps.
    stereo = (tmp_path / "recordings" / CALL / f"{STREAM}.stereo.wav").read_bytes()
    assert b"LIST" in stereo and b"recording paused 1.000 s" in stereo
    assert struct.unpack_from("<I", stereo, 4)[0] + 8 == len(stereo)
    assert repair_wav(tmp_path / "recordings" / CALL / f"{STREAM}.stereo.wav") is False  # a finished file
    async with session.get(url.rsplit("/streams/", 1)[0]) as response:
        [record] = (await response.json())["streams"]
    assert record["outcome"]["paused_seconds"] == 1.0
    assert record["outcome"]["pauses"] == [{"start_seconds": 1.0, "end_seconds": 2.0, "behavior": behavior}]
    async with session.get(url.rsplit("/streams/", 1)[0] + "/events") as response:
        steps = [(e["kind"], e["detail"].get("media_seconds")) for e in (await response.json())["events"]]
    assert ("stream.paused", 1.0) in steps and ("stream.resumed", 2.0) in steps


async def test_stopped_by_the_application(service: Service, tmp_path: Path) -> None:
    hooks, server, session, url = service
    async with connect(f"ws://127.0.0.1:{server.port}/minivoice") as ws:
        caller = Caller(ws)
        await caller.begin()
        await caller.send(25)
        await placed(server, ws, 0.5)
        status, body = await update(session, url, Status="stopped")
        # Answered once the files are final: they hold every frame sent.
        assert read_wav(tmp_path / "recordings" / CALL / f"{STREAM}.inbound.wav").size == 25 * 160
        await ws.wait_closed()
        assert ws.close_code == 1000
    assert status == 200
    assert list(body)[:7] == ["sid", "account_sid", "call_sid", "name", "status", "date_updated", "uri"]
    assert (body["status"], body["uri"]) == ("stopped", f"/calls/{CALL}/streams/{STREAM}")
    assert parsedate_to_datetime(str(body["date_updated"])).utcoffset() is not None
    assert str(body["date_updated"]).endswith("+0000")  # RFC 2822, as the seed page shows it
    await wait_streams_done(server)
    await hooks.store.flush()
    async with session.get(url.rsplit("/streams/", 1)[0]) as response:
        [record] = (await response.json())["streams"]
    assert (record["stop_reason"], record["close_code"]) == ("stopped_by_api", 1000)
    async with session.get(url.rsplit("/streams/", 1)[0] + "/events") as response:
        kinds = [e["kind"] for e in (await response.json())["events"]]
    assert kinds.index("stream.stop_requested") < kinds.index("stream.ended")
    status, _ = await update(session, url, Status="stopped")
    assert status == 404  # no longer live


@pytest.mark.parametrize(
    ("fields", "status", "code"),
    [
        ({"Status": "stopped"}, 404, "not_found"),  # no such stream
        ({"Status": "queued"}, 400, "invalid_stream_update"),
        ({}, 400, "invalid_stream_update"),
        ({"Status": "paused", "PauseBehavior": "mute"}, 400, "invalid_stream_update"),
        ({"Status": "stopped", "PauseBehavior": "silence"}, 400, "invalid_stream_update"),
    ],
)
async def test_bad_updates_get_a_clear_error(service: Service, fields: dict[str, str], status: int, code: str) -> None:
    _hooks, _server, session, url = service
    got, body = await update(session, url, **fields)
    assert got == status
    assert body["error"]["code"] == code  # type: ignore[index]


async def test_the_api_needs_the_port_credentials(control_settings: Settings) -> None:
    secured = control_settings.replace(webhook_user="app", webhook_password="s3cret")
    async with (
        WebhookService(secured) as hooks,
        ReceiverServer(secured, observers=hooks.observers) as server,
        aiohttp.ClientSession() as session,
    ):
        assert hooks.listener is not None
        hooks.listener.streams.control = server
        url = f"http://127.0.0.1:{hooks.listener.port}/calls/{CALL}/streams/{STREAM}"
        async with session.post(url, data={"Status": "stopped"}) as response:
            assert response.status == 401
        auth = {"Authorization": "Basic " + base64.b64encode(b"app:s3cret").decode()}
        async with session.post(url, data={"Status": "stopped"}, headers=auth) as response:
            assert response.status == 404  # past authentication: there is no such stream


async def test_a_process_without_streams_says_so(control_settings: Settings) -> None:
    async with WebhookService(control_settings) as hooks, aiohttp.ClientSession() as session:
        assert hooks.listener is not None
        url = f"http://127.0.0.1:{hooks.listener.port}/calls/{CALL}/streams/{STREAM}"
        async with session.post(url, json={"Status": "stopped"}) as response:
            assert response.status == 503
            assert (await response.json())["error"]["code"] == "no_stream_server"
