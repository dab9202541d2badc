"""Per-user request limit (`USER_RATE_LIMIT`, e.g. 20 requests per 600 s), a sliding window."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Protocol


class Limiter(Protocol):
    """A per-user request limit (in memory here, in Redis with scale-out)."""

    async def hit(self, user_id: int) -> float:
        """Count a request; 0 if allowed, else the seconds until the next one is."""
        ...


class NoticeGate(Protocol):
    """Lets one notice per (chat, user) out per period."""

    async def allow(self, chat_id: int, user_id: int) -> bool: ...


class RateLimiter:
    def __init__(
        self, count: int, seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.count = count
        self.seconds = seconds
        self._clock = clock
        self._hits: dict[int, deque[float]] = {}

    async def hit(self, user_id: int) -> float:
        """Count a request; 0 if allowed, else the seconds until the next one is."""
        now = self._clock()
        if len(self._hits) > 10_000:  # forget users whose windows are empty
            self._hits = {u: h for u, h in self._hits.items() if h and h[-1] > now - self.seconds}
        hits = self._hits.setdefault(user_id, deque())
        while hits and hits[0] <= now - self.seconds:
            hits.popleft()
        if len(hits) >= self.count:
            return hits[0] + self.seconds - now
        hits.append(now)
        return 0.0


class Throttle:
    """Lets a notice about the same thing out once per `seconds` (refusals, "come back later"):
    someone who keeps asking must not spend a group's message budget on replies to themselves."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._last: dict[tuple[int, int], float] = {}

    async def allow(self, chat_id: int, user_id: int) -> bool:
        now = self._clock()
        if len(self._last) > 10_000:
            self._last = {k: t for k, t in self._last.items() if t > now - self.seconds}
        last = self._last.get((chat_id, user_id))
        if last is not None and now - last < self.seconds:
            return False
        self._last[(chat_id, user_id)] = now
        return True
