"""End-to-end: each way a stream can fail keeps the partial text and shows a short notice."""

from __future__ import annotations

import asyncio
import logging
import socket
import sqlite3
from typing import Any

import pytest

from tests.conftest import StartBot
from tests.fakes.llm import FakeLLM, Reply
from tests.fakes.telegram import FakeTelegram
from tests.helpers import CURSOR, answer_messages, final_answer, full_text, refused_calls

USER = 2002
# Words that would mean internals leaked into a chat.
LEAKS = ("Error 500", "Traceback", "ClientPayloadError", "ResponseError", "Exception", "aiohttp")


def assert_no_leaks(text: str) -> None:
    for leak in LEAKS:
        assert leak not in text


@pytest.mark.parametrize(
    ("reply", "partial", "notice"),
    [
        (Reply("Partial answer that breaks", fault="drop", fault_after=12), True, "connection"),
        (Reply(fault="http500"), False, "returned an error"),
        (Reply(fault="http500_plain"), False, "returned an error"),
        (Reply(fault="http429"), False, "limiting requests"),
        (
            Reply("Half of it and then", fault="sse_error", fault_after=10),
            True,
            "returned an error, so the answer is incomplete",
        ),
        (Reply(fault="empty"), False, "empty answer"),
        (Reply(fault="html"), False, "returned an error"),
    ],
    ids=["drop", "http500", "http500-plain", "http429", "sse-error", "empty", "html-page"],
)
async def test_failure_keeps_partial_text_and_shows_notice(
    tg: FakeTelegram,
    llm: FakeLLM,
    bot_app: object,
    reply: Reply,
    partial: bool,
    notice: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="bot")
    llm.script(reply)
    question = tg.send_user_message(USER, "question")["message"]

    messages = await final_answer(tg, USER, after=question["message_id"])

    text = full_text(messages)
    assert notice in text
    assert "try again" in text.lower()
    if partial:
        assert text.startswith(reply.text[: reply.fault_after].strip())
    assert messages[0].reply_to_message_id == question["message_id"]
    assert_no_leaks(text)
    # The notice is set apart (italic), the details are in the log.
    assert any(e["type"] == "italic" for e in messages[-1].entities)
    assert any("stream failed" in r.getMessage() for r in caplog.records)
    assert refused_calls(tg) == []


async def test_a_failure_after_text_that_shows_nothing_yet_speaks_of_no_answer(
    tg: FakeTelegram, llm: FakeLLM, bot_app: object
) -> None:
    """A table's header row is not shown until the table goes on; cut off there, the chat
    shows the notice alone, which must not speak of an incomplete answer it does not show."""
    header = "| Name | Age |\n"
    llm.script(Reply(header + "|---|---|\n| Ann | 30 |", fault="drop", fault_after=len(header)))
    question = tg.send_user_message(USER, "a table please")["message"]
    [message] = await final_answer(tg, USER, after=question["message_id"])
    assert message.text == "⚠️ Could not reach the model. Please try again in a moment."


async def test_try_again_after_a_failure_is_about_the_failed_question(
    tg: FakeTelegram, llm: FakeLLM, bot_app: object
) -> None:
    """The notice says to try again; typed, that is about the question that got no answer."""
    llm.script(Reply(fault="http500"))
    question = tg.send_user_message(USER, "capital of France?")["message"]
    await final_answer(tg, USER, after=question["message_id"])
    llm.script(Reply("Paris."))
    again = tg.send_user_message(USER, "please try again")["message"]
    await final_answer(tg, USER, after=again["message_id"])
    assert llm.received[-1].messages == [
        {"role": "user", "content": "capital of France?\n\nplease try again"},
    ]


async def test_idle_timeout(
    tg: FakeTelegram, llm: FakeLLM, start_bot: StartBot, caplog: pytest.LogCaptureFixture
) -> None:
    await start_bot(llm_idle_timeout=1)
    caplog.set_level(logging.WARNING, logger="bot")
    llm.script(Reply("Thinking about it", fault="stall", fault_after=8))
    question = tg.send_user_message(USER, "question")["message"]

    messages = await final_answer(tg, USER, after=question["message_id"])

    text = full_text(messages)
    assert text.startswith("Thinking")
    assert "stopped responding" in text
    await tg.wait_for(lambda: llm.received[-1].client_closed, timeout=5)
    [logged] = [r.getMessage() for r in caplog.records if "stream failed" in r.getMessage()]
    assert logged.endswith("idle_timeout (no data for 1 s)")  # what ran out, not "NoneType"
    assert f" from {llm.base_url}: " in logged  # which backend to look at


async def test_a_model_that_never_writes_a_word_is_not_said_to_have_left_an_answer_incomplete(
    tg: FakeTelegram, llm: FakeLLM, start_bot: StartBot
) -> None:
    await start_bot(llm_idle_timeout=1)
    llm.script(Reply("Never shown", fault="stall", fault_after=0))
    question = tg.send_user_message(USER, "question", language_code="ru")["message"]
    [message] = await final_answer(tg, USER, after=question["message_id"])
    assert message.text == "⚠️ Модель не ответила. Попробуйте ещё раз."


