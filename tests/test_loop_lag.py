"""Nothing blocks the event loop: g4f's blocking set-up runs off it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bot.llm import LLMClient
from tests.helpers import started_client


def auto_provider_client(data_dir: Path, idle_timeout: float) -> LLMClient:
    """A client with no provider and no endpoint: g4f's own choice, its blocking set-up."""
    return started_client(data_dir, api_base="", idle=idle_timeout, total=10)


async def test_blocking_provider_setup_does_not_stall_the_loop(tmp_path: Path) -> None:
    """Without an explicit provider g4f fetches a provider list with blocking I/O inside
    `create()`; here `create()` blocks for 0.6 s and the loop must keep ticking meanwhile."""
    client = auto_provider_client(tmp_path, idle_timeout=5)

    async def pieces() -> AsyncIterator[Any]:
        yield "hi"

    def blocking_create(messages: object, model: object) -> AsyncIterator[Any]:
        time.sleep(0.6)  # what g4f's provider bootstrap does on a slow network
        return pieces()

    client._create = blocking_create  # type: ignore[method-assign]
    ticks: list[float] = []

    async def ticker() -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(0.02)
            ticks.append(loop.time() - start - 0.02)

    task = asyncio.create_task(ticker())
    text = "".join([p async for p in client.stream([{"role": "user", "content": "q"}])])
    task.cancel()
    assert text == "hi"
    assert len(ticks) >= 10
    assert max(ticks) < 0.3  # the loop never stalled for the 0.6 s the set-up blocked


async def test_a_hanging_provider_setup_times_out(tmp_path: Path) -> None:
    """g4f's provider-list fetch has no timeout; the idle timeout bounds it."""
    import pytest

    from bot.llm import FailureKind, LLMFailure

    client = auto_provider_client(tmp_path, idle_timeout=0.3)

    def hanging_create(messages: object, model: object) -> Any:
        time.sleep(1.5)
        raise AssertionError("not reached in time")

    client._create = hanging_create  # type: ignore[method-assign]
    started = time.monotonic()
    with pytest.raises(LLMFailure) as failure:
        async for _ in client.stream([{"role": "user", "content": "q"}]):
            pass
    assert failure.value.kind is FailureKind.IDLE_TIMEOUT
    assert time.monotonic() - started < 1.0


async def test_questions_are_handled_without_worker_threads(
    tg: Any, llm: Any, bot_app: Any, monkeypatch: Any
) -> None:
    """A worker-thread hop costs more CPU than the check it runs, and waits for a free thread
    under load: with a configured backend, no update and no answer needs one. (aiogram runs
    synchronous filters, its `F.…` filters included, in a thread; the bot's are coroutines.)"""
    from tests.helpers import final_answer

    hops: list[object] = []
    original = asyncio.BaseEventLoop.run_in_executor

    def counting(self: asyncio.AbstractEventLoop, executor: Any, func: Any, *args: Any) -> Any:
        hops.append(func)
        return original(self, executor, func, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(asyncio.BaseEventLoop, "run_in_executor", counting)
    private = tg.send_user_message(2001, "a private question")["message"]
    await final_answer(tg, 2001, after=private["message_id"])
    group = tg.send_user_message(
        -100777, f"@{tg.bot_username} a group question", user_id=7, chat_type="supergroup"
    )["message"]
    await final_answer(tg, -100777, after=group["message_id"])
    tg.send_user_message(2001, "/frobnicate")
    await tg.wait_for(lambda: len(tg.bot_messages(2001)) >= 2)
    assert hops == []
