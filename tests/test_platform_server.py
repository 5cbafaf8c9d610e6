"""Every platform's published session through a real socket into WAV recordings; format mismatches."""

from __future__ import annotations

import wave
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import orjson
import pytest
from structlog.testing import capture_logs
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from receiver.app import ReceiverServer
from receiver.config import Settings
from receiver.events import Platform
from receiver.platforms import EXPECTED_FIRST
from receiver.routes import Route
from tests.platforms import published

from .conftest import wait_streams_done

ROUTES = (Route("/jambonz", Platform.JAMBONZ), *(b().route for b in published.ALL if b().route is not None))


@pytest.fixture(params=[True, False], ids=["fast_path", "websockets_path"])
async def platform_server(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[ReceiverServer]:
    settings = Settings(
        fast_path=request.param,
        host="127.0.0.1",
        port=0,
        recordings_dir=str(tmp_path / "recordings"),
        log_format="json",
        routes=ROUTES,
    )
    async with ReceiverServer(settings) as server:
        yield server


def read_wav(path: Path) -> tuple[int, np.ndarray]:
    with wave.open(str(path)) as w:
        return w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def recording(server: ReceiverServer, pattern: str) -> Path:
    [path] = Path(server.settings.recordings_dir).glob(pattern)
    return path


async def drain(ws: object) -> list[str | bytes]:
    received: list[str | bytes] = []
    try:
        async for message in ws:  # type: ignore[attr-defined]
            received.append(message)
    except ConnectionClosed:
        pass
    return received


@pytest.mark.parametrize("build", published.ALL, ids=lambda build: build().name)
async def test_each_platform_streams_through_a_socket_into_sample_exact_recordings(
    platform_server: ReceiverServer, build: Callable[[], published.Published]
) -> None:
    sample = build()
    path = sample.route.path if sample.route is not None else "/stream"
    subprotocols = [Subprotocol(sample.subprotocol)] if sample.subprotocol else None

    async with connect(f"ws://127.0.0.1:{platform_server.port}{path}", subprotocols=subprotocols) as ws:
        assert ws.subprotocol == sample.subprotocol
        for message in sample.messages:
            await ws.send(message)
        if not sample.stops:
            await ws.close()  # these formats end when the platform closes the socket
        received = await drain(ws)
    await wait_streams_done(platform_server)

    outcome = platform_server.outcomes[-1]
    assert outcome.reason == ("closed" if not sample.stops else outcome.reason)
    assert outcome.close_code == 1000
    assert [orjson.loads(m)["type"] for m in received] == sample.replies
    for track, expected in sample.audio.items():
        rate, samples = read_wav(recording(platform_server, f"*/*.{track.value}.wav"))
        assert rate == sample.rate
        np.testing.assert_array_equal(samples, expected, err_msg=f"{sample.name} {track}")
    assert outcome.samples == len(next(iter(sample.audio.values())))


async def test_a_stream_of_no_known_format_closes_4400_naming_what_was_expected(
    platform_server: ReceiverServer,
) -> None:
    with capture_logs() as logs:
        async with connect(f"ws://127.0.0.1:{platform_server.port}/stream") as ws:
            await ws.send('{"event": "hello", "from": "nowhere"}')
            await drain(ws)
        await wait_streams_done(platform_server)

    assert ws.close_code == 4400
    assert ws.close_reason == "expected " + EXPECTED_FIRST
    [line] = [e for e in logs if e["event"] == "stream_rejected"]
    assert line["error_kind"] == "format_mismatch"
    assert line["close_code"] == 4400
    assert line["detail"] == "the first message matches no known stream format"
    assert line["log_level"] == "warning"


async def test_a_stream_that_does_not_fit_its_route_is_refused_and_the_log_names_the_route(
    platform_server: ReceiverServer,
) -> None:
    with capture_logs() as logs:
        async with connect(f"ws://127.0.0.1:{platform_server.port}/jambonz") as ws:
            await ws.send('{"event": "connected", "protocol": "Call", "version": "1.0.0"}')
            await drain(ws)
        await wait_streams_done(platform_server)

    assert (ws.close_code, ws.close_reason) == (4400, "expected a jambonz stream (route /jambonz)")
    [line] = [e for e in logs if e["event"] == "stream_rejected"]
    assert line["error_kind"] == "format_mismatch"
    assert "does not fit jambonz" in line["detail"]
    connected = [e for e in logs if e["event"] == "stream_connected"]
    assert connected[0]["format"] == "jambonz" and connected[0]["by"] == "route /jambonz"


async def test_a_binary_first_frame_without_a_route_closes_4400(platform_server: ReceiverServer) -> None:
    async with connect(f"ws://127.0.0.1:{platform_server.port}/stream") as ws:
        await ws.send(b"\x00\x01" * 160)
        await drain(ws)
    await wait_streams_done(platform_server)

    assert ws.close_code == 4400
    assert ws.close_reason is not None and ws.close_reason.startswith("expected a text message first")


async def test_the_readings_of_unconfirmed_facts_are_logged(platform_server: ReceiverServer) -> None:
    sample = published.telnyx("L16", 16000, "big")

    with capture_logs() as logs:
        async with connect(f"ws://127.0.0.1:{platform_server.port}/stream") as ws:
            for message in sample.messages:
                await ws.send(message)
            await drain(ws)
        await wait_streams_done(platform_server)

    [started] = [e for e in logs if e["event"] == "stream_started"]
    [ended] = [e for e in logs if e["event"] == "stream_ended"]
    assert started["readings"]["tracks"] == "not named: both declared"
    assert ended["readings"]["l16_byteorder"] == "big (from the audio)"
    assert ended["readings"]["timestamps"] == "ms from stream start"
