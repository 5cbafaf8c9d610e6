"""The simulator against the real receiver on 127.0.0.1: recordings, drops, webhooks, answer_url, load."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import wave
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.server import ServerConnection, serve

from receiver.app import ReceiverServer
from receiver.calls import actions as a
from receiver.config import Settings
from receiver.events import Encoding
from receiver.simulator import (
    AudioSpec,
    Faults,
    Flow,
    MediaSpec,
    RunReport,
    RunSettings,
    WebhookSettings,
    WireFormat,
    run,
)

NO_FAULTS = Faults()
FAULTS = Faults(seed=7, loss=0.1, duplicate=0.1, reorder_ms=100, reorder=0.3, delay=0.05, delay_ms=200)


def spec(wire: WireFormat = WireFormat.MINIVOICE, encoding: Encoding = Encoding.MULAW, rate: int = 8000) -> MediaSpec:
    return MediaSpec(wire, encoding, rate, {"inbound": AudioSpec("tone", "440"), "outbound": AudioSpec("tone", "660")})


async def simulate(
    actions: Sequence[a.Action] | None,
    *,
    media: MediaSpec | None = None,
    faults: Faults = NO_FAULTS,
    record: Path | None = None,
    hooks: str | None = None,
    fast: bool = True,
    answer_url: str | None = None,
) -> RunReport:
    flow = Flow(actions=tuple(actions)) if actions is not None else Flow(answer_url=answer_url)
    settings = RunSettings(
        fast=fast,
        allow_insecure=True,
        record_sent=record,
        webhooks=WebhookSettings(hooks, timeout=5.0, backoff=0.01),
        open_timeout=5.0,
    )
    return await run(flow, media or spec(), faults, settings)


async def streams_done(server: ReceiverServer, count: int, seconds: float = 20.0) -> None:
    """Wait until ``count`` streams have ended and none is live (no sleeping)."""

    async def done() -> None:
        while len(server.outcomes) < count or server.active_streams:
            server.stream_ended.clear()
            if len(server.outcomes) >= count and not server.active_streams:
                return
            await server.stream_ended.wait()

    await asyncio.wait_for(done(), seconds)


def read(path: Path) -> tuple[int, int, np.ndarray]:
    with wave.open(str(path)) as w:
        return w.getframerate(), w.getnchannels(), np.frombuffer(w.readframes(w.getnframes()), "<i2")


def assert_same_recordings(sent: Path, received: Path) -> int:
    """Every file the simulator recorded equals the receiver's, sample for sample; returns the count."""
    mine = sorted(p.relative_to(sent) for p in sent.rglob("*.wav"))
    theirs = sorted(p.relative_to(received) for p in received.rglob("*.wav"))
    assert mine and mine == theirs
    for rel in mine:
        rate, channels, expected = read(sent / rel)
        rate2, channels2, actual = read(received / rel)
        assert (rate, channels) == (rate2, channels2), rel
        assert len(actual) == len(expected), rel
        assert np.array_equal(actual, expected), f"{rel}: {int((actual != expected).sum())} samples differ"
    return len(mine)


def url(server: ReceiverServer, path: str = "/minivoice") -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


