"""
The stream side of the call record: a ``StreamObserver`` that writes stream
lifecycle into the ``CallStore``, keyed by call id.

Both hooks only translate the server's values and enqueue them on the
store's writer (``CallStore.stream_started`` / ``stream_ended`` return at
once), so the receive loop never waits for the database.
"""

from __future__ import annotations

from datetime import UTC, datetime

from receiver.calls.db import StreamControlRecord, StreamEnd, StreamStart
from receiver.calls.store import CallStore
from receiver.sinks import StreamInfo, StreamOutcome
from receiver.stream.control import ControlChange


def stream_start(info: StreamInfo) -> StreamStart:
    """What the call record keeps of a stream's start."""
    call = info.call
    return StreamStart(
        call_id=info.call_id,
        stream_id=info.stream_id,
        started_at=datetime.fromtimestamp(info.started_at, UTC),
        platform=info.platform.value,
        track=call.requested_track,
        tracks=tuple(t.value for t in info.tracks),
        encoding=info.media_format.encoding.value,
        sample_rate=info.sample_rate,
        call={
            "customer_id": call.customer_id,
            "application_id": call.application_id,
            "direction": call.direction,
            "from_number": call.from_number,
            "to_number": call.to_number,
        },
        connection_id=info.connection_id,
    )


def stream_end(info: StreamInfo, outcome: StreamOutcome, *, now: datetime | None = None) -> StreamEnd:
    """What the call record keeps of a stream's end: reason, statistics, close code, files."""
    summary = outcome.as_dict()
    return StreamEnd(
        call_id=info.call_id,
        stream_id=info.stream_id,
        stopped_at=now or datetime.now(UTC),
        reason=outcome.reason,
        close_code=outcome.close_code,
        outcome=summary,
        files=tuple(outcome.files),
        connection_id=info.connection_id,
    )


class CallRecordObserver:
    """Writes every stream's start and end into its call's record (never blocks)."""

    def __init__(self, store: CallStore) -> None:
        self.store = store

    def stream_started(self, info: StreamInfo) -> None:
        if info.call_id:  # a record is keyed by call id: a stream without one has none
            self.store.stream_started(stream_start(info))

    def stream_ended(self, info: StreamInfo, outcome: StreamOutcome) -> None:
        if info.call_id:
            self.store.stream_ended(stream_end(info, outcome))

    def stream_controlled(self, info: StreamInfo, change: ControlChange) -> None:
        if info.call_id:
            record = StreamControlRecord(
                info.call_id, info.stream_id, datetime.now(UTC), change.action, change.as_dict(), info.connection_id
            )
            self.store.stream_controlled(record)
