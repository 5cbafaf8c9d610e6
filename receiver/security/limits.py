"""
Per-connection limits: message rate, idle time, time to start, stream duration.

Pure: no I/O, no asyncio, no logging, no clock of its own. Every method takes
the time (``time.monotonic()`` seconds) as an argument, so tests inject it.

The receive loop pays for the rate limit with one integer comparison per
message: it counts messages and calls ``check_rate`` only when the count
reaches ``rate_check_at``, i.e. once per ``rate_budget`` messages. If that
many messages arrived in less than ``rate_window`` seconds, the rate is over
the limit. Idle time, time to start and duration are checked by a periodic
sweep (``sweep``), which sees the message count and never touches the
receive loop: a count that has not moved for ``idle_timeout`` is idle.

Which close each limit gets (the server closes; this module only says which):

======================  =====  =======================================
limit                   close  when
======================  =====  =======================================
``rate``                4429   more than the allowed messages a second
``idle``                4408   no message for ``idle_timeout`` seconds
``start_timeout``       4408   no ``start`` within ``start_timeout``
``max_duration``        1008   the stream ran ``max_stream_seconds``
``capacity``            1013   over ``max_streams`` (503 at the handshake)
``message_size``        1009   a message over ``max_message_bytes``
======================  =====  =======================================
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Final

from receiver.errors import CloseCode, StreamProtocolError

UNLIMITED: Final = math.inf


class Limit(enum.Enum):
    """A limit a connection can hit, with the close it gets."""

    RATE = "rate"
    IDLE = "idle"
    START_TIMEOUT = "start_timeout"
    MAX_DURATION = "max_duration"
    CAPACITY = "capacity"
    MESSAGE_SIZE = "message_size"
    HANDSHAKE_TIMEOUT = "handshake_timeout"

    @property
    def close_code(self) -> CloseCode | None:
        """None for a limit hit before there is a WebSocket to close (the TCP connection is dropped)."""
        return _CLOSE_CODES[self]

    @property
    def close_reason(self) -> str:
        return self.value.replace("_", " ")

    @property
    def close(self) -> tuple[CloseCode, str]:
        """The close a stream over this limit gets (every limit but the handshake's)."""
        code = _CLOSE_CODES[self]
        assert code is not None, "a handshake timeout has no WebSocket to close"
        return code, self.close_reason


_CLOSE_CODES: Final[dict[Limit, CloseCode | None]] = {
    Limit.RATE: CloseCode.RATE_LIMITED,
    Limit.IDLE: CloseCode.TIMEOUT,
    Limit.START_TIMEOUT: CloseCode.TIMEOUT,
    Limit.MAX_DURATION: CloseCode.POLICY_VIOLATION,
    Limit.CAPACITY: CloseCode.TRY_AGAIN_LATER,
    Limit.MESSAGE_SIZE: CloseCode.MESSAGE_TOO_BIG,
    Limit.HANDSHAKE_TIMEOUT: None,
}


class LimitExceeded(StreamProtocolError):
    """A connection went over one of its limits (raised by the receive loop for the rate)."""

    def __init__(self, limit: Limit) -> None:
        super().__init__(f"{limit.value} limit exceeded")
        self.limit = limit

    @property
    def close_code(self) -> CloseCode:  # type: ignore[override]
        return self.limit.close[0]

    @property
    def kind(self) -> str:  # type: ignore[override]
        return self.limit.value

    @property
    def close_reason(self) -> str:
        return self.limit.close_reason


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """The per-connection limits; ``0`` (or less) switches one off."""

    max_messages_per_second: float = 1000.0
    rate_window: float = 10.0
    idle_timeout: float = 60.0
    start_timeout: float = 10.0
    max_stream_seconds: float = 4 * 3600.0

    @property
    def rate_budget(self) -> int:
        """Messages allowed per window (at least 1); 0 when the rate is not limited."""
        if self.max_messages_per_second <= 0 or self.rate_window <= 0:
            return 0
        return max(1, int(self.max_messages_per_second * self.rate_window))

    @property
    def sweep_interval(self) -> float:
        """How often the time-based limits need looking at (a quarter of the shortest, at most 1 s)."""
        shortest = min(
            (t for t in (self.idle_timeout, self.start_timeout, self.max_stream_seconds) if t > 0), default=4.0
        )
        return max(0.005, min(1.0, shortest / 4))


class ConnectionLimits:
    """The limits of one connection.

    Args:
        settings: The limits.
        now: When the connection opened.
    """

    __slots__ = (
        "_budget",
        "_last_change",
        "_seen",
        "_settings",
        "_window_start",
        "hit",
        "opened_at",
        "rate_check_at",
        "started",
    )

    def __init__(self, settings: LimitSettings, now: float) -> None:
        self._settings = settings
        self._budget = settings.rate_budget
        self.opened_at = now
        self._window_start = now
        # The message count at which the receive loop must call check_rate.
        self.rate_check_at: float = self._budget if self._budget else UNLIMITED
        self._seen = 0
        self._last_change = now
        self.started = False
        self.hit: Limit | None = None

    def check_rate(self, now: float, messages: int) -> Limit | None:
        """``messages`` reached ``rate_check_at``: over the limit, or start the next window."""
        if now - self._window_start < self._settings.rate_window:
            self.hit = Limit.RATE
            return Limit.RATE
        self._window_start = now
        self.rate_check_at = messages + self._budget
        return None

    def mark_started(self) -> None:
        self.started = True

    def sweep(self, now: float, messages: int) -> Limit | None:
        """The time-based limit this connection is over, if any (``messages``: its count so far)."""
        settings = self._settings
        age = now - self.opened_at
        if not self.started and settings.start_timeout > 0 and age >= settings.start_timeout:
            self.hit = Limit.START_TIMEOUT
            return Limit.START_TIMEOUT
        if messages != self._seen:
            self._seen = messages
            self._last_change = now
        elif settings.idle_timeout > 0 and now - self._last_change >= settings.idle_timeout:
            self.hit = Limit.IDLE
            return Limit.IDLE
        if settings.max_stream_seconds > 0 and age >= settings.max_stream_seconds:
            self.hit = Limit.MAX_DURATION
            return Limit.MAX_DURATION
        return None
