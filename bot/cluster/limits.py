"""Per-user request limits and notice throttles in Redis, so that they hold across replicas.

A user whose requests land on different replicas must still get `USER_RATE_LIMIT` in total, and
one "come back later" per period, not one per replica. The semantics are those of
`bot.ratelimit.RateLimiter` and `Throttle`; times come from Redis's clock. If Redis fails, these
let the request through: a limit that is briefly not enforced is better than a bot that stops.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import secrets

from redis.asyncio import Redis

from bot.cluster.budgets import UNREACHABLE, Fallback

log = logging.getLogger(__name__)

# KEYS: the user's window; ARGV: count, span (ms), unique member.
# Returns 0 if the request is allowed (and counted), else ms until it would be.
_HIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cap, span = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - span)
local n = redis.call('ZCARD', KEYS[1])
if n >= cap then
  local edge = redis.call('ZRANGE', KEYS[1], n - cap, n - cap, 'WITHSCORES')
  return math.max(1, tonumber(edge[2]) + span - now)
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], span)
return 0
"""


class RedisRateLimiter:
    """`count` requests per user in any `seconds` (a sliding window), for all replicas."""

    def __init__(self, redis: Redis, prefix: str, count: int, seconds: float) -> None:
        self.redis = redis
        self.prefix = prefix
        self.count = count
        self.seconds = seconds
        self._hit = redis.register_script(_HIT)
        self._span = max(1, math.ceil(seconds * 1000))
        self._member = f"{secrets.token_hex(6)}:"
        self._seq = itertools.count()
        self._fallback = Fallback(log, "requests are not limited")

    async def hit(self, user_id: int) -> float:
        """Count a request; 0 if allowed, else the seconds until the next one is."""
        if self._fallback.down:
            return 0.0
        key = f"{self.prefix}:ratelimit:{user_id}"
        args: list[int | str] = [self.count, self._span, f"{self._member}{next(self._seq)}"]
        try:
            async with asyncio.timeout(Fallback.TIMEOUT):
                wait_ms = await self._hit(keys=[key], args=args)
        except UNREACHABLE as error:
            self._fallback.failed(error)
            return 0.0
        return int(wait_ms) / 1000.0


class RedisThrottle:
    """Lets one `name` notice per (chat, user) out per `seconds`, whichever replica sends it."""

    def __init__(self, redis: Redis, prefix: str, seconds: float, name: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self.seconds = seconds
        self.name = name
        self._px = max(1, math.ceil(seconds * 1000))
        self._fallback = Fallback(log, f"{name} notices are not throttled")

    async def allow(self, chat_id: int, user_id: int) -> bool:
        if self._fallback.down:
            return True
        key = f"{self.prefix}:throttle:{self.name}:{chat_id}:{user_id}"
        try:
            async with asyncio.timeout(Fallback.TIMEOUT):
                return bool(await self.redis.set(key, "1", nx=True, px=self._px))
        except UNREACHABLE as error:
            self._fallback.failed(error)
            return True
