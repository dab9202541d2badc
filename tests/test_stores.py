"""The `Store` contract, run against both backends: SQLite (one instance) and Redis (replicas).

`reopen()` gives a new store on the same data, as a restarted process (or another replica) sees it.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bot.conversations import SQLiteStore, Store, TurnStatus
from bot.conversations.sqlite import MIGRATIONS
from bot.conversations.store import LEFT_FOR

Reopen = Callable[[], Awaitable[Store]]


@pytest.fixture(params=["sqlite", "redis"])
async def reopen(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Reopen]:
    opened: list[Any] = []
    redis_url = request.getfixturevalue("redis_server_url") if request.param == "redis" else ""
    if redis_url:
        import redis.asyncio as redis

        client = redis.Redis.from_url(redis_url)
        await client.flushall()
        await client.aclose()

    async def make() -> Store:
        for old in opened:  # the previous "process" is gone
            await old.close()
        opened.clear()
        store: Store
        if request.param == "sqlite":
            store = SQLiteStore(tmp_path / "bot.sqlite3")
        else:
            from bot.cluster.node import Cluster
            from bot.conversations.redis_store import RedisStore

            cluster = Cluster(redis_url, 42)
            await cluster.start()
            opened.append(cluster)
            store = RedisStore(cluster)
        await store.open()
        opened.insert(0, store)
        return store

    yield make
    for old in opened:
        await old.close()


async def add(store: Store, chat: int, qid: int, parent: int | None = None, **kw: Any) -> int:
    values: dict[str, Any] = {
        "chat_id": chat,
        "thread_id": None,
        "user_id": chat,
        "parent_id": parent,
        "question": f"q{qid}",
        "question_message_id": qid,
        "model": None,
    }
    values.update(kw)
    return (await store.add_turn(**values)).id


async def test_turns_are_found_by_their_messages_and_survive_a_restart(reopen: Reopen) -> None:
    store = await reopen()
    turn_id = await add(store, 5, 1, model="m", lang="ru")
    await store.link_message(5, 2, turn_id)
    await store.finish_turn(turn_id, answer="ans", status=TurnStatus.DONE, message_ids=[2, 3])

    store = await reopen()
    for message_id in (1, 2, 3):  # the question and both parts of the answer
        found = await store.turn_by_message(5, message_id)
        assert found is not None and found.id == turn_id
    assert found.answer == "ans" and found.status is TurnStatus.DONE
    assert found.model == "m" and found.lang == "ru" and found.thread_id is None
    assert await store.turn_by_message(6, 3) is None  # another chat
    assert await store.get_turn(turn_id + 1000) is None


async def test_the_progress_of_an_answer_is_kept_until_it_ends(reopen: Reopen) -> None:
    """What a streaming answer shows is stored as it grows, for after a crash; a write that
    comes after its end changes nothing."""
    store = await reopen()
    turn_id = await add(store, 5, 1)
    await store.save_progress(turn_id, "Once upon")
    store = await reopen()
    [unfinished] = await store.unfinished()
    assert unfinished.answer == "Once upon" and unfinished.status is TurnStatus.STREAMING
    await store.finish_turn(
        turn_id, answer="Once upon a time.", status=TurnStatus.DONE, message_ids=[]
    )
    await store.save_progress(turn_id, "Once upon a")
    turn = await store.get_turn(turn_id)
    assert turn is not None and turn.answer == "Once upon a time."


async def test_a_status_written_by_a_newer_version_reads_as_failed(reopen: Reopen) -> None:
    store = await reopen()
    turn_id = await add(store, 5, 1)
    newer = SimpleNamespace(value="someday")  # a status this version does not know
    await store.finish_turn(turn_id, answer="ans", status=newer, message_ids=[2])  # type: ignore[arg-type]

    store = await reopen()
    turn = await store.turn_by_message(5, 2)
    assert turn is not None and turn.status is TurnStatus.FAILED and turn.answer == "ans"


async def test_chain_follows_parents_oldest_first(reopen: Reopen) -> None:
    store = await reopen()
    ids: list[int] = []
    for i in range(5):
        ids.append(await add(store, 1, i, ids[-1] if ids else None))
    sibling = await add(store, 1, 99, ids[1], question="s")
    assert [t.question for t in await store.chain(ids[-1])] == ["q0", "q1", "q2", "q3", "q4"]
    assert [t.question for t in await store.chain(sibling)] == ["q0", "q1", "s"]
    assert [t.question for t in await store.chain(ids[-1], max_turns=2)] == ["q3", "q4"]
    assert [t.parent_id for t in await store.chain(ids[2])] == [None, ids[0], ids[1]]


async def test_an_edited_question_replaces_the_text_of_every_turn_it_asked(
    reopen: Reopen,
) -> None:
    store = await reopen()
    first = await add(store, 1, 1)
    second = await add(store, 1, 2, first)
    await store.finish_turn(second, answer="a2", status=TurnStatus.DONE, message_ids=[3])
    retried = await add(store, 1, 2, first)  # /retry: the same question message, a new turn
    other_chat = await add(store, 7, 2)
    await store.set_question(1, 2, "edited q2")
    store = await reopen()
    assert [(t.question, t.answer) for t in await store.chain(second)] == [
        ("q1", ""),
        ("edited q2", "a2"),
    ]
    assert [t.question for t in await store.chain(retried)] == ["q1", "edited q2"]
    assert [t.question for t in await store.chain(other_chat)] == ["q2"]


async def test_new_leaves_the_head_to_questions_asked_before_it(reopen: Reopen) -> None:
    """`/new` sent as message 5: a question asked before it (4, answered late, behind another
    answer) continues the head; one asked after it starts afresh, and the one after that
    continues the new conversation. It survives a restart; a topic has its own."""
    store = await reopen()
    first = await add(store, 1, 1)
    await store.set_head(1, None, first)
    await store.start_afresh(1, None, 5)
    store = await reopen()
    assert await store.head_for(1, None, 4) == first
    waited = await add(store, 1, 4, parent=first)
    await store.set_head(1, None, waited)
    assert await store.head_for(1, None, 6) is None
    fresh = await add(store, 1, 6)
    await store.set_head(1, None, fresh)
    assert await store.head_for(1, None, 8) == fresh
    assert await store.get_head(1, None) == fresh  # (a head set later keeps the mark)
    assert await store.head_for(1, 7, 8) is None
    in_topic = await add(store, 1, 9, thread_id=7)
    await store.set_head(1, 7, in_topic)
    assert await store.head_for(1, 7, 10) == in_topic


async def test_heads_latest_turns_and_topics(reopen: Reopen) -> None:
    store = await reopen()
    first = await add(store, 1, 1)
    in_topic = await add(store, 1, 2, thread_id=7)
    other_user = await add(store, 1, 3, user_id=2)
    assert await store.get_head(1, None) is None
    await store.set_head(1, None, first)
    await store.set_head(1, 7, in_topic)
    assert await store.get_head(1, None) == first and await store.get_head(1, 7) == in_topic
    await store.set_head(1, None, None)
    assert await store.get_head(1, None) is None

    latest = await store.latest_turn(1, None)
    assert latest is not None and latest.id == other_user
    mine = await store.latest_turn(1, None, user_id=1)
    assert mine is not None and mine.id == first
    topic = await store.latest_turn(1, 7)
    assert topic is not None and topic.id == in_topic
    assert await store.latest_turn(2, None) is None


async def test_preferences_one_at_a_time_and_the_denied_notice_once(reopen: Reopen) -> None:
    store = await reopen()
    prefs = await store.prefs(3)
    assert (prefs.model, prefs.system_prompt, prefs.denied_notice_sent) == (None, None, False)
    await store.set_pref(3, "model", "gpt-x")
    await store.set_pref(3, "system_prompt", "be brief")
    await store.set_pref(3, "model", None)
    prefs = await store.prefs(3)
    assert (prefs.model, prefs.system_prompt) == (None, "be brief")
    with pytest.raises(ValueError):
        await store.set_pref(3, "denied_notice_sent", "1")  # type: ignore[arg-type]

    claims = await asyncio.gather(*(store.claim_denied_notice(-9) for _ in range(5)))
    assert sorted(claims) == [False, False, False, False, True]
    assert (await store.prefs(-9)).denied_notice_sent


async def test_unfinished_answers_are_found_after_a_crash(reopen: Reopen) -> None:
    store = await reopen()
    done = await add(store, 1, 1)
    await store.finish_turn(done, answer="a", status=TurnStatus.DONE, message_ids=[2])
    left = await add(store, 1, 3, lang="de")
    await store.link_message(1, 5, left)
    await store.link_message(1, 4, left)

    store = await reopen()  # the process that streamed `left` is gone
    [found] = await store.unfinished()
    assert found.id == left and found.message_ids == [4, 5] and found.lang == "de"
    await store.finish_turn(left, answer="", status=TurnStatus.INTERRUPTED, message_ids=[])
    assert await store.unfinished() == []
    assert await store.ping()


async def test_waiting_questions_left_by_a_crash_are_found_once(reopen: Reopen) -> None:
    store = await reopen()
    answered = await store.add_waiting(
        chat_id=1, thread_id=None, message_id=10, notice_id=11, lang=None
    )
    left = await store.add_waiting(chat_id=-5, thread_id=7, message_id=20, notice_id=21, lang="ru")
    assert answered != left
    await store.remove_waiting(answered)
    if isinstance(store, SQLiteStore):
        # One process uses the file: all its records are left over by the time this is asked.
        store = await reopen()
    else:
        assert await store.orphaned_waiting() == []  # its replica is alive: not taken
        store = await reopen()  # that replica is gone
    [found] = await store.orphaned_waiting()
    assert (found.id, found.chat_id, found.thread_id, found.message_id, found.notice_id) == (
        left,
        -5,
        7,
        20,
        21,
    )
    assert found.lang == "ru"
    assert await store.orphaned_waiting() == []  # taken: no second notice
    newer = await store.add_waiting(chat_id=1, thread_id=None, message_id=30, notice_id=31, lang="")
    assert newer > left  # ids are not reused


async def test_many_concurrent_operations(reopen: Reopen) -> None:
    store = await reopen()

    async def one(i: int) -> None:
        turn_id = await add(store, i + 1, 1)
        await store.link_message(i + 1, 2, turn_id)
        await store.finish_turn(turn_id, answer="a", status=TurnStatus.DONE, message_ids=[2, 3])
        assert await store.turn_by_message(i + 1, 3) is not None
        await store.set_head(i + 1, None, turn_id)

    await asyncio.gather(*(one(i) for i in range(200)))
    assert await store.get_head(200, None) is not None
    ids = {
        t.id for i in range(200) for t in await store.chain(await store.get_head(i + 1, None) or 0)
    }
    assert len(ids) == 200  # every turn got its own id


async def test_sqlite_operations_are_one_hand_off_each(tmp_path: Path) -> None:
    """Each operation crosses to SQLite's thread once (every crossing wakes that thread and then
    the event loop), whatever statements, fetches and commit it needs."""
    store = SQLiteStore(tmp_path / "bot.sqlite3")
    await store.open()
    calls = 0
    execute = store.db._execute

    async def counted(fn: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return await execute(fn, *args, **kwargs)

    store.db._execute = counted  # type: ignore[method-assign]
    try:
        turn_id = await add(store, 1, 1)
        await store.link_message(1, 2, turn_id)
        await store.finish_turn(turn_id, answer="a", status=TurnStatus.DONE, message_ids=[2, 3])
        await store.set_head(1, None, turn_id)
        assert await store.turn_by_message(1, 3) is not None
        assert [t.id for t in await store.chain(turn_id)] == [turn_id]
        assert await store.claim_denied_notice(1)
        assert (await store.prefs(1)).denied_notice_sent
        assert calls == 8
    finally:
        await store.close()


async def test_sqlite_operation_that_fails_leaves_nothing_behind(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "bot.sqlite3")
    await store.open()
    try:

        def half_then_fail(conn: Any) -> None:
            conn.execute("INSERT INTO heads (chat_id, thread_id, turn_id) VALUES (7, 0, NULL)")
            raise RuntimeError("disk trouble")

        with pytest.raises(RuntimeError):
            await store._run(half_then_fail, write=True)
        assert await store.get_head(7, None) is None
        await store.set_head(7, None, None)  # the connection is usable afterwards
    finally:
        await store.close()


async def test_what_a_chat_is_to_show_once_it_lets_the_bot_back_in_is_taken_once(
    reopen: Reopen,
) -> None:
    store = await reopen()
    await store.leave(5, '["a"]')
    await store.leave(6, '["other chat"]')
    await store.leave(5, '["b"]')
    store = await reopen()  # kept across a restart
    assert await store.take_left(5) == ['["a"]', '["b"]']
    assert await store.take_left(5) == []
    assert await store.take_left(6) == ['["other chat"]']


def _database_at(path: Path, schema: int) -> Path:
    """A database as a version of the bot with that schema left it."""
    conn = sqlite3.connect(path)
    for version, script in enumerate(MIGRATIONS[:schema], start=1):
        conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {version};\nCOMMIT;")
    conn.close()
    return path


async def test_schema_3_database_migrates_to_leftovers(tmp_path: Path) -> None:
    path = _database_at(tmp_path / "bot.sqlite3", 3)
    store = SQLiteStore(path)
    await store.open()
    try:
        await store.leave(5, '["a"]')
        assert await store.take_left(5) == ['["a"]']
    finally:
        await store.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


async def test_schema_4_database_migrates_to_marks_of_new(tmp_path: Path) -> None:
    store = SQLiteStore(_database_at(tmp_path / "bot.sqlite3", 4))
    await store.open()
    try:
        head = await add(store, 1, 1)
        await store.set_head(1, None, head)
        assert await store.head_for(1, None, 2) == head
        await store.start_afresh(1, None, 3)
        assert await store.head_for(1, None, 4) is None
    finally:
        await store.close()


async def test_sqlite_leftovers_older_than_30_days_are_forgotten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    store = SQLiteStore(tmp_path / "bot.sqlite3")
    await store.open()
    try:
        now = time.time()
        monkeypatch.setattr(time, "time", lambda: now - 2 * LEFT_FOR)
        await store.leave(5, '["old"]')
        monkeypatch.setattr(time, "time", lambda: now)
        assert await store.take_left(5) == []
    finally:
        await store.close()
