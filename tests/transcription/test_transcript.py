"""Transcript events: the per-call file, the log, the HTTP callback, the dialogue."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from receiver import cli
from receiver.events import Encoding, MediaFormat, Platform, Track
from receiver.sinks import StreamInfo
from receiver.transcription import transcript as transcript_module
from receiver.transcription.plugins import TranscriptOutputs
from receiver.transcription.transcript import (
    Transcript,
    Transcripts,
    format_dialogue,
    read_transcript,
    still_decoding,
    transcript_path,
)


def _info(call_id: str = "call_1") -> StreamInfo:
    return StreamInfo(
        "str_1", call_id, Platform.MINIVOICE, (Track.INBOUND, Track.OUTBOUND), MediaFormat(Encoding.MULAW, 8000)
    )


async def _callback_server(fail_first: int) -> tuple[web.AppRunner, int, list[dict[str, object]]]:
    received: list[dict[str, object]] = []
    attempts = {"n": 0}

    async def handle(request: web.Request) -> web.Response:
        attempts["n"] += 1
        if attempts["n"] <= fail_first:
            return web.Response(status=503)
        received.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/transcripts", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, port, received


async def test_events_go_to_the_call_file_the_log_and_the_callback_which_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("receiver.transcription.transcript.CALLBACK_BACKOFF", 0.01)
    runner, port, received = await _callback_server(fail_first=1)
    outputs = TranscriptOutputs(recordings_dir=str(tmp_path), callback_url=f"http://127.0.0.1:{port}/transcripts")
    try:
        with capture_logs() as logs:
            output = outputs.acquire(_info())
            engine = Transcripts(output, "sphinx")
            engine.publish(Track.OUTBOUND, 0.5, 1.75, "thank you for calling")
            engine.publish(Track.INBOUND, 2.0, 3.25, "cancel my order", kind="keyword")
            await outputs.release(output)
    finally:
        await runner.cleanup()

    lines = [orjson.loads(line) for line in transcript_path(tmp_path, "call_1").read_bytes().splitlines()]
    assert lines[0] == {
        "call_id": "call_1",
        "stream_id": "str_1",
        "track": "outbound",
        "start": 0.5,
        "end": 1.75,
        "text": "thank you for calling",
        "final": True,
        "engine": "sphinx",
        "kind": "transcript",
    }
    assert received == lines  # the first POST got a 503 and was retried
    logged = [e for e in logs if e["event"] == "transcript"]
    assert [e["text"] for e in logged] == ["thank you for calling", "cancel my order"]
    assert all(e["logger_name"] == "receiver.transcripts" for e in logged)
    assert outputs.live == {}


async def test_a_stream_is_marked_as_being_decoded_until_its_last_event_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marked: list[bool] = []
    begin = transcript_module._begin

    def spy(marker: Path) -> None:
        begin(marker)
        marked.append(marker.exists())

    monkeypatch.setattr(transcript_module, "_begin", spy)
    outputs = TranscriptOutputs(recordings_dir=str(tmp_path), callback_url=None)
    output = outputs.acquire(_info())
    Transcripts(output, "sphinx").publish(Track.INBOUND, 0.5, 1.0, "hello")
    await outputs.release(output)

    assert marked == [True]
    assert still_decoding(transcript_path(tmp_path, "call_1")) == []
    assert len(read_transcript(transcript_path(tmp_path, "call_1"))) == 1


def test_the_transcript_command_says_while_a_call_is_still_being_decoded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = transcript_path(tmp_path, "call_1")
    path.parent.mkdir()
    marker = path.with_name("transcript.str_2.decoding")
    marker.touch()  # what a receiver leaves while the plugins of stream str_2 still decode

    assert cli.main(["transcript", "call_1", "--recordings-dir", str(tmp_path)]) == 0
    assert "call 'call_1' is still being decoded; nothing transcribed yet" in capsys.readouterr().out
    path.write_bytes(orjson.dumps(Transcript("call_1", "str_2", "inbound", 0.5, 1.0, "hello").as_dict()) + b"\n")
    assert cli.main(["transcript", "call_1", "--recordings-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "caller: hello" in out and "(still being decoded: stream str_2; run again for the rest)" in out
    marker.unlink()
    assert cli.main(["transcript", "call_1", "--recordings-dir", str(tmp_path)]) == 0
    assert "still being decoded" not in capsys.readouterr().out


async def test_a_dead_callback_loses_events_counted_and_never_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("receiver.transcription.transcript.CALLBACK_BACKOFF", 0.01)
    outputs = TranscriptOutputs(
        recordings_dir=str(tmp_path), callback_url="http://127.0.0.1:9/transcripts"
    )  # discard port: refused
    output = outputs.acquire(_info())
    engine = Transcripts(output, "pipe")
    for i in range(3):
        engine.publish(Track.INBOUND, i, i + 0.5, f"word {i}")
    with capture_logs() as logs:
        await asyncio.wait_for(outputs.release(output), 10)

    assert len(read_transcript(transcript_path(tmp_path, "call_1"))) == 3
    assert output.callback_failed == 3
    assert [e["event"] for e in logs].count("transcript_callback_failed") == 1


def test_the_dialogue_interleaves_both_tracks_in_media_clock_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = transcript_path(tmp_path, "call_2")
    path.parent.mkdir(parents=True)
    events = [
        Transcript("call_2", "s", "inbound", 4.0, 5.0, "I want a refund", engine="sphinx"),
        Transcript("call_2", "s", "outbound", 0.5, 2.0, "how can I help", engine="sphinx"),
        Transcript("call_2", "s", "inbound", 2.5, 3.5, "hello", engine="sphinx"),
        Transcript("call_2", "s", "inbound", 4.1, 4.4, "refund", engine="spotter", kind="keyword"),
        Transcript("call_2", "s", "outbound", 6.0, 6.5, "let me", final=False, engine="pipe"),
    ]
    path.write_bytes(b"".join(orjson.dumps(e.as_dict()) + b"\n" for e in events) + b"not json\n")

    assert cli.main(["transcript", "call_2", "--recordings-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split("] ", 1)[1] for line in out] == [
        " agent: how can I help  (sphinx)",
        "caller: hello  (sphinx)",
        "caller: I want a refund  (sphinx)",
        "caller: <keyword> refund  (spotter)",
    ]
    assert "let me" in format_dialogue(read_transcript(path), partial=True)
    assert cli.main(["transcript", "no_such_call", "--recordings-dir", str(tmp_path)]) == 1


async def test_the_file_interleaves_both_tracks_in_media_clock_order_whatever_the_arrival_order(tmp_path: Path) -> None:
    outputs = TranscriptOutputs(recordings_dir=str(tmp_path), callback_url=None)
    output = outputs.acquire(_info())
    slow, fast = Transcripts(output, "slow-engine"), Transcripts(output, "vad")
    fast.publish(Track.OUTBOUND, 0.5, 2.0, "", kind="speech")
    fast.publish(Track.INBOUND, 3.0, 4.0, "", kind="speech")
    output.advance(5.0)
    slow.publish(Track.INBOUND, 3.0, 4.0, "hello")  # the slow engine finishes later
    slow.publish(Track.OUTBOUND, 0.5, 2.0, "how can I help")
    output.advance(12.0)  # 0.5 and 3.0 are now more than the reorder window behind: written
    fast.publish(Track.OUTBOUND, 13.0, 14.0, "", kind="speech")
    output.advance(30.0)
    slow.publish(Track.OUTBOUND, 1.0, 1.5, "late")  # later than the window: written, counted
    await outputs.release(output)

    written = [orjson.loads(line) for line in transcript_path(tmp_path, "call_1").read_bytes().splitlines()]
    assert [(e["start"], e["engine"]) for e in written] == [
        (0.5, "vad"),
        (0.5, "slow-engine"),
        (3.0, "vad"),
        (3.0, "slow-engine"),
        (13.0, "vad"),
        (1.0, "slow-engine"),
    ]
    assert output.out_of_order == 1
