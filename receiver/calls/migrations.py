"""
The call-record schema as numbered migrations, for SQLite and PostgreSQL.

One schema, written twice only where the two engines spell a type
differently (an auto-increment key, a float). ``migrate`` applies the
migrations a database lacks, in order, each in its own transaction, and
records each in ``schema_version``; running it again changes nothing. Every
receiver, webhook listener and worker runs it at start-up, and
``receiver db upgrade`` runs it by hand; two processes starting at once
serialise on a lock (SQLite's write lock, a PostgreSQL advisory lock), so a
migration is applied once.

Migration 1 is the schema the embedded store had before versions were kept
(``CREATE ... IF NOT EXISTS``), so a database made by an older receiver is
adopted as it is.

Blocking: runs on a store thread or in a command, never on the event loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal, Protocol

Dialect = Literal["sqlite", "postgresql"]

# Any constant both sides agree on: the advisory lock every migrating process takes.
_PG_MIGRATION_LOCK: Final = 727_001


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Any: ...


class Connection(Protocol):
    """What the record code needs of a connection: sqlite3's, or ``pg.PgConnection``."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Cursor: ...

    @property
    def in_transaction(self) -> bool: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sqlite: tuple[str, ...]
    postgresql: tuple[str, ...]

    def statements(self, dialect: Dialect) -> tuple[str, ...]:
        return self.sqlite if dialect == "sqlite" else self.postgresql


_CALLS = """CREATE TABLE IF NOT EXISTS calls (
    call_id        TEXT PRIMARY KEY,
    customer_id    TEXT,
    application_id TEXT,
    direction      TEXT,
    from_number    TEXT,
    to_number      TEXT,
    status         TEXT,
    status_at      TEXT,
    last_step      TEXT,
    last_step_at   TEXT,
    first_seen_at  TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    variables      TEXT NOT NULL DEFAULT '{}'
)"""

_EVENTS = """CREATE TABLE IF NOT EXISTS events (
    id          {id},
    call_id     TEXT NOT NULL,
    source      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    received_at TEXT NOT NULL,
    dedupe_key  TEXT NOT NULL UNIQUE,
    detail      TEXT NOT NULL
)"""

_STREAMS = """CREATE TABLE IF NOT EXISTS streams (
    call_id      TEXT NOT NULL,
    stream_id    TEXT NOT NULL,
    platform     TEXT,
    track        TEXT,
    tracks       TEXT,
    encoding     TEXT,
    sample_rate  INTEGER,
    started_at   TEXT,
    stopped_at   TEXT,
    stop_reason  TEXT,
    close_code   INTEGER,
    outcome      TEXT,
    files        TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (call_id, stream_id)
)"""

_RECORDINGS = """CREATE TABLE IF NOT EXISTS recordings (
    call_id          TEXT NOT NULL,
    recording_id     TEXT NOT NULL,
    status           TEXT NOT NULL,
    duration_seconds {real},
    size_bytes       {bigint},
    event_at         TEXT NOT NULL,
    PRIMARY KEY (call_id, recording_id)
)"""

_INDEXES = (
    "CREATE INDEX IF NOT EXISTS calls_updated ON calls (updated_at)",
    "CREATE INDEX IF NOT EXISTS calls_status ON calls (status, updated_at)",
    "CREATE INDEX IF NOT EXISTS events_call ON events (call_id, occurred_at, id)",
)

_TRANSCRIPTS = """CREATE TABLE IF NOT EXISTS transcripts (
    id          {id},
    call_id     TEXT NOT NULL,
    stream_id   TEXT NOT NULL,
    track       TEXT NOT NULL,
    start_s     {real} NOT NULL,
    end_s       {real} NOT NULL,
    text        TEXT NOT NULL,
    final       INTEGER NOT NULL,
    engine      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    stored_at   TEXT NOT NULL,
    dedupe_key  TEXT NOT NULL UNIQUE
)"""

_SQLITE = {"id": "INTEGER PRIMARY KEY AUTOINCREMENT", "real": "REAL", "bigint": "INTEGER"}
_POSTGRESQL = {"id": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "real": "DOUBLE PRECISION", "bigint": "BIGINT"}


