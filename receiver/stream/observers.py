"""
Stream observers: a small hook for whoever wants to know when streams start and end.

The server calls every observer's ``stream_started(info)`` when a stream's
``start`` arrives and ``stream_ended(info, outcome)`` once its sinks are
closed. Both are called on the event loop, from the receive path, so an
observer must return at once (enqueue, never wait) and should not raise; if
it does, the error is logged once per call and the stream goes on.

Uses nothing but the sink values; never touches a socket.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from receiver.logging import Logger
from receiver.sinks import StreamInfo, StreamOutcome


@runtime_checkable
class StreamObserver(Protocol):
    """Told about stream lifecycle. Must not block: it runs on the receive path."""

    def stream_started(self, info: StreamInfo) -> None: ...

    def stream_ended(self, info: StreamInfo, outcome: StreamOutcome) -> None: ...


def notify_started(observers: Sequence[StreamObserver], info: StreamInfo, log: Logger) -> None:
    """Call every observer's ``stream_started``; a failing observer is logged, never raised."""
    for observer in observers:
        try:
            observer.stream_started(info)
        except Exception as exc:
            log.error("observer_failed", observer=type(observer).__name__, phase="started", error=repr(exc)[:200])


def notify_ended(observers: Sequence[StreamObserver], info: StreamInfo, outcome: StreamOutcome, log: Logger) -> None:
    """Call every observer's ``stream_ended``; a failing observer is logged, never raised."""
    for observer in observers:
        try:
            observer.stream_ended(info, outcome)
        except Exception as exc:
            log.error("observer_failed", observer=type(observer).__name__, phase="ended", error=repr(exc)[:200])
