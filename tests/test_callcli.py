"""``receiver webhooks``, ``receiver serve`` with the listener, and ``receiver calls``, as real subprocesses."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import orjson
import pytest

from receiver.calls.db import AnswerRecord, StreamEnd, StreamStart
from receiver.calls.store import SqliteCallStore
from receiver.calls.webhooks import parse_webhook

from .webhook_support import SEED_CALL_COMPLETED, SEED_RECORDING_COMPLETED

RECEIVER = [sys.executable, "-m", "receiver"]


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}


async def start(
    args: list[str], cwd: Path, wait_for: set[str]
) -> tuple[asyncio.subprocess.Process, dict[str, dict[str, object]]]:
    """Start ``receiver args`` and read its JSON log lines until every event in ``wait_for`` was logged."""
    proc = await asyncio.create_subprocess_exec(
        *RECEIVER,
        *args,
        "--log-format",
        "json",
        cwd=cwd,
        env=clean_env(),
        stderr=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    seen: dict[str, dict[str, object]] = {}
    assert proc.stderr is not None
    async with asyncio.timeout(20):
        while not wait_for <= seen.keys():
            line = await proc.stderr.readline()
            assert line, f"receiver exited early ({await proc.wait()})"
            entry = orjson.loads(line)
            seen[entry["event"]] = entry
    return proc, seen


async def stop(proc: asyncio.subprocess.Process) -> int:
    proc.send_signal(signal.SIGTERM)
    async with asyncio.timeout(20):
        await proc.communicate()
    return proc.returncode or 0


async def test_receiver_webhooks_runs_the_listener_alone(tmp_path: Path) -> None:
    database = tmp_path / "calls.db"
    proc, seen = await start(
        ["webhooks", "--webhook-port", "0", "--database", str(database)], tmp_path, {"webhooks_started"}
    )
    try:
        port = seen["webhooks_started"]["port"]
        async with aiohttp.ClientSession() as session:
            async with session.post(f"http://127.0.0.1:{port}/webhooks", json=SEED_CALL_COMPLETED) as response:
                assert response.status == 200
            async with session.get(f"http://127.0.0.1:{port}/calls/call_123") as response:
                assert (await response.json())["status"] == "completed"
    finally:
        assert await stop(proc) == 0


async def test_receiver_serve_starts_the_listener_by_default_and_can_skip_it(tmp_path: Path) -> None:
    args = [
        "serve",
        "--port",
        "0",
        "--webhook-port",
        "0",
        "--database",
        str(tmp_path / "calls.db"),
        "--recordings-dir",
        str(tmp_path / "rec"),
    ]
    proc, seen = await start(args, tmp_path, {"server_started", "webhooks_started"})
    assert await stop(proc) == 0

    proc, seen = await start([*args, "--no-webhooks"], tmp_path, {"server_started"})
    assert await stop(proc) == 0
    assert "webhooks_started" not in seen


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "calls.db"
    asyncio.run(fill(path))
    return path


async def fill(path: Path) -> None:
    async with SqliteCallStore(path) as store:
        await store.record_webhook(parse_webhook(orjson.dumps(SEED_CALL_COMPLETED)))
        await store.record_webhook(parse_webhook(orjson.dumps(SEED_RECORDING_COMPLETED)))
        at = datetime(2026, 5, 29, 12, 0, tzinfo=UTC)
        store.answer_returned(
            AnswerRecord(
                "call_123", at, {"actions": [{"type": "start_stream", "stream_url": "wss://x/y", "track": "both"}]}
            )
        )
        store.stream_started(
            StreamStart(
                "call_123",
                "str_1",
                at + timedelta(seconds=1),
                "minivoice",
                "both",
                ("inbound", "outbound"),
                "audio/x-mulaw",
                8000,
            )
        )
        store.stream_ended(
            StreamEnd(
                "call_123",
                "str_1",
                at + timedelta(seconds=9),
                "call_ended",
                1000,
                {
                    "duration_seconds": 8.0,
                    "samples": 64000,
                    "messages": 790,
                    "sequence_gaps": 34,
                    "audio_gaps": 11,
                    "tracks": {
                        "inbound": {"audio_gaps": 6, "audio_gap_samples": 960},
                        "outbound": {"audio_gaps": 5, "audio_gap_samples": 800},
                    },
                },
                ("/r/a.wav",),
            )
        )


def calls(*args: str) -> tuple[int, str, str]:
    done = subprocess.run(
        [*RECEIVER, "calls", *args], env=clean_env(), capture_output=True, text=True, timeout=30, check=False
    )
    return done.returncode, done.stdout, done.stderr


def test_receiver_calls_lists_shows_and_prints_the_timeline(database: Path) -> None:
    code, out, _ = calls("--database", str(database))
    assert code == 0
    assert "call_123" in out and "completed" in out and "call.completed" in out

    code, out, _ = calls("call_123", "--database", str(database))
    assert code == 0
    assert "status          completed" in out
    assert "recording rec_call_123 completed  120 s  204800 bytes" in out
    assert "stream str_1 (minivoice, inbound,outbound, audio/x-mulaw 8000)" in out
    assert "file /r/a.wav" in out
    # Messages that never came and holes filled with silence are different counts, named apart.
    assert "8.00 s of media, 790 messages, 34 sequence gaps, 11 audio gaps (0.22 s of silence filled)" in out

    code, out, _ = calls("call_123", "--events", "--database", str(database))
    assert code == 0
    assert [line.split()[1:3] for line in out.splitlines()] == [
        ["answer", "answer_url"],
        ["stream", "stream.started"],
        ["stream", "stream.ended"],
        ["webhook", "recording.completed"],
        ["webhook", "call.completed"],
    ]
    assert "actions=start_stream" in out and "reason=call_ended close=1000" in out

    code, out, _ = calls("call_123", "--json", "--database", str(database))
    assert code == 0
    assert orjson.loads(out)["recordings"][0]["size_bytes"] == 204800

    code, out, _ = calls("--status", "busy", "--json", "--database", str(database))
    assert (code, orjson.loads(out)) == (0, {"calls": [], "count": 0})


def test_receiver_calls_says_what_is_missing(database: Path, tmp_path: Path) -> None:
    assert (calls("nope", "--database", str(database)))[::2] == (1, "receiver: no call nope\n")
    absent = tmp_path / "absent.db"
    assert calls("--database", str(absent)) == (
        1,
        "",
        f"receiver: no call database at {absent} (given on the command line)\n",
    )
    assert (calls("--limit", "x", "--database", str(database)))[0] == 2


def test_receiver_calls_finds_the_database_of_the_config_file_from_any_directory(
    database: Path, tmp_path: Path
) -> None:
    config = tmp_path / "receiver.toml"
    config.write_text('database = "calls.db"\n')  # relative: beside the config file
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def in_elsewhere(*args: str) -> tuple[int, str, str]:
        done = subprocess.run(
            [*RECEIVER, "calls", *args], env=clean_env(), cwd=elsewhere, capture_output=True, text=True, timeout=30
        )
        return done.returncode, done.stdout, done.stderr

    code, out, _ = in_elsewhere("--config", str(config))
    assert code == 0 and "call_123" in out
    code, _, err = in_elsewhere()
    assert code == 1
    assert err == (
        f"receiver: no call database at {elsewhere / 'receiver.db'} (the default database; no config file here: "
        "pass --config or set $RECEIVER_CONFIG)\n"
    )


HOSTILE = "\x1b]0;pwned\x07\x1b[2J\x1b[31mred\r\u202eevil\x9b1m"


async def fill_hostile(path: Path) -> None:
    async with SqliteCallStore(path) as store:
        hostile = dict(SEED_CALL_COMPLETED, event="call." + HOSTILE)
        hostile["call"] = dict(SEED_CALL_COMPLETED["call"], id="call_" + HOSTILE, **{"from": HOSTILE, "to": HOSTILE})
        await store.record_webhook(parse_webhook(orjson.dumps(hostile)))
        at = datetime(2026, 5, 29, 12, 0, tzinfo=UTC)
        store.stream_started(
            StreamStart(
                "call_" + HOSTILE, "str_" + HOSTILE, at, "minivoice", "both", ("inbound",), "audio/x-mulaw", 8000
            )
        )
        await store.flush()


def run_calls_in_process(*args: str) -> str:
    from io import StringIO

    from receiver.cli import build_parser

    out = StringIO()
    parsed = build_parser().parse_args(["calls", *args])
    assert parsed.run(parsed, out) == 0
    return out.getvalue()


def test_receiver_calls_escapes_control_characters_from_webhooks_and_streams(tmp_path: Path) -> None:
    path = tmp_path / "calls.db"
    asyncio.run(fill_hostile(path))
    call_id = "call_" + HOSTILE

    for args in ((), (call_id,), (call_id, "--events")):
        out = run_calls_in_process(*args, "--database", str(path))

        assert not [ch for ch in out if ch != "\n" and not ch.isprintable()], repr(out)
        assert "\\x1b]0;pwned\\x07\\x1b[2J" in out and "\\u202eevil\\x9b1m" in out

    # JSON stays exact: the same bytes as stored.
    out = run_calls_in_process(call_id, "--json", "--database", str(path))
    assert orjson.loads(out)["from"] == HOSTILE