def _spelled(statements: Sequence[str], words: dict[str, str]) -> tuple[str, ...]:
    spelled = []
    for statement in statements:
        for word, spelling in words.items():
            statement = statement.replace("{" + word + "}", spelling)
        spelled.append(statement)
    return tuple(spelled)


_V1 = (_CALLS, _EVENTS, _STREAMS, _RECORDINGS, *_INDEXES)
_V2 = (_TRANSCRIPTS, "CREATE INDEX IF NOT EXISTS transcripts_call ON transcripts (call_id, start_s, id)")

# 3: a row per stream connection (two streams with the same call and stream ids were one
# row, the second replacing the first), and where the call's metadata came from (a
# stream's start may fill it in, never replace what a webhook said).
_STREAM_COLUMNS = """call_id, stream_id, platform, track, tracks, encoding, sample_rate, started_at, stopped_at,
    stop_reason, close_code, outcome, files"""
_V3_SQLITE = (
    "ALTER TABLE calls ADD COLUMN meta_source TEXT",
    "ALTER TABLE streams RENAME TO streams_v2",
    _STREAMS.replace("IF NOT EXISTS ", "")
    .replace("stream_id    TEXT NOT NULL,", "stream_id    TEXT NOT NULL,\n    connection_id TEXT NOT NULL DEFAULT '',")
    .replace("PRIMARY KEY (call_id, stream_id)", "PRIMARY KEY (call_id, stream_id, connection_id)"),
    f"INSERT INTO streams ({_STREAM_COLUMNS}) SELECT {_STREAM_COLUMNS} FROM streams_v2",
    "DROP TABLE streams_v2",
)
_V3_POSTGRESQL = (
    "ALTER TABLE calls ADD COLUMN meta_source TEXT",
    "ALTER TABLE streams ADD COLUMN connection_id TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE streams DROP CONSTRAINT streams_pkey",
    "ALTER TABLE streams ADD PRIMARY KEY (call_id, stream_id, connection_id)",
)

# 4: a transcript event's word times (JSON [[start, end, word], ...]), which captions split
# long lines by: without them a stored event read back was not the event published.
_V4 = ("ALTER TABLE transcripts ADD COLUMN words TEXT NOT NULL DEFAULT '[]'",)

MIGRATIONS: Final = (
    Migration(1, "calls, events, streams, recordings", _spelled(_V1, _SQLITE), _spelled(_V1, _POSTGRESQL)),
    Migration(2, "transcripts", _spelled(_V2, _SQLITE), _spelled(_V2, _POSTGRESQL)),
    Migration(3, "a stream row per connection; call metadata source", _V3_SQLITE, _V3_POSTGRESQL),
    Migration(4, "transcript word times", _V4, _V4),
)
LATEST: Final = MIGRATIONS[-1].version

_VERSION_TABLE = """CREATE TABLE IF NOT EXISTS schema_version (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
)"""


def current_version(conn: Connection) -> int:
    """The newest migration applied (0: none, or no ``schema_version`` table yet)."""
    try:
        row = conn.execute("SELECT MAX(version) AS v FROM schema_version").fetchone()
    except Exception:  # no table yet (either engine's error type)
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        return 0
    return int(row["v"] or 0)


def migrate(conn: Connection, dialect: Dialect, migrations: Sequence[Migration] = MIGRATIONS) -> list[int]:
    """Apply every migration the database lacks; return the versions applied (oldest first).

    Raises:
        The engine's error: a statement failed (that migration's transaction is rolled back).
    """
    conn.execute(_VERSION_TABLE)
    applied: list[int] = []
    for migration in migrations:
        conn.execute("BEGIN IMMEDIATE" if dialect == "sqlite" else "BEGIN")
        try:
            if dialect == "postgresql":
                conn.execute(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
            row = conn.execute(
                "SELECT 1 AS found FROM schema_version WHERE version = ?", (migration.version,)
            ).fetchone()
            if row is None:
                for statement in migration.statements(dialect):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_version (version, name, applied_at) VALUES (?,?,?)",
                    (migration.version, migration.name, datetime.now(UTC).isoformat(timespec="seconds")),
                )
                applied.append(migration.version)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return applied
