"""The call store on a real SQLite file and a real PostgreSQL server: records, idempotency, order, an unavailable database.

Tests taking ``database`` run against both stores (the same contract); the
rest are about SQLite's file.
"""

from __future__ import annotations

import itertools
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from receiver.calls.db import StreamEnd, StreamStart, connect
from receiver.calls.migrations import LATEST
from receiver.calls.store import CallStore, SqliteCallStore, open_store
from receiver.calls.webhooks import StoreUnavailable, parse_webhook

from .webhook_support import RECORDING_FAILED, SEED_CALL_COMPLETED, SEED_RECORDING_COMPLETED, read_only, webhook


def event(payload: dict[str, object]):  # type: ignore[no-untyped-def]
    return parse_webhook(orjson.dumps(payload))


def store_for(database: str, timeout: float = 5.0) -> CallStore:
    return open_store(database, timeout=timeout)


# -- both stores ---------------------------------------------------------------------


async def test_the_database_is_in_wal_mode(tmp_path: Path) -> None:
    async with SqliteCallStore(tmp_path / "calls.db"):
        pass

    conn = sqlite3.connect(tmp_path / "calls.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


async def test_a_repeated_webhook_is_a_duplicate_and_changes_nothing(database: str) -> None:
    async with store_for(database) as store:
        assert await store.record_webhook(event(SEED_CALL_COMPLETED)) == "stored"
        before = await store.get_call("call_123")
        assert await store.record_webhook(event(SEED_CALL_COMPLETED)) == "duplicate"

        assert await store.get_call("call_123") == before
        assert len(await store.call_events("call_123") or []) == 1


ORDERED = [SEED_RECORDING_COMPLETED, RECORDING_FAILED, SEED_CALL_COMPLETED]


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
async def test_any_delivery_order_leaves_the_same_record(database: str, order: tuple[int, ...]) -> None:
    async with store_for(database) as store:
        for i in order:
            await store.record_webhook(event(ORDERED[i]))
        record = await store.get_call("call_123")
        timeline = await store.call_events("call_123")

    assert record is not None and timeline is not None
    assert record["status"] == "completed"
    assert record["last_step"] == "call.completed"
    assert (record["from"], record["to"], record["customer_id"]) == ("+15551230001", "+15551230002", "cust_123")
    assert {r["recording_id"]: r["status"] for r in record["recordings"]} == {
        "rec_call_123": "completed",
        "rec_call_123_b": "failed",
    }
    assert [e["kind"] for e in timeline] == ["recording.completed", "recording.failed", "call.completed"]


async def test_a_late_recording_event_does_not_undo_a_newer_one(database: str) -> None:
    newer = webhook(SEED_RECORDING_COMPLETED, created_at="2026-05-29T12:09:00Z")
    newer["data"] = {**newer["data"], "status": "deleted", "size_bytes": None}
    async with store_for(database) as store:
        await store.record_webhook(event(newer))
        await store.record_webhook(event(SEED_RECORDING_COMPLETED))
        record = await store.get_call("call_123")

    assert record is not None
    assert record["recordings"] == [
        {
            "recording_id": "rec_call_123",
            "status": "deleted",
            "duration_seconds": 120,
            "size_bytes": None,
            "updated_at": "2026-05-29T12:09:00.000Z",
        }
    ]


def stream_start(call_id: str = "call_s", stream_id: str = "str_1") -> StreamStart:
    return StreamStart(
        call_id=call_id,
        stream_id=stream_id,
        started_at=datetime(2026, 5, 29, 12, 0, 1, tzinfo=UTC),
        platform="minivoice",
        track="both",
        tracks=("inbound", "outbound"),
        encoding="audio/x-mulaw",
        sample_rate=8000,
        call={"customer_id": "cust_1", "direction": "inbound", "from_number": "+1", "to_number": "+2"},
    )


def stream_end(call_id: str = "call_s", stream_id: str = "str_1") -> StreamEnd:
    return StreamEnd(
        call_id=call_id,
        stream_id=stream_id,
        stopped_at=datetime(2026, 5, 29, 12, 0, 9, tzinfo=UTC),
        reason="call_ended",
        close_code=1000,
        outcome={"duration_seconds": 8.0, "messages": 801},
        files=("/r/call_s/str_1.inbound.wav",),
    )


async def test_stream_lifecycle_lands_in_the_call_record(database: str) -> None:
    async with store_for(database) as store:
        store.stream_started(stream_start())
        store.stream_ended(stream_end())
        store.stream_ended(stream_end())  # a replayed write changes nothing
        await store.flush()
        record = await store.get_call("call_s")
        timeline = await store.call_events("call_s")

    assert record is not None and timeline is not None
    assert record["last_step"] == "stream.ended: call_ended"
    assert record["status"] is None  # only the platform says what the call's status is
    assert (record["customer_id"], record["from"], record["to"]) == ("cust_1", "+1", "+2")
    [stream] = record["streams"]
    assert stream["tracks"] == ["inbound", "outbound"]
    assert (stream["started_at"], stream["stopped_at"]) == ("2026-05-29T12:00:01.000Z", "2026-05-29T12:00:09.000Z")
    assert (stream["stop_reason"], stream["close_code"]) == ("call_ended", 1000)
    assert stream["outcome"] == {"duration_seconds": 8.0, "messages": 801}
    assert stream["files"] == ["/r/call_s/str_1.inbound.wav"]
    assert [e["kind"] for e in timeline] == ["stream.started", "stream.ended"]


async def test_two_connections_with_the_same_ids_are_two_segments(database: str) -> None:
    async with store_for(database) as store:
        for connection in ("c1", "c2"):
            store.stream_started(replace(stream_start(), connection_id=connection))
            store.stream_ended(replace(stream_end(), connection_id=connection, files=(f"/r/{connection}.wav",)))
        await store.flush()
        record = await store.get_call("call_s")

    assert record is not None
    assert [(s["segment"], s["files"]) for s in record["streams"]] == [(1, ["/r/c1.wav"]), (2, ["/r/c2.wav"])]


async def test_ids_holding_colons_never_share_a_dedupe_key(database: str) -> None:
    async with store_for(database) as store:
        store.stream_started(stream_start("a:b", "c"))
        store.stream_started(stream_start("a", "b:c"))
        await store.flush()
        records = [await store.get_call("a:b"), await store.get_call("a")]

    assert [[s["stream_id"] for s in r["streams"]] if r else None for r in records] == [["c"], ["b:c"]]


async def test_a_stream_start_only_fills_call_metadata_no_webhook_gave(database: str) -> None:
    forged = {"customer_id": "evil", "from_number": "+666", "to_number": "+667", "application_id": "app_x"}
    async with store_for(database) as store:
        # The webhook first, then a newer forged start.
        await store.record_webhook(event(SEED_CALL_COMPLETED))
        store.stream_started(
            replace(stream_start("call_123"), started_at=datetime(2027, 1, 1, tzinfo=UTC), call=forged)
        )
        # A forged start first, then an older webhook.
        store.stream_started(replace(stream_start("call_b"), call=forged))
        await store.flush()
        await store.record_webhook(
            event(webhook(SEED_CALL_COMPLETED, call_id="call_b", created_at="2020-01-01T00:00:00Z"))
        )
        records = [await store.get_call("call_123"), await store.get_call("call_b")]

    for record in records:
        assert record is not None
        assert (record["customer_id"], record["from"], record["to"]) == ("cust_123", "+15551230001", "+15551230002")
        assert record["application_id"] == "app_123"


async def test_list_calls_filters_by_status_and_since(database: str) -> None:
    async with store_for(database) as store:
        await store.record_webhook(event(webhook(SEED_CALL_COMPLETED, call_id="a", created_at="2026-05-29T10:00:00Z")))
        await store.record_webhook(event(webhook(SEED_CALL_COMPLETED, call_id="b", created_at="2026-05-29T11:00:00Z")))
        await store.record_webhook(
            event(webhook(SEED_RECORDING_COMPLETED, call_id="c", created_at="2026-05-29T12:00:00Z"))
        )

        everything = await store.list_calls()
        completed = await store.list_calls(status="completed")
        recent = await store.list_calls(since="2026-05-29T10:30:00.000Z")
        one = await store.list_calls(limit=1)

    assert [c["call_id"] for c in everything] == ["c", "b", "a"]
    assert [c["call_id"] for c in completed] == ["b", "a"]
    assert [c["call_id"] for c in recent] == ["c", "b"]
    assert [c["call_id"] for c in one] == ["c"]


async def test_an_unknown_call_reads_as_none(database: str) -> None:
    async with store_for(database) as store:
        assert await store.get_call("nope") is None
        assert await store.call_events("nope") is None


async def test_a_locked_database_is_unavailable_and_stream_writes_wait_for_it(tmp_path: Path) -> None:
    path = tmp_path / "calls.db"
    async with SqliteCallStore(path, timeout=0.2) as store:
        blocker = connect(path)
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        try:
            store.stream_started(stream_start())
            with pytest.raises(StoreUnavailable):
                await store.record_webhook(event(SEED_CALL_COMPLETED))
            await store.flush()
            assert store.backlog == 1
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()

        assert await store.record_webhook(event(SEED_CALL_COMPLETED)) == "stored"  # the platform's retry
        assert store.backlog == 0
        assert (await store.get_call("call_s") or {})["streams"][0]["stream_id"] == "str_1"


async def test_a_read_only_database_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "calls.db"
    async with SqliteCallStore(path):
        pass
    with read_only(path):
        async with SqliteCallStore(path) as store:
            with pytest.raises(StoreUnavailable, match="readonly"):
                await store.record_webhook(event(SEED_CALL_COMPLETED))
            assert await store.list_calls() == []  # reads still work


async def test_a_webhook_stamped_to_the_second_follows_the_streams_of_its_second(database: str) -> None:
    start = replace(stream_start(), started_at=datetime(2026, 5, 29, 12, 0, 9, 508000, tzinfo=UTC))
    end = replace(stream_end(), stopped_at=datetime(2026, 5, 29, 12, 0, 9, 571000, tzinfo=UTC))
    async with store_for(database) as store:
        await store.record_webhook(
            event(webhook(SEED_CALL_COMPLETED, call_id="call_s", created_at="2026-05-29T12:00:09Z"))
        )
        store.stream_started(start)
        store.stream_ended(end)
        await store.flush()
        record = await store.get_call("call_s")
        timeline = await store.call_events("call_s")

    assert record is not None and timeline is not None
    assert [e["kind"] for e in timeline] == ["stream.started", "stream.ended", "call.completed"]
    assert timeline[-1]["occurred_at"] == "2026-05-29T12:00:09.000Z"  # listed later, shown as stamped
    assert (record["status"], record["last_step"]) == ("completed", "call.completed")


# The tables as the first schema had them (no user_version): streams keyed by (call_id, stream_id).
SCHEMA_V0 = """
CREATE TABLE calls (call_id TEXT PRIMARY KEY, customer_id TEXT, application_id TEXT, direction TEXT,
    from_number TEXT, to_number TEXT, status TEXT, status_at TEXT, last_step TEXT, last_step_at TEXT,
    first_seen_at TEXT NOT NULL, updated_at TEXT NOT NULL, variables TEXT NOT NULL DEFAULT '{}');
CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, call_id TEXT NOT NULL, source TEXT NOT NULL,
    kind TEXT NOT NULL, occurred_at TEXT NOT NULL, received_at TEXT NOT NULL, dedupe_key TEXT NOT NULL UNIQUE,
    detail TEXT NOT NULL);
CREATE TABLE streams (call_id TEXT NOT NULL, stream_id TEXT NOT NULL, platform TEXT, track TEXT, tracks TEXT,
    encoding TEXT, sample_rate INTEGER, started_at TEXT, stopped_at TEXT, stop_reason TEXT, close_code INTEGER,
    outcome TEXT, files TEXT NOT NULL DEFAULT '[]', PRIMARY KEY (call_id, stream_id));
CREATE TABLE recordings (call_id TEXT NOT NULL, recording_id TEXT NOT NULL, status TEXT NOT NULL,
    duration_seconds REAL, size_bytes INTEGER, event_at TEXT NOT NULL, PRIMARY KEY (call_id, recording_id));
INSERT INTO calls (call_id, first_seen_at, updated_at) VALUES ('call_old', '2026-01-01T00:00:00.000Z',
    '2026-01-01T00:00:00.000Z');
INSERT INTO streams (call_id, stream_id, platform, started_at, files) VALUES ('call_old', 'str_old', 'minivoice',
    '2026-01-01T00:00:00.000Z', '["/r/old.wav"]');
"""


async def test_a_database_of_the_first_schema_is_migrated_and_keeps_its_streams(tmp_path: Path) -> None:
    path = tmp_path / "calls.db"
    old = sqlite3.connect(path)
    old.executescript(SCHEMA_V0)
    old.close()
    start = StreamStart("call_old", "str_old", datetime(2026, 1, 2, tzinfo=UTC), "minivoice", "both", ("inbound",),
                        "audio/x-mulaw", 8000, connection_id="c2")  # fmt: skip

    async with SqliteCallStore(path) as store:
        store.stream_started(start)  # the same ids again: a second segment, not a replacement
        await store.flush()
        record = await store.get_call("call_old")

    assert record is not None
    assert [(s["stream_id"], s["segment"], s["files"]) for s in record["streams"]] == [
        ("str_old", 1, ["/r/old.wav"]),
        ("str_old", 2, []),
    ]
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == LATEST
    conn.close()
