"""Units of the memory model: context trimming, the SQLite store and its migrations, rate limits."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.conversations import Conversations, SQLiteStore, Turn, TurnStatus
from bot.conversations.context import build_context
from bot.conversations.queues import LocalQueues
from bot.conversations.service import Defaults
from bot.conversations.sqlite import MIGRATIONS
from bot.ratelimit import RateLimiter
from tests.test_stores import add


def turn(i: int, question: str, answer: str) -> Turn:
    return Turn(i, 1, None, 1, i - 1 or None, question, i * 10, answer, TurnStatus.DONE)


def test_context_trims_whole_turns_from_the_oldest() -> None:
    history = [turn(1, "q1" * 10, "a1" * 10), turn(2, "q2" * 10, "a2" * 10), turn(3, "q3", "a3")]
    messages = build_context("sys", history, "new question", max_chars=3 + 12 + 4 + 40)
    assert [m["content"] for m in messages] == [
        "sys",
        "q2" * 10,
        "a2" * 10,
        "q3",
        "a3",
        "new question",
    ]


def test_newest_question_is_always_kept_whole() -> None:
    long_question = "x" * 500
    messages = build_context("", [turn(1, "q", "a")], long_question, max_chars=100)
    assert messages == [{"role": "user", "content": long_question}]


def test_a_turn_without_an_answer_goes_with_the_next_question() -> None:
    """It failed before any text; the next question ("try again", "and Germany?") is often
    about it, and was sent with it in one message: so it stays, as it was sent, once that one is
    answered too. User and assistant still take turns."""
    history = [
        turn(1, "q1", "a1"),
        turn(2, "France?", ""),
        turn(3, "and Germany?", "Paris, Berlin"),
        turn(4, "q4", ""),
        turn(5, "q5", ""),
    ]
    messages = build_context("", history, "again", 1000)
    assert [(m["role"], m["content"]) for m in messages] == [
        ("user", "q1"),
        ("assistant", "a1"),
        ("user", "France?\n\nand Germany?"),
        ("assistant", "Paris, Berlin"),
        ("user", "q4\n\nq5\n\nagain"),
    ]


def test_questions_without_an_answer_before_the_new_one_are_trimmed_too() -> None:
    """A long paste that failed, then questions that failed (an outage): what goes before the
    new question is kept to the budget, the oldest dropped first, as turns are."""
    history = [turn(1, "q1", "a1"), turn(2, "x" * 5000, ""), turn(3, "q3", ""), turn(4, "q4", "")]
    messages = build_context("", history, "again", 100)
    assert [(m["role"], m["content"]) for m in messages] == [
        ("user", "q1"),
        ("assistant", "a1"),
        ("user", "q3\n\nq4\n\nagain"),
    ]


async def test_store_migrates_and_keeps_its_version(tmp_path: Path) -> None:
    path = tmp_path / "bot.sqlite3"
    store = SQLiteStore(path)
    await store.open()
    a = await store.add_turn(
        chat_id=5,
        thread_id=None,
        user_id=5,
        parent_id=None,
        question="q",
        question_message_id=1,
        model="m",
    )
    await store.finish_turn(a.id, answer="ans", status=TurnStatus.DONE, message_ids=[2, 3])
    await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    store = SQLiteStore(path)
    await store.open()  # opening again applies nothing twice
    found = await store.turn_by_message(5, 3)
    assert found is not None and found.answer == "ans" and found.status is TurnStatus.DONE
    assert await store.turn_by_message(6, 3) is None  # another chat
    await store.close()


async def test_store_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "bot.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(RuntimeError, match="newer than this bot knows"):
        await SQLiteStore(path).open()


async def test_chain_follows_parents(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db")
    await store.open()
    parent = None
    ids = []
    for i in range(5):
        t = await store.add_turn(
            chat_id=1,
            thread_id=None,
            user_id=1,
            parent_id=parent,
            question=f"q{i}",
            question_message_id=i,
            model=None,
        )
        ids.append(t.id)
        parent = t.id
    sibling = await store.add_turn(
        chat_id=1,
        thread_id=None,
        user_id=1,
        parent_id=ids[1],
        question="s",
        question_message_id=99,
        model=None,
    )
    assert [t.question for t in await store.chain(ids[-1])] == ["q0", "q1", "q2", "q3", "q4"]
    assert [t.question for t in await store.chain(sibling.id)] == ["q0", "q1", "s"]
    assert [t.question for t in await store.chain(ids[-1], max_turns=2)] == ["q3", "q4"]
    await store.close()


async def test_rate_limiter_sliding_window() -> None:
    now = [0.0]
    limiter = RateLimiter(2, 60, clock=lambda: now[0])
    assert await limiter.hit(1) == 0 and await limiter.hit(1) == 0
    assert await limiter.hit(1) == pytest.approx(60)
    assert await limiter.hit(2) == 0  # per user
    now[0] = 30
    assert await limiter.hit(1) == pytest.approx(30)
    now[0] = 60.5
    assert await limiter.hit(1) == 0


async def test_store_survives_many_concurrent_operations(tmp_path: Path) -> None:
    """200 answers finishing at once share one connection (interleaved cursors broke it)."""
    import asyncio

    store = SQLiteStore(tmp_path / "db")
    await store.open()

    async def one(i: int) -> None:
        t = await store.add_turn(
            chat_id=i,
            thread_id=None,
            user_id=i,
            parent_id=None,
            question="q",
            question_message_id=1,
            model=None,
        )
        await store.link_message(i, 2, t.id)
        await store.finish_turn(t.id, answer="a", status=TurnStatus.DONE, message_ids=[2, 3])
        assert (await store.turn_by_message(i, 3)) is not None
        await store.set_head(i, None, t.id)

    await asyncio.gather(*(one(i) for i in range(200)))
    assert await store.get_head(199, None) is not None
    await store.close()


async def test_notices_are_throttled_per_chat_and_user() -> None:
    from bot.ratelimit import Throttle

    now = [0.0]
    throttle = Throttle(60, clock=lambda: now[0])
    assert await throttle.allow(-1, 5)
    assert not await throttle.allow(-1, 5)  # the same person again: no second notice
    assert await throttle.allow(-1, 6) and await throttle.allow(-2, 5)
    now[0] = 61
    assert await throttle.allow(-1, 5)


async def test_a_store_on_a_full_disk_is_not_healthy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read still works on a full disk, where every answer would fail to be stored."""
    from types import SimpleNamespace

    from bot.conversations import sqlite

    store = SQLiteStore(tmp_path / "bot.sqlite3")
    await store.open()
    try:
        assert await store.ping()
        full = SimpleNamespace(total=10**9, used=10**9 - 4096, free=4096)
        monkeypatch.setattr(sqlite.shutil, "disk_usage", lambda path: full)
        assert not await store.ping()
    finally:
        await store.close()