@pytest.mark.parametrize(
    ("wire", "encoding", "rate"),
    [
        (WireFormat.MINIVOICE, Encoding.MULAW, 8000),
        (WireFormat.MINIVOICE, Encoding.ALAW, 8000),
        (WireFormat.MINIVOICE, Encoding.L16, 24000),
        (WireFormat.TWILIO, Encoding.MULAW, 8000),
        (WireFormat.SIGNALWIRE, Encoding.L16, 16000),
    ],
)
async def test_a_faulty_flow_gives_recordings_equal_to_the_record_of_what_was_sent(
    server: ReceiverServer,
    settings: Settings,
    listener: Any,
    tmp_path: Path,
    wire: WireFormat,
    encoding: Encoding,
    rate: int,
) -> None:
    """start_stream(both) → pause → stop_stream → pause → hangup, with loss, duplicates, reordering and delays."""
    stream_url = url(server)
    flow = [
        a.start_stream(stream_url, "both", allow_insecure=True),
        a.pause(1.2),
        a.stop_stream(stream_url, "both"),
        a.pause(0.3),
        a.hangup(),
    ]

    report = await simulate(
        flow, media=spec(wire, encoding, rate), faults=FAULTS, record=tmp_path / "sent", hooks=listener.hooks_url
    )
    await streams_done(server, 1)

    (call,) = report.calls
    (stream,) = call.streams
    assert stream.outcome == "stopped" and stream.planned_end == "stop_stream"
    for kind in ("lost", "duplicated", "reordered", "delayed", "late"):
        assert any(stream.faults[t][kind] for t in ("inbound", "outbound")), kind
    assert assert_same_recordings(tmp_path / "sent", Path(settings.recordings_dir)) == 3
    outcome = server.outcomes[-1]
    assert outcome.reason == ("stop_stream" if wire is WireFormat.MINIVOICE else "stop")
    for track in ("inbound", "outbound"):
        # The receiver's own counters agree with the report: a duplicate of a late frame is late too.
        dup, late = set(stream.faults[track]["duplicated"]), set(stream.faults[track]["late"])
        assert outcome.tracks[track]["duplicates"] == len(dup - late)
        assert outcome.tracks[track]["late"] == len(late) + len(dup & late)
    hook = await listener.wait_for("call.completed")
    assert hook["call"]["id"] == call.call_id


async def test_call_completed_arrives_when_the_connection_is_dropped_mid_call(
    server: ReceiverServer, settings: Settings, listener: Any, tmp_path: Path
) -> None:
    stream_url = url(server)
    flow = [a.start_stream(stream_url, "both", allow_insecure=True), a.pause(2), a.hangup()]

    report = await simulate(
        flow,
        faults=Faults(seed=2, loss=0.05, reorder_ms=60, drop_at=0.7),
        record=tmp_path / "sent",
        hooks=listener.hooks_url,
    )
    await streams_done(server, 1)

    (stream,) = report.calls[0].streams
    assert stream.outcome == "dropped"
    assert stream.faults["inbound"]["unsent"]
    outcome = server.outcomes[-1]
    assert outcome.reason == "disconnected" and outcome.close_code != 1000
    assert assert_same_recordings(tmp_path / "sent", Path(settings.recordings_dir)) == 3
    _, _, inbound = read(next((tmp_path / "sent").rglob("*.inbound.wav")))
    assert len(inbound) <= 0.7 * 8000
    hook = await listener.wait_for("call.completed")
    assert_envelope(hook, "call.completed", report.calls[0].call_id, "completed")
    assert hook["data"] == {}


@pytest.mark.parametrize("how", ["close_1011", "abort"])
async def test_call_completed_arrives_when_the_receiver_drops_the_connection(listener: Any, how: str) -> None:
    """A receiver that goes away after ten messages: the call goes on, and call.completed still comes."""
    got: list[str] = []

    async def rude(ws: ServerConnection) -> None:
        async for message in ws:
            got.append(str(message))
            if len(got) == 10:
                if how == "abort":
                    ws.transport.abort()
                else:
                    await ws.close(1011, "going away rudely")
                return

    # max_queue=None: the rude server keeps reading, so its close handshake can finish.
    async with serve(rude, "127.0.0.1", 0, max_queue=None) as rude_server:
        port = rude_server.sockets[0].getsockname()[1]
        stream_url = f"ws://127.0.0.1:{port}/x"
        flow = [a.start_stream(stream_url, "both", allow_insecure=True), a.pause(0.3), a.stop_recording(), a.pause(0.3)]
        # On the real-time clock: sent at once, the whole stream and its close could reach
        # the rude server before its handler read ten messages, and the close be answered.
        report = await simulate(flow, hooks=listener.hooks_url, fast=False)

    (stream,) = report.calls[0].streams
    assert stream.outcome == "closed_by_receiver"
    assert stream.close_code == (1011 if how == "close_1011" else None)
    assert stream.messages_sent >= 10
    assert report.stats.receiver_closed == 1
    assert listener.events() == ["recording.failed", "call.completed"]


