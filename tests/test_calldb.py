"""The call record's merge rules (pure: no database)."""

from __future__ import annotations

from receiver.calls.db import CallRow, CallUpdate, merge_call


def test_the_newest_status_wins() -> None:
    row = merge_call(None, CallUpdate("c", "2026-01-01T00:00:01.000Z", "call.answered", "in_progress"))
    row = merge_call(row, CallUpdate("c", "2026-01-01T00:00:02.000Z", "call.transferring", "transferring"))

    assert (row.status, row.last_step) == ("transferring", "call.transferring")


def test_an_older_event_only_fills_what_is_unknown() -> None:
    row = merge_call(
        None, CallUpdate("c", "2026-01-01T00:10:00.000Z", "call.completed", "completed", {"direction": "inbound"})
    )
    row = merge_call(
        row,
        CallUpdate(
            "c",
            "2026-01-01T00:02:00.000Z",
            "recording.completed",
            "in_progress",
            {"direction": "outbound", "to_number": "+1"},
        ),
    )

    assert (row.status, row.status_at) == ("completed", "2026-01-01T00:10:00.000Z")
    assert row.last_step == "call.completed"
    assert (row.direction, row.to_number) == ("inbound", "+1")
    assert (row.first_seen_at, row.updated_at) == ("2026-01-01T00:02:00.000Z", "2026-01-01T00:10:00.000Z")


def test_a_terminal_status_is_never_undone() -> None:
    row = merge_call(None, CallUpdate("c", "2026-01-01T00:10:00.000Z", "call.completed", "completed"))
    row = merge_call(row, CallUpdate("c", "2026-01-01T00:11:00.000Z", "call.late", "in_progress"))

    assert row.status == "completed"
    assert row.last_step == "call.late"  # the step is still the newest event


def test_a_terminal_status_replaces_a_newer_non_terminal_one() -> None:
    row = merge_call(None, CallUpdate("c", "2026-01-01T00:11:00.000Z", "x", "in_progress"))
    row = merge_call(row, CallUpdate("c", "2026-01-01T00:10:00.000Z", "call.completed", "completed"))

    assert row.status == "completed"


def test_variables_merge_newest_first() -> None:
    row = merge_call(None, CallUpdate("c", "2026-01-01T00:00:02.000Z", "a", variables={"k": "new", "x": 1}))
    row = merge_call(row, CallUpdate("c", "2026-01-01T00:00:01.000Z", "b", variables={"k": "old", "y": 2}))

    assert row.variables == {"k": "new", "x": 1, "y": 2}


def test_stream_steps_carry_no_status() -> None:
    row = merge_call(
        CallRow("c", "t0", "t0", status="completed", status_at="t0"), CallUpdate("c", "t1", "stream.ended: call_ended")
    )

    assert (row.status, row.last_step) == ("completed", "stream.ended: call_ended")


def test_the_call_end_is_the_last_step_of_its_second_whatever_arrives_first() -> None:
    # The platform stamps webhooks to the second; the streams that end with the call are
    # stamped by the receiver to the millisecond, within that second.
    started = CallUpdate("c", "2026-01-01T00:10:00.508Z", "stream.started")
    ended = CallUpdate("c", "2026-01-01T00:10:00.571Z", "stream.ended: call_ended")
    completed = CallUpdate("c", "2026-01-01T00:10:00.000Z", "call.completed", "completed")
    for order in ([started, ended, completed], [started, completed, ended], [completed, started, ended]):
        row = None
        for update in order:
            row = merge_call(row, update)
        assert row is not None
        assert (row.status, row.last_step, row.last_step_at) == (
            "completed",
            "call.completed",
            "2026-01-01T00:10:00.000Z",
        )

    later = merge_call(row, CallUpdate("c", "2026-01-01T00:10:01.002Z", "stream.ended: disconnected"))
    assert (later.status, later.last_step) == ("completed", "stream.ended: disconnected")  # a later second is later
    earlier = merge_call(None, CallUpdate("c", "2026-01-01T00:10:00.100Z", "stream.started"))
    assert (
        merge_call(earlier, CallUpdate("c", "2026-01-01T00:09:59.000Z", "call.completed", "completed")).last_step
        == "stream.started"
    )


def test_a_call_end_stamped_to_the_millisecond_is_ordered_by_its_stamp() -> None:
    row = merge_call(None, CallUpdate("c", "2026-01-01T00:10:00.250Z", "call.completed", "completed"))
    row = merge_call(row, CallUpdate("c", "2026-01-01T00:10:00.571Z", "stream.ended: call_ended"))

    assert (row.status, row.last_step) == ("completed", "stream.ended: call_ended")
