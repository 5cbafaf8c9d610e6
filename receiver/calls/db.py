"""
The call-record database, synchronously: values, merge rules, and one
function per write and per read, on SQLite (``connect`` here) or PostgreSQL
(``pg.py`` adapts a psycopg connection to the same calls). The schema is
``migrations.py``.

Blocking: these run only on the store's threads (``store.py``) or in the
``receiver calls`` command, never on the event loop. Every write is one
transaction and is idempotent: each event has a dedupe key (a webhook's is a
hash of its body; a stream's is its call, stream, connection and phase, as a
JSON array, so no id can forge another's key), and an event already stored
changes nothing. Every connection of a stream is a row of its own (a
reconnect with the same ids is a second segment, never a replacement).

Ordering rules (``merge_call``, pure): every event has an ``occurred_at``
(the webhook's ``created_at``, or the receiver's clock for stream lifecycle
and answers). The newest event sets the call's last step and metadata; an
older one arriving late only fills what is still unknown; the newest status
wins, except that a call that reached a terminal status (``completed``,
``failed``, ...) never goes back to a non-terminal one. What a stream's
``start`` says about the call (numbers, customer) only fills fields no one
has set: anyone who can open a stream can write it, so it never replaces
what the platform's webhooks said.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

import orjson

from receiver.calls.migrations import Connection as Connection
from receiver.calls.migrations import migrate
from receiver.calls.webhooks import TERMINAL_STATUSES, WebhookEvent, format_timestamp
from receiver.transcription.transcript import Transcript

T = TypeVar("T")

Outcome = Literal["stored", "duplicate"]


# -- what the stream side reports ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamStart:
    """A stream of a call began (written by the stream observer)."""

    call_id: str
    stream_id: str
    started_at: datetime
    platform: str
    track: str | None  # as the action asked: inbound, outbound, both
    tracks: tuple[str, ...]
    encoding: str
    sample_rate: int
    call: Mapping[str, str | None] = field(default_factory=dict)  # customer_id, direction, from_number, ...
    connection_id: str = ""  # tells apart connections with the same call and stream ids


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """A stream of a call ended."""

    call_id: str
    stream_id: str
    stopped_at: datetime
    reason: str
    close_code: int | None
    outcome: Mapping[str, Any]
    files: tuple[str, ...] = ()
    connection_id: str = ""


@dataclass(frozen=True, slots=True)
class StreamControlRecord:
    """The application paused, resumed or stopped a live stream (through the API)."""

    call_id: str
    stream_id: str
    at: datetime
    action: str  # paused, resumed, stop_requested
    detail: Mapping[str, Any]  # media_seconds, behavior, by
    connection_id: str = ""  # which of the streams with these ids


@dataclass(frozen=True, slots=True)
class AnswerRecord:
    """The answer_url response returned for a call."""

    call_id: str
    answered_at: datetime
    response: Mapping[str, Any]


# -- pure merge rules ----------------------------------------------------------------

_META: Final = ("customer_id", "application_id", "direction", "from_number", "to_number")


@dataclass(frozen=True, slots=True)
class CallRow:
    call_id: str
    first_seen_at: str
    updated_at: str
    customer_id: str | None = None
    application_id: str | None = None
    direction: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    status: str | None = None
    status_at: str | None = None
    last_step: str | None = None
    last_step_at: str | None = None
    variables: Mapping[str, Any] = field(default_factory=dict)
    meta_source: str | None = None  # "webhook" once a webhook set metadata; "stream" when only streams did


@dataclass(frozen=True, slots=True)
class CallUpdate:
    """What one event says about its call."""

    call_id: str
    occurred_at: str  # format_timestamp form: compares as it reads
    step: str
    status: str | None = None
    meta: Mapping[str, str | None] = field(default_factory=dict)
    variables: Mapping[str, Any] = field(default_factory=dict)
    source: str = "webhook"  # webhook: the platform said it; stream: whoever opened a stream did


def merge_call(current: CallRow | None, update: CallUpdate) -> CallRow:
    """The call record after ``update``, whatever order events arrive in. Pure."""
    at = update.occurred_at
    if current is None:
        current = CallRow(call_id=update.call_id, first_seen_at=at, updated_at=at)
        newest = True
    else:
        newest = _is_newest(current, update)
    changes: dict[str, Any] = {
        "first_seen_at": min(current.first_seen_at, at),
        "updated_at": max(current.updated_at, at),
    }
    from_webhook = update.source == "webhook"
    # Metadata the platform sent replaces what only a stream's start had filled in.
    replaces = from_webhook and (newest or current.meta_source != "webhook")
    for name in _META:
        new, old = update.meta.get(name), getattr(current, name)
        changes[name] = (new or old) if replaces else (old or new)
    if any(update.meta.get(name) for name in _META):
        changes["meta_source"] = "webhook" if from_webhook else (current.meta_source or "stream")
    if update.variables:
        changes["variables"] = (
            {**current.variables, **update.variables} if newest else {**update.variables, **current.variables}
        )
    if update.status and _status_wins(current, update.status, at):
        changes["status"], changes["status_at"] = update.status, at
    if newest:
        changes["last_step"], changes["last_step_at"] = update.step, at
    return replace(current, **changes)


def _is_newest(current: CallRow, update: CallUpdate) -> bool:
    """Whether ``update`` is the call's newest step so far.

    The platform stamps webhooks to the second (``12:10:00Z``) and the
    receiver its stream events to the millisecond, so the call's end and the
    streams that end with it in the same second cannot be ordered by their
    stamps: a call's end (a terminal status) stamped to the second is the
    last step of that second.
    """
    last, at = current.last_step_at, update.occurred_at
    if last is None:
        return True
    if update.status in TERMINAL_STATUSES and _to_the_second(at):
        return at[:_SECOND] >= last[:_SECOND]
    if current.status in TERMINAL_STATUSES and current.status_at == last and _to_the_second(last):
        return at[:_SECOND] > last[:_SECOND]
    return at >= last


_SECOND = len("2026-01-01T00:00:00")

# A webhook stamped to the second happened somewhere in that second: the timeline lists it
# after the receiver's own (millisecond) events of the same second (see _is_newest).
_TIMELINE = f"""SELECT * FROM events WHERE call_id = ?
    ORDER BY CASE WHEN source = 'webhook' AND occurred_at LIKE '%.000Z'
                  THEN substr(occurred_at, 1, {_SECOND}) || '.999Z' ELSE occurred_at END, id"""


def _to_the_second(stamp: str) -> bool:
    return stamp.endswith(".000Z")


def _status_wins(current: CallRow, status: str, at: str) -> bool:
    if current.status is None or current.status_at is None:
        return True
    old_terminal, new_terminal = current.status in TERMINAL_STATUSES, status in TERMINAL_STATUSES
    if old_terminal and not new_terminal:
        return False
    if new_terminal and not old_terminal:
        return True
    return at >= current.status_at


# -- SQLite ---------------------------------------------------------------------------


def connect(
    path: str | Path, *, timeout: float = 5.0, read_only: bool = False, upgrade: bool = True
) -> sqlite3.Connection:
    """Open the SQLite database (WAL mode, autocommit; transactions are explicit), migrated unless ``read_only``.

    Raises:
        sqlite3.Error: It cannot be opened (missing when ``read_only``, not a database, ...).
    """
    if read_only:
        uri = Path(path).resolve().as_uri() + "?mode=ro"
        conn = sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None, check_same_thread=False)
    else:
        conn = sqlite3.connect(str(path), timeout=timeout, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    try:
        if not read_only:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at checkpoint, never corrupt
            if upgrade:
                migrate(conn, "sqlite")
        if read_only or upgrade:
            conn.execute("SELECT 1 FROM calls LIMIT 1").fetchall()
    except BaseException:
        conn.close()
        raise
    return conn


def _stream_key(call_id: str, stream_id: str, connection_id: str, phase: str) -> str:
    """A stream event's dedupe key: structured, so ids holding ``:`` cannot collide."""
    return "stream:" + orjson.dumps([call_id, stream_id, connection_id, phase]).decode()


