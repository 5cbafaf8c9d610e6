"""
Stream-token replay: how many streams each token has opened, until it expires.

Pure: no I/O, no asyncio, no logging, no clock of its own (``now`` is passed
in). A token is bound to its call and expiry by its signature, but anyone
holding the URL could open any number of streams with it while it is valid;
this bounds that to ``max_streams`` per token. The count lives in this
process: with ``--workers N`` a token may open up to N times as many.
"""

from __future__ import annotations

import heapq
from typing import Final

DEFAULT_CAPACITY: Final = 100_000  # tokens tracked at once (about 15 MB at most)


class TokenBudget:
    """Streams opened per stream token.

    Args:
        max_streams: Streams one token may open (0: no limit, nothing is tracked).
        capacity: Tokens tracked at once; past it the one expiring soonest is forgotten.
    """

    __slots__ = ("_expiry", "_uses", "capacity", "max_streams")

    def __init__(self, max_streams: int, capacity: int = DEFAULT_CAPACITY) -> None:
        self.max_streams = max_streams
        self.capacity = capacity
        self._uses: dict[str, int] = {}
        self._expiry: list[tuple[float, str]] = []  # a heap: (expires_at, key)

    def __len__(self) -> int:
        return len(self._uses)

    def claim(self, token: str, now: float) -> bool:
        """Count one more stream for ``token`` (already verified); False when its budget is used up."""
        if self.max_streams <= 0:
            return True
        key = _key(token)
        self._forget_expired(now)
        used = self._uses.get(key, 0)
        if used >= self.max_streams:
            return False
        if used == 0:
            while len(self._uses) >= self.capacity and self._expiry:
                _, oldest = heapq.heappop(self._expiry)
                self._uses.pop(oldest, None)
            heapq.heappush(self._expiry, (_expires_at(token), key))
        self._uses[key] = used + 1
        return True

    def _forget_expired(self, now: float) -> None:
        expiry = self._expiry
        while expiry and expiry[0][0] < now:
            _, key = heapq.heappop(expiry)
            self._uses.pop(key, None)


def _key(token: str) -> str:
    """The token's signature: what makes it unique (a few dozen bytes, not the whole token)."""
    return token.rpartition(".")[2]


def _expires_at(token: str) -> float:
    """The expiry field of a verified ``v1.<expires>.<call>.<signature>`` token."""
    return float(token.split(".", 2)[1])
