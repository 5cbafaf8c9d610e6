"""
Read pacing: under load, reads gather in the kernel for up to a millisecond, and one
wake-up of the event loop takes them all.

Part of the server's shell (``server.py`` starts it). A receiver that keeps up
with its streams sleeps in ``epoll_wait`` between bursts, and each sleep and
wake-up costs the kernel (and the hypervisor, in a VM) a few microseconds: at 200
real-time calls (20,000 messages a second) the loop woke 2,600 times a second, every
7 or 8 messages, and the kernel's share of its CPU was a third
(``docs/performance.md``). ``ReadPacer`` bounds the wake-ups while the streams are
busy: each turn of the event loop that took less than ``period`` is topped up
to it with a plain sleep of the loop's thread, so the loop turns at most
``1 / period`` times a second and each turn reads what arrived meanwhile. A turn
that took ``period`` or more (a loaded receiver) is not topped up: pacing never
costs throughput. The sleep comes after the turn's reads have reached the sinks
(the pacer yields ``YIELDS`` times a turn: what the reads woke is queued behind
its first yields). The price is latency: a frame may wait up to ``period`` in the
socket's buffer before it is read.

It paces only while the streams bring at least ``busy_rate`` messages a second
(checked every ``CHECK_SECONDS``): below that the loop wakes less often on its
own than it would paced, and the pacer sleeps as any task does (an idle receiver
wakes for it ten times a second).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Final

CHECK_SECONDS: Final = 0.1  # how often the message rate is read
BUSY_RATE: Final = 5_000.0  # messages a second (50 real-time two-track calls) from which to pace
# Pacing stops below half of it: a rate near the threshold does not switch it on and off each check.
CALM_FRACTION: Final = 0.5
# Yields of the event loop a paced turn makes before it sleeps: one to read, two for what the
# reads woke to run first (a sink's task runs one callback after the read on uvloop, two on asyncio).
YIELDS: Final = 3


class ReadPacer:
    """Tops each turn of the event loop up to ``period`` seconds while the streams are busy.

    Args:
        period: The shortest turn of the event loop while pacing, in seconds (> 0).
        messages: The number of messages the streams have brought so far (it may
            go down, as ended streams leave the count: a fall reads as no messages).
        busy_rate: Messages a second from which to pace.
        sleep: Blocks the loop's thread (``time.sleep``).
        clock: Monotonic seconds (``time.monotonic``).
    """

    def __init__(
        self,
        period: float,
        messages: Callable[[], int],
        *,
        busy_rate: float = BUSY_RATE,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if period <= 0:
            raise ValueError("period must be positive")
        self.period = period
        self.busy_rate = busy_rate
        self._messages = messages
        self._sleep = sleep
        self._clock = clock
        self.pacing = False
        self.turns = 0  # turns of the event loop topped up or passed through while pacing
        self.slept = 0.0  # seconds the loop's thread slept to top turns up

    async def run(self) -> None:
        """Pace until cancelled (``StreamServer`` runs it as a task while it serves)."""
        clock, period = self._clock, self.period
        last_count, last_check = self._messages(), clock()
        turn_started = last_check
        while True:
            if not self.pacing:
                await asyncio.sleep(CHECK_SECONDS)  # idle or calm: the loop sleeps as it would
            now = clock()
            if not self.pacing or now - last_check >= CHECK_SECONDS:
                count = self._messages()
                rate = max(0, count - last_count) / max(now - last_check, 1e-3)
                last_count, last_check = count, now
                was_pacing = self.pacing
                self.pacing = rate >= self.busy_rate * (CALM_FRACTION if was_pacing else 1.0)
                if not self.pacing:
                    continue
                if not was_pacing:
                    turn_started = now - period  # pacing starts with the next turn
            rest = period - (now - turn_started)
            if rest > 0:
                self._sleep(rest)  # reads gather in the kernel meanwhile
                self.slept += rest
            self.turns += 1
            turn_started = clock()
            # The loop reads everything that arrived. What the reads wake (the sinks) is queued
            # behind this task: a turn or two later (uvloop reads in the poll, asyncio in a
            # callback after it), so the task yields that often before it sleeps again.
            for _ in range(YIELDS):
                await asyncio.sleep(0)
