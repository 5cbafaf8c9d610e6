"""Fixtures for the simulator tests: a webhook/answer_url listener and helpers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web


@dataclass
class Listener:
    """A tiny HTTP app on 127.0.0.1: records webhooks, serves an answer_url."""

    url: str = ""
    webhooks: list[dict[str, Any]] = field(default_factory=list)
    attempts: list[dict[str, Any]] = field(default_factory=list)  # every POST to /hooks, failed ones too
    headers: list[dict[str, str]] = field(default_factory=list)
    fail_first: int = 0  # answer 500 to this many attempts
    stall_first: int = 0  # answer nothing (sleep) to this many attempts
    answer: Any = None  # what /answer returns (an object as JSON, or bytes)
    answer_requests: list[dict[str, Any]] = field(default_factory=list)
    received: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def hooks_url(self) -> str:
        return self.url + "/hooks"

    @property
    def answer_url(self) -> str:
        return self.url + "/answer"

    def events(self) -> list[str]:
        return [w["event"] for w in self.webhooks]

    async def wait_for(self, event: str, seconds: float = 10.0) -> dict[str, Any]:
        async def find() -> dict[str, Any]:
            while True:
                for hook in self.webhooks:
                    if hook["event"] == event:
                        return hook
                self.received.clear()
                await self.received.wait()

        return await asyncio.wait_for(find(), seconds)


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    state = Listener()
    stall = asyncio.Event()

    async def hooks(request: web.Request) -> web.Response:
        body = await request.json()
        state.attempts.append(body)
        state.headers.append(dict(request.headers))
        if len(state.attempts) <= state.stall_first:
            await stall.wait()  # never set: the client's timeout ends the attempt
        if len(state.attempts) <= state.stall_first + state.fail_first:
            return web.json_response({"error": "try again"}, status=500)
        state.webhooks.append(body)
        state.received.set()
        return web.json_response({"ok": True})

    async def answer(request: web.Request) -> web.Response:
        state.answer_requests.append({"body": await request.json(), "headers": dict(request.headers)})
        if isinstance(state.answer, bytes):
            return web.Response(body=state.answer, content_type="application/json")
        return web.Response(text=json.dumps(state.answer), content_type="application/json")

    app = web.Application()
    app.router.add_post("/hooks", hooks)
    app.router.add_post("/answer", answer)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state.url = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        stall.set()
        await runner.cleanup()
