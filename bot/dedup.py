"""Each update is handled once, even when Telegram delivers it again.

Telegram re-sends a webhook update it thinks failed (a timeout, a replica restarting), and with
several replicas the second delivery may reach another one. The first to claim an `update_id`
handles it; later deliveries are acknowledged and dropped. One instance remembers recent ids in
memory; replicas claim them in Redis (`SET NX`, kept an hour).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update
from redis.exceptions import RedisError

if TYPE_CHECKING:
    from bot.cluster.node import Cluster

log = logging.getLogger(__name__)


class SeenUpdates(Protocol):
    async def claim(self, update_id: int) -> bool:
        """True the first time an update id is claimed, False after."""
        ...


class LocalSeen:
    def __init__(self, size: int = 10_000) -> None:
        self._order: deque[int] = deque()
        self._ids: set[int] = set()
        self.size = size

    async def claim(self, update_id: int) -> bool:
        if update_id in self._ids:
            return False
        self._ids.add(update_id)
        self._order.append(update_id)
        if len(self._order) > self.size:
            self._ids.discard(self._order.popleft())
        return True


class RedisSeen:
    KEEP = 3600  # seconds an id is remembered; Telegram gives up re-sending well before

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    async def claim(self, update_id: int) -> bool:
        key = self.cluster.key("update", update_id)
        try:
            return bool(await self.cluster.redis.set(key, "1", nx=True, ex=self.KEEP))
        except (RedisError, OSError) as error:  # better twice than never
            log.warning("update %s: not checked for duplicates (%s)", update_id, error)
            return True


class OncePerUpdate(BaseMiddleware):
    """Outer middleware on `update`: drops an update whose id was handled already."""

    def __init__(self, seen: SeenUpdates) -> None:
        self.seen = seen
        self.dropped = 0

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        if isinstance(event, Update) and not await self.seen.claim(event.update_id):
            self.dropped += 1
            log.info("update %s delivered again: already handled", event.update_id)
            return None
        return await handler(event, data)
