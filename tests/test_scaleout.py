"""Scale-out: two replicas of the real bot in webhook mode, sharing one real Redis, behave as one
bot. The test posts each update to the replica of its choice, as a load balancer would."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import TOKEN
from tests.fakes.llm import FakeLLM, Reply
from tests.fakes.telegram import FakeTelegram
from tests.helpers import answer_messages, final_answer, full_text
from tests.test_web import SECRET, WEBHOOK_URL, Running, make_app, metric

USER = 8008
GROUP = -100800
StartReplica = Callable[..., Awaitable[Running]]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


@pytest.fixture
async def start_replica(
    tg: FakeTelegram, llm: FakeLLM, tmp_path: Path, redis_url: str, http: aiohttp.ClientSession
) -> AsyncIterator[StartReplica]:
    """Starts replicas (webhook mode, one Redis, separate data dirs); stops them all at the end."""
    from bot.app import run_webhook

    started: list[tuple[asyncio.Event, asyncio.Task[None]]] = []

    async def start(**overrides: Any) -> Running:
        app = make_app(
            tg.base_url,
            llm,
            tmp_path / f"data{len(started)}",
            bot_mode="webhook",
            webhook_url=WEBHOOK_URL,
            webhook_secret=SECRET,
            redis_url=redis_url,
            **overrides,
        )
        stop = asyncio.Event()
        webhooks = sum(1 for c in tg.calls if c.method == "setWebhook")
        task = asyncio.create_task(run_webhook(app, handle_signals=False, stop=stop))
        started.append((stop, task))
        await tg.wait_for(
            lambda: sum(1 for c in tg.calls if c.method == "setWebhook") > webhooks or task.done()
        )
        if task.done():
            task.result()
        return Running(app, f"http://127.0.0.1:{app.settings.web_port}", task, http)

    try:
        yield start
    finally:
        for stop, _ in started:
            stop.set()
        await asyncio.gather(*(asyncio.wait_for(t, 15) for _, t in started))
        tg.webhook_url = None


@pytest.fixture
async def replicas(start_replica: StartReplica) -> tuple[Running, Running]:
    return await start_replica(), await start_replica()


def user_turns(request_messages: list[dict[str, Any]]) -> list[str]:
    return [m["content"] for m in request_messages if m["role"] in ("user", "assistant")]


async def test_memory_continues_on_the_other_replica(
    tg: FakeTelegram, llm: FakeLLM, replicas: tuple[Running, Running]
) -> None:
    a, b = replicas
    first = tg.send_user_message(USER, "my name is Ada")
    assert await a.post_update(first) == 200
    [answer] = await final_answer(tg, USER, after=first["message"]["message_id"])

    second = tg.send_user_message(USER, "what is my name?")
    assert await b.post_update(second) == 200
    await final_answer(tg, USER, after=second["message"]["message_id"])

    assert user_turns(llm.received[1].messages) == [
        "my name is Ada",
        "You said: my name is Ada",
        "what is my name?",
    ]
    # a reply to the first answer, on replica A again, branches from that answer
    third = tg.send_user_message(USER, "branch", reply_to_message_id=answer.message_id)
    assert await a.post_update(third) == 200
    await final_answer(tg, USER, after=third["message"]["message_id"])
    assert user_turns(llm.received[2].messages) == [
        "my name is Ada",
        "You said: my name is Ada",
        "branch",
    ]


async def test_group_thread_continues_across_replicas(
    tg: FakeTelegram, llm: FakeLLM, replicas: tuple[Running, Running]
) -> None:
    a, b = replicas
    first = tg.send_user_message(
        GROUP, f"@{tg.bot_username} first topic", chat_type="supergroup", user_id=11
    )
    assert await b.post_update(first) == 200
    [answer] = await final_answer(tg, GROUP, after=first["message"]["message_id"])

    follow = tg.send_user_message(
        GROUP,
        "and more",
        chat_type="supergroup",
        user_id=12,
        reply_to_message_id=answer.message_id,
    )
    assert await a.post_update(follow) == 200
    await final_answer(tg, GROUP, after=follow["message"]["message_id"])
    assert user_turns(llm.received[1].messages)[:2] == ["first topic", "You said: first topic"]


async def test_stop_pressed_on_one_replica_stops_the_stream_on_the_other(
    tg: FakeTelegram, llm: FakeLLM, replicas: tuple[Running, Running]
) -> None:
    a, b = replicas
    llm.script(Reply(text="word " * 2000, chunk_size=5, delay=0.02))
    update = tg.send_user_message(USER, "talk for a long time")
    question_id = update["message"]["message_id"]
    assert await a.post_update(update) == 200
    await tg.wait_for(
        lambda: any(m.reply_markup for m in answer_messages(tg, USER, after=question_id))
    )
    [shown] = [m for m in answer_messages(tg, USER, after=question_id) if m.reply_markup]
    data = shown.reply_markup["inline_keyboard"][0][0]["callback_data"]
    assert a.app.answerer.active and not b.app.answerer.active

    press = tg.press_button(USER, shown.message_id, data, user_id=USER)
    assert await b.post_update(press) == 200

    messages = await final_answer(tg, USER, after=question_id)
    assert "Stopped" in full_text(messages)
    assert len(full_text(messages)) < 10_000 - 100  # it did not run to the end
    await tg.wait_for(lambda: llm.received[0].finished is not None)
    assert llm.received[0].client_closed
    [answered] = [c for c in tg.calls if c.method == "answerCallbackQuery"]
    assert answered.params.get("text") == "Stopped."


async def test_a_chat_that_shuts_the_bot_out_on_one_replica_is_put_right_from_the_other(
    tg: FakeTelegram, llm: FakeLLM, replicas: tuple[Running, Running]
) -> None:
    """The answer streams on A; the block reaches B, which stops it on A; the unblock reaches
    B again, which puts right what A's answer left (kept in Redis)."""
    a, b = replicas
    llm.script(Reply(text="word " * 2000, chunk_size=5, delay=0.02))
    update = tg.send_user_message(USER, "talk for a long time")
    question_id = update["message"]["message_id"]
    assert await a.post_update(update) == 200
    await tg.wait_for(lambda: bool(answer_messages(tg, USER, after=question_id)))
    tg.block(USER)
    assert await b.post_update(tg.pending_updates[-1]) == 200  # kicked
    await tg.wait_for(lambda: llm.received[0].client_closed, timeout=10)
    await tg.wait_for(lambda: not a.app.answerer.active, timeout=10)
    await tg.wait_idle(quiet=0.5)
    [shown] = answer_messages(tg, USER, after=question_id)
    assert shown.reply_markup
    tg.unblock(USER)
    assert await b.post_update(tg.pending_updates[-1]) == 200  # a member again
    await tg.wait_for(
        lambda: not answer_messages(tg, USER, after=question_id)[0].reply_markup, timeout=10
    )
    [shown] = answer_messages(tg, USER, after=question_id)
    assert shown.text.startswith("word") and shown.text.endswith("⏹ Stopped.")


