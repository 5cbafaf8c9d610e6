"""
A call's stored transcript read back: ``GET /calls/<call_id>/transcript`` over a real
socket and ``receiver transcript --database`` as a real subprocess, on SQLite and on
PostgreSQL (a server of our own, ``tests/services.py``), with the same output on both.
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from receiver.calls.listener import WebhookService
from receiver.calls.store import CallStore, open_store
from receiver.calls.webhooks import parse_webhook
from receiver.config import Settings
from receiver.transcription.transcript import Transcript

from .services import free_port
from .webhook_support import SEED_CALL_COMPLETED, webhook

CALL = "call_tr"
SECRET = "s3cret-token"
USER, PASSWORD = "ops", "pw-for-ops"


def t(stream: str, track: str, start: float, end: float, text: str, engine: str, **kw: Any) -> Transcript:
    return Transcript(CALL, stream, track, start, end, text, engine=engine, **kw)


# Longer than one caption cue: captions split it at its word times.
WORDS = [
    "fine",
    "thanks",
    "&",
    "you",
    "I",
    "am",
    "calling",
    "about",
    "the",
    "refund",
    "for",
    "the",
    "order",
    "I",
    "placed",
    "last",
    "week",
    "and",
    "nothing",
    "came",
]

# Two streams of one call, five engines (text, partial, keyword, VAD segment, word times),
# listed here in media-clock order; published out of it, as engines of different speed do.
EVENTS = [
    t("str_a", "inbound", 0.40, 1.80, "", "vad", kind="speech"),
    t("str_a", "inbound", 0.50, 1.75, "hello", "pipe"),
    t("str_b", "inbound", 1.00, 1.60, "hi the", "sphinx", final=False),
    t("str_b", "inbound", 1.00, 2.10, "hi there agent", "sphinx"),
    t(
        "str_a",
        "outbound",
        2.00,
        2.20 + 0.25 * (len(WORDS) - 1),
        " ".join(WORDS),
        "whisper",
        words=tuple((2.0 + n * 0.25, 2.2 + n * 0.25, word) for n, word in enumerate(WORDS)),
    ),
    t("str_b", "outbound", 2.50, 2.90, "refund", "keywords", kind="keyword"),
    t("str_b", "inbound", 61.25, 62.0, "<bye>", "whisper"),
]
PUBLISHED = [EVENTS[i] for i in (4, 6, 1, 3, 0, 5, 2)] + [EVENTS[1], EVENTS[4]]  # the last two again
OTHER = Transcript("call_other", "str_o", "inbound", 0.1, 0.2, "not this call", engine="pipe")


async def fill(store: CallStore) -> None:
    """The call's record (a webhook), a call with no transcript, and the transcript events."""
    await store.record_webhook(parse_webhook(orjson.dumps(webhook(SEED_CALL_COMPLETED, call_id=CALL))))
    await store.record_webhook(parse_webhook(orjson.dumps(webhook(SEED_CALL_COMPLETED, call_id="call_quiet"))))
    for event in [*PUBLISHED, OTHER]:
        store.transcript_published(event)
    await store.flush()


async def filled(database: str) -> None:
    async with open_store(database) as store:  # type: ignore[attr-defined]
        await fill(store)


# -- GET /calls/<call_id>/transcript ---------------------------------------------------------


class Listener:
    def __init__(self, service: WebhookService, session: aiohttp.ClientSession) -> None:
        assert service.listener is not None
        self.base = f"http://127.0.0.1:{service.listener.port}"
        self.session = session

    async def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, Any]:
        async with self.session.get(self.base + path, headers=headers) as response:
            assert response.headers["Content-Type"].startswith("application/json")
            body = await response.read()
            return response.status, body, response.headers


def listener_settings(tmp_path: Path, database: str) -> Settings:
    return Settings(
        host="127.0.0.1",
        port=0,
        webhook_host="127.0.0.1",
        webhook_port=0,
        recordings_dir=str(tmp_path / "recordings"),
        database=database,
        webhook_secret=SECRET,
        webhook_user=USER,
        webhook_password=PASSWORD,
    )


async def transcript_bodies(tmp_path: Path, database: str) -> dict[str, tuple[int, bytes]]:
    """What the listener answers for each case, on ``database``."""
    basic = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
    out: dict[str, tuple[int, bytes]] = {}
    async with WebhookService(listener_settings(tmp_path, database)) as service, aiohttp.ClientSession() as session:
        await fill(service.store)
        client = Listener(service, session)
        for name, path, headers in [
            ("token", f"/calls/{CALL}/transcript?token={SECRET}", None),
            ("basic", f"/calls/{CALL}/transcript", basic),
            ("quiet", "/calls/call_quiet/transcript", basic),
            ("unknown", "/calls/call_nobody/transcript", basic),
            ("anonymous", f"/calls/{CALL}/transcript", None),
            ("wrong_token", f"/calls/{CALL}/transcript?token=guess", None),
            ("wrong_password", f"/calls/{CALL}/transcript", {"Authorization": "Basic b3BzOm5vcGU="}),
        ]:
            status, body, response_headers = await client.get(path, headers)
            if status == 401:
                assert response_headers["WWW-Authenticate"].startswith("Basic ")
            out[name] = status, body
    return out


async def test_the_transcript_over_http_is_every_stream_and_engine_in_media_clock_order(
    tmp_path: Path, database: str
) -> None:
    answers = await transcript_bodies(tmp_path, database)

    status, body = answers["token"]
    assert status == 200
    reply = orjson.loads(body)
    assert reply["call_id"] == CALL
    assert [Transcript.from_dict(e) for e in reply["events"]] == EVENTS  # once each, words and all
    assert reply["events"][4]["words"][:2] == [[2.0, 2.2, "fine"], [2.25, 2.45, "thanks"]]
    assert "words" not in reply["events"][1]  # as in transcript.jsonl: no word times, no key
    assert answers["basic"] == answers["token"]
    assert answers["quiet"] == (200, b'{"call_id":"call_quiet","events":[]}\n')


