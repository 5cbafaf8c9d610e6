"""POST /answer: the configured action list, validated with the actions library, logged per call."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import orjson
import pytest
from structlog.testing import capture_logs

from receiver.calls.answer import answer_config, call_id_of
from receiver.calls.listener import WebhookService
from receiver.config import Settings
from receiver.security.auth import verify_stream_token

START_BOTH = (
    '{"actions": [{"type": "start_stream", "stream_url": "wss://media.example.com/minivoice", "track": "both"}]}'
)
ERROR_BODY = {"error": {"code": "answer_url_error", "message": "invalid action payload"}}
ANSWERED = {
    "event": "call.answered",
    "created_at": "2026-05-29T12:00:00Z",
    "call": {"id": "call_ans", "status": "in_progress"},
    "variables": {},
    "data": {},
}


@pytest.fixture
def hook_settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.replace(webhook_port=0, database=str(tmp_path / "calls.db"))


async def answer(
    settings: Settings, path: str = "/answer", body: Any = ANSWERED
) -> tuple[int, Any, list[dict[str, Any]], WebhookService]:
    with capture_logs() as logs:
        async with WebhookService(settings) as hooks, aiohttp.ClientSession() as session:
            assert hooks.listener is not None
            url = f"http://127.0.0.1:{hooks.listener.port}{path}"
            async with session.post(
                url, data=orjson.dumps(body), headers={"Content-Type": "application/json"}
            ) as response:
                status, payload = response.status, await response.json()
            await hooks.store.flush()
            timeline = await hooks.store.call_events("call_ans")
    return status, (payload, timeline), logs, hooks


async def test_answer_is_off_by_default(hook_settings: Settings) -> None:
    status, (payload, _), _, _ = await answer(hook_settings)

    assert (status, payload["error"]["code"]) == (404, "not_found")


async def test_answer_returns_the_configured_actions_and_logs_them_with_the_call_id(hook_settings: Settings) -> None:
    status, (payload, timeline), logs, _ = await answer(hook_settings.replace(answer=True, answer_actions=START_BOTH))

    assert status == 200
    assert payload == orjson.loads(START_BOTH)
    [line] = [e for e in logs if e.get("logger_name") == "receiver.answer" and e["event"] == "answer_returned"]
    assert (line["call_id"], line["valid"], line["response"]) == ("call_ans", True, payload)
    assert [(e["source"], e["kind"], e["detail"]) for e in timeline] == [("answer", "answer_url", payload)]


async def test_a_keyed_configuration_is_answered_in_the_typed_form(hook_settings: Settings) -> None:
    keyed = '{"actions": [{"start_stream": {"stream_url": "wss://media.example.com/minivoice", "track": "both"}}, {"stop_recording": {}}]}'

    status, (payload, _), _, _ = await answer(hook_settings.replace(answer=True, answer_actions=keyed))

    assert status == 200
    assert payload == {
        "actions": [
            {"type": "start_stream", "stream_url": "wss://media.example.com/minivoice", "track": "both"},
            {"type": "stop_recording"},
        ]
    }


@pytest.mark.parametrize(
    "actions",
    [
        "",
        "{not json",
        '{"actions": [{"type": "start_stream", "stream_url": "https://media.example.com/minivoice", "track": "speaker"}]}',  # the pages' failure example
        '{"actions": [{"type": "start_stream", "stream_url": "ws://127.0.0.1:8080/minivoice"}]}',  # ws:// without answer_allow_ws
        '{"no_actions": []}',
    ],
)
async def test_an_invalid_configuration_answers_the_platform_error_body(hook_settings: Settings, actions: str) -> None:
    status, (payload, timeline), logs, _ = await answer(hook_settings.replace(answer=True, answer_actions=actions))

    assert (status, payload) == (500, ERROR_BODY)
    assert [e["event"] for e in logs if e.get("logger_name") == "receiver.answer"] == [
        "answer_config_invalid",
        "answer_returned",
    ]
    assert timeline is None  # nothing stored for the call


async def test_ws_urls_are_accepted_for_local_runs_when_allowed(hook_settings: Settings) -> None:
    local = '{"actions": [{"type": "start_stream", "stream_url": "ws://127.0.0.1:8080/minivoice", "track": "both"}]}'

    status, (payload, _), _, _ = await answer(
        hook_settings.replace(answer=True, answer_allow_ws=True, answer_actions=local)
    )

    assert (status, payload["actions"][0]["stream_url"]) == (200, "ws://127.0.0.1:8080/minivoice")


async def test_answer_needs_the_secret_when_one_is_configured(hook_settings: Settings) -> None:
    configured = hook_settings.replace(answer=True, answer_actions=START_BOTH, webhook_secret="tok")

    assert (await answer(configured))[0] == 401
    assert (await answer(configured, "/answer/tok"))[0] == 200
    assert (await answer(configured, "/answer?token=tok"))[0] == 200


async def test_an_answer_without_a_call_id_is_still_answered(hook_settings: Settings) -> None:
    status, (payload, timeline), logs, _ = await answer(
        hook_settings.replace(answer=True, answer_actions=START_BOTH), body={"hello": 1}
    )

    assert status == 200
    assert [e["call_id"] for e in logs if e["event"] == "answer_returned"] == [None]


def test_call_id_of_looks_everywhere() -> None:
    assert call_id_of(orjson.dumps(ANSWERED)) == "call_ans"
    assert call_id_of(b'{"call_id": "c2"}') == "c2"
    assert call_id_of(b"garbage", {"call_id": "c3"}) == "c3"
    assert call_id_of(b"", None, {"X-MiniVoice-Call-Id": "c4"}) == "c4"
    assert call_id_of(b"[]") is None


def test_answer_config_reports_the_reason(settings: Settings) -> None:
    bad = answer_config(settings.replace(answer_actions='{"actions": [{"type": "start_stream"}]}'))

    assert not bad.ok
    assert bad.reason is not None and "stream_url is required" in bad.reason


STOP_BOTH = (
    '{"actions": [{"type": "start_stream", "stream_url": "wss://media.example.com/minivoice", "track": "both"},'
    ' {"type": "pause", "length": 1}, {"type": "stop_stream", "stream_url": "wss://media.example.com/minivoice"}]}'
)


async def test_with_stream_tokens_configured_the_answer_signs_every_stream_url_for_the_call(
    hook_settings: Settings,
) -> None:
    configured = hook_settings.replace(
        answer=True, answer_actions=STOP_BOTH, auth_secrets=("s3cret-key",), webhook_secret="hook-secret"
    )

    status, (payload, timeline), logs, _ = await answer(configured, "/answer/hook-secret")

    assert status == 200
    start, pause, stop = payload["actions"]
    assert start["stream_url"] == stop["stream_url"]  # so the stop_stream still matches the stream
    assert start["stream_url"].startswith("wss://media.example.com/minivoice?token=v1.")
    query = parse_qs(urlsplit(start["stream_url"]).query)
    token = verify_stream_token(query["token"][0], secrets=["s3cret-key"], now=time.time(), call_id="call_ans")
    # A short connect window (a token is checked when a stream connects, never later).
    assert time.time() < token.expires_at <= time.time() + configured.auth_token_ttl
    assert pause == {"type": "pause", "length": 1}
    # The token stays out of the answer log and the call's timeline.
    [line] = [e for e in logs if e.get("logger_name") == "receiver.answer" and e["event"] == "answer_returned"]
    assert query["token"][0] not in repr(line) and query["token"][0] not in repr(timeline)
    assert line["response"]["actions"][0]["stream_url"] == "wss://media.example.com/minivoice?token=redacted"


async def test_with_stream_tokens_an_answer_without_a_call_id_is_the_error_body(hook_settings: Settings) -> None:
    configured = hook_settings.replace(
        answer=True, answer_actions=STOP_BOTH, auth_secrets=("s3cret-key",), webhook_secret="hook-secret"
    )
    body = {"event": "call.answered", "call": {}}

    status, (payload, _), _, _ = await answer(configured, "/answer/hook-secret", body=body)

    assert (status, payload) == (400, ERROR_BODY)
