"""Background retries of writes that failed (`bot.retrying`)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot.retrying import Retrying


class Flaky:
    """Fails `failures` times, then succeeds; records when it was called."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[float] = []

    async def __call__(self) -> None:
        self.calls.append(asyncio.get_running_loop().time())
        if len(self.calls) <= self.failures:
            raise ConnectionError("down")


async def test_retried_with_growing_pauses_until_it_works() -> None:
    retrying = Retrying(first=0.02, most=0.04, give_up_after=5.0)
    call = Flaky(failures=3)
    started = asyncio.get_running_loop().time()
    retrying.start("the write", call)
    for _ in range(100):
        if len(call.calls) == 4:
            break
        await asyncio.sleep(0.02)
    pauses = [b - a for a, b in zip([started, *call.calls], call.calls, strict=False)]
    assert len(call.calls) == 4
    assert pauses[0] >= 0.02 and pauses[1] >= 0.04 and pauses[2] >= 0.04  # capped at `most`
    await asyncio.sleep(0.1)
    assert len(call.calls) == 4  # it stopped once it worked


async def test_given_up_after_its_time_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="bot")
    retrying = Retrying(first=0.02, most=0.02, give_up_after=0.1)
    call = Flaky(failures=1000)
    retrying.start("turn 7", call)
    await asyncio.sleep(0.3)
    assert 2 <= len(call.calls) <= 5
    assert [r.getMessage() for r in caplog.records] == [
        "turn 7 could not be stored: ConnectionError"
    ]


async def test_only_the_errors_named_are_retried() -> None:
    retrying = Retrying(first=0.01, most=0.01, give_up_after=1.0, errors=(OSError,))
    calls = 0

    async def broken() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("a bug, not an outage")

    retrying.start("x", broken)
    await asyncio.sleep(0.1)
    assert calls == 1  # the task ended with the error; it was not tried again


async def test_last_tries_at_shutdown(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="bot")
    retrying = Retrying(first=60.0, most=60.0, give_up_after=600.0)
    works, fails = Flaky(failures=0), Flaky(failures=1000)
    retrying.start("works", works)
    retrying.start("fails", fails)
    await retrying.last_tries()
    assert len(works.calls) == 1 and len(fails.calls) == 1
    assert [r.getMessage() for r in caplog.records] == [
        "fails could not be stored: ConnectionError"
    ]
    await asyncio.sleep(0.01)  # the cancelled background tries are gone
    assert not retrying._tasks