def _dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _now() -> str:
    return format_timestamp(datetime.now(UTC))


def _read_row(conn: Connection, call_id: str) -> CallRow | None:
    row = conn.execute("SELECT * FROM calls WHERE call_id = ?", (call_id,)).fetchone()
    if row is None:
        return None
    values = dict(row)
    values["variables"] = orjson.loads(values["variables"])
    return CallRow(**values)


def _write_row(conn: Connection, row: CallRow) -> None:
    conn.execute(
        """INSERT INTO calls (call_id, customer_id, application_id, direction, from_number, to_number,
               status, status_at, last_step, last_step_at, first_seen_at, updated_at, variables, meta_source)
           VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)
           ON CONFLICT (call_id) DO UPDATE SET customer_id = excluded.customer_id,
             application_id = excluded.application_id, direction = excluded.direction,
             from_number = excluded.from_number, to_number = excluded.to_number, status = excluded.status,
             status_at = excluded.status_at, last_step = excluded.last_step, last_step_at = excluded.last_step_at,
             first_seen_at = excluded.first_seen_at, updated_at = excluded.updated_at, variables = excluded.variables,
             meta_source = excluded.meta_source""",
        (
            row.call_id, row.customer_id, row.application_id, row.direction, row.from_number, row.to_number,
            row.status, row.status_at, row.last_step, row.last_step_at, row.first_seen_at, row.updated_at,
            _dumps(dict(row.variables)), row.meta_source,
        ),
    )  # fmt: skip


