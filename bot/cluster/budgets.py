"""Telegram's flood budgets, shared by every replica through Redis.

Telegram counts the bot as a whole: 30 calls a second for the bot, 20 a minute per group and
about one a second per private chat, whichever replica makes them, and a 429's `retry_after`
holds for all of them. Each replica's `Pacer` still decides locally who goes next; before a call
goes out it asks `SharedBudgets.take`, which checks the pauses and the sliding windows and counts
the call in one Lua script, on Redis's clock so replicas with skewed clocks agree.

Private chats get `private_burst` calls per `private_burst * private_interval + margin` seconds:
a burst of `private_burst` back to back, and on average a little under one call per
`private_interval` (the sliding window never lets more than the burst into any such span).

If Redis cannot be reached, sending must not stop: calls are granted on local pacing alone (with
a warning now and then) and Redis is asked again after a short while.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import secrets
import time
from collections import deque

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot.streaming.pacer import Budgets

log = logging.getLogger(__name__)

# Whatever Redis does wrong (down, slow, out of memory, read-only after failover), sending goes on.
UNREACHABLE: tuple[type[Exception], ...] = (RedisError, OSError, TimeoutError)

# KEYS: global window, chat window, global pause, chat pause
# ARGV: global cap, global span (ms), chat cap, chat span (ms), unique member
# Returns {wait ms, 1 if the global budget or pause is the longer wait}; {0, 0} = granted and
# counted. Windows are sorted sets of call times (ms on Redis's clock), trimmed on every call.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function paused(key)
  local ttl = redis.call('PTTL', key)
  if ttl > 0 then return ttl end
  return 0
end
local function full(key, cap, span)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - span)
  local n = redis.call('ZCARD', key)
  if n < cap then return 0 end
  local edge = redis.call('ZRANGE', key, n - cap, n - cap, 'WITHSCORES')
  return tonumber(edge[2]) + span - now
end
local gcap, gspan = tonumber(ARGV[1]), tonumber(ARGV[2])
local ccap, cspan = tonumber(ARGV[3]), tonumber(ARGV[4])
local gwait = math.max(paused(KEYS[3]), full(KEYS[1], gcap, gspan))
local cwait = math.max(paused(KEYS[4]), full(KEYS[2], ccap, cspan))
if gwait > 0 or cwait > 0 then
  if gwait >= cwait then return {gwait, 1} end
  return {cwait, 0}
end
redis.call('ZADD', KEYS[1], now, ARGV[5])
redis.call('PEXPIRE', KEYS[1], gspan)
redis.call('ZADD', KEYS[2], now, ARGV[5])
redis.call('PEXPIRE', KEYS[2], cspan)
return {0, 0}
"""

# KEYS: chat window; ARGV: member, span (ms). A call already counted is counted from now instead
# (if it is still in the window).
_ARRIVED = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('ZADD', KEYS[1], 'XX', 'CH', now, ARGV[1]) == 1 then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
end
return 1
"""

# KEYS: pause key; ARGV: ms. A pause is only ever extended, never shortened.
_PAUSE = """
local ms = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) < ms then
  redis.call('SET', KEYS[1], '1', 'PX', ms)
