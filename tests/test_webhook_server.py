"""The webhook listener and read API, over real loopback HTTP and a real SQLite file."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from structlog.testing import capture_logs

from receiver.calls.listener import WebhookServer, WebhookService
from receiver.calls.store import SqliteCallStore
from receiver.config import Settings

from .webhook_support import RECORDING_FAILED, SEED_CALL_COMPLETED, SEED_RECORDING_COMPLETED, read_only, webhook


class Client:
    """A running listener and an HTTP client for it."""

    def __init__(self, service: WebhookService, session: aiohttp.ClientSession) -> None:
        self.service = service
        self.session = session
        assert service.listener is not None
        self.base = f"http://127.0.0.1:{service.listener.port}"

    async def post(
        self, path: str, payload: Any = None, *, data: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        body = orjson.dumps(payload) if data is None else data
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        async with self.session.post(self.base + path, data=body, headers=hdrs) as response:
            return response.status, await response.json(content_type=None)

    async def get(self, path: str, *, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        async with self.session.get(self.base + path, headers=headers) as response:
            assert response.headers["Content-Type"].startswith("application/json")
            return response.status, await response.json()


@pytest.fixture
def hook_settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.replace(webhook_port=0, database=str(tmp_path / "calls.db"))


async def running(settings: Settings) -> AsyncIterator[Client]:
    async with WebhookService(settings) as service, aiohttp.ClientSession() as session:
        yield Client(service, session)


@pytest.fixture
async def client(hook_settings: Settings) -> AsyncIterator[Client]:
    async for c in running(hook_settings):
        yield c


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


# -- each event type --------------------------------------------------------------------


async def test_call_completed_is_stored_and_read_back(client: Client) -> None:
    status, body = await client.post("/webhooks", SEED_CALL_COMPLETED)

    assert (status, body) == (200, {"result": "stored", "event": "call.completed", "call_id": "call_123"})
    status, record = await client.get("/calls/call_123")
    assert status == 200
    assert {
        k: record[k]
        for k in ("call_id", "customer_id", "application_id", "status", "direction", "from", "to", "last_step")
    } == {
        "call_id": "call_123",
        "customer_id": "cust_123",
        "application_id": "app_123",
        "status": "completed",
        "direction": "inbound",
        "from": "+15551230001",
        "to": "+15551230002",
        "last_step": "call.completed",
    }
    assert record["status_at"] == "2026-05-29T12:10:00.000Z"


async def test_recording_completed_adds_a_platform_recording(client: Client) -> None:
    assert (await client.post("/webhooks", SEED_RECORDING_COMPLETED))[0] == 200

    _, record = await client.get("/calls/call_123")
    assert record["status"] == "in_progress"
    assert record["recordings"] == [
        {
            "recording_id": "rec_call_123",
            "status": "completed",
            "duration_seconds": 120,
            "size_bytes": 204800,
            "updated_at": "2026-05-29T12:02:12.000Z",
        }
    ]


async def test_recording_failed_is_recorded(client: Client) -> None:
    assert (await client.post("/webhooks", RECORDING_FAILED))[0] == 200

    _, record = await client.get("/calls/call_123")
    assert [(r["recording_id"], r["status"]) for r in record["recordings"]] == [("rec_call_123_b", "failed")]
    assert record["last_step"] == "recording.failed"


async def test_any_other_event_is_stored_not_rejected(client: Client) -> None:
    other = {
        "event": "call.transferred",
        "created_at": "2026-05-29T12:05:00Z",
        "call": {"id": "call_123", "status": "in_progress"},
        "data": {"to": "+1555"},
    }

    status, body = await client.post("/webhooks", other)

    assert (status, body["result"]) == (200, "stored")
    _, timeline = await client.get("/calls/call_123/events")
    assert [(e["kind"], e["detail"]["data"]) for e in timeline["events"]] == [("call.transferred", {"to": "+1555"})]


# -- idempotency and order ----------------------------------------------------------------


async def test_a_repeated_delivery_is_acknowledged_and_changes_nothing(client: Client) -> None:
    await client.post("/webhooks", SEED_CALL_COMPLETED)
    _, before = await client.get("/calls/call_123")

    for _ in range(3):
        status, body = await client.post("/webhooks", SEED_CALL_COMPLETED)
        assert (status, body["result"]) == (200, "duplicate")
    status, body = await client.post(
        "/webhooks", data=orjson.dumps(SEED_CALL_COMPLETED, option=orjson.OPT_INDENT_2)
    )  # same body, reformatted
    assert (status, body["result"]) == (200, "duplicate")

    _, after = await client.get("/calls/call_123")
    assert after == before
    _, timeline = await client.get("/calls/call_123/events")
    assert len(timeline["events"]) == 1


async def test_recording_completed_after_call_completed_leaves_the_right_record(client: Client) -> None:
    await client.post("/webhooks", SEED_CALL_COMPLETED)
    await client.post("/webhooks", SEED_RECORDING_COMPLETED)  # older, says in_progress

    _, record = await client.get("/calls/call_123")
    assert (record["status"], record["last_step"]) == ("completed", "call.completed")
    assert record["recordings"][0]["recording_id"] == "rec_call_123"
    _, timeline = await client.get("/calls/call_123/events")
    assert [e["kind"] for e in timeline["events"]] == ["recording.completed", "call.completed"]


# -- authentication ------------------------------------------------------------------------


@pytest.fixture
async def secret_client(hook_settings: Settings) -> AsyncIterator[Client]:
    async for c in running(hook_settings.replace(webhook_secret="s3cr3t-token")):
        yield c


@pytest.mark.parametrize("path", ["/webhooks", "/webhooks/wrong", "/webhooks?token=wrong", "/webhooks/s3cr3t-toke"])
async def test_with_a_secret_a_request_without_it_gets_401_and_changes_nothing(
    secret_client: Client, path: str
) -> None:
    status, body = await secret_client.post(path, SEED_CALL_COMPLETED)

    assert status == 401
    assert body["error"]["code"] == "unauthorized"
    assert (await secret_client.get("/calls/call_123?token=s3cr3t-token"))[0] == 404


@pytest.mark.parametrize("path", ["/webhooks/s3cr3t-token", "/webhooks?token=s3cr3t-token"])
async def test_the_secret_in_the_path_or_the_query_is_accepted(secret_client: Client, path: str) -> None:
    assert (await secret_client.post(path, SEED_CALL_COMPLETED))[0] == 200


async def test_the_read_api_needs_the_secret_too(secret_client: Client) -> None:
    await secret_client.post("/webhooks/s3cr3t-token", SEED_CALL_COMPLETED)

    for path in ("/calls", "/calls/call_123", "/calls/call_123/events"):
        assert (await secret_client.get(path))[0] == 401
        assert (await secret_client.get(path + "?token=s3cr3t-token"))[0] == 200


async def test_an_auth_failure_logs_one_line_without_the_secret(secret_client: Client) -> None:
    with capture_logs() as logs:
        await secret_client.post("/webhooks/not-the-secret", SEED_CALL_COMPLETED)

    lines = [entry for entry in logs if entry.get("logger_name") == "receiver.webhooks"]
    assert [entry["event"] for entry in lines] == ["webhook_rejected"]
    assert "not-the-secret" not in repr(lines)


@pytest.fixture
async def basic_client(hook_settings: Settings) -> AsyncIterator[Client]:
    async for c in running(hook_settings.replace(webhook_user="minivoice", webhook_password="pw")):
        yield c


async def test_basic_auth_is_required_when_configured(basic_client: Client) -> None:
    async with basic_client.session.post(
        basic_client.base + "/webhooks",
        data=orjson.dumps(SEED_CALL_COMPLETED),
        headers={"Content-Type": "application/json"},
    ) as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert (await basic_client.post("/webhooks", SEED_CALL_COMPLETED, headers=basic("minivoice", "wrong")))[0] == 401
    assert (await basic_client.get("/calls/call_123", headers=basic("minivoice", "pw")))[0] == 404

    assert (await basic_client.post("/webhooks", SEED_CALL_COMPLETED, headers=basic("minivoice", "pw")))[0] == 200
    assert (await basic_client.get("/calls/call_123", headers=basic("minivoice", "pw")))[0] == 200


# -- bad input -------------------------------------------------------------------------------

LIMIT = 2048


@pytest.mark.parametrize(
    ("data", "headers", "status", "code"),
    [
        (b"{not json", {}, 400, "malformed_json"),
        (b"[]", {}, 400, "malformed_json"),
        (orjson.dumps({"call": {"id": "call_123"}}), {}, 422, "invalid_envelope"),
        (orjson.dumps({"event": "call.completed", "call": {"status": "completed"}}), {}, 422, "invalid_envelope"),
        (orjson.dumps({**SEED_CALL_COMPLETED, "created_at": "not a time"}), {}, 422, "invalid_envelope"),
        (orjson.dumps({**SEED_CALL_COMPLETED, "created_at": "9999-12-31T23:59:59-14:00"}), {}, 422, "invalid_envelope"),
        (orjson.dumps({**SEED_CALL_COMPLETED, "created_at": "0001-01-01T00:00:00+14:00"}), {}, 422, "invalid_envelope"),
        (
            b'{"event": "e", "call": {"id": "c"}, "data": {"d": ' + b"[" * 300 + b"]" * 300 + b"}}",
            {},
            400,
            "too_deeply_nested",
        ),
        (orjson.dumps({**SEED_CALL_COMPLETED, "data": {"pad": "x" * LIMIT}}), {}, 413, "body_too_large"),
        (orjson.dumps(SEED_CALL_COMPLETED), {"Content-Type": "text/plain"}, 415, "unsupported_content_type"),
        (
            orjson.dumps(SEED_CALL_COMPLETED),
            {"Content-Type": "application/x-www-form-urlencoded"},
            415,
            "unsupported_content_type",
        ),
    ],
    ids=[
        "malformed-json",
        "not-an-object",
        "missing-event",
        "missing-call-id",
        "bad-created-at",
        "created-at-after-9999",
        "created-at-before-1",
        "nested-300-deep",
        "oversized",
        "text-plain",
        "form",
    ],
)
async def test_bad_input_gets_a_json_4xx_one_log_line_and_stores_nothing(
    hook_settings: Settings, data: bytes, headers: dict[str, str], status: int, code: str
) -> None:
    async for client in running(hook_settings.replace(webhook_max_body_bytes=LIMIT)):
        with capture_logs() as logs:
            got_status, body = await client.post("/webhooks", data=data, headers=headers)

        assert got_status == status
        assert body["error"]["code"] == code
        assert body["error"]["message"]
        assert [e["event"] for e in logs if e.get("logger_name") == "receiver.webhooks"] == ["webhook_rejected"]
        assert (await client.get("/calls"))[1] == {"calls": [], "count": 0}


async def test_an_oversized_chunked_body_is_413(hook_settings: Settings) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b" " * 1024  # whitespace: valid JSON padding, but over the limit

    async for client in running(hook_settings.replace(webhook_max_body_bytes=LIMIT)):
        async with client.session.post(
            client.base + "/webhooks", data=chunks(), headers={"Content-Type": "application/json"}
        ) as response:
            assert response.status == 413
            assert (await response.json())["error"]["code"] == "body_too_large"


# -- the read API ---------------------------------------------------------------------------


async def test_list_calls_with_filters(client: Client) -> None:
    await client.post("/webhooks", webhook(SEED_CALL_COMPLETED, call_id="a", created_at="2026-05-29T10:00:00Z"))
    await client.post("/webhooks", webhook(SEED_RECORDING_COMPLETED, call_id="b", created_at="2026-05-29T11:00:00Z"))

    assert [c["call_id"] for c in (await client.get("/calls"))[1]["calls"]] == ["b", "a"]
    assert [c["call_id"] for c in (await client.get("/calls?status=completed"))[1]["calls"]] == ["a"]
    assert [c["call_id"] for c in (await client.get("/calls?since=2026-05-29T10:30:00Z"))[1]["calls"]] == ["b"]
    assert [c["call_id"] for c in (await client.get("/calls?limit=1"))[1]["calls"]] == ["b"]


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/calls?limit=0", 400, "invalid_query"),
        ("/calls?since=later", 400, "invalid_query"),
        ("/calls?since=0001-01-01T00:00:00%2B14:00", 400, "invalid_query"),
        ("/calls?since=9999-12-31T23:59:59-14:00", 400, "invalid_query"),
        ("/calls/none", 404, "not_found"),
        ("/calls/none/events", 404, "not_found"),
        ("/nowhere", 404, "not_found"),
    ],
)
async def test_read_api_errors_are_json(client: Client, path: str, status: int, code: str) -> None:
    got, body = await client.get(path)

    assert (got, body["error"]["code"]) == (status, code)


async def test_a_future_dated_webhook_is_recorded_at_receipt_and_does_not_pin_the_call(client: Client) -> None:
    with capture_logs() as logs:
        status, body = await client.post("/webhooks", webhook(SEED_CALL_COMPLETED, created_at="9999-12-31T23:59:59Z"))
    await client.post("/webhooks", webhook(SEED_CALL_COMPLETED, call_id="other", created_at="2026-05-29T12:00:00Z"))

    assert status == 200 and "future" in body["warning"]
    assert [e["ahead_seconds"] > 86_400 for e in logs if e["event"] == "webhook_future_dated"] == [True]
    record = (await client.get("/calls/call_123"))[1]
    assert record["last_step_at"] < "2100"  # the receipt time, not year 9999
    events = (await client.get("/calls/call_123/events"))[1]["events"]
    assert events[0]["detail"]["created_at"] == "9999-12-31T23:59:59Z"  # the envelope as sent
    # A later webhook of the call still becomes its last step.
    await client.post("/webhooks", webhook(SEED_RECORDING_COMPLETED, created_at="2099-01-01T00:00:00Z"))
    assert (await client.get("/calls/call_123"))[1]["last_step"] == "recording.completed"


async def test_a_wrong_method_is_a_json_405(client: Client) -> None:
    async with client.session.get(client.base + "/webhooks") as response:
        assert response.status == 405
        assert (await response.json())["error"]["code"] == "method_not_allowed"


# -- the store unavailable ----------------------------------------------------------------


async def test_a_read_only_store_gives_503_so_the_platform_retries(hook_settings: Settings) -> None:
    async for _ in running(hook_settings):
        pass  # creates the database
    with read_only(Path(hook_settings.database)):
        async for client in running(hook_settings):
            with capture_logs() as logs:
                status, body = await client.post("/webhooks", SEED_CALL_COMPLETED)

            assert status == 503
            assert body == {"error": {"code": "store_unavailable", "message": "call store unavailable, retry later"}}
            assert [e["event"] for e in logs if e.get("logger_name") == "receiver.webhooks"] == [
                "webhook_store_unavailable"
            ]
    async for client in running(hook_settings):
        assert (await client.post("/webhooks", SEED_CALL_COMPLETED))[1][
            "result"
        ] == "stored"  # the retry, once it is writable


async def test_an_unexpected_error_is_a_json_500_without_details(hook_settings: Settings) -> None:
    class BrokenStore(SqliteCallStore):
        async def get_call(self, call_id: str) -> dict[str, Any] | None:
            raise RuntimeError("secret detail")

    store = BrokenStore(hook_settings.database)
    async with store, WebhookServer(hook_settings, store) as listener, aiohttp.ClientSession() as session:
        with capture_logs() as logs:
            async with session.get(f"http://127.0.0.1:{listener.port}/calls/x") as response:
                status, body = response.status, await response.json()

    assert (status, body) == (500, {"error": {"code": "internal_error", "message": "internal error"}})
    assert [e["event"] for e in logs if e.get("logger_name") == "receiver.webhooks"] == ["request_failed"]
