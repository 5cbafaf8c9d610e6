"""Webhooks and the answer_url over real local HTTP: envelope, retries, timeouts."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from receiver.simulator.http import AnswerUrlError, WebhookSettings, envelope, fetch_answer_url, post_webhook
from receiver.simulator.plan import CallInfo

CALL = CallInfo("call_123")


def fast(url: str, **kwargs: Any) -> WebhookSettings:
    return WebhookSettings(url, **{"timeout": 2.0, "backoff": 0.001, **kwargs})


async def test_a_webhook_is_sent_again_until_it_gets_a_2xx_with_the_same_body(listener: Any) -> None:
    listener.fail_first = 2
    body = envelope("call.completed", CALL, "completed", {})

    async with aiohttp.ClientSession() as session:
        result = await post_webhook(session, fast(listener.hooks_url), body)

    assert result.delivered and result.attempts == 3 and result.status == 200
    assert len(listener.attempts) == 3
    assert all(attempt == body for attempt in listener.attempts)
    assert listener.webhooks == [body]


async def test_a_webhook_gives_up_after_five_attempts(listener: Any) -> None:
    listener.fail_first = 100

    async with aiohttp.ClientSession() as session:
        result = await post_webhook(
            session, fast(listener.hooks_url), envelope("call.completed", CALL, "completed", {})
        )

    assert not result.delivered
    assert result.attempts == 5 and len(listener.attempts) == 5
    assert result.status == 500 and result.error == "HTTP 500"


async def test_an_answer_slower_than_the_timeout_counts_as_no_answer(listener: Any) -> None:
    listener.stall_first = 1

    async with aiohttp.ClientSession() as session:
        result = await post_webhook(
            session, fast(listener.hooks_url, timeout=0.2), envelope("recording.failed", CALL, "in_progress", {})
        )

    assert result.delivered and result.attempts == 2


async def test_an_unreachable_webhook_url_is_reported_not_raised(unused_tcp_port: int) -> None:
    async with aiohttp.ClientSession() as session:
        result = await post_webhook(
            session,
            fast(f"http://127.0.0.1:{unused_tcp_port}/x", attempts=2),
            envelope("call.completed", CALL, "completed", {}),
        )

    assert not result.delivered and result.attempts == 2 and result.status is None
    assert result.error is not None and "Connect" in result.error


def test_the_envelope_is_the_pages() -> None:
    body = envelope("recording.completed", CALL, "in_progress", {"recording_id": "rec_call_123"})

    assert list(body) == ["event", "created_at", "call", "variables", "data"]
    assert body["call"]["id"] == "call_123" and body["call"]["status"] == "in_progress"
    assert body["created_at"][4] == "-" and body["created_at"].endswith("Z")


async def test_the_answer_url_must_answer_2xx(listener: Any, unused_tcp_port: int) -> None:
    listener.answer = {"actions": []}

    async with aiohttp.ClientSession() as session:
        assert await fetch_answer_url(session, listener.answer_url, CALL) == b'{"actions": []}'
        with pytest.raises(AnswerUrlError, match="HTTP 404"):
            await fetch_answer_url(session, listener.url + "/missing", CALL)
        with pytest.raises(AnswerUrlError, match="unreachable"):
            await fetch_answer_url(session, f"http://127.0.0.1:{unused_tcp_port}/", CALL)