def _insert_event(
    conn: Connection, *, call_id: str, source: str, kind: str, occurred_at: str, key: str, detail: Any
) -> bool:
    cur = conn.execute(
        """INSERT INTO events (call_id, source, kind, occurred_at, received_at, dedupe_key, detail)
           VALUES (?,?,?,?,?,?,?) ON CONFLICT (dedupe_key) DO NOTHING""",
        (call_id, source, kind, occurred_at, _now(), key, _dumps(detail)),
    )
    return cur.rowcount == 1


def _update_call(conn: Connection, update: CallUpdate) -> None:
    # Read, merge, write: PostgreSQL writers on many hosts serialise per call here
    # (SQLite's BEGIN IMMEDIATE already serialises every writer).
    lock = getattr(conn, "lock_call", None)
    if lock is not None:
        lock(update.call_id)
    _write_row(conn, merge_call(_read_row(conn, update.call_id), update))


def apply_webhook(conn: Connection, event: WebhookEvent) -> Outcome:
    """Store one webhook in one transaction; a known ``dedupe_key`` changes nothing."""
    at = format_timestamp(event.occurred_at)
    call = event.call

    def work() -> Outcome:
        if not _insert_event(
            conn,
            call_id=call.id,
            source="webhook",
            kind=event.event,
            occurred_at=at,
            key=event.dedupe_key,
            detail=dict(event.envelope),
        ):
            return "duplicate"
        meta = {name: getattr(call, name) for name in _META}
        _update_call(conn, CallUpdate(call.id, at, event.event, call.status, meta, event.variables))
        rec = event.recording
        if rec is not None and rec.recording_id is not None:
            conn.execute(
                """INSERT INTO recordings (call_id, recording_id, status, duration_seconds, size_bytes, event_at)
                   VALUES (?,?,?,?,?,?)
                   ON CONFLICT (call_id, recording_id) DO UPDATE SET
                     status = excluded.status,
                     duration_seconds = COALESCE(excluded.duration_seconds, recordings.duration_seconds),
                     size_bytes = COALESCE(excluded.size_bytes, recordings.size_bytes),
                     event_at = excluded.event_at
                   WHERE excluded.event_at >= recordings.event_at""",
                (call.id, rec.recording_id, rec.status, rec.duration_seconds, rec.size_bytes, at),
            )
        return "stored"

    return _in_transaction(conn, work)


def apply_stream_start(conn: Connection, start: StreamStart) -> None:
    at = format_timestamp(start.started_at)
    detail = {
        "stream_id": start.stream_id,
        "platform": start.platform,
        "track": start.track,
        "tracks": list(start.tracks),
        "encoding": start.encoding,
        "sample_rate": start.sample_rate,
    }
    row = {
        "platform": start.platform,
        "track": start.track,
        "tracks": _dumps(list(start.tracks)),
        "encoding": start.encoding,
        "sample_rate": start.sample_rate,
        "started_at": at,
    }
    update = CallUpdate(start.call_id, at, "stream.started", meta=dict(start.call), source="stream")
    _stream_event(conn, start, "started", at, detail, row, update)


def apply_stream_end(conn: Connection, end: StreamEnd) -> None:
    at = format_timestamp(end.stopped_at)
    detail = {
        "stream_id": end.stream_id,
        "reason": end.reason,
        "close_code": end.close_code,
        "files": list(end.files),
        "outcome": dict(end.outcome),
    }
    row = {
        "stopped_at": at,
        "stop_reason": end.reason,
        "close_code": end.close_code,
        "outcome": _dumps(dict(end.outcome)),
        "files": _dumps(list(end.files)),
    }
    update = CallUpdate(end.call_id, at, f"stream.ended: {end.reason}", source="stream")
    _stream_event(conn, end, "ended", at, detail, row, update)


