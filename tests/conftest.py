"""Shared fixtures: the fake Telegram and the fake model backend (one of each per test session,
reset before every test), and a factory that runs the real bot against them over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
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


StartBot = Callable[..., Awaitable[Any]]


@pytest.fixture
async def start_bot(tg: FakeTelegram, llm: FakeLLM, tmp_path: Path) -> AsyncIterator[StartBot]:
    """`app = await start_bot(**settings)` runs the real bot (polling) until the test ends."""
    from bot.app import build_app, run_polling
    from config import load_settings

    running: list[tuple[Any, asyncio.Task[None]]] = []

    async def start(**overrides: Any) -> Any:
        values: dict[str, Any] = {
            "bot_token": TOKEN,
            "telegram_api_url": tg.base_url,
            "g4f_api_base": llm.base_url,
            "data_dir": tmp_path / "data",
            "llm_idle_timeout": 5,
            "llm_total_timeout": 60,
        }
        values.update(overrides)
        app = build_app(load_settings(**values))
        task = asyncio.create_task(run_polling(app, handle_signals=False, polling_timeout=1))
        running.append((app, task))
        await tg.wait_for(lambda: any(c.method == "getUpdates" for c in tg.calls), timeout=10)
        return app

    yield start

    for app, task in running:
        with contextlib.suppress(RuntimeError):
            await app.dispatcher.stop_polling()
        try:
            await asyncio.wait_for(task, 10)
        except (TimeoutError, asyncio.CancelledError):
            task.cancel()


@pytest.fixture
async def bot_app(start_bot: StartBot) -> Any:
    return await start_bot()
