"""Shared fixtures: every async test runs on both asyncio and uvloop."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import uvloop

from receiver.app import ReceiverServer
from receiver.config import Settings
from receiver.speedups import stale_builds
from receiver.testing import RecordingSink

from .services import PostgresServer, RedisServer

# The Docker image tests build and run containers for minutes: `make docker-test` runs them
# (CI too), `make test` leaves them out.
collect_ignore = [] if os.environ.get("RECEIVER_DOCKER_TESTS") else ["docker"]


def pytest_sessionstart(session: pytest.Session) -> None:
    # A module compiled from its own .py (receiver.COMPILED_SOURCES) is imported in preference to
    # the .py: after an edit, the old build would be what the tests test.
    stale = stale_builds()
    if stale:
        raise pytest.UsageError(
            f"compiled before their source last changed: {', '.join(stale)}; `make install` compiles them again"
        )


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    # websockets 17.0.1 shipped a uvloop-only regression: run everything on both,
    # except tests whose subject runs in a subprocess (marked one_loop).
    if item.get_closest_marker("one_loop") is not None:
        return {"asyncio": asyncio.new_event_loop}
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(host="127.0.0.1", port=0, recordings_dir=str(tmp_path / "recordings"), log_format="json")


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[ReceiverServer]:
    async with ReceiverServer(settings) as srv:
        yield srv


def recording_sinks() -> tuple[list[RecordingSink], Callable[[object], RecordingSink]]:
    """A sink factory for a server, and the list of the ``RecordingSink`` it made (one a stream)."""
    sinks: list[RecordingSink] = []

    def factory(info: object) -> RecordingSink:
        sinks.append(RecordingSink())
        return sinks[-1]

    return sinks, factory


async def wait_streams_done(server: ReceiverServer, count: int = 1, limit: float = 10.0) -> None:
    """Wait until ``count`` streams have ended and none is live (no sleeping)."""

    async def done() -> None:
        while server.streams_ended < count or server.active_streams:
            server.stream_ended.clear()
            await server.stream_ended.wait()

    await asyncio.wait_for(done(), limit)


def make_server(settings: Settings, **kwargs: Any) -> ReceiverServer:
    return ReceiverServer(settings, **kwargs)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server of our own for the session (each test takes a fresh schema)."""
    server = PostgresServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty PostgreSQL schema's URL."""
    return postgres_server.create_database()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server of our own for the session (tests use their own key prefixes)."""
    server = RedisServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The ``database`` setting for either store: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return str(tmp_path / "calls.db")
    url: str = request.getfixturevalue("postgres_url")
    return url