def _stream_event(
    conn: Connection,
    stream: StreamStart | StreamEnd,
    phase: str,
    at: str,
    detail: dict[str, Any],
    row: dict[str, Any],
    update: CallUpdate,
) -> None:
    """A stream's ``stream.<phase>`` event, its columns of the connection's row, and the call's step: once."""
    key = _stream_key(stream.call_id, stream.stream_id, stream.connection_id, phase)
    columns = ", ".join(row)
    # Column names from the two callers above, never from input.
    sql = f"""INSERT INTO streams (call_id, stream_id, connection_id, {columns})
           VALUES (?,?,?{",?" * len(row)})
           ON CONFLICT (call_id, stream_id, connection_id) DO UPDATE SET
             {", ".join(f"{name} = excluded.{name}" for name in row)}"""

    def work() -> None:
        if _insert_event(
            conn,
            call_id=stream.call_id,
            source="stream",
            kind=f"stream.{phase}",
            occurred_at=at,
            key=key,
            detail=detail,
        ):
            conn.execute(sql, (stream.call_id, stream.stream_id, stream.connection_id, *row.values()))
            _update_call(conn, update)

    _in_transaction(conn, work)


def apply_stream_control(conn: Connection, change: StreamControlRecord) -> None:
    at = format_timestamp(change.at)
    kind = f"stream.{change.action}"
    detail = {"stream_id": change.stream_id, **change.detail}
    key = (
        "control:"
        + orjson.dumps(
            [change.call_id, change.stream_id, change.connection_id, change.action, detail.get("media_seconds")]
        ).decode()
    )

    def work() -> None:
        if _insert_event(
            conn, call_id=change.call_id, source="stream", kind=kind, occurred_at=at, key=key, detail=detail
        ):
            _update_call(conn, CallUpdate(change.call_id, at, kind))

    _in_transaction(conn, work)


def apply_answer(conn: Connection, answer: AnswerRecord) -> None:
    at = format_timestamp(answer.answered_at)
    detail = dict(answer.response)
    key = f"answer:{answer.call_id}:{at}:" + hashlib.sha256(_dumps(detail).encode()).hexdigest()[:16]

    def work() -> None:
        if _insert_event(
            conn, call_id=answer.call_id, source="answer", kind="answer_url", occurred_at=at, key=key, detail=detail
        ):
            _update_call(conn, CallUpdate(answer.call_id, at, "answer_url"))

    _in_transaction(conn, work)


def transcript_key(t: Transcript) -> str:
    """A transcript event's identity: one event per stream, engine, track, kind and media-clock span.

    A worker that takes over a stream replays the blocks its predecessor had
    not acknowledged; what it publishes again for the same span is stored once.
    """
    # Structured: ids holding ":" must not be able to forge another stream's key.
    fields = [t.call_id, t.stream_id, t.engine, t.track, t.kind, int(t.final), f"{t.start:.3f}", f"{t.end:.3f}"]
    return "transcript:" + orjson.dumps(fields).decode()


def apply_transcript(conn: Connection, t: Transcript) -> Outcome:
    """Store one transcript event; ``duplicate`` when its identity was stored before."""
    cur = conn.execute(
        """INSERT INTO transcripts (call_id, stream_id, track, start_s, end_s, text, final, engine, kind,
               words, stored_at, dedupe_key)
           VALUES (?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (dedupe_key) DO NOTHING""",
        (t.call_id, t.stream_id, t.track, t.start, t.end, t.text, int(t.final), t.engine, t.kind,
         _dumps(t.words), _now(), transcript_key(t)),
    )  # fmt: skip
    return "stored" if cur.rowcount == 1 else "duplicate"


def read_transcripts(conn: Connection, call_id: str) -> list[Transcript]:
    """A call's stored transcript events (every stream), in media-clock order."""
    rows = conn.execute(
        "SELECT * FROM transcripts WHERE call_id = ? ORDER BY start_s, end_s, id", (call_id,)
    ).fetchall()
    return [
        Transcript(
            call_id=r["call_id"],
            stream_id=r["stream_id"],
            track=r["track"],
            start=float(r["start_s"]),
            end=float(r["end_s"]),
            text=r["text"],
            final=bool(r["final"]),
            engine=r["engine"],
            kind=r["kind"],
            words=tuple((float(s), float(e), str(w)) for s, e, w in orjson.loads(r["words"])),
        )
        for r in rows
    ]


def _in_transaction(conn: Connection, work: Callable[[], T]) -> T:
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = work()
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result


# -- reads (shared by the read API and ``receiver calls``) -----------------------------------


