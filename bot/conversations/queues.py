"""One answer at a time per conversation: questions wait their turn, first come first served.

`LocalQueues` keeps the queues in memory (one instance). `RedisQueues` keeps them in Redis, so a
question that reaches another replica still waits for the answer running elsewhere: each waiter
puts a ticket at the end of the conversation's list and goes when its ticket is first. Tickets
have a short lease the holder keeps renewing; a replica that dies loses its places, and whoever
looks next drops them, so a crash never blocks a conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING, Protocol

from redis.exceptions import RedisError

from bot.retrying import Retrying

if TYPE_CHECKING:
    from bot.cluster.node import Cluster

log = logging.getLogger(__name__)

OnQueued = Callable[[], Awaitable[None]]


class Queues(Protocol):
    def hold(self, key: str, on_queued: OnQueued) -> AbstractAsyncContextManager[None]:
        """Wait for the conversation `key` (calling `on_queued` first if someone is ahead)."""
        ...


class LocalQueues:
    """Each conversation's line, in memory: a question takes its place in line before anything
    else (the "you are next" notice included, which takes a round trip to Telegram), so a later
    question can never get ahead of it."""

    def __init__(self) -> None:
        self._lines: dict[str, deque[asyncio.Future[None]]] = {}

    @asynccontextmanager
    async def hold(self, key: str, on_queued: OnQueued) -> AsyncIterator[None]:
        line = self._lines.setdefault(key, deque())
        turn = asyncio.get_running_loop().create_future()
        line.append(turn)
        try:
            if line[0] is turn:
                turn.set_result(None)
            else:
                await on_queued()
                await turn
            yield
        finally:
            first = line[0] is turn
            line.remove(turn)
            if not line:
                self._lines.pop(key, None)
            elif first and not line[0].done():
                line[0].set_result(None)  # the next one's turn


# Put a ticket in line (dropping dead tickets ahead of it); returns its place (0: first).
_ENTER = """
redis.call('SET', ARGV[2] .. ARGV[1], '1', 'PX', ARGV[3])
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], 86400000)
while true do
    local head = redis.call('LINDEX', KEYS[1], 0)
    if not head or head == ARGV[1] or redis.call('EXISTS', ARGV[2] .. head) == 1 then break end
    redis.call('LPOP', KEYS[1])
end
return redis.call('LPOS', KEYS[1], ARGV[1])
"""

# Renew the ticket's lease and say whether it is first now.
_POLL = """
redis.call('SET', ARGV[2] .. ARGV[1], '1', 'PX', ARGV[3])
while true do
    local head = redis.call('LINDEX', KEYS[1], 0)
    if not head or head == ARGV[1] or redis.call('EXISTS', ARGV[2] .. head) == 1 then break end
    redis.call('LPOP', KEYS[1])
end
if redis.call('LINDEX', KEYS[1], 0) == ARGV[1] then return 1 end
if not redis.call('LPOS', KEYS[1], ARGV[1]) then redis.call('RPUSH', KEYS[1], ARGV[1]) end
return 0
"""

_LEAVE = """
redis.call('LREM', KEYS[1], 1, ARGV[1])
redis.call('DEL', ARGV[2] .. ARGV[1])
return 1
"""


class RedisQueues:
    LEASE = 15.0  # seconds a ticket outlives its replica
    RENEW = 5.0  # seconds between renewals while holding
    POLL = 0.1  # seconds between looks while waiting

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._enter = cluster.redis.register_script(_ENTER)
        self._poll = cluster.redis.register_script(_POLL)
        self._leave = cluster.redis.register_script(_LEAVE)
        # The place is given up once Redis answers; if it does not, the lease ends it anyway.
        self._leaving = Retrying(
            first=1.0, most=1.0, give_up_after=self.LEASE, errors=(RedisError, OSError), lost=None
        )

    @asynccontextmanager
    async def hold(self, key: str, on_queued: OnQueued) -> AsyncIterator[None]:
        line = self.cluster.key("queue", key)
        ticket = f"{self.cluster.replica_id}:{secrets.token_hex(6)}"
        args: list[str | int] = [ticket, self.cluster.key("ticket", ""), int(self.LEASE * 1000)]
        try:
            place = await self._enter(keys=[line], args=args)
            if place:
                await on_queued()
                while not await self._poll(keys=[line], args=args):  # noqa: ASYNC110 (Redis)
                    await asyncio.sleep(self.POLL)
            renewing = asyncio.create_task(self._renew(line, args), name=f"queue:{key}")
            try:
                yield
            finally:
                renewing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renewing
        finally:
            try:
                await asyncio.shield(self._leave(keys=[line], args=args))
            except (RedisError, OSError) as error:
                # The answer is done; the place is given up once Redis answers (at the latest
                # when the lease runs out): the next question in line need not wait that long.
                log.warning("scale-out: queue place not left (%s); retrying", type(error).__name__)
                self._leaving.start(f"leaving {key}", partial(self._leave, keys=[line], args=args))

    async def _renew(self, line: str, args: list[str | int]) -> None:
        while True:
            await asyncio.sleep(self.RENEW)
            try:
                await self._poll(keys=[line], args=args)
            except (RedisError, OSError) as error:
                log.warning("scale-out: queue lease not renewed (%s)", type(error).__name__)