async def test_the_transcript_over_http_needs_credentials_and_a_known_call(tmp_path: Path, database: str) -> None:
    answers = await transcript_bodies(tmp_path, database)

    for case, detail in [
        ("anonymous", "credentials required"),
        ("wrong_token", "credentials rejected"),
        ("wrong_password", "credentials rejected"),
    ]:
        status, body = answers[case]
        assert status == 401, case
        assert orjson.loads(body) == {"error": {"code": "unauthorized", "message": detail}}, case
        assert b"hello" not in body
    status, body = answers["unknown"]
    assert status == 404
    assert orjson.loads(body)["error"]["code"] == "not_found"
    assert "call_nobody" in orjson.loads(body)["error"]["message"]


async def test_the_transcript_over_http_is_the_same_on_sqlite_and_postgresql(tmp_path: Path, postgres_url: str) -> None:
    on_sqlite = await transcript_bodies(tmp_path / "a", str(tmp_path / "calls.db"))
    on_postgresql = await transcript_bodies(tmp_path / "b", postgres_url)

    assert on_sqlite == on_postgresql  # byte for byte, every case


# -- receiver transcript --database -----------------------------------------------------------


def receiver(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}
    return subprocess.run(
        [sys.executable, "-m", "receiver", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


FORMATS = [
    ("text",),
    ("jsonl", "--partial"),
    ("vtt", "--engine", "whisper"),
    ("srt", "--engine", "whisper"),
]


def cli_outputs(database: str, cwd: Path) -> dict[str, tuple[int, str, str]]:
    asyncio.run(filled(database))
    out = {}
    for fmt, *more in FORMATS:
        done = receiver("transcript", CALL, "--database", database, "--format", fmt, *more, cwd=cwd)
        out[" ".join([fmt, *more])] = done.returncode, done.stdout, done.stderr
    for case, call, fmt in [("captions of two engines", CALL, "vtt"), ("unknown", "call_nobody", "text")]:
        done = receiver("transcript", call, "--database", database, "--format", fmt, cwd=cwd)
        out[case] = done.returncode, done.stdout, done.stderr
    return out


@pytest.mark.one_loop
def test_receiver_transcript_reads_either_store_in_media_clock_order_the_same(
    tmp_path: Path, postgres_url: str
) -> None:
    out = cli_outputs(str(tmp_path / "calls.db"), tmp_path)
    on_postgresql = cli_outputs(postgres_url, tmp_path)

    code, text, err = out["text"]
    assert (code, err) == (0, "")
    assert text.splitlines() == [
        "[    0.40 -     1.80] caller: (speech)  (vad)",
        "[    0.50 -     1.75] caller: hello  (pipe)",
        "[    1.00 -     2.10] caller: hi there agent  (sphinx)",
        f"[    2.00 -     6.95]  agent: {' '.join(WORDS)}  (whisper)",
        "[    2.50 -     2.90]  agent: <keyword> refund  (keywords)",
        "[   61.25 -    62.00] caller: <bye>  (whisper)",
    ]
    code, jsonl, _ = out["jsonl --partial"]
    assert code == 0
    assert [Transcript.from_dict(orjson.loads(line)) for line in jsonl.splitlines()] == EVENTS
    # Word times survive the store: whisper's long line is two cues of two lines at most, split where
    # its words were timed.
    assert out["vtt --engine whisper"][:2] == (
        0,
        "WEBVTT\n\n"
        "00:00:02.000 --> 00:00:05.700\n<v agent>fine thanks &amp; you I am calling about the\n"
        "refund for the order I placed\n\n"
        "00:00:05.750 --> 00:00:06.950\n<v agent>last week and nothing came\n\n"
        "00:01:01.250 --> 00:01:02.000\n<v caller>&lt;bye&gt;\n",
    )
    srt = out["srt --engine whisper"][1]
    assert srt.startswith(
        "1\n00:00:02,000 --> 00:00:05,700\nagent: fine thanks & you I am calling\n"
        "about the refund for the order I placed\n\n2\n00:00:05,750 --> 00:00:06,950\n"
        "agent: last week and nothing came\n"
    )
    code, _, err = out["captions of two engines"]
    assert code == 2 and "choose one with --engine" in err
    code, text, err = out["unknown"]
    assert (code, text) == (1, "")
    assert err.startswith("receiver: no transcript for call 'call_nobody'") and err.count("\n") == 1

    # Byte for byte the same from PostgreSQL, but where the not-found line says it looked.
    assert {case: result for case, result in out.items() if case != "unknown"} == {
        case: result for case, result in on_postgresql.items() if case != "unknown"
    }
    code, text, err = on_postgresql["unknown"]
    assert (code, text) == (1, "")
    assert err.startswith("receiver: no transcript for call 'call_nobody'") and "(PostgreSQL)" in err


@pytest.mark.one_loop
def test_receiver_transcript_on_a_store_it_cannot_read_says_so_in_one_line(tmp_path: Path) -> None:
    unreachable = f"postgresql://u:secret@127.0.0.1:{free_port()}/x"
    missing = str(tmp_path / "none.db")
    for database, words in [(unreachable, "cannot open postgresql://u:***@127.0.0.1"), (missing, "no transcript")]:
        done = receiver("transcript", CALL, "--database", database, cwd=tmp_path)
        assert done.returncode == 1, done.stderr
        assert done.stderr.startswith("receiver: " + words) and done.stdout == "", done.stderr
        assert "secret" not in done.stderr and "Traceback" not in done.stderr