def _call_json(row: Mapping[str, Any]) -> dict[str, Any]:
    values = dict(row)
    return {
        "call_id": values["call_id"],
        "customer_id": values["customer_id"],
        "application_id": values["application_id"],
        "direction": values["direction"],
        "from": values["from_number"],
        "to": values["to_number"],
        "status": values["status"],
        "status_at": values["status_at"],
        "last_step": values["last_step"],
        "last_step_at": values["last_step_at"],
        "first_seen_at": values["first_seen_at"],
        "updated_at": values["updated_at"],
        "variables": orjson.loads(values["variables"]),
    }


def read_call(conn: Connection, call_id: str) -> dict[str, Any] | None:
    """The whole record of one call: its fields, streams and platform recordings."""
    row = conn.execute("SELECT * FROM calls WHERE call_id = ?", (call_id,)).fetchone()
    if row is None:
        return None
    record = _call_json(row)
    streams = []
    segments: dict[str, int] = {}
    for s in conn.execute(
        "SELECT * FROM streams WHERE call_id = ? ORDER BY COALESCE(started_at, stopped_at), stream_id, connection_id",
        (call_id,),
    ):
        values = dict(s)  # a read-only look at a database not migrated yet has no connection_id
        segment = segments[s["stream_id"]] = segments.get(s["stream_id"], 0) + 1
        streams.append(
            {
                "stream_id": s["stream_id"],
                "segment": segment,  # 2, 3, ...: another connection with the same call and stream ids
                "connection_id": values.get("connection_id", ""),
                "platform": s["platform"],
                "track": s["track"],
                "tracks": orjson.loads(s["tracks"]) if s["tracks"] else [],
                "encoding": s["encoding"],
                "sample_rate": s["sample_rate"],
                "started_at": s["started_at"],
                "stopped_at": s["stopped_at"],
                "stop_reason": s["stop_reason"],
                "close_code": s["close_code"],
                "outcome": orjson.loads(s["outcome"]) if s["outcome"] else None,
                "files": orjson.loads(s["files"]),
            }
        )
    record["streams"] = streams
    record["recordings"] = [
        {
            "recording_id": r["recording_id"],
            "status": r["status"],
            "duration_seconds": r["duration_seconds"],
            "size_bytes": r["size_bytes"],
            "updated_at": r["event_at"],
        }
        for r in conn.execute("SELECT * FROM recordings WHERE call_id = ? ORDER BY event_at, recording_id", (call_id,))
    ]
    record["events"] = conn.execute("SELECT COUNT(*) AS n FROM events WHERE call_id = ?", (call_id,)).fetchone()["n"]
    return record


def read_calls(
    conn: Connection,
    *,
    status: str | None = None,
    since: str | None = None,
    until: str | None = None,
    search: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Calls, most recently active first, each with its number of streams and its span.

    ``since`` keeps calls active at or after it, ``until`` calls that began
    before it; ``search`` keeps calls whose id or either number contains it.
    A call's ``span_seconds`` runs from its first event to its last step.
    """
    sql = "SELECT calls.*, (SELECT COUNT(*) FROM streams WHERE streams.call_id = calls.call_id) AS stream_count"
    sql, args = sql + " FROM calls WHERE 1=1", list[Any]()
    if status:
        sql += " AND status = ?"
        args.append(status)
    if since:
        sql += " AND updated_at >= ?"
        args.append(since)
    if until:
        sql += " AND first_seen_at < ?"
        args.append(until)
    if search:
        pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        sql += " AND (call_id LIKE ? ESCAPE '\\' OR from_number LIKE ? ESCAPE '\\' OR to_number LIKE ? ESCAPE '\\')"
        args.extend([pattern] * 3)
    sql += " ORDER BY updated_at DESC, call_id LIMIT ?"
    args.append(limit)
    calls = []
    for row in conn.execute(sql, args):
        call = _call_json(row)
        call["streams"] = int(row["stream_count"])
        call["span_seconds"] = _seconds_between(call["first_seen_at"], call["last_step_at"] or call["updated_at"])
        calls.append(call)
    return calls


def _seconds_between(start: str, end: str) -> float:
    return round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(), 3)


def read_events(conn: Connection, call_id: str) -> list[dict[str, Any]] | None:
    """The timeline of one call: webhooks and stream lifecycle, in the order they happened."""
    if conn.execute("SELECT 1 FROM calls WHERE call_id = ?", (call_id,)).fetchone() is None:
        return None
    return [
        {
            "id": e["id"],
            "source": e["source"],
            "kind": e["kind"],
            "occurred_at": e["occurred_at"],
            "received_at": e["received_at"],
            "detail": orjson.loads(e["detail"]),
        }
        for e in conn.execute(_TIMELINE, (call_id,))
    ]
