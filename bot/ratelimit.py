"""Per-user request limit (`USER_RATE_LIMIT`, e.g. 20 requests per 600 s), a sliding window."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class RateLimiter:
    def __init__(
        self, count: int, seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.count = count
        self.seconds = seconds
        self._clock = clock
        self._hits: dict[int, deque[float]] = {}

    def hit(self, user_id: int) -> float:
        """Count a request; 0 if allowed, else the seconds until the next one is."""
        now = self._clock()
        hits = self._hits.setdefault(user_id, deque())
        while hits and hits[0] <= now - self.seconds:
            hits.popleft()
        if len(hits) >= self.count:
            return hits[0] + self.seconds - now
        hits.append(now)
        return 0.0
