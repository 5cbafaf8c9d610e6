"""Shared fixtures: every async test runs on both asyncio and uvloop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import uvloop

from receiver.app import ReceiverServer
from receiver.config import Settings


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    # websockets 17.0.1 shipped a uvloop-only regression: run everything on both.
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(host="127.0.0.1", port=0, recordings_dir=str(tmp_path / "recordings"), log_format="json")


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[ReceiverServer]:
    async with ReceiverServer(settings) as srv:
        yield srv


async def wait_streams_done(server: ReceiverServer, count: int = 1, limit: float = 10.0) -> None:
    """Wait until ``count`` streams have ended and none is live (no sleeping)."""

    async def done() -> None:
        while server.streams_ended < count or server.active_streams:
            server.stream_ended.clear()
            await server.stream_ended.wait()

    await asyncio.wait_for(done(), limit)


def make_server(settings: Settings, **kwargs: Any) -> ReceiverServer:
    return ReceiverServer(settings, **kwargs)