async def test_total_timeout(tg: FakeTelegram, llm: FakeLLM, start_bot: StartBot) -> None:
    await start_bot(llm_total_timeout=1.5)
    llm.script(Reply("slow " * 400, chunk_size=5, delay=0.02))
    question = tg.send_user_message(USER, "question")["message"]

    messages = await final_answer(tg, USER, after=question["message_id"])

    text = full_text(messages)
    assert text.startswith("slow slow")
    assert "took too long" in text
    assert text.count("slow") < 400


async def test_unreachable_backend(
    tg: FakeTelegram, start_bot: StartBot, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    await start_bot(g4f_api_base=f"http://127.0.0.1:{port}/v1")
    caplog.set_level(logging.WARNING, logger="bot")
    question = tg.send_user_message(USER, "anyone there?")["message"]

    [message] = await final_answer(tg, USER, after=question["message_id"])

    assert "Could not reach the model" in message.text  # not "the answer is incomplete"
    assert_no_leaks(message.text)
    assert any("stream failed" in r.getMessage() for r in caplog.records)


async def test_a_question_that_meets_a_storage_failure_gets_a_notice(
    tg: FakeTelegram,
    bot_app: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A full disk (or Redis down) while a question is handled: the update is acknowledged
    either way, so without a word the asker would wait for good."""

    async def full(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(bot_app.store, "add_turn", full)
    caplog.set_level(logging.ERROR, logger="bot")
    question = tg.send_user_message(USER, "hello?")["message"]
    [notice] = await final_answer(tg, USER, after=question["message_id"])
    assert notice.text == "⚠️ Something went wrong on my side. Please try again."
    assert_no_leaks(notice.text)
    # One line that says why, not a traceback per question.
    [logged] = [r for r in caplog.records if r.name == "bot.handlers.errors"]
    assert logged.getMessage().endswith("storage: OperationalError: database or disk is full")
    assert logged.exc_info is None and not logged.exc_text


async def test_an_answer_finished_while_storage_fails_is_stored_once_it_works(
    tg: FakeTelegram, bot_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis restarting (or a full disk) as the answer ends: the chat shows it whole, and memory
    gets it when storage answers again, instead of keeping it "streaming" (a restart would then
    call it interrupted)."""
    from bot.conversations.models import TurnStatus

    monkeypatch.setattr(bot_app.conversations.retrying, "first", 0.05)
    store = bot_app.store
    finish = store.finish_turn
    failures = [ConnectionError("Redis is loading"), sqlite3.OperationalError("disk is full")]

    async def flaky(*args: Any, **kwargs: Any) -> None:
        if failures:
            raise failures.pop(0)
        await finish(*args, **kwargs)

    monkeypatch.setattr(store, "finish_turn", flaky)
    question = tg.send_user_message(USER, "hello")["message"]
    [answer] = await final_answer(tg, USER, after=question["message_id"])
    assert answer.text == "You said: hello"

    async def stored() -> bool:
        turn = await store.turn_by_message(USER, question["message_id"])
        return turn.status is TurnStatus.DONE and turn.answer == "You said: hello"

    for _ in range(100):
        if await stored():
            break
        await asyncio.sleep(0.05)
    assert await stored()
    assert not failures
    await tg.wait_idle(quiet=0.3)
    assert [m.text for m in tg.bot_messages(USER)] == ["You said: hello"]  # no error notice


async def test_injected_429_is_respected_and_answer_completes(
    tg: FakeTelegram, llm: FakeLLM, bot_app: object
) -> None:
    text = " ".join(f"token{i}" for i in range(200))
    llm.script(Reply(text, chunk_size=10, delay=0.02))
    tg.inject_429(chat_id=USER, methods=("editMessageText",), retry_after=2, times=1)
    question = tg.send_user_message(USER, "question")["message"]

    [answer] = await final_answer(tg, USER, after=question["message_id"], timeout=30)

    assert answer.text == text
    assert tg.count_429 == 1
    assert tg.violations == 0  # nothing was sent to the chat inside the retry_after window


@pytest.mark.parametrize(
    ("mode", "method"),
    [("edit", "editMessageText"), ("auto", "sendMessageDraft"), ("edit", "sendChatAction")],
)
async def test_a_bad_gateway_page_instead_of_json_does_not_stop_the_answer(
    tg: FakeTelegram, llm: FakeLLM, start_bot: StartBot, mode: str, method: str
) -> None:
    """Telegram's front end now and then answers with an HTML 502 page, not the Bot API's
    JSON: the call is tried again (the typing indicator just goes on), and the answer ends
    complete, with no cursor or Stop button left behind."""
    await start_bot(stream_mode=mode)
    text = " ".join(f"token{i}" for i in range(120))
    typing_first = method == "sendChatAction"
    llm.script(Reply(text, chunk_size=10, delay=0.02, first_delay=1.0 if typing_first else 0.0))
    tg.inject_gateway_error(chat_id=USER, methods=(method,))
    question = tg.send_user_message(USER, "question")["message"]

    [answer] = await final_answer(tg, USER, after=question["message_id"], timeout=30)

    assert answer.text == text
    assert [c.status for c in tg.calls if c.method == method].count(502) == 1
    assert [c for c in refused_calls(tg) if " 502 " not in c] == []


async def test_no_typing_inside_a_retry_after_window(
    tg: FakeTelegram, llm: FakeLLM, bot_app: object
) -> None:
    """The first text gets a 429: while its window runs, not even "typing…" goes to the chat
    (a call inside the window would extend it, if Telegram counts chat actions)."""
    text = "Slow thoughts. " * 20
    llm.script(Reply(text, chunk_size=10, delay=0.02))
    tg.inject_429(chat_id=USER, methods=("sendMessage",), retry_after=3, times=1)
    question = tg.send_user_message(USER, "question")["message"]

    [answer] = await final_answer(tg, USER, after=question["message_id"], timeout=30)

    assert answer.text == text.strip()
    [refused] = [c for c in tg.calls if c.chat_id == USER and c.status == 429]
    typing = [c.at for c in tg.calls if c.method == "sendChatAction" and c.chat_id == USER]
    assert not [at for at in typing if refused.at < at < refused.at + 3]


async def test_blocked_chat_ends_the_stream(tg: FakeTelegram, llm: FakeLLM, bot_app: Any) -> None:
    """The stream stops, the answer is not remembered as done, and a question that was waiting
    behind it is not sent to the model; one asked after the bot is let back in is answered. The
    bot learns it from a refused call here (`my_chat_member` missed)."""
    from bot.conversations.models import TurnStatus

    llm.script(Reply("word " * 2000, chunk_size=5, delay=0.01))
    first = tg.send_user_message(USER, "question")["message"]
    await tg.wait_for(lambda: bool(tg.bot_messages(USER)))
    tg.send_user_message(USER, "and another")
    await tg.wait_for(lambda: any("right after" in m.text for m in tg.bot_messages(USER)))
    tg.block(USER, tell=False)
    await tg.wait_for(lambda: llm.received[-1].client_closed, timeout=10)
    await tg.wait_for(lambda: not bot_app.answerer.active)
    await tg.wait_idle(quiet=0.5)
    assert len(llm.received) == 1
    turn = await bot_app.store.turn_by_message(USER, first["message_id"])
    assert turn.status is TurnStatus.FAILED
    tg.unblock(USER)
    question = tg.send_user_message(USER, "back again")["message"]
    await final_answer(tg, USER, after=question["message_id"])
    assert len(llm.received) == 2


async def test_a_chat_that_lets_the_bot_back_in_has_no_stale_messages(
    tg: FakeTelegram, llm: FakeLLM, bot_app: Any
) -> None:
    """Blocked mid-answer, the bot stops the stream (it learns from `my_chat_member`); unblocked,
    the answer shows as it ended, without its cursor and Stop button, and the "⏳" promise of a
    question that waited behind it, never to be answered, is gone."""
    llm.script(Reply("word " * 2000, chunk_size=5, delay=0.01))
    tg.send_user_message(USER, "question")
    await tg.wait_for(lambda: bool(tg.bot_messages(USER)))
    tg.send_user_message(USER, "and another")
    await tg.wait_for(lambda: any("right after" in m.text for m in tg.bot_messages(USER)))
    tg.block(USER)
    await tg.wait_for(lambda: llm.received[-1].client_closed, timeout=10)
    await tg.wait_for(lambda: any(c.status == 403 for c in tg.calls), timeout=10)  # its close
    await tg.wait_idle(quiet=0.5)
    answer, queued = tg.bot_messages(USER)
    assert answer.text.endswith(CURSOR) and answer.reply_markup
    assert "right after" in queued.text
    tg.unblock(USER)
    await tg.wait_for(lambda: len(tg.bot_messages(USER)) == 1, timeout=10)
    await tg.wait_for(lambda: not tg.bot_messages(USER)[0].text.endswith(CURSOR), timeout=10)
    [settled] = tg.bot_messages(USER)
    assert settled.message_id == answer.message_id
    assert settled.text.startswith("word word") and settled.text.endswith("⏹ Stopped.")
    assert not settled.reply_markup
    assert len(llm.received) == 1


async def _blocked_mid_answer(tg: FakeTelegram, llm: FakeLLM, app: Any, chat: int = USER) -> None:
    llm.script(Reply("word " * 2000, chunk_size=5, delay=0.01))
    tg.send_user_message(chat, "question")
    await tg.wait_for(lambda: bool(tg.bot_messages(chat)) or bool(tg.drafts), timeout=10)
    await asyncio.sleep(0.5)
    tg.block(chat)
    await tg.wait_for(lambda: llm.received[-1].client_closed, timeout=10)
    await tg.wait_for(lambda: not app.answerer.active)
    await tg.wait_for(lambda: any(c.status == 403 and c.chat_id == chat for c in tg.calls))
    await tg.wait_idle(quiet=0.5)
    for _ in range(100):  # the answer's end is stored (with what the chat is to show)
        turn = await app.store.latest_turn(chat, None)
        if turn is not None and turn.status.value != "streaming":
            break
        await asyncio.sleep(0.05)


async def test_an_answer_the_user_blocked_is_remembered_as_failed(
    tg: FakeTelegram, llm: FakeLLM, bot_app: Any
) -> None:
    from bot.conversations.models import TurnStatus

    await _blocked_mid_answer(tg, llm, bot_app)
    turn = await bot_app.store.latest_turn(USER, None, USER)
    assert turn.status is TurnStatus.FAILED


async def test_a_draft_cut_off_by_a_block_is_sent_once_let_back_in(
    tg: FakeTelegram, llm: FakeLLM, start_bot: StartBot
) -> None:
    """In a draft chat the text being written is only in the draft, which a block throws away:
    let back in, the bot sends it, as the answer ended."""
    app = await start_bot(stream_mode="auto")
    await _blocked_mid_answer(tg, llm, app)
    assert tg.drafts and not tg.bot_messages(USER)
    tg.unblock(USER)
    await tg.wait_for(lambda: bool(tg.bot_messages(USER)), timeout=10)
    await tg.wait_idle(quiet=0.5)
    [answer] = tg.bot_messages(USER)
    assert answer.text.startswith("word word") and answer.text.endswith("⏹ Stopped.")
    assert not answer.reply_markup


async def test_putting_right_what_a_chat_was_left_with_survives_a_429(
    tg: FakeTelegram, llm: FakeLLM, bot_app: Any
) -> None:
    await _blocked_mid_answer(tg, llm, bot_app)
    [answer] = tg.bot_messages(USER)
    assert answer.text.endswith(CURSOR) and answer.reply_markup
    tg.inject_429(chat_id=USER, methods=("editMessageText",), retry_after=1)
    tg.unblock(USER)
    await tg.wait_for(lambda: not tg.bot_messages(USER)[0].reply_markup, timeout=10)
    [answer] = tg.bot_messages(USER)
    assert answer.text.endswith("⏹ Stopped.")


async def test_what_a_chat_was_left_with_is_put_right_after_a_restart(
    tg: FakeTelegram, llm: FakeLLM, start_bot: StartBot
) -> None:
    app = await start_bot()
    await _blocked_mid_answer(tg, llm, app)
    await start_bot.stop(app)
    await start_bot()
    tg.unblock(USER)
    await tg.wait_for(lambda: not tg.bot_messages(USER)[0].reply_markup, timeout=10)
    [answer] = tg.bot_messages(USER)
    assert answer.text.startswith("word word") and answer.text.endswith("⏹ Stopped.")


async def _long_answer_begun(tg: FakeTelegram, llm: FakeLLM, group: int) -> None:
    """A long answer asked for in a (basic) group, until its first message shows."""
    llm.script(Reply("word " * 3000, chunk_size=5, delay=0.02))
    question = tg.send_user_message(
        group, f"@{tg.bot_username} long please", user_id=11, chat_type="group"
    )["message"]
    await tg.wait_for(lambda: bool(answer_messages(tg, group, question["message_id"])))


async def test_an_answer_in_a_supergroup_the_group_became_is_put_right_there(
    tg: FakeTelegram, llm: FakeLLM, bot_app: Any
) -> None:
    group, supergroup = -7777, -1007777
    await _long_answer_begun(tg, llm, group)
    tg.upgrade_group(group, supergroup)
    await tg.wait_for(lambda: any(m.reply_markup for m in tg.bot_messages(supergroup)), timeout=15)
    tg.block(supergroup)
    await tg.wait_for(lambda: not bot_app.answerer.active, timeout=15)
    await tg.wait_idle(quiet=0.5)
    tg.unblock(supergroup)
    await tg.wait_for(lambda: not tg.bot_messages(supergroup)[-1].reply_markup, timeout=10)
    assert tg.bot_messages(supergroup)[-1].text.endswith("⏹ Stopped.")


async def test_an_answer_begun_in_a_group_and_refused_in_its_supergroup_is_put_right_there(
    tg: FakeTelegram, llm: FakeLLM, bot_app: Any
) -> None:
    """The group became a supergroup mid-answer, where members may not write (nothing tells):
    the answer's first send there is refused. The group saw it begin, so once a later answer's
    send goes through in the supergroup, the rest is sent there with "⏹ Stopped."."""
    group, supergroup = -7778, -1007778
    await _long_answer_begun(tg, llm, group)
    tg.mute(supergroup, tell=False)
    tg.upgrade_group(group, supergroup)
    await tg.wait_for(lambda: not bot_app.answerer.active, timeout=15)
    await tg.wait_idle(quiet=0.5)
    assert not tg.bot_messages(supergroup)
    tg.unmute(supergroup, tell=False)
    again = tg.send_user_message(
        supergroup, f"@{tg.bot_username} and now?", user_id=11, chat_type="supergroup"
    )["message"]
    await final_answer(tg, supergroup, after=again["message_id"])
    await tg.wait_for(lambda: tg.bot_messages(supergroup)[-1].text.endswith("⏹ Stopped."))
    assert tg.bot_messages(supergroup)[-1].text.startswith("word")


MUTED_IN = -1009191


async def _ask_the_group(tg: FakeTelegram, text: str) -> dict[str, Any]:
    question: dict[str, Any] = tg.send_user_message(
        MUTED_IN, f"@{tg.bot_username} {text}", user_id=11, chat_type="supergroup"
    )["message"]
    return question


async def _ended_turn(app: Any, chat_id: int, message_id: int) -> Any:
    """The turn of a question, once its end is stored."""
    for _ in range(100):
        turn = await app.store.turn_by_message(chat_id, message_id)
        if turn is not None and turn.status.value != "streaming":
            return turn
        await asyncio.sleep(0.05)
    raise AssertionError(f"the answer to {message_id} did not end")


async def test_a_group_that_mutes_the_bot_mid_answer_stops_it_at_once(
    tg: FakeTelegram, llm: FakeLLM, bot_app: Any
) -> None:
    """An admin takes away the bot's right to send messages: `my_chat_member` says it is
    "restricted", and the answer stops there (its own messages can still be edited: it ends
    "Stopped", without cursor and button), as does the stream. Unmuted, the bot answers
    again."""
    llm.script(Reply("word " * 3000, chunk_size=5, delay=0.02))
    first = await _ask_the_group(tg, "long please")
    await tg.wait_for(lambda: bool(answer_messages(tg, MUTED_IN, first["message_id"])))
    tg.mute(MUTED_IN)
    await tg.wait_for(lambda: llm.received[0].client_closed, timeout=10)
    await tg.wait_for(lambda: not bot_app.answerer.active, timeout=10)
    await tg.wait_idle(quiet=0.5)
    answer = answer_messages(tg, MUTED_IN, first["message_id"])[0]
    assert answer.text.endswith("⏹ Stopped.") and not answer.reply_markup
    assert len(llm.received) == 1
    # Its end was shown: it is remembered as stopped, not as failed (as a blocked one is).
    assert (await _ended_turn(bot_app, MUTED_IN, first["message_id"])).status.value == "stopped"
    tg.unmute(MUTED_IN)
    again = await _ask_the_group(tg, "and now?")
    await final_answer(tg, MUTED_IN, after=again["message_id"])
    assert len(llm.received) == 2


async def test_a_group_where_the_bot_may_not_write_costs_one_refused_call(
    tg: FakeTelegram, llm: FakeLLM, bot_app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The group is read-only for members (nobody's status changes, so no `my_chat_member`):
    the first send is refused with 400 "not enough rights", which is taken for what it is, not
    for a formatting problem tried three times; the stream stops, and the answer is
    remembered as failed."""
    from bot.conversations.models import TurnStatus

    llm.script(Reply("word " * 3000, chunk_size=5, delay=0.02))
    tg.mute(MUTED_IN, tell=False)
    question = await _ask_the_group(tg, "anyone?")
    await tg.wait_for(lambda: bool(llm.received) and llm.received[0].client_closed, timeout=10)
    await tg.wait_for(lambda: not bot_app.answerer.active, timeout=10)
    await tg.wait_idle(quiet=0.5)
    refused = [c for c in tg.calls if c.method == "sendMessage" and c.status == 400]
    assert len(refused) == 1, refused_calls(tg)
    assert "refused formatting" not in caplog.text
    turn = await _ended_turn(bot_app, MUTED_IN, question["message_id"])
    assert turn.status is TurnStatus.FAILED
    tg.unmute(MUTED_IN, tell=False)
    again = await _ask_the_group(tg, "now?")
    await final_answer(tg, MUTED_IN, after=again["message_id"])
    # Nothing of the answer nobody saw begin is brought up later.
    assert [m.message_id for m in tg.bot_messages(MUTED_IN)] == [
        m.message_id for m in answer_messages(tg, MUTED_IN, again["message_id"])
    ]


async def test_a_refused_typing_in_a_read_only_group_ends_the_answer(
    tg: FakeTelegram, llm: FakeLLM, bot_app: Any
) -> None:
    """A model slow to start gets "typing…" shown; refused there for lack of rights, it ends the
    answer as a refused send would, before anything is sent."""
    from bot.conversations.models import TurnStatus

    llm.script(Reply("word " * 3000, chunk_size=5, delay=0.02, first_delay=1.0))
    tg.mute(MUTED_IN, tell=False)
    question = await _ask_the_group(tg, "anyone?")
    await tg.wait_for(lambda: bool(llm.received) and llm.received[0].client_closed, timeout=10)
    await tg.wait_for(lambda: not bot_app.answerer.active, timeout=10)
    await tg.wait_idle(quiet=0.5)
    assert [c.method for c in tg.calls if c.status == 400] == ["sendChatAction"]
    turn = await _ended_turn(bot_app, MUTED_IN, question["message_id"])
    assert turn.status is TurnStatus.FAILED


async def test_a_429_on_the_typing_that_asks_whether_the_bot_may_write_is_obeyed(
    tg: FakeTelegram, llm: FakeLLM, bot_app: Any
) -> None:
    hello = await _ask_the_group(tg, "hello")
    await final_answer(tg, MUTED_IN, after=hello["message_id"])
    tg.mute(MUTED_IN)
    await tg.wait_for(lambda: bool(bot_app.answerer.shut_out_of(MUTED_IN)))
    tg.unmute(MUTED_IN, tell=False)
    tg.inject_429(chat_id=MUTED_IN, methods=("sendChatAction",), retry_after=2)
    question = await _ask_the_group(tg, "still there?")
    await final_answer(tg, MUTED_IN, after=question["message_id"])
    assert [c.method for c in tg.calls if c.status == 429] == ["sendChatAction"]
    assert tg.violations == 0  # nothing went there inside the window


async def test_a_refused_typing_ends_a_model_still_thinking(
    tg: FakeTelegram, llm: FakeLLM, bot_app: Any
) -> None:
    """A reasoning model sends thoughts, no text, for seconds: the refused "typing…" ends its
    stream then, not at its first words."""
    llm.script(Reply("word " * 100, chunk_size=5, delay=0.02, reasoning="hmm " * 300))
    tg.mute(MUTED_IN, tell=False)
    await _ask_the_group(tg, "anyone?")
    await tg.wait_for(lambda: bool(llm.received) and llm.received[0].client_closed, timeout=10)
    assert llm.received[0].chunks == []  # not one word of the answer was sent


async def test_questions_asked_while_the_bot_is_muted_are_not_answered_late(
    tg: FakeTelegram, llm: FakeLLM, bot_app: Any
) -> None:
    """A muted bot still gets the group's mentions: each costs one refused "typing…", not a
    model's stream, and nothing of them is posted once the bot is unmuted."""
    hello = await _ask_the_group(tg, "hello")
    await final_answer(tg, MUTED_IN, after=hello["message_id"])
    tg.mute(MUTED_IN)
    await tg.wait_for(lambda: bool(bot_app.answerer.shut_out_of(MUTED_IN)))

    def refused() -> list[str]:
        return [c.method for c in tg.calls if c.status == 400]

    for asked, text in enumerate(("one?", "two?"), start=1):
        await _ask_the_group(tg, text)
        await tg.wait_for(lambda n=asked: len(refused()) == n, timeout=10)
    await tg.wait_for(lambda: not bot_app.answerer.active, timeout=10)
    await tg.wait_idle(quiet=0.5)
    assert refused() == ["sendChatAction"] * 2, refused_calls(tg)
    assert len(llm.received) == 1  # "hello" only
    tg.unmute(MUTED_IN)
    again = await _ask_the_group(tg, "and now?")
    await final_answer(tg, MUTED_IN, after=again["message_id"])
    await tg.wait_idle(quiet=0.5)
    assert len(tg.bot_messages(MUTED_IN)) == 2  # to "hello" and to "and now?"


async def test_a_mute_that_ends_by_its_date_lets_the_bot_answer_again(
    tg: FakeTelegram, llm: FakeLLM, bot_app: Any
) -> None:
    """A restriction with an end date lifts without an update saying so: the bot, which still
    takes itself for muted, finds out with its "typing…" and answers."""
    hello = await _ask_the_group(tg, "hello")
    await final_answer(tg, MUTED_IN, after=hello["message_id"])
    tg.mute(MUTED_IN)
    await tg.wait_for(lambda: bool(bot_app.answerer.shut_out_of(MUTED_IN)))
    tg.unmute(MUTED_IN, tell=False)  # its date came
    question = await _ask_the_group(tg, "still there?")
    [answer] = await final_answer(tg, MUTED_IN, after=question["message_id"])
    assert answer.reply_to_message_id == question["message_id"]
    assert len(llm.received) == 2


async def test_an_answer_cut_off_by_a_read_only_group_is_settled_and_put_right_later(
    tg: FakeTelegram, llm: FakeLLM, bot_app: Any
) -> None:
    """The group turns read-only mid-answer (no update tells): the next part's send is
    refused, the stream stops, and the message shown is settled, its own to edit (no cursor, no
    Stop button). Once the bot can send there again (a later answer's send goes through: no
    update tells that either), the rest is sent with "⏹ Stopped."."""
    llm.script(Reply("word " * 3000, chunk_size=50, delay=0.02))
    first = await _ask_the_group(tg, "long please")
    await tg.wait_for(lambda: bool(answer_messages(tg, MUTED_IN, first["message_id"])))
    tg.mute(MUTED_IN, tell=False)
    await tg.wait_for(lambda: llm.received[0].client_closed, timeout=15)
    await tg.wait_for(lambda: not bot_app.answerer.active, timeout=10)
    await tg.wait_idle(quiet=0.5)
    [shown] = answer_messages(tg, MUTED_IN, first["message_id"])
    assert not shown.text.endswith(CURSOR) and not shown.reply_markup
    assert "Stopped" not in shown.text  # it goes with the rest, which is not shown yet
    tg.unmute(MUTED_IN, tell=False)
    again = await _ask_the_group(tg, "and now?")
    await final_answer(tg, MUTED_IN, after=again["message_id"])
    await tg.wait_for(lambda: tg.bot_messages(MUTED_IN)[-1].text.endswith("⏹ Stopped."))
    rest = tg.bot_messages(MUTED_IN)[-1]
    assert rest.text.startswith("word") and rest.reply_to_message_id == first["message_id"]


async def test_a_failed_answer_keeps_the_formatting_it_was_shown_with(
    tg: FakeTelegram, llm: FakeLLM, bot_app: object
) -> None:
    """The unfinished last line was shown settled (`**bold` in bold) while streaming; the final
    state of an answer that ends midway must not turn it back into raw Markdown."""
    text = "Intro text. **This bold part goes on and on and on"
    llm.script(Reply(text, chunk_size=4, delay=0.02, fault="drop", fault_after=len(text)))
    question = tg.send_user_message(USER, "question")["message"]
    [message] = await final_answer(tg, USER, after=question["message_id"])
    assert message.text.startswith("Intro text. This bold part goes on and on and on")
    assert "*" not in message.text
    bold = next(e for e in message.entities if e["type"] == "bold")
    assert message.text[bold["offset"] :].startswith("This bold part")


@pytest.mark.parametrize("mode", ["edit", "auto"])
async def test_an_answer_that_renders_as_nothing_gets_the_empty_notice_in_the_end(
    tg: FakeTelegram, llm: FakeLLM, start_bot: StartBot, mode: str
) -> None:
    """A snapshot of a link definition shows `1` before the definition is complete; the whole
    answer shows nothing. The chat must end with the notice, not with that `1` removed and
    no word at all."""
    await start_bot(stream_mode=mode)
    llm.script(Reply("[1]: https://example.com/some/long/path", chunk_size=3, delay=0.05))
    question = tg.send_user_message(USER, "question")["message"]
    [message] = await final_answer(tg, USER, after=question["message_id"])
    assert "empty answer" in message.text
    assert refused_calls(tg) == []


async def test_an_answer_with_nothing_to_show_gets_the_empty_notice(
    tg: FakeTelegram, llm: FakeLLM, bot_app: object
) -> None:
    llm.script(Reply("   \n\n  "))
    question = tg.send_user_message(USER, "question")["message"]
    [message] = await final_answer(tg, USER, after=question["message_id"])
    assert "empty answer" in message.text


class _BlockedAfterSends:
    """Enough of aiogram's Bot for the reply engine: `sends` messages go through, then the user
    has blocked the bot (403 for everything)."""

    def __init__(self, sends: int) -> None:
        self.allowed = sends
        self.sends = 0

    async def __call__(self, method: Any) -> object:
        from aiogram.exceptions import TelegramForbiddenError
        from aiogram.methods import SendMessage

        if isinstance(method, SendMessage) and self.sends < self.allowed:
            self.sends += 1
            return type("Sent", (), {"message_id": self.sends})()
        raise TelegramForbiddenError(method, "Forbidden: bot was blocked by the user")

    async def send_chat_action(self, *_: object, **__: object) -> bool:
        return True


def _reply_blocked_after(sends: int) -> tuple[_BlockedAfterSends, Any]:
    """A reply engine with a Stop button, in a private chat that blocks the bot after `sends`
    messages."""
    from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

    from bot.streaming.pacer import Budgets, Pacer
    from bot.streaming.reply import ReplyStream

    bot = _BlockedAfterSends(sends)
    button = InlineKeyboardButton(text="Stop", callback_data="x")
    reply = ReplyStream(
        bot,  # type: ignore[arg-type]
        Pacer(Budgets(private_interval=0.05)),
        chat_id=1,
        stop_markup=InlineKeyboardMarkup(inline_keyboard=[[button]]),
    )
    return bot, reply


async def test_what_a_long_answer_cut_off_by_a_block_is_left_to_show_has_no_gap() -> None:
    """Blocked right after part 2 was sent, before part 1 lost its cursor (the very next call):
    part 1 is put right as the part it had become, not as its last snapshot (a hole of
    hundreds of words between the two messages), and the text never shown follows."""
    from bot.streaming.render import styled

    bot, reply = _reply_blocked_after(2)
    words = [f"w{i}" for i in range(1500)]
    reply.start()
    reply.update(" ".join(words[:500]))  # one message
    for _ in range(100):
        await asyncio.sleep(0.02)
        if bot.sends == 1:
            break
    reply.update(" ".join(words))  # part 1 fills up, more parts follow
    for _ in range(200):
        await asyncio.sleep(0.02)
        if reply.failed:
            break
    stopped = styled("⏹ Stopped.")
    await reply.close(stopped, complete=False)
    left = reply.leftovers()
    assert [item.message_id for item in left[:2]] == [1, 2]
    assert all(item.message_id is None for item in left[2:])
    texts = [item.part.text for item in left if item.part is not None]
    assert texts[-1].endswith("⏹ Stopped.")
    shown = " ".join(texts).removesuffix("⏹ Stopped.").split()
    assert shown == words


async def test_blocked_again_while_putting_right_keeps_what_is_left(
    tg: FakeTelegram, llm: FakeLLM, bot_app: Any
) -> None:
    """Let back in, then shut out again before the edit went through (a 429 made it wait): what
    is not done yet is kept, and put right at the next unblock."""
    await _blocked_mid_answer(tg, llm, bot_app)
    [answer] = tg.bot_messages(USER)
    assert answer.text.endswith(CURSOR) and answer.reply_markup
    tg.inject_429(chat_id=USER, methods=("editMessageText",), retry_after=2)
    tg.unblock(USER)
    await tg.wait_for(
        lambda: any(c.method == "editMessageText" and c.status == 429 for c in tg.calls),
        timeout=10,
    )
    tg.block(USER)  # the user changes their mind within the 2 s
    await asyncio.sleep(3)
    await tg.wait_idle(quiet=0.5)
    tg.unblock(USER)  # and back again
    await asyncio.sleep(2)
    await tg.wait_idle(quiet=0.5)
    [answer] = tg.bot_messages(USER)
    assert not answer.reply_markup, "the Stop button stays for good"
    assert not answer.text.endswith(CURSOR)


async def test_let_back_in_before_the_leftovers_are_stored(
    tg: FakeTelegram, llm: FakeLLM, bot_app: Any
) -> None:
    """The unblock is handled while the stopped answer is still storing what the chat is to
    show (here a write refused once, tried again 1 s later): it is put right once stored."""
    store = bot_app.store
    real_leave = store.leave
    calls = {"n": 0}

    async def flaky_leave(chat_id: int, item: str) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("storage blip")
        await real_leave(chat_id, item)

    store.leave = flaky_leave
    await _blocked_mid_answer(tg, llm, bot_app)
    tg.unblock(USER)  # before the retry (1 s)
    await asyncio.sleep(3)
    await tg.wait_idle(quiet=0.5)
    [answer] = tg.bot_messages(USER)
    left = await store.take_left(USER)
    assert not answer.reply_markup and not left, (answer.reply_markup is not None, left)


async def _refused_close(text: str, notice_text: str | None, complete: bool) -> list[Any]:
    from bot.streaming.render import styled

    bot, reply = _reply_blocked_after(1)
    reply.start()
    reply.update(text[: len(text) // 2])
    for _ in range(100):
        await asyncio.sleep(0.02)
        if bot.sends == 1:
            break
    reply.update(text)
    notice = styled(notice_text) if notice_text else None
    await reply.close(notice, complete=complete)  # the final edit is refused: blocked
    assert reply.gone
    return reply.leftovers()


async def test_a_complete_answer_whose_final_edit_was_refused_is_not_called_stopped() -> None:
    """The model finished; the user blocked the bot before the final edit: let back in, the
    whole answer shows, as `close` would have shown it, with no notice."""
    left = await _refused_close("The whole answer. It is complete.", None, complete=True)
    assert left[-1].part.text == "The whole answer. It is complete."


async def test_a_failed_answer_keeps_its_failure_notice_once_let_back_in() -> None:
    """The stream failed and the final edit was refused: let back in, the failure's notice
    (what went wrong, try again) shows, not "⏹ Stopped."."""
    failure = "⚠️ The model stopped responding. Please try again."
    left = await _refused_close("Half an answer and then", failure, complete=False)
    assert left[-1].part.text.endswith(failure), left[-1].part.text


async def test_a_part_sent_once_let_back_in_belongs_to_its_turn(
    tg: FakeTelegram, llm: FakeLLM, start_bot: Any
) -> None:
    """A draft's text, sent once the user unblocks the bot, is the answer's message: a reply
    to it continues that turn, as for every part the stream sends."""
    app = await start_bot(stream_mode="auto")
    await _blocked_mid_answer(tg, llm, app)
    tg.unblock(USER)
    await tg.wait_for(lambda: bool(tg.bot_messages(USER)), timeout=10)
    await tg.wait_idle(quiet=0.5)
    [answer] = tg.bot_messages(USER)
    turn = await app.store.turn_by_message(USER, answer.message_id)
    assert turn is not None


async def test_what_is_put_right_goes_as_plain_text_if_its_formatting_is_refused(
    tg: FakeTelegram, llm: FakeLLM, bot_app: Any
) -> None:
    """Telegram refuses the stored formatting (here made invalid): the text still shows, plain,
    as the reply engine does when formatting is refused."""
    import json

    await _blocked_mid_answer(tg, llm, bot_app)
    [item] = await bot_app.store.take_left(USER)
    message_id, part, *rest = json.loads(item)
    part[1] = [{"type": "bold", "offset": 0, "length": 100_000}]
    await bot_app.store.leave(USER, json.dumps([message_id, part, *rest]))
    tg.unblock(USER)
    await tg.wait_for(lambda: not tg.bot_messages(USER)[0].reply_markup, timeout=10)
    [answer] = tg.bot_messages(USER)
    assert answer.text == part[0] and answer.entities == []
