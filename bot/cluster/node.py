"""One replica's place in the cluster: its Redis connection, its id and its heartbeat.

Every key lives under `g4fbot:<bot id>:`, so several bots can share one Redis. A replica proves
it is alive by refreshing `replica:<id>` every few seconds; what a dead replica left behind
(answers it was streaming, places it held in conversation queues) is recognised by that key having
expired, and taken over by the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket

import redis.asyncio as redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

HEARTBEAT_EVERY = 3.0  # seconds between refreshes of the replica's key
HEARTBEAT_TTL = 10.0  # seconds after the last refresh a silent replica counts as dead
MAX_CONNECTIONS = 64


class Cluster:
    def __init__(self, url: str, bot_id: int, *, heartbeat: float = HEARTBEAT_EVERY) -> None:
        # Past `max_connections` callers wait for a connection instead of failing (hundreds of
        # answers may touch Redis at once).
        pool = redis.BlockingConnectionPool.from_url(
            url,
            max_connections=MAX_CONNECTIONS,
            timeout=20,
            decode_responses=True,
            health_check_interval=30,
            socket_timeout=10,
        )
        self.redis: redis.Redis = redis.Redis.from_pool(pool)  # closed with the client
        self.prefix = f"g4fbot:{bot_id}"
        host = socket.gethostname().split(".")[0][:32]
        self.replica_id = f"{host}-{os.getpid()}-{secrets.token_hex(3)}"
        self.heartbeat = heartbeat
        self._beating: asyncio.Task[None] | None = None

    def key(self, *parts: object) -> str:
        return ":".join((self.prefix, *(str(p) for p in parts)))

    def _alive_key(self, replica_id: str) -> str:
        return self.key("replica", replica_id)

    async def start(self) -> None:
        """Reach Redis and start the heartbeat; an unreachable Redis raises `RedisError`."""
        await self.redis.ping()
        await self._beat()
        self._beating = asyncio.create_task(self._heartbeat(), name="cluster-heartbeat")
        log.info("scale-out: replica %s joined through Redis", self.replica_id)

    async def close(self) -> None:
        if self._beating is not None:
            self._beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beating
        with contextlib.suppress(RedisError, OSError):
            await self.redis.delete(self._alive_key(self.replica_id))
        await self.redis.aclose()

    async def alive(self, replica_id: str) -> bool:
        if replica_id == self.replica_id:
            return True
        return bool(await self.redis.exists(self._alive_key(replica_id)))

    async def ping(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except (RedisError, OSError):
            return False

    async def _beat(self) -> None:
        await self.redis.set(
            self._alive_key(self.replica_id),
            "1",
            px=int(max(HEARTBEAT_TTL, 3 * self.heartbeat) * 1000),
        )

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            try:
                await self._beat()
            except (RedisError, OSError) as error:
                log.warning("scale-out: heartbeat failed (%s)", type(error).__name__)