async def test_a_stream_that_cannot_connect_is_counted_and_the_call_goes_on(
    listener: Any, unused_tcp_port: int
) -> None:
    flow = [a.start_stream(f"ws://127.0.0.1:{unused_tcp_port}/x", allow_insecure=True), a.pause(0.2)]

    report = await simulate(flow, hooks=listener.hooks_url)

    assert report.calls[0].streams[0].outcome == "connect_failed"
    assert report.stats.connection_errors == 1
    assert (await listener.wait_for("call.completed"))["call"]["id"] == report.calls[0].call_id


async def test_a_stop_stream_matching_no_url_changes_nothing(
    server: ReceiverServer, settings: Settings, tmp_path: Path
) -> None:
    stream_url = url(server)
    start = a.start_stream(stream_url, "both", allow_insecure=True)
    stray = a.stop_stream(url(server, "/elsewhere"), "both")

    with_stop = await simulate([start, a.pause(0.5), stray, a.pause(0.5), a.hangup()], record=tmp_path / "a")
    await streams_done(server, 1)
    without = await simulate(
        [start, a.pause(0.5), a.pause(0.5), a.hangup()], faults=Faults(seed=1), record=tmp_path / "b"
    )
    await streams_done(server, 2)

    assert with_stop.calls[0].unmatched_stop_streams == 1
    assert [o.reason for o in server.outcomes] == ["call_ended", "call_ended"]
    assert [o.samples for o in server.outcomes] == [8000, 8000]
    received = Path(settings.recordings_dir)
    first = {p.name.split(".", 1)[1]: read(p)[2] for p in (received / with_stop.calls[0].call_id).glob("*.wav")}
    second = {p.name.split(".", 1)[1]: read(p)[2] for p in (received / without.calls[0].call_id).glob("*.wav")}
    assert first.keys() == second.keys() == {"inbound.wav", "outbound.wav", "stereo.wav"}
    assert all(np.array_equal(first[k], second[k]) for k in first)


async def test_streams_of_one_call_run_side_by_side(server: ReceiverServer, settings: Settings, tmp_path: Path) -> None:
    one, two = url(server, "/one"), url(server, "/two")
    flow = [
        a.start_stream(one, "inbound", allow_insecure=True),
        a.start_stream(two, "outbound", allow_insecure=True),
        a.pause(0.4),
        a.stop_stream(two),
        a.pause(0.4),
    ]

    report = await simulate(flow, faults=Faults(seed=4, loss=0.1), record=tmp_path / "sent")
    await streams_done(server, 2)

    assert [(s.track, s.planned_end, s.end_seconds) for s in report.calls[0].streams] == [
        ("inbound", "call_ended", 0.8),
        ("outbound", "stop_stream", 0.4),
    ]
    assert assert_same_recordings(tmp_path / "sent", Path(settings.recordings_dir)) == 2


async def test_recording_webhooks_carry_the_pages_envelope_in_order(server: ReceiverServer, listener: Any) -> None:
    flow = [a.start_recording(), a.pause(0.5), a.stop_recording(), a.stop_recording(), a.hangup()]

    report = await simulate(flow, hooks=listener.hooks_url)

    call_id = report.calls[0].call_id
    assert listener.events() == ["recording.completed", "recording.failed", "call.completed"]
    completed, failed, _ = listener.webhooks
    assert_envelope(completed, "recording.completed", call_id, "in_progress")
    assert completed["data"] == {
        "recording_id": f"rec_{call_id}",
        "status": "completed",
        "duration_seconds": 0.5,
        "size_bytes": 8044,
    }
    assert failed["data"]["status"] == "failed"
    assert listener.headers[0]["User-Agent"] == "MiniVoice/1.0"
    assert listener.headers[0]["Content-Type"] == "application/json"


