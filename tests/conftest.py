"""Shared fixtures: the fake Telegram and the fake model backend (one of each per test session,
reset before every test), and a factory that runs the real bot against them over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.llm import FakeLLM
from tests.fakes.telegram import FakeTelegram

TOKEN = "123456:TEST-token-for-fake-telegram"


@pytest.fixture(scope="session")
async def tg_server() -> AsyncIterator[FakeTelegram]:
    fake = FakeTelegram(token=TOKEN)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture(scope="session")
async def llm_server() -> AsyncIterator[FakeLLM]:
    fake = FakeLLM()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def tg(tg_server: FakeTelegram) -> FakeTelegram:
    tg_server.reset()
    return tg_server


@pytest.fixture
def llm(llm_server: FakeLLM) -> FakeLLM:
    llm_server.reset()
    return llm_server


class BotRunner:
    """Runs the real bot (polling) against the fakes: `app = await start_bot(**settings)`."""

    def __init__(self, tg: FakeTelegram, llm: FakeLLM, data_dir: Path) -> None:
        self.tg = tg
        self.llm = llm
        self.data_dir = data_dir
        self.running: dict[int, tuple[Any, asyncio.Task[None]]] = {}

    async def __call__(self, **overrides: Any) -> Any:
        from bot.app import build_app, run_polling
        from config import load_settings

        values: dict[str, Any] = {
            "bot_token": TOKEN,
            "telegram_api_url": self.tg.base_url,
            "g4f_api_base": self.llm.base_url,
            "data_dir": self.data_dir,
            "llm_idle_timeout": 5,
            "llm_total_timeout": 60,
            # Edit-streaming is what most tests look at (and groups always use it); the tests of
            # native drafts in private chats (the default, STREAM_MODE=auto) ask for them.
            "stream_mode": "edit",
        }
        values.update(overrides)
        app = build_app(load_settings(**values))
        polls = sum(1 for c in self.tg.calls if c.method == "getUpdates")
        task = asyncio.create_task(run_polling(app, handle_signals=False, polling_timeout=1))
        self.running[id(app)] = (app, task)
        await self.tg.wait_for(
            lambda: sum(1 for c in self.tg.calls if c.method == "getUpdates") > polls, timeout=10
        )
        return app

    async def stop(self, app: Any) -> None:
        """Stop one bot as a restart would: polling ends, storage is closed."""
        app, task = self.running.pop(id(app))
        with contextlib.suppress(RuntimeError):  # polling may have ended already
            await app.dispatcher.stop_polling()
        try:
            await asyncio.wait_for(task, 10)
        except (TimeoutError, asyncio.CancelledError):
            task.cancel()

    async def stop_all(self) -> None:
        for app, _ in list(self.running.values()):
            await self.stop(app)


StartBot = BotRunner


@pytest.fixture
async def start_bot(tg: FakeTelegram, llm: FakeLLM, tmp_path: Path) -> AsyncIterator[BotRunner]:
    runner = BotRunner(tg, llm, tmp_path / "data")
    yield runner
    await runner.stop_all()


@pytest.fixture
async def bot_app(start_bot: BotRunner) -> Any:
    return await start_bot()


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    from tests.redis_server import redis_server

    with redis_server() as url:
        yield url


@pytest.fixture
async def redis_url(redis_server_url: str) -> str:
    """A real Redis, emptied before each test."""
    import redis.asyncio as redis

    client = redis.Redis.from_url(redis_server_url)
    await client.flushall()
    await client.aclose()
    return redis_server_url


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """An SQLite connection left open (a test that failed before closing its store, whose
    frame pytest keeps for the report) would keep this process from ever exiting: its thread
    is not a daemon. Such connections are stopped here, and named."""
    import gc

    import aiosqlite

    left = [
        obj
        for obj in gc.get_objects()
        if isinstance(obj, aiosqlite.Connection) and obj._connection is not None
    ]
    for connection in left:
        connection.stop()
    if left:
        print(f"\n{len(left)} SQLite connection(s) left open by the tests were closed")
