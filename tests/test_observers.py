"""Stream observers: told of every stream's start and end, in order; a failing one is logged, never raised."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
from structlog.testing import capture_logs
from websockets.asyncio.client import connect

from receiver.app import ReceiverServer
from receiver.config import Settings
from receiver.events import Encoding, MediaFormat, Platform, Track
from receiver.logging import get_logger
from receiver.sinks import StreamInfo, StreamOutcome
from receiver.stream.observers import StreamObserver, notify_ended, notify_started
from receiver.testing import MiniVoiceMessages, RecordingSink

from .conftest import wait_streams_done

INFO = StreamInfo("str_1", "call_1", Platform.MINIVOICE, (Track.INBOUND,), MediaFormat(Encoding.MULAW, 8000))
OUTCOME = StreamOutcome(reason="stop_stream", close_code=1000, duration_seconds=0.1, samples=800)


@dataclass
class Recorder:
    """An observer that notes what it is told (a shared list keeps the order across observers)."""

    name: str
    seen: list[tuple[str, str, str]] = field(default_factory=list)

    def stream_started(self, info: StreamInfo) -> None:
        self.seen.append((self.name, "started", info.stream_id))

    def stream_ended(self, info: StreamInfo, outcome: StreamOutcome) -> None:
        self.seen.append((self.name, "ended", outcome.reason))


class Failing:
    def stream_started(self, info: StreamInfo) -> None:
        raise RuntimeError("observer bug at start")

    def stream_ended(self, info: StreamInfo, outcome: StreamOutcome) -> None:
        raise KeyError("observer bug at end")


def test_every_observer_is_told_in_order() -> None:
    seen: list[tuple[str, str, str]] = []
    first, second = Recorder("first", seen), Recorder("second", seen)

    notify_started([first, second], INFO, get_logger("test"))
    notify_ended([first, second], INFO, OUTCOME, get_logger("test"))

    assert seen == [
        ("first", "started", "str_1"),
        ("second", "started", "str_1"),
        ("first", "ended", "stop_stream"),
        ("second", "ended", "stop_stream"),
    ]


def test_a_failing_observer_is_logged_once_per_call_and_the_next_is_still_told() -> None:
    after = Recorder("after")

    with capture_logs() as logs:
        notify_started([Failing(), after], INFO, get_logger("test"))
        notify_ended([Failing(), after], INFO, OUTCOME, get_logger("test"))

    assert [(e["event"], e["observer"], e["phase"]) for e in logs] == [
        ("observer_failed", "Failing", "started"),
        ("observer_failed", "Failing", "ended"),
    ]
    assert "observer bug at start" in logs[0]["error"]
    assert after.seen == [("after", "started", "str_1"), ("after", "ended", "stop_stream")]


def test_the_protocol_is_structural() -> None:
    assert isinstance(Recorder("r"), StreamObserver)
    assert not isinstance(RecordingSink(), StreamObserver)


@pytest.fixture
def quiet_settings(tmp_path: Path) -> Settings:
    return Settings(host="127.0.0.1", port=0, recordings_dir=str(tmp_path), wav=False, log_format="json")


async def test_a_real_stream_is_seen_started_then_ended_even_next_to_a_failing_observer(
    quiet_settings: Settings,
) -> None:
    seen: list[tuple[str, str, str]] = []
    observer = Recorder("observer", seen)
    messages = MiniVoiceMessages(stream_id="str_obs", call_id="call_obs")

    with capture_logs() as logs:
        async with ReceiverServer(
            quiet_settings, sinks=[lambda info: RecordingSink()], observers=[Failing(), observer]
        ) as server:
            async with connect(f"ws://127.0.0.1:{server.port}/mv") as ws:
                await ws.send(messages.connected())
                await ws.send(messages.start())
                await ws.send(messages.media("inbound", 1, 0, b"\xff" * 160))
                await ws.send(messages.stop())
                await ws.wait_closed()
            await wait_streams_done(server)

    assert seen == [("observer", "started", "str_obs"), ("observer", "ended", "stop_stream")]
    failures = [e for e in logs if e["event"] == "observer_failed"]
    assert [e["phase"] for e in failures] == ["started", "ended"]
    assert ws.close_code == 1000  # the failing observer did not end the stream