def assert_envelope(hook: dict[str, Any], event: str, call_id: str, status: str) -> None:
    assert set(hook) == {"event", "created_at", "call", "variables", "data"}
    assert hook["event"] == event
    assert hook["created_at"].endswith("Z") and len(hook["created_at"]) == 20
    assert hook["call"] == {
        "id": call_id,
        "customer_id": "cust_sim",
        "application_id": "app_sim",
        "status": status,
        "direction": "inbound",
        "from": "+15551230001",
        "to": "+15551230002",
    }
    assert hook["variables"] == {}


async def test_the_flow_can_come_from_an_answer_url(server: ReceiverServer, listener: Any) -> None:
    listener.answer = a.to_payload([a.start_stream(url(server), "both", allow_insecure=True), a.pause(0.2)], keyed=True)

    report = await simulate(None, answer_url=listener.answer_url, hooks=listener.hooks_url)
    await streams_done(server, 1)

    (request,) = listener.answer_requests
    call_id = report.calls[0].call_id
    assert request["body"]["event"] == "call.answered"
    assert request["body"]["call"]["id"] == call_id
    assert request["headers"]["X-MiniVoice-Call-Id"] == call_id
    assert report.calls[0].streams[0].outcome == "stopped"
    assert server.outcomes[-1].samples == 1600


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            {"actions": [{"type": "start_stream", "stream_url": "https://x/y", "track": "speaker"}]},
            "answer_url_error: actions[0] (start_stream).stream_url",
        ),
        (b"<html>", "answer_url_error: malformed JSON"),
    ],
)
async def test_an_invalid_answer_url_payload_fails_the_call_with_its_reason(
    listener: Any, answer: Any, expected: str
) -> None:
    listener.answer = answer

    report = await simulate(None, answer_url=listener.answer_url, hooks=listener.hooks_url)

    assert report.stats.calls_failed == 1 and not report.calls
    assert report.errors[0].startswith("call 0: " + expected)


async def test_the_real_time_clock_paces_frames_and_measures_send_lag(
    server: ReceiverServer, settings: Settings, tmp_path: Path
) -> None:
    flow = [a.start_stream(url(server), "both", allow_insecure=True), a.pause(0.3)]

    report = await simulate(flow, fast=False, faults=Faults(seed=3, jitter_ms=10, loss=0.1), record=tmp_path / "sent")
    await streams_done(server, 1)

    stats = report.stats.as_dict()
    assert stats["elapsed_seconds"] >= 0.28
    assert stats["send_lag_ms"]["max"] >= 0 and report.stats.lag_count == report.stats.messages_sent
    assert assert_same_recordings(tmp_path / "sent", Path(settings.recordings_dir)) == 3


# -- the command -------------------------------------------------------------------------


