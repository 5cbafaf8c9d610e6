"""
The application's control of a live stream: stop it, pause or resume its recording.

The API (``receiver.calls.listener``) asks; ``StreamServer`` implements
``StreamControl`` and does it. Pausing happens in the stream's fan-out
(``fanout.Fanout.pause``), so no sink sees a paused span; stopping closes the
socket with 1000 as a ``stop`` would, and the stream ends with reason
``stopped_by_api``. Observers that implement ``ControlObserver`` (the call
records) hear of every change, with its media-clock time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, runtime_checkable

from receiver.logging import Logger
from receiver.sinks import StreamInfo
from receiver.stream.fanout import PauseBehavior

Status = Literal["in-progress", "paused", "stopped"]
STOP_REASON = "stopped_by_api"


@dataclass(frozen=True, slots=True)
class StreamState:
    """A live (or just stopped) stream as the API describes it."""

    call_id: str
    stream_id: str
    status: Status
    media_seconds: float
    paused_seconds: float
    pause_behavior: PauseBehavior | None = None
    account_id: str | None = None
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True, slots=True)
class ControlChange:
    """One change the application asked for, as the timeline records it."""

    action: Literal["paused", "resumed", "stop_requested"]
    media_seconds: float  # where on the stream's media clock it took effect
    behavior: PauseBehavior | None = None
    by: str = "api"

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "media_seconds": self.media_seconds, "behavior": self.behavior, "by": self.by}


class StreamControl(Protocol):
    """What the API may do to live streams (``StreamServer`` implements it)."""

    def stream_state(self, call_id: str, stream_id: str) -> StreamState | None: ...

    async def stop_stream(self, call_id: str, stream_id: str) -> StreamState | None: ...

    def pause_stream(self, call_id: str, stream_id: str, behavior: PauseBehavior) -> StreamState | None: ...

    def resume_stream(self, call_id: str, stream_id: str) -> StreamState | None: ...


@runtime_checkable
class ControlObserver(Protocol):
    """An observer that also wants to hear of pauses, resumes and stops (must not block)."""

    def stream_controlled(self, info: StreamInfo, change: ControlChange) -> None: ...


def notify_controlled(observers: Sequence[object], info: StreamInfo, change: ControlChange, log: Logger) -> None:
    """Tell every ``ControlObserver``; a failing one is logged, never raised."""
    for observer in observers:
        if not isinstance(observer, ControlObserver):
            continue
        try:
            observer.stream_controlled(info, change)
        except Exception as exc:
            log.error("observer_failed", observer=type(observer).__name__, phase="controlled", error=repr(exc)[:200])