async def test_a_question_keeps_its_place_in_line_while_it_is_told_it_waits() -> None:
    """The second question's "you are next" notice takes a round trip to Telegram; the answer
    before it may end meanwhile, and a third question asked then must still come after it (it
    got ahead, and the second was answered with the third's exchange as its context)."""
    queues, order, done = LocalQueues(), [], asyncio.Event()

    async def nothing() -> None:
        pass

    async def answer(number: int, on_queued: Callable[[], Awaitable[None]], wait: float) -> None:
        await asyncio.sleep(wait)
        async with queues.hold("chat", on_queued):
            order.append(number)
            if number == 1:
                await done.wait()

    async def told() -> None:
        done.set()  # the first answer ends while the notice is on its way
        await asyncio.sleep(0.05)

    await asyncio.gather(answer(1, nothing, 0), answer(2, told, 0.001), answer(3, nothing, 0.02))
    assert order == [1, 2, 3]
    assert queues._lines == {}


class _Edits:
    """The notifier's side of a recovery: what was edited, what lost its buttons."""

    def __init__(self) -> None:
        self.parts: dict[int, str] = {}
        self.unbuttoned: list[int] = []

    async def edit_part(self, chat_id: int, message_id: int, part: Any) -> bool:
        self.parts[message_id] = part.text
        return True

    async def remove_keyboard(self, chat_id: int, message_id: int) -> None:
        self.unbuttoned.append(message_id)

    async def reply(self, *args: Any, **kwargs: Any) -> None:
        return None


async def test_after_a_crash_every_message_of_an_answer_is_settled(tmp_path: Path) -> None:
    """A part is sent before the one before it loses its cursor: a crash between the two left
    both with a cursor and a Stop button, and both are put back as their parts."""
    store = SQLiteStore(tmp_path / "memory.db")
    await store.open()
    answer = " ".join(f"w{i}" for i in range(1200))  # two messages
    turn_id = await add(store, 5, 1)
    for message_id in (2, 3):
        await store.link_message(5, message_id, turn_id)
    await store.save_progress(turn_id, answer)
    edits = _Edits()
    defaults = Defaults(model="m", models=("m",), system_prompt="", max_context_chars=10_000)
    conversations = Conversations(store, None, edits, defaults)  # type: ignore[arg-type]
    assert await conversations.recover() == 1
    assert sorted(edits.parts) == [2, 3] and not edits.unbuttoned
    assert " ".join(edits.parts[m] for m in (2, 3)).split() == answer.split()
    await store.close()
