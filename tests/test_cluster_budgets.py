"""Scale-out pacing and limits on a real Redis: replicas share Telegram's budgets, 429 pauses and
the per-user limits as one bot, and a missing Redis never stops sending."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from bot.cluster.budgets import SharedBudgets
from bot.cluster.limits import RedisRateLimiter, RedisThrottle
from bot.streaming.pacer import Budgets, Pacer

PREFIX = "g4fbot:test"
# Long margins keep every window open for the whole test however slow the machine is: the tests
# count grants and refusals, never timings.
SLOW = Budgets(
    private_interval=1.0,
    private_burst=2,
    group_per_minute=4,
    group_final_reserve=1,
    global_per_second=5,
    global_final_reserve=1,
    margin=5.0,
)


@pytest.fixture
async def clients(redis_url: str) -> AsyncIterator[tuple[redis.Redis, redis.Redis]]:
    """Two connections, as two replicas would have."""
    a = redis.Redis.from_url(redis_url, decode_responses=True)
    b = redis.Redis.from_url(redis_url, decode_responses=True)
    yield a, b
    await a.aclose()
    await b.aclose()


def replicas(
    clients: tuple[redis.Redis, redis.Redis], budgets: Budgets = SLOW
) -> tuple[SharedBudgets, SharedBudgets]:
    return SharedBudgets(clients[0], PREFIX, budgets), SharedBudgets(clients[1], PREFIX, budgets)


async def test_two_replicas_share_the_global_budget(
    clients: tuple[redis.Redis, redis.Redis],
) -> None:
    a, b = replicas(clients)
    granted = 0
    for chat in range(1, 21):  # distinct private chats: only the global budget binds
        wait, _ = await (a if chat % 2 else b).take(chat, final=False)
        granted += wait == 0
    assert granted == 4  # 5 a second minus the reserve for finals
    assert (await a.take(100, final=True))[0] == 0  # a final may use the reserve
    wait, everywhere = await b.take(101, final=True)
    assert everywhere
    assert 0 < wait <= 1.0 + SLOW.margin
    wait, everywhere = await a.take(-5, final=True)
    assert wait > 0 and everywhere  # groups too


async def test_group_cap_and_final_reserve(clients: tuple[redis.Redis, redis.Redis]) -> None:
    a, b = replicas(clients, dataclasses.replace(SLOW, global_per_second=30))
    results = [await (a, b)[i % 2].take(-100, final=False) for i in range(6)]
    assert [wait == 0 for wait, _ in results] == [True] * 3 + [False] * 3
    assert not any(everywhere for _, everywhere in results)
    assert (await b.take(-100, final=True))[0] == 0  # the reserved slot
    wait, everywhere = await a.take(-100, final=True)
    assert not everywhere
    assert 50 < wait <= 60 + SLOW.margin
    assert (await a.take(-200, final=False))[0] == 0  # another group is not affected


async def test_private_cap_is_a_small_burst(clients: tuple[redis.Redis, redis.Redis]) -> None:
    budgets = Budgets(private_interval=1.0, private_burst=2, margin=0.1)
    a, b = replicas(clients, budgets)
    assert (await a.take(7, final=True))[0] == 0
    assert (await b.take(7, final=True))[0] == 0
    wait, everywhere = await a.take(7, final=True)
    assert not everywhere
    assert 1.5 < wait <= 2.1  # 2 calls per 2 * 1 s + margin
    assert (await b.take(8, final=True))[0] == 0


async def test_a_pause_from_one_replica_holds_for_the_other(
    clients: tuple[redis.Redis, redis.Redis],
) -> None:
    a, b = replicas(clients)
    await a.pause(7, 3.0)
    wait, everywhere = await b.take(7, final=True)
    assert 2.5 < wait <= 3.0 and not everywhere
    await b.pause(7, 1.0)  # a shorter pause does not shorten the running one
    assert (await a.take(7, final=True))[0] > 2.5
    assert (await b.take(8, final=True))[0] == 0

    await a.pause(None, 2.0)  # a global 429
    wait, everywhere = await b.take(9, final=True)
    assert 1.5 < wait <= 2.0 and everywhere
    assert (await b.take(-9, final=True))[1]


async def test_keys_expire(clients: tuple[redis.Redis, redis.Redis]) -> None:
    a, _ = replicas(clients)
    await a.take(7, final=True)
    await a.take(-7, final=True)
    await a.pause(8, 1.0)
    await a.pause(None, 1.0)
    keys = await clients[0].keys(f"{PREFIX}:pace:*")
    assert len(keys) == 5
    for key in keys:
        assert await clients[0].pttl(key) > 0


class Counting:
    """SharedBudgets that counts how often Redis is asked."""

    def __init__(self, inner: SharedBudgets) -> None:
        self.inner = inner
        self.takes = 0

    async def take(self, chat_id: int, *, final: bool) -> tuple[float, bool]:
        self.takes += 1
        return await self.inner.take(chat_id, final=final)

    async def pause(self, chat_id: int | None, retry_after: float) -> None:
        await self.inner.pause(chat_id, retry_after)


async def test_two_pacers_together_stay_under_the_group_cap(
    clients: tuple[redis.Redis, redis.Redis],
) -> None:
    shared = [Counting(s) for s in replicas(clients)]
    pacers = [Pacer(SLOW, shared=s) for s in shared]
    granted: list[int] = []
    capped = asyncio.Event()

    async def send(replica: int) -> None:
        await pacers[replica].acquire(-100, final=True)
        granted.append(replica)
        if len(granted) == SLOW.group_per_minute:
            capped.set()

    tasks = [asyncio.create_task(send(i % 2)) for i in range(10)]
    async with asyncio.timeout(3):
        await capped.wait()
    await asyncio.sleep(0.3)
    assert len(granted) == SLOW.group_per_minute  # 4 for both, not 4 each
    assert set(granted) == {0, 1}
    assert sum(p.waiting for p in pacers) == 6
    assert sum(s.takes for s in shared) <= 10  # the refused wait, they do not ask again and again
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for pacer in pacers:
        pacer.nudge()  # the pumps see nobody waits and end
    await asyncio.sleep(0)


async def test_a_429_seen_by_one_pacer_pauses_the_other(
    clients: tuple[redis.Redis, redis.Redis],
) -> None:
    a, b = (Pacer(SLOW, shared=s) for s in replicas(clients))
    a.penalize(-7, 5.0)
    await asyncio.sleep(0.05)  # the pause reaches Redis in the background
    blocked = asyncio.create_task(b.acquire(-7, final=True))
    await b.acquire(-8, final=True)  # other chats go on
    await asyncio.sleep(0.2)
    assert not blocked.done()
    blocked.cancel()
    await asyncio.gather(blocked, return_exceptions=True)
    b.nudge()


async def test_rate_limit_is_shared(clients: tuple[redis.Redis, redis.Redis]) -> None:
    a = RedisRateLimiter(clients[0], PREFIX, 3, 60)
    b = RedisRateLimiter(clients[1], PREFIX, 3, 60)
    waits = [await (a, b)[i % 2].hit(1) for i in range(4)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert 55 < waits[3] <= 60
    assert await b.hit(2) == 0.0  # per user

    short = RedisRateLimiter(clients[0], PREFIX, 1, 0.2)
    assert await short.hit(3) == 0.0
    wait = await short.hit(3)
    assert 0 < wait <= 0.2
    await asyncio.sleep(wait + 0.01)
    assert await short.hit(3) == 0.0  # the window slid on


async def test_throttle_is_shared(clients: tuple[redis.Redis, redis.Redis]) -> None:
    a = RedisThrottle(clients[0], PREFIX, 0.2, "refusal")
    b = RedisThrottle(clients[1], PREFIX, 0.2, "refusal")
    assert await a.allow(-1, 5)
    assert not await b.allow(-1, 5)
    assert await b.allow(-1, 6)
    assert await RedisThrottle(clients[1], PREFIX, 0.2, "limit").allow(-1, 5)
    await asyncio.sleep(0.25)
    assert await b.allow(-1, 5)


async def test_unreachable_redis_grants_instead_of_raising(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = redis.Redis(host="127.0.0.1", port=port, retry=Retry(NoBackoff(), 0))
    try:
        with caplog.at_level(logging.WARNING):
            shared = SharedBudgets(client, PREFIX, SLOW)
            assert await shared.take(7, final=False) == (0.0, False)
            assert await shared.take(7, final=False) == (0.0, False)
            await shared.pause(7, 1.0)
            pacer = Pacer(SLOW, shared=shared)
            await pacer.acquire(-7, final=True)
            pacer.penalize(-7, 0.01)
            await asyncio.sleep(0.05)
            assert await RedisRateLimiter(client, PREFIX, 1, 60).hit(1) == 0.0
            assert await RedisThrottle(client, PREFIX, 60, "limit").allow(1, 1)
    finally:
        await client.aclose()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3  # one per component, not one per call


async def test_a_group_calls_place_in_the_shared_minute_counts_from_its_answer(
    clients: tuple[redis.Redis, redis.Redis],
) -> None:
    """Telegram counts a call when it arrives: one that left late must not free its place in
    the group's minute early on the other replicas either."""
    a, _ = replicas(clients)
    assert (await a.take(-7, final=True))[0] == 0
    key = f"{PREFIX}:pace:chat:-7"
    [(member, before)] = await clients[0].zrange(key, 0, -1, withscores=True)
    await asyncio.sleep(0.3)
    await a.arrived(-7)
    [(same, after)] = await clients[0].zrange(key, 0, -1, withscores=True)
    assert same == member and after - before >= 250  # ms on Redis's clock
    await a.arrived(-7)  # nothing left unanswered: nothing moves
    assert await clients[0].zrange(key, 0, -1, withscores=True) == [(same, after)]


async def test_the_pacer_tells_the_shared_budgets_of_a_group_calls_answer() -> None:
    told: list[int] = []

    class Shared:
        async def take(self, chat_id: int, *, final: bool) -> tuple[float, bool]:
            return 0.0, False

        async def pause(self, chat_id: int | None, retry_after: float) -> None:
            pass

        async def arrived(self, chat_id: int) -> None:
            told.append(chat_id)

    pacer = Pacer(shared=Shared())
    counted = await pacer.acquire(-7, final=True)
    pacer.arrived(-7, counted)
    pacer.arrived(7, counted)  # a private chat has no shared minute
    for _ in range(3):
        await asyncio.sleep(0)
    assert told == [-7]