async def run_cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "receiver",
        "simulate",
        *args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_receiver_simulate_runs_a_flow_file_and_prints_a_json_summary(
    server: ReceiverServer, settings: Settings, listener: Any, tmp_path: Path
) -> None:
    flow = tmp_path / "flow.json"
    flow.write_text(
        json.dumps(
            a.to_payload(
                [a.start_stream(url(server), "both", allow_insecure=True), a.pause(0.5), a.stop_stream(), a.hangup()]
            )
        )
    )
    speech = tmp_path / "in.wav"
    with wave.open(str(speech), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(44100)
        w.writeframes(np.tile(np.array([1000, -1000], dtype="<i2"), 44100).tobytes())

    code, out, err = await run_cli(
        str(flow),
        "--allow-insecure",
        "--fast",
        "--json",
        "--seed",
        "9",
        "--loss",
        "0.1",
        "--duplicate",
        "0.1",
        "--reorder-ms",
        "80",
        "--inbound-audio",
        str(speech),
        "--encoding",
        "l16",
        "--sample-rate",
        "16000",
        "--record-sent",
        str(tmp_path / "sent"),
        "--webhook-url",
        listener.hooks_url,
    )
    await streams_done(server, 1)

    assert code == 0, err
    summary = json.loads(out)
    assert summary["summary"]["calls_completed"] == 1
    (call,) = summary["calls"]
    (stream,) = call["streams"]
    sent = summary["summary"]["frames_sent"]
    lost = len(stream["faults"]["inbound"]["lost"]) + len(stream["faults"]["outbound"]["lost"])
    dups = len(stream["faults"]["inbound"]["duplicated"]) + len(stream["faults"]["outbound"]["duplicated"])
    assert sent == 2 * 25 - lost + dups
    assert assert_same_recordings(tmp_path / "sent", Path(settings.recordings_dir)) == 3
    assert (await listener.wait_for("call.completed"))["call"]["id"] == call["call_id"]


def run_cli_sync(*args: str) -> tuple[int, str, str]:
    result = subprocess.run(
        [sys.executable, "-m", "receiver", "simulate", *args], capture_output=True, text=True, check=False, timeout=60
    )
    return result.returncode, result.stdout, result.stderr


def test_receiver_simulate_refuses_ws_urls_without_the_insecure_flag(tmp_path: Path) -> None:
    flow = tmp_path / "flow.json"
    flow.write_text(json.dumps({"actions": [{"type": "start_stream", "stream_url": "ws://127.0.0.1:9/x"}]}))

    code, out, err = run_cli_sync(str(flow), "--fast", "--json")

    assert code == 1
    assert "must be a wss:// URL" in err
    assert json.loads(out)["error"] == {"code": "answer_url_error", "message": "invalid action payload"}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--format", "twilio", "--encoding", "l16"], "twilio streams l16 at 8000 Hz never"),
        (["--inbound-audio", "/nonexistent.wav"], "cannot read"),
        (["--loss", "2"], "probability"),
    ],
)
def test_receiver_simulate_refuses_bad_options(tmp_path: Path, args: list[str], expected: str) -> None:
    flow = tmp_path / "flow.json"
    flow.write_text('{"actions": []}')

    code, _, err = run_cli_sync(str(flow), *args)

    assert code == 2
    assert expected in err


async def test_load_mode_runs_many_calls_and_reports_progress(server: ReceiverServer, tmp_path: Path) -> None:
    flow = tmp_path / "flow.json"
    flow.write_text(json.dumps(a.to_payload([a.start_stream(url(server), "both", allow_insecure=True), a.pause(0.4)])))

    code, out, err = await run_cli(
        str(flow), "--allow-insecure", "--fast", "--json", "--calls", "6", "--concurrency", "3", "--ramp", "0.05"
    )
    await streams_done(server, 6)

    assert code == 0, err
    summary = json.loads(out)["summary"]
    assert summary["calls_completed"] == 6 and summary["calls_failed"] == 0
    assert summary["frames_sent"] == 6 * 2 * 20
    assert summary["connection_errors"] == 0
    assert "calls 6/6 done" in err
    assert len(server.outcomes) == 6 and all(o.samples == 3200 for o in server.outcomes)


def test_the_simulator_never_imports_the_server_session_or_parsers() -> None:
    code = (
        "import sys, receiver.simulator, receiver.cli.simulate, receiver.simulator.runner;"
        "bad = [m for m in sys.modules if m.startswith(('receiver.stream.server', 'receiver.session', 'receiver.platforms', 'receiver.stream.pipeline', 'receiver.mediaclock'))];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60)

    assert result.returncode == 0, result.stdout + result.stderr


async def test_each_run_draws_new_ids_unless_given_a_seed(tmp_path: Path) -> None:
    flow = tmp_path / "flow.json"
    flow.write_text(json.dumps({"actions": [{"type": "pause", "length": 0}, {"type": "hangup"}]}))

    async def call_id(*args: str) -> tuple[int, str]:
        code, out, err = await run_cli(str(flow), "--fast", "--json", *args)
        assert code == 0, err
        summary = json.loads(out)
        return summary["seed"], summary["calls"][0]["call_id"]

    (seed_a, id_a), (seed_b, id_b) = await asyncio.gather(call_id(), call_id())
    assert id_a != id_b  # two runs against one receiver are two calls, not one overwritten
    assert await call_id("--seed", str(seed_a)) == (seed_a, id_a)  # the printed seed repeats a run
