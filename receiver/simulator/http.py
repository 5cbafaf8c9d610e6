"""
The simulator's HTTP side: fetching the answer_url and POSTing webhooks (aiohttp).

The answer_url is fetched as the platform would when a call is answered: a
``POST`` with ``Content-Type: application/json``, ``User-Agent:
MiniVoice/1.0`` and ``X-MiniVoice-Call-Id``, whose body is the webhook
envelope with event ``call.answered`` (``call`` with status ``in_progress``,
empty ``variables`` and ``data``). The response must be a 2xx whose body is
the actions payload.

Webhooks use the pages' envelope (``event``, ``created_at``, ``call``,
``variables``, ``data``). The protocol page: a webhook that gets no 2xx
answer within 10 s is sent again, up to 5 times, with the same body. The
timeout and the pause between attempts are settings, so tests stay fast.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp

from receiver.errors import ReceiverError
from receiver.logging import get_logger
from receiver.simulator.plan import CallInfo

log = get_logger("receiver.simulator")

MAX_ATTEMPTS = 5
USER_AGENT = "MiniVoice/1.0"


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    url: str | None = None
    timeout: float = 10.0  # seconds to wait for a 2xx
    backoff: float = 1.0  # seconds before the second attempt, doubled each time
    attempts: int = MAX_ATTEMPTS


@dataclass(slots=True)
class Delivery:
    event: str
    attempts: int = 0
    status: int | None = None  # the last HTTP status, None when no answer
    delivered: bool = False
    error: str | None = None
    body: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "attempts": self.attempts,
            "status": self.status,
            "delivered": self.delivered,
            "error": self.error,
        }


def rfc3339(moment: datetime | None = None) -> str:
    moment = moment or datetime.now(UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def envelope(event: str, call: CallInfo, status: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"event": event, "created_at": rfc3339(), "call": call.as_dict(status), "variables": {}, "data": data}


class AnswerUrlError(ReceiverError):
    """The answer_url could not be fetched or did not answer 2xx."""


async def fetch_answer_url(session: aiohttp.ClientSession, url: str, call: CallInfo, seconds: float = 10.0) -> bytes:
    """POST the call to the answer_url; return the response body (the actions payload).

    Raises:
        AnswerUrlError: No answer, or not a 2xx.
    """
    body = envelope("call.answered", call, "in_progress", {})
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, "X-MiniVoice-Call-Id": call.call_id}
    try:
        async with session.post(
            url, data=json.dumps(body), headers=headers, timeout=aiohttp.ClientTimeout(total=seconds)
        ) as resp:
            payload = await resp.read()
            if not 200 <= resp.status < 300:
                raise AnswerUrlError(f"answer_url answered HTTP {resp.status}")
            return payload
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise AnswerUrlError(f"answer_url unreachable: {type(exc).__name__}: {exc}"[:300]) from None


async def post_webhook(session: aiohttp.ClientSession, settings: WebhookSettings, body: dict[str, Any]) -> Delivery:
    """POST one webhook, again on no 2xx (up to ``settings.attempts`` times, same body)."""
    assert settings.url is not None
    result = Delivery(body["event"], body=body)
    data = json.dumps(body)
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, "X-MiniVoice-Call-Id": body["call"]["id"]}
    pause = settings.backoff
    for attempt in range(1, settings.attempts + 1):
        result.attempts = attempt
        try:
            async with session.post(
                settings.url, data=data, headers=headers, timeout=aiohttp.ClientTimeout(total=settings.timeout)
            ) as resp:
                await resp.read()
                result.status = resp.status
                if 200 <= resp.status < 300:
                    result.delivered, result.error = True, None
                    break
                result.error = f"HTTP {resp.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            result.status, result.error = None, f"{type(exc).__name__}: {exc}"[:200]
        if attempt < settings.attempts:
            await asyncio.sleep(pause)
            pause *= 2
    if result.delivered:
        log.debug("webhook_delivered", webhook_event=result.event, call_id=body["call"]["id"], attempts=result.attempts)
    else:
        log.warning(
            "webhook_failed",
            webhook_event=result.event,
            call_id=body["call"]["id"],
            attempts=result.attempts,
            error=result.error,
        )
    return result
