"""Pure webhook rules: envelope parsing, dedupe keys, authentication (no sockets)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import orjson
import pytest

from receiver.calls.webhooks import (
    BodyTooLarge,
    InvalidEnvelope,
    InvalidQuery,
    MalformedJSON,
    Unauthorized,
    UnsupportedContentType,
    WebhookAuth,
    WebhookRejected,
    check_basic,
    check_content_type,
    check_size,
    format_timestamp,
    parse_limit,
    parse_since,
    parse_webhook,
)

from .webhook_support import SEED_CALL_COMPLETED, SEED_RECORDING_COMPLETED


def body(obj: object) -> bytes:
    return orjson.dumps(obj)


def test_call_completed_from_the_seed_page_parses() -> None:
    event = parse_webhook(body(SEED_CALL_COMPLETED))

    assert event.event == "call.completed"
    assert event.call.id == "call_123"
    assert event.call.status == "completed"
    assert event.call.from_number == "+15551230001"
    assert event.call.to_number == "+15551230002"
    assert event.occurred_at == datetime(2026, 5, 29, 12, 10, tzinfo=UTC)
    assert event.recording is None


def test_recording_completed_carries_its_recording() -> None:
    event = parse_webhook(body(SEED_RECORDING_COMPLETED))

    assert event.recording is not None
    assert (event.recording.recording_id, event.recording.status) == ("rec_call_123", "completed")
    assert (event.recording.duration_seconds, event.recording.size_bytes) == (120, 204800)


def test_recording_failed_may_have_no_recording_id() -> None:
    event = parse_webhook(
        body({"event": "recording.failed", "created_at": "2026-05-29T12:03:00Z", "call": {"id": "c"}, "data": {}})
    )

    assert event.recording is not None
    assert event.recording.recording_id is None
    assert event.recording.status == "failed"


def test_unknown_event_types_are_accepted_with_their_data() -> None:
    event = parse_webhook(
        body({"event": "call.ringing", "call": {"id": "c"}, "data": {"anything": [1, 2]}, "extra": True})
    )

    assert event.event == "call.ringing"
    assert event.data == {"anything": [1, 2]}
    assert event.envelope["extra"] is True


def test_missing_created_at_falls_back_to_the_receipt_time() -> None:
    received = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    event = parse_webhook(body({"event": "x", "call": {"id": "c"}}), received_at=received)

    assert event.occurred_at == received
    assert event.created_at is None


def test_created_at_with_an_offset_is_normalised_to_utc() -> None:
    event = parse_webhook(body({**SEED_CALL_COMPLETED, "created_at": "2026-05-29T14:10:00+02:00"}))

    assert format_timestamp(event.occurred_at) == "2026-05-29T12:10:00.000Z"


def test_the_dedupe_key_ignores_whitespace_and_key_order() -> None:
    compact = body(SEED_CALL_COMPLETED)
    spaced = orjson.dumps(dict(reversed(list(SEED_CALL_COMPLETED.items()))), option=orjson.OPT_INDENT_2)

    assert parse_webhook(compact).dedupe_key == parse_webhook(spaced).dedupe_key


def test_the_dedupe_key_differs_between_events_of_one_call() -> None:
    other = {**SEED_CALL_COMPLETED, "created_at": "2026-05-29T12:11:00Z"}

    assert parse_webhook(body(SEED_CALL_COMPLETED)).dedupe_key != parse_webhook(body(other)).dedupe_key


@pytest.mark.parametrize(
    ("raw", "error", "message"),
    [
        (b"{not json", MalformedJSON, "not valid JSON"),
        (b"[1, 2]", MalformedJSON, "JSON object"),
        (body({"call": {"id": "c"}}), InvalidEnvelope, "missing event"),
        (body({"event": "", "call": {"id": "c"}}), InvalidEnvelope, "event must be"),
        (body({"event": 3, "call": {"id": "c"}}), InvalidEnvelope, "event must be"),
        (body({"event": "call.completed"}), InvalidEnvelope, "missing call"),
        (body({"event": "call.completed", "call": "c"}), InvalidEnvelope, "call must be an object"),
        (body({"event": "call.completed", "call": {}}), InvalidEnvelope, "missing call.id"),
        (body({"event": "call.completed", "call": {"id": 5}}), InvalidEnvelope, "call.id must be"),
        (body({"event": "call.completed", "call": {"id": "c", "status": 1}}), InvalidEnvelope, "call.status"),
        (body({"event": "e", "call": {"id": "c"}, "created_at": "yesterday"}), InvalidEnvelope, "RFC 3339"),
        (body({"event": "e", "call": {"id": "c"}, "created_at": "2026-05-29T12:10:00"}), InvalidEnvelope, "offset"),
        (body({"event": "e", "call": {"id": "c"}, "created_at": 1}), InvalidEnvelope, "created_at"),
        (body({"event": "e", "call": {"id": "c"}, "data": []}), InvalidEnvelope, "data must be"),
        (body({"event": "e", "call": {"id": "c"}, "variables": "x"}), InvalidEnvelope, "variables must be"),
        (body({"event": "recording.completed", "call": {"id": "c"}, "data": {}}), InvalidEnvelope, "recording_id"),
        (
            body(
                {"event": "recording.completed", "call": {"id": "c"}, "data": {"recording_id": "r", "size_bytes": -1}}
            ),
            InvalidEnvelope,
            "size_bytes",
        ),
        (
            body(
                {
                    "event": "recording.completed",
                    "call": {"id": "c"},
                    "data": {"recording_id": "r", "duration_seconds": "2"},
                }
            ),
            InvalidEnvelope,
            "duration",
        ),
        (
            body({"event": "recording.failed", "call": {"id": "c"}, "data": {"recording_id": 7}}),
            InvalidEnvelope,
            "recording_id",
        ),
    ],
)
def test_bad_envelopes_are_rejected_with_a_reason(raw: bytes, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message) as info:
        parse_webhook(raw)

    assert 400 <= info.value.status < 500  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "Application/JSON", "application/vnd.minivoice+json"],
)
def test_json_content_types_are_accepted(content_type: str) -> None:
    check_content_type(content_type)


@pytest.mark.parametrize(
    "content_type", [None, "", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]
)
def test_other_content_types_are_415(content_type: str | None) -> None:
    with pytest.raises(UnsupportedContentType) as info:
        check_content_type(content_type)

    assert info.value.status == 415


def test_size_limit() -> None:
    check_size(1024, 1024)
    with pytest.raises(BodyTooLarge) as info:
        check_size(1025, 1024)

    assert info.value.status == 413
    assert info.value.body() == {"error": {"code": "body_too_large", "message": "body is over the 1024-byte limit"}}


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_no_auth_configured_lets_everything_through() -> None:
    WebhookAuth().check(token=None, authorization=None)


def test_a_secret_must_match_exactly() -> None:
    auth = WebhookAuth(secret="s3cret")

    auth.check(token="s3cret", authorization=None)
    with pytest.raises(Unauthorized, match="required"):
        auth.check(token=None, authorization=None)
    for wrong in ("", "s3cre", "s3cret ", "S3CRET", "s3cret-and-more"):
        with pytest.raises(Unauthorized, match="rejected"):
            auth.check(token=wrong, authorization=None)


def test_basic_auth_checks_user_and_password() -> None:
    auth = WebhookAuth(user="minivoice", password="pa:ss")

    auth.check(token=None, authorization=basic("minivoice", "pa:ss"))
    for header in (
        basic("minivoice", "wrong"),
        basic("other", "pa:ss"),
        "Bearer xyz",
        "Basic !!!",
        "Basic " + base64.b64encode(b"nocolon").decode(),
    ):
        with pytest.raises(Unauthorized):
            auth.check(token=None, authorization=header)


def test_with_both_configured_either_is_enough() -> None:
    auth = WebhookAuth(secret="tok", user="u", password="p")

    auth.check(token="tok", authorization=None)
    auth.check(token=None, authorization=basic("u", "p"))
    with pytest.raises(Unauthorized):
        auth.check(token="nope", authorization=basic("u", "nope"))


def test_check_basic_needs_the_basic_scheme() -> None:
    assert check_basic(basic("u", "p"), "u", "p")
    assert check_basic(basic("u", "p").replace("Basic", "basic"), "u", "p")
    assert not check_basic(basic("u", "p").replace("Basic", "Digest"), "u", "p")


def test_since_and_limit_queries() -> None:
    assert parse_since("2026-05-29") == "2026-05-29T00:00:00.000Z"
    assert parse_since("2026-05-29T14:00:00+02:00") == "2026-05-29T12:00:00.000Z"
    assert parse_limit(None) == 50
    assert parse_limit("7") == 7
    for bad in ("0", "1001", "x"):
        with pytest.raises(InvalidQuery):
            parse_limit(bad)
    with pytest.raises(InvalidQuery):
        parse_since("soon")


def test_nesting_deeper_than_the_store_can_write_is_a_400_with_a_reason() -> None:
    raw = b'{"event": "e", "call": {"id": "c"}, "data": {"deep": ' + b"[" * 300 + b"]" * 300 + b"}}"

    with pytest.raises(WebhookRejected, match="nested") as info:
        parse_webhook(raw)

    assert info.value.status == 400


@pytest.mark.parametrize("created_at", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"])
def test_created_at_past_the_ends_of_the_calendar_is_refused_with_a_reason(created_at: str) -> None:
    with pytest.raises(WebhookRejected, match="years 1-9999") as info:
        parse_webhook(body({"event": "e", "call": {"id": "c"}, "created_at": created_at}))

    assert 400 <= info.value.status < 500


@pytest.mark.parametrize("since", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_since_past_the_ends_of_the_calendar_is_an_invalid_query(since: str) -> None:
    with pytest.raises(InvalidQuery, match="years 1-9999"):
        parse_since(since)


def test_created_at_far_in_the_future_is_recorded_at_its_receipt_time() -> None:
    received = datetime(2026, 5, 29, 12, 0, tzinfo=UTC)
    raw = body({"event": "e", "call": {"id": "c"}, "created_at": "9999-12-31T23:59:59Z"})

    event = parse_webhook(raw, received_at=received)

    assert event.occurred_at == received
    assert event.created_at == "9999-12-31T23:59:59Z"  # the envelope stays as sent
    assert event.future_skew is not None and event.future_skew > 86_400
    # Within the allowed skew, created_at stands.
    soon = parse_webhook(
        body({"event": "e", "call": {"id": "c"}, "created_at": "2026-05-30T11:00:00Z"}), received_at=received
    )
    assert soon.occurred_at == datetime(2026, 5, 30, 11, 0, tzinfo=UTC) and soon.future_skew is None