async def test_stop_command_on_one_replica_stops_an_answer_on_the_other(
    tg: FakeTelegram, llm: FakeLLM, replicas: tuple[Running, Running]
) -> None:
    a, b = replicas
    llm.script(Reply(text="word " * 2000, chunk_size=5, delay=0.02))
    update = tg.send_user_message(USER, "talk for a long time")
    question_id = update["message"]["message_id"]
    assert await b.post_update(update) == 200
    await tg.wait_for(lambda: bool(answer_messages(tg, USER, after=question_id)))

    command = tg.send_user_message(USER, "/stop")
    assert await a.post_update(command) == 200

    await tg.wait_for(lambda: not b.app.answerer.active)
    await tg.wait_idle(quiet=0.3)
    texts = [m.text for m in tg.bot_messages(USER)]
    assert any("Stopped" in t for t in texts)
    assert llm.received[0].client_closed


async def test_the_client_stop_control_reaches_a_draft_on_the_other_replica(
    tg: FakeTelegram, llm: FakeLLM, start_replica: StartReplica
) -> None:
    a = await start_replica(stream_mode="auto")
    b = await start_replica(stream_mode="auto")
    llm.script(Reply("word " * 3000, chunk_size=5, delay=0.01))
    update = tg.send_user_message(USER, "go on")
    assert await a.post_update(update) == 200
    await tg.wait_for(lambda: any(c.status == 200 for c in tg.drafts))

    stop = tg.stop_generation(USER, int(tg.drafts[0].params["draft_id"]))
    assert await b.post_update(stop) == 200

    [answer] = await final_answer(tg, USER, after=update["message"]["message_id"])
    assert answer.text.startswith("word") and answer.text.endswith("Stopped.")
    assert llm.received[0].client_closed


