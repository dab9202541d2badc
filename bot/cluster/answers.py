"""Answers in flight on every replica, so Stop works whichever replica Telegram sends it to.

Each answer is announced in `answer:<id>` (with an expiry, in case its replica dies) and indexed
per chat; a Stop for an answer running elsewhere is published on the `stop` channel, and the
replica running it stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import asdict
from typing import cast

from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from bot.answering import Running
from bot.cluster.node import Cluster

log = logging.getLogger(__name__)


class SharedAnswers:
    """The `Directory` of answers in Redis, and the listener for stop requests."""

    def __init__(self, cluster: Cluster, ttl: float) -> None:
        self.cluster = cluster
        self.redis = cluster.redis
        self.ttl = int(ttl)  # seconds an announcement lasts if its replica dies mid-answer
        self._listening: asyncio.Task[None] | None = None

    def _answer_key(self, answer_id: str) -> str:
        return self.cluster.key("answer", answer_id)

    def _chat_key(self, chat_id: int) -> str:
        return self.cluster.key("answers", chat_id)

    async def add(self, running: Running) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self._answer_key(running.answer_id), json.dumps(asdict(running)), ex=self.ttl)
            pipe.sadd(self._chat_key(running.chat_id), running.answer_id)
            pipe.expire(self._chat_key(running.chat_id), self.ttl)
            await pipe.execute()

    async def remove(self, running: Running) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._answer_key(running.answer_id))
            pipe.srem(self._chat_key(running.chat_id), running.answer_id)
            await pipe.execute()

    async def find(self, answer_id: str) -> Running | None:
        raw = await self.redis.get(self._answer_key(answer_id))
        return Running(**json.loads(raw)) if raw else None

    async def in_chat(self, chat_id: int) -> list[Running]:
        ids = sorted(cast(set[str], await self.redis.smembers(self._chat_key(chat_id))))
        if not ids:
            return []
        found = await self.redis.mget([self._answer_key(i) for i in ids])
        gone = [i for i, raw in zip(ids, found, strict=True) if raw is None]
        if gone:  # announcements of a replica that died
            await self.redis.srem(self._chat_key(chat_id), *gone)
        return [Running(**json.loads(raw)) for raw in found if raw]

    async def request_stop(self, answer_id: str) -> None:
        await self.redis.publish(self.cluster.key("stop"), answer_id)

    async def listen(self, on_stop: Callable[[str], object]) -> None:
        """Start taking stop requests; `on_stop(answer_id)` stops it if it runs here."""
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(self.cluster.key("stop"))
        self._listening = asyncio.create_task(self._listen(pubsub, on_stop), name="stop-listener")

    async def _listen(self, pubsub: PubSub, on_stop: Callable[[str], object]) -> None:
        try:
            while True:
                try:
                    message = await pubsub.get_message(timeout=5.0)
                except (RedisError, OSError) as error:
                    log.warning("scale-out: stop channel failed (%s)", type(error).__name__)
                    await asyncio.sleep(1.0)
                    continue
                if message is not None and message.get("type") == "message":
                    on_stop(str(message["data"]))
        finally:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        if self._listening is not None:
            self._listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listening
