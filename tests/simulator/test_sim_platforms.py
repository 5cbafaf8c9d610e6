"""Every carrier's format from the simulator, with faults, through a real socket: recordings
sample-exact against ``--record-sent``, both tracks aligned where the format has two."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from receiver.app import ReceiverServer
from receiver.calls import actions as a
from receiver.config import Settings
from receiver.events import Encoding, Platform
from receiver.routes import Mix, Route
from receiver.simulator import Faults, WireFormat
from tests.simulator.test_sim_end_to_end import FAULTS, assert_same_recordings, read, simulate, spec, streams_done

CASES = [
    # (format, encoding, rate, track, receiver's close reason)
    (WireFormat.TELNYX, Encoding.MULAW, 8000, "both", "stop"),
    (WireFormat.TELNYX, Encoding.L16, 16000, "inbound", "stop"),
    (WireFormat.TELNYX, Encoding.ALAW, 8000, "outbound", "stop"),
    (WireFormat.PLIVO, Encoding.MULAW, 8000, "both", "closed"),
    (WireFormat.PLIVO, Encoding.L16, 16000, "inbound", "closed"),
    (WireFormat.EXOTEL, Encoding.L16, 8000, "both", "callended"),
    (WireFormat.VONAGE, Encoding.L16, 16000, "inbound", "closed"),
    (WireFormat.JAMBONZ, Encoding.L16, 8000, "both", "closed"),
    (WireFormat.JAMBONZ, Encoding.L16, 24000, "inbound", "closed"),
    (WireFormat.AUDIOFORK, Encoding.L16, 16000, "both", "closed"),
    (WireFormat.ASTERISK, Encoding.MULAW, 8000, "inbound", "closed"),
    (WireFormat.ASTERISK, Encoding.L16, 16000, "inbound", "closed"),
    (WireFormat.AUDIOHOOK, Encoding.MULAW, 8000, "both", "end"),
    (WireFormat.AUDIOHOOK, Encoding.L16, 8000, "outbound", "end"),
]


@pytest.fixture
async def receiver(tmp_path: Path) -> AsyncIterator[ReceiverServer]:
    settings = Settings(
        host="127.0.0.1",
        port=0,
        recordings_dir=str(tmp_path / "recordings"),
        log_format="json",
        # audio_fork names neither its rate nor its layout: the route does.
        routes=(Route("/fork", Platform.AUDIOFORK, 16000, Mix.STEREO),),
        max_media_lead_seconds=0,  # the simulator sends faster than real time (--fast)
    )
    async with ReceiverServer(settings) as server:
        yield server


@pytest.mark.parametrize(
    ("wire", "encoding", "rate", "track", "reason"),
    CASES,
    ids=[f"{c[0].value}-{c[1].name}-{c[2]}-{c[3]}" for c in CASES],
)
async def test_each_format_with_faults_records_what_was_sent(
    receiver: ReceiverServer,
    tmp_path: Path,
    wire: WireFormat,
    encoding: Encoding,
    rate: int,
    track: str,
    reason: str,
) -> None:
    stream_url = f"ws://127.0.0.1:{receiver.port}/{'fork' if wire is WireFormat.AUDIOFORK else wire.value}"
    # AudioHook pings every 5 s: a longer call carries one.
    seconds = 5.5 if wire is WireFormat.AUDIOHOOK else 1.2
    flow = [
        a.start_stream(stream_url, track, {"customer": "42"}, allow_insecure=True),
        a.pause(seconds),
        a.stop_stream(stream_url, track),
        a.hangup(),
    ]

    report = await simulate(flow, media=spec(wire, encoding, rate), faults=FAULTS, record=tmp_path / "sent")
    await streams_done(receiver, 1)

    (stream,) = report.calls[0].streams
    assert stream.outcome == "stopped", stream.error
    faults = stream.faults
    for kind in ("lost", "duplicated", "reordered", "delayed"):
        assert any(faults[t][kind] for t in faults), kind
    files = assert_same_recordings(tmp_path / "sent", Path(receiver.settings.recordings_dir))
    outcome = receiver.outcomes[-1]
    assert outcome.reason == reason and outcome.close_code == 1000
    assert files == (3 if len(outcome.tracks) == 2 else 1)
    if len(outcome.tracks) == 2:  # both tracks as long as each other
        assert len({len(read(p)[2]) for p in track_files(receiver)}) == 1


async def test_a_dropped_binary_stream_records_what_arrived(receiver: ReceiverServer, tmp_path: Path) -> None:
    stream_url = f"ws://127.0.0.1:{receiver.port}/jambonz"
    flow = [a.start_stream(stream_url, "both", allow_insecure=True), a.pause(2), a.hangup()]

    report = await simulate(
        flow,
        media=spec(WireFormat.JAMBONZ, Encoding.L16, 16000),
        faults=Faults(seed=3, loss=0.05, duplicate=0.05, drop_at=0.7),
        record=tmp_path / "sent",
    )
    await streams_done(receiver, 1)

    (stream,) = report.calls[0].streams
    assert stream.outcome == "dropped" and stream.faults["inbound"]["unsent"]
    assert receiver.outcomes[-1].reason == "disconnected"
    assert assert_same_recordings(tmp_path / "sent", Path(receiver.settings.recordings_dir)) == 3


async def test_plivo_epoch_timestamps_start_the_recording_at_the_first_frame_received(
    receiver: ReceiverServer, tmp_path: Path
) -> None:
    """Frame 1 is reordered behind frame 2: epoch timestamps have no stream start but the first frame."""
    stream_url = f"ws://127.0.0.1:{receiver.port}/plivo"
    flow = [a.start_stream(stream_url, "inbound", allow_insecure=True), a.pause(0.4), a.hangup()]
    faults = next(
        f
        for seed in range(200)
        if (f := Faults(seed=seed, reorder_ms=60, reorder=0.5)) and _first_frame_reordered(flow, f)
    )

    report = await simulate(flow, media=spec(WireFormat.PLIVO), faults=faults, record=tmp_path / "sent")
    await streams_done(receiver, 1)

    assert report.calls[0].streams[0].outcome == "stopped"
    assert assert_same_recordings(tmp_path / "sent", Path(receiver.settings.recordings_dir)) == 1
    _, _, inbound = read(next((tmp_path / "sent").rglob("*.inbound.wav")))
    assert len(inbound) == 19 * 160  # frame 1 arrived after its successor: before the recording's start


def track_files(server: ReceiverServer) -> list[Path]:
    return list(Path(server.settings.recordings_dir).rglob("*.*bound.wav"))


def _first_frame_reordered(flow: list[a.Action], faults: Faults) -> bool:
    from receiver.simulator import plan_call

    stream = plan_call(flow, spec(WireFormat.PLIVO), faults).streams[0]
    return any(chunk == 1 for chunk, _ in stream.faults["inbound"].reordered)


@pytest.mark.parametrize(
    ("wire", "encoding", "rate", "track", "reason"), CASES, ids=[f"{c[0].value}-{c[3]}" for c in CASES]
)
def test_the_receivers_session_reads_each_simulated_format_with_the_simulators_ids(
    wire: WireFormat, encoding: Encoding, rate: int, track: str, reason: str
) -> None:
    from receiver.events import StreamStarted, StreamStopped
    from receiver.session import StreamSession
    from receiver.simulator import plan_call

    flow = [a.start_stream("wss://media.example.com/s", track, {"customer": "42"}), a.pause(0.2)]
    sp = plan_call(flow, spec(wire, encoding, rate), Faults()).streams[0]
    route = Route("/fork", Platform.AUDIOFORK, rate, Mix.STEREO if len(sp.tracks) == 2 else Mix.MONO)
    session = StreamSession(route=route if wire is WireFormat.AUDIOFORK else None)

    events = [session.receive_text(m) if isinstance(m, str) else session.receive_binary(m) for _, m, _, _ in sp.items]

    started = next(e for e in events if isinstance(e, StreamStarted))
    assert (started.stream_id, started.call_id) == (sp.ident.stream_id, sp.ident.call_id)
    assert [t.value for t in started.tracks] == list(sp.declared)
    assert (started.media_format.encoding, started.media_format.sample_rate) == (encoding, rate)
    if wire is not WireFormat.ASTERISK:  # MEDIA_START carries no parameters (they go in the dial string's URI)
        assert started.custom_parameters.get("customer") == "42"
    assert session.stats.media_messages == sp.media_items
    assert isinstance(events[-1], StreamStopped) == (reason not in ("closed",))
    assert len(session.replies) == (2 if wire is WireFormat.AUDIOHOOK else 0)  # opened, closed (no ping in 0.2 s)


async def test_receiver_simulate_speaks_a_carrier_format_from_the_command_line(
    receiver: ReceiverServer, tmp_path: Path
) -> None:
    import json

    from tests.simulator.test_sim_end_to_end import run_cli

    flow = tmp_path / "flow.json"
    stream_url = f"ws://127.0.0.1:{receiver.port}/audiohook"
    flow.write_text(json.dumps(a.to_payload([a.start_stream(stream_url, "both", allow_insecure=True), a.pause(0.6)])))

    code, out, err = await run_cli(
        str(flow), "--format", "audiohook", "--allow-insecure", "--fast", "--json", "--seed", "5",
        "--loss", "0.1", "--duplicate", "0.1", "--record-sent", str(tmp_path / "sent"),
    )  # fmt: skip
    await streams_done(receiver, 1)

    assert code == 0, err
    summary = json.loads(out)
    assert summary["calls"][0]["streams"][0]["outcome"] == "stopped"
    assert assert_same_recordings(tmp_path / "sent", Path(receiver.settings.recordings_dir)) == 3


def test_a_format_the_carrier_never_sends_is_refused(tmp_path: Path) -> None:
    from tests.simulator.test_sim_end_to_end import run_cli_sync

    flow = tmp_path / "flow.json"
    flow.write_text('{"actions": []}')

    code, _, err = run_cli_sync(str(flow), "--format", "vonage", "--encoding", "mulaw")

    assert code == 2
    assert "vonage streams mulaw at 8000 Hz never; it sends l16@8000, l16@16000, l16@24000" in err