async def test_a_redelivered_update_is_answered_once(
    tg: FakeTelegram, llm: FakeLLM, replicas: tuple[Running, Running]
) -> None:
    a, b = replicas
    update = tg.send_user_message(USER, "only once please")
    statuses = await asyncio.gather(a.post_update(update), b.post_update(update))
    assert statuses == [200, 200]  # both acknowledge, so Telegram stops re-sending
    await final_answer(tg, USER, after=update["message"]["message_id"])
    assert await a.post_update(update) == 200  # a third delivery, later
    await tg.wait_idle(quiet=0.5)

    assert len(llm.received) == 1
    assert len(answer_messages(tg, USER, after=update["message"]["message_id"])) == 1
    counted = 0.0
    for replica in (a, b):
        _, text = await replica.get("/metrics")
        counted += metric(text, "bot_updates_total", type="message")
    assert counted == 1  # redeliveries are not counted as updates


async def test_a_question_on_another_replica_waits_for_the_running_answer(
    tg: FakeTelegram, llm: FakeLLM, replicas: tuple[Running, Running]
) -> None:
    a, b = replicas
    llm.script(Reply(text="slow " * 60, chunk_size=10, delay=0.02))
    first = tg.send_user_message(USER, "first question")
    assert await a.post_update(first) == 200
    await tg.wait_for(lambda: len(llm.received) == 1)

    second = tg.send_user_message(USER, "second question")
    assert await b.post_update(second) == 200
    await tg.wait_for(lambda: len(llm.received) == 2, timeout=30)

    assert llm.received[0].finished is not None  # the first had ended before the second began
    assert llm.received[1].started >= llm.received[0].finished
    assert user_turns(llm.received[1].messages)[0] == "first question"
    notices = [
        m.text
        for m in tg.bot_messages(USER)
        if m.reply_to_message_id == second["message"]["message_id"]
    ]
    assert any("right after" in t for t in notices)  # told at once that it is queued


async def test_the_rate_limit_counts_across_replicas(
    tg: FakeTelegram, llm: FakeLLM, start_replica: StartReplica
) -> None:
    a = await start_replica(user_rate_limit="2/600")
    b = await start_replica(user_rate_limit="2/600")
    for replica, text in ((a, "one"), (b, "two")):
        update = tg.send_user_message(USER, text)
        assert await replica.post_update(update) == 200
        await final_answer(tg, USER, after=update["message"]["message_id"])

    third = tg.send_user_message(USER, "three")
    assert await a.post_update(third) == 200
    [notice] = await final_answer(tg, USER, after=third["message"]["message_id"])
    assert "limit" in notice.text
    assert len(llm.received) == 2


async def test_preferences_are_shared(
    tg: FakeTelegram, llm: FakeLLM, replicas: tuple[Running, Running]
) -> None:
    a, b = replicas
    command = tg.send_user_message(USER, "/system Answer like a pirate.")
    assert await a.post_update(command) == 200
    await tg.wait_idle(quiet=0.3)

    update = tg.send_user_message(USER, "hello")
    assert await b.post_update(update) == 200
    await final_answer(tg, USER, after=update["message"]["message_id"])
    assert llm.received[0].messages[0] == {"role": "system", "content": "Answer like a pirate."}


