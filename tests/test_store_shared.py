"""One PostgreSQL call store shared by several hosts; migrations; ``receiver db upgrade``."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from receiver import cli
from receiver.calls.db import StreamStart
from receiver.calls.migrations import LATEST, MIGRATIONS
from receiver.calls.store import connect_database, open_store
from receiver.calls.webhooks import parse_webhook
from receiver.transcription.transcript import Transcript

from .webhook_support import SEED_CALL_COMPLETED, webhook


def event(payload: dict[str, object]):  # type: ignore[no-untyped-def]
    return parse_webhook(orjson.dumps(payload))


async def test_a_webhook_retried_at_two_hosts_at_once_is_stored_once(postgres_url: str) -> None:
    hosts = [open_store(postgres_url) for _ in range(2)]
    for store in hosts:
        await store.start()
    try:
        payloads = [webhook(SEED_CALL_COMPLETED, call_id=f"c{i}") for i in range(20)]
        results = await asyncio.gather(
            *(store.record_webhook(event(p)) for p in payloads for store in hosts)  # every webhook at both hosts
        )
        timeline = await hosts[1].call_events("c7")
    finally:
        for store in hosts:
            await store.close()

    assert sorted(results) == ["duplicate"] * 20 + ["stored"] * 20
    assert timeline is not None and [e["kind"] for e in timeline] == ["call.completed"]


async def test_a_stream_and_the_webhooks_of_its_call_meet_in_one_record_across_hosts(postgres_url: str) -> None:
    receiver_host, listener_host = open_store(postgres_url), open_store(postgres_url)
    await receiver_host.start()
    await listener_host.start()
    try:
        receiver_host.stream_started(
            StreamStart(
                call_id="call_x",
                stream_id="str_x",
                started_at=datetime(2026, 5, 29, 12, 0, 1, tzinfo=UTC),
                platform="minivoice",
                track="both",
                tracks=("inbound", "outbound"),
                encoding="audio/x-mulaw",
                sample_rate=8000,
                call={"customer_id": "cust_1"},
            )
        )
        await listener_host.record_webhook(
            event(webhook(SEED_CALL_COMPLETED, call_id="call_x", created_at="2026-05-29T12:00:09Z"))
        )
        await receiver_host.flush()
        record = await listener_host.get_call("call_x")
    finally:
        await receiver_host.close()
        await listener_host.close()

    assert record is not None
    assert (record["status"], record["last_step"]) == ("completed", "call.completed")
    assert [s["stream_id"] for s in record["streams"]] == ["str_x"]
    assert record["events"] == 2


async def test_transcript_events_are_stored_once_and_read_in_media_clock_order(database: str) -> None:
    late = Transcript("call_t", "str_t", "outbound", 2.0, 3.5, "fine thanks", engine="pipe")
    early = Transcript("call_t", "str_t", "inbound", 0.5, 1.75, "hello", engine="pipe")
    async with open_store(database) as store:  # type: ignore[attr-defined]
        for t in (late, early, late):
            store.transcript_published(t)
        await store.flush()
        stored = await store.transcripts("call_t")

    assert stored == [early, late]


def test_migrations_apply_once_whoever_runs_them(database: str) -> None:
    first = connect_database(database, upgrade=False)
    second = connect_database(database, upgrade=False)
    from receiver.calls.migrations import current_version, migrate

    dialect = "sqlite" if not database.startswith("postgresql") else "postgresql"
    try:
        assert current_version(first) == 0
        assert migrate(first, dialect) == [m.version for m in MIGRATIONS]
        assert migrate(second, dialect) == []
        assert current_version(second) == LATEST
    finally:
        first.close()
        second.close()


def test_db_upgrade_reports_what_it_applied(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["db", "upgrade", "--database", database]) == 0
    first = capsys.readouterr().out
    assert cli.main(["db", "upgrade", "--database", database]) == 0
    second = capsys.readouterr().out

    assert f"applied 1: {MIGRATIONS[0].name}" in first
    assert f"schema version {LATEST} (latest {LATEST})" in first
    assert "applied" not in second and "up to date" in second
    assert "postgres@" not in second or ":***@" not in second  # no password in the URL anyway


def test_a_database_from_before_versions_is_adopted_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        """CREATE TABLE calls (call_id TEXT PRIMARY KEY, customer_id TEXT, application_id TEXT, direction TEXT,
             from_number TEXT, to_number TEXT, status TEXT, status_at TEXT, last_step TEXT, last_step_at TEXT,
             first_seen_at TEXT NOT NULL, updated_at TEXT NOT NULL, variables TEXT NOT NULL DEFAULT '{}');
           INSERT INTO calls (call_id, first_seen_at, updated_at) VALUES ('kept', 'a', 'b');"""
    )
    conn.close()

    assert cli.main(["db", "upgrade", "--database", str(path)]) == 0
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT call_id FROM calls").fetchall() == [("kept",)]
    assert conn.execute("SELECT MAX(version) FROM schema_version").fetchone() == (LATEST,)
    conn.close()


def test_db_upgrade_on_an_unreachable_server_is_one_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    from .services import free_port

    url = f"postgresql://u:secret@127.0.0.1:{free_port()}/x"
    assert cli.main(["db", "upgrade", "--database", url]) == 1
    err = capsys.readouterr().err

    assert err.startswith("receiver: cannot open postgresql://u:***@127.0.0.1")
    assert "secret" not in err