end
return 1
"""


class Fallback:
    """What to do while Redis fails: skip it for `retry` seconds (so that not every call waits for
    a timeout) and warn at most once per `warn_every` seconds (so that the log is not flooded)."""

    TIMEOUT = 1.0  # seconds a Redis call may take; Redis answers in well under a millisecond

    def __init__(
        self, logger: logging.Logger, what: str, retry: float = 5.0, warn_every: float = 30.0
    ) -> None:
        self.logger = logger
        self.what = what
        self.retry = retry
        self.warn_every = warn_every
        self._down_until = -math.inf
        self._warned = -math.inf
        self.suppressed = 0

    @property
    def down(self) -> bool:
        return time.monotonic() < self._down_until

    def failed(self, error: Exception) -> None:
        now = time.monotonic()
        self._down_until = now + self.retry
        if now - self._warned < self.warn_every:
            self.suppressed += 1
            return
        self._warned = now
        more = (
            f"; {self.suppressed} more failures since the last warning" if self.suppressed else ""
        )
        self.suppressed = 0
        self.logger.warning(
            "scale-out: Redis failed (%s), %s for now%s", type(error).__name__, self.what, more
        )


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


class SharedBudgets:
    """The budgets of `Budgets`, counted in Redis for all replicas at once."""

    def __init__(self, redis: Redis, prefix: str, budgets: Budgets) -> None:
        self.redis = redis
        self.prefix = prefix
        self.budgets = budgets
        self._take = redis.register_script(_TAKE)
        self._pause = redis.register_script(_PAUSE)
        self._arrived = redis.register_script(_ARRIVED)
        # Per group, the members of its calls counted here and not answered yet, oldest first.
        self._unanswered: dict[int, deque[str]] = {}
        self._member = f"{secrets.token_hex(6)}:"
        self._seq = itertools.count()
        self._fallback = Fallback(log, "pacing each replica on its own")
        b = budgets
        self._global_span = _ms(1.0 + b.margin)
        self._group_span = _ms(60.0 + b.margin)
        self._private_span = _ms(max(b.private_burst, 1) * b.private_interval + b.margin)

    def _key(self, *parts: object) -> str:
        return ":".join((self.prefix, "pace", *(str(p) for p in parts)))

    def _args(self, chat_id: int, final: bool) -> list[int | str]:
        b = self.budgets
        global_cap = max(b.global_per_second - (0 if final else b.global_final_reserve), 1)
        if chat_id > 0:
            chat_cap, chat_span = max(b.private_burst, 1), self._private_span
        else:
            chat_cap = max(b.group_per_minute - (0 if final else b.group_final_reserve), 1)
            chat_span = self._group_span
        member = f"{self._member}{next(self._seq)}"
        return [global_cap, self._global_span, chat_cap, chat_span, member]

    async def arrived(self, chat_id: int) -> None:
        """A group call counted here was answered: the oldest one not answered yet counts from
        now in the group's shared minute (Telegram counts it from its arrival; a call built
        while many answers start can arrive well after its count)."""
        waiting = self._unanswered.get(chat_id)
        if not waiting:
            return
        member = waiting.popleft()
        if not waiting:
            del self._unanswered[chat_id]
        if self._fallback.down:
            return
        try:
            async with asyncio.timeout(Fallback.TIMEOUT):
                await self._arrived(
                    keys=[self._key("chat", chat_id)], args=[member, self._group_span]
                )
        except UNREACHABLE as error:
            self._fallback.failed(error)

    async def take(self, chat_id: int, *, final: bool) -> tuple[float, bool]:
        """Count a call to this chat if the shared budgets allow it now.

        Returns (0.0, False) when granted and counted, else (seconds to wait, whether the
        bot-wide budget or pause is the reason). Without Redis every call is granted.
        """
        if self._fallback.down:
            return 0.0, False
        keys = [
            self._key("global"),
            self._key("chat", chat_id),
            self._key("pause"),
            self._key("pause", chat_id),
        ]
        args = self._args(chat_id, final)
        try:
            async with asyncio.timeout(Fallback.TIMEOUT):
                wait_ms, is_global = await self._take(keys=keys, args=args)
        except UNREACHABLE as error:
            self._fallback.failed(error)
            return 0.0, False
        if int(wait_ms) <= 0 and chat_id < 0:
            # Bounded: a group's minute holds 20 calls, so older entries are long answered.
            self._unanswered.setdefault(chat_id, deque(maxlen=64)).append(str(args[-1]))
        return int(wait_ms) / 1000.0, bool(int(is_global)) and int(wait_ms) > 0

    async def pause(self, chat_id: int | None, retry_after: float) -> None:
        """Telegram answered 429: no replica calls that chat (None: anything) for `retry_after`."""
        key = self._key("pause") if chat_id is None else self._key("pause", chat_id)
        try:
            async with asyncio.timeout(Fallback.TIMEOUT):
                await self._pause(keys=[key], args=[_ms(retry_after)])
        except UNREACHABLE as error:
            self._fallback.failed(error)