async def test_an_answer_left_by_a_dead_replica_is_marked_interrupted(
    tg: FakeTelegram, llm: FakeLLM, replicas: tuple[Running, Running]
) -> None:
    a, _ = replicas
    from bot.conversations.redis_store import RedisStore

    question = tg.send_user_message(USER, "asked before the crash")
    question_id = question["message"]["message_id"]
    # what a replica that died mid-answer leaves: a streaming turn it owned, one message shown
    cluster = a.app.cluster
    orphan_store = RedisStore(cluster)
    dead_id = cluster.replica_id
    cluster.replica_id = "dead-replica"
    try:
        turn = await orphan_store.add_turn(
            chat_id=USER,
            thread_id=None,
            user_id=USER,
            parent_id=None,
            question="asked before the crash",
            question_message_id=question_id,
            model=None,
            lang="en",
        )
    finally:
        cluster.replica_id = dead_id

    assert await a.app.conversations.recover() == 1
    assert await a.app.conversations.recover() == 0  # claimed once
    stored = await a.app.store.get_turn(turn.id)
    assert stored is not None and stored.status == "interrupted"
    [notice] = answer_messages(tg, USER, after=question_id)
    assert "stopped before this answer was finished" in notice.text


async def test_healthz_reports_redis_as_storage(
    tg: FakeTelegram, replicas: tuple[Running, Running]
) -> None:
    a, _ = replicas
    status, body = await a.get("/healthz")
    assert status == 200
    assert json.loads(body)["storage"] == "ok"


async def test_a_queue_place_not_left_while_redis_fails_is_left_once_it_answers(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answer is done when Redis fails: no error reaches the asker, and the next question in
    that chat gets its turn once Redis answers again, not after the 15 s lease."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    from bot.cluster.node import Cluster
    from bot.conversations.queues import RedisQueues

    cluster = Cluster(redis_url, 42)
    await cluster.start()
    queues = RedisQueues(cluster)
    leave = queues._leave
    failures = [RedisConnectionError("Connection refused")]

    async def flaky(*args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop(0)
        return await leave(*args, **kwargs)

    monkeypatch.setattr(queues, "_leave", flaky)

    async def nothing() -> None:
        pass

    try:
        async with queues.hold("private:1:0", nothing):
            pass  # the answer; leaving its place fails once
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with asyncio.timeout(5), queues.hold("private:1:0", nothing):
            waited = loop.time() - started
        assert not failures and waited < 3
    finally:
        await cluster.close()


@pytest.mark.parametrize("refusal", ["database", "password"])
async def test_redis_refusing_the_bot_is_a_startup_error(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refusal: str
) -> None:
    """A wrong database number or password is not an outage: waiting would not change it."""
    from redis.exceptions import AuthenticationError

    from bot.app import StartupError, build_app, join_cluster
    from bot.cluster.node import Cluster
    from config import load_settings

    url, said = f"{redis_url.rsplit('/', 1)[0]}/99", "DB index is out of range"
    if refusal == "password":  # this server has none: a Redis that has one refuses a wrong one
        url, said = redis_url, "invalid username-password pair"

        async def refused(self: Cluster) -> None:
            raise AuthenticationError(f"{said} or user is disabled.")

        monkeypatch.setattr(Cluster, "start", refused)
    app = build_app(load_settings(bot_token=TOKEN, redis_url=url, data_dir=tmp_path))
    assert app.cluster is not None
    try:
        with pytest.raises(StartupError, match=rf"^Redis \(REDIS_URL\) refused the bot: {said}"):
            await asyncio.wait_for(join_cluster(app), 10)
    finally:
        await app.cluster.close()
        await app.bot.session.close()
