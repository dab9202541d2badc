"""End-to-end: the real bot (aiogram Dispatcher + g4f) against the fake Telegram and backend."""

from __future__ import annotations

import re

from tests.fakes.llm import FakeLLM, Reply
from tests.fakes.telegram import FakeTelegram
from tests.helpers import answer_messages, final_answer, full_text, refused_calls

USER = 1001


async def test_private_question_streams_and_ends_complete(
    tg: FakeTelegram, llm: FakeLLM, bot_app: object
) -> None:
    text = " ".join(f"word{i}" for i in range(300))
    llm.script(Reply(text, chunk_size=12, delay=0.01))
    question = tg.send_user_message(USER, "Tell me something")["message"]

    messages = await final_answer(tg, USER, after=question["message_id"])

    assert len(messages) == 1
    answer = messages[0]
    assert answer.text == text
    assert answer.reply_to_message_id == question["message_id"]
    assert answer.reply_markup is None
    # It streamed: shown early, edited while growing, and a Stop button was shown meanwhile.
    assert len(answer.history) >= 3
    assert any("▌" in state for state in answer.history[:-1])
    first_send = next(c for c in tg.calls if c.method == "sendMessage")
    assert first_send.params.get("reply_markup")
    # The backend saw the question.
    assert llm.received[-1].messages[-1] == {"role": "user", "content": "Tell me something"}
    assert tg.count_429 == 0 and tg.violations == 0
    assert refused_calls(tg) == []


async def test_the_bots_name_typed_in_a_private_chat_is_not_sent_to_the_model(
    tg: FakeTelegram, llm: FakeLLM, bot_app: object
) -> None:
    """As in a group, where it is needed, when it opens or closes the message; another user's
    name stays, and so does the bot's in a sentence (it is what the question is about)."""
    for text, asked in [
        (f"@{tg.bot_username} hi there", "hi there"),
        (f"what does @alice mean, @{tg.bot_username}?", "what does @alice mean?"),
        (f"how do I add @{tg.bot_username} to a group?", None),
    ]:
        question = tg.send_user_message(USER, text)["message"]
        await final_answer(tg, USER, after=question["message_id"])
        assert llm.received[-1].messages[-1] == {"role": "user", "content": asked or text}


async def test_typing_shows_while_the_model_is_slow_to_start(
    tg: FakeTelegram, llm: FakeLLM, bot_app: object
) -> None:
    llm.script(Reply("Thought about it. Here it is.", first_delay=1.5))
    question = tg.send_user_message(USER, "Think first")["message"]

    [answer] = await final_answer(tg, USER, after=question["message_id"])

    assert answer.text == "Thought about it. Here it is."
    calls = [c for c in tg.calls if c.chat_id == USER]
    typing = [c for c in calls if c.method == "sendChatAction"]
    assert typing and typing[0].params["action"] == "typing"
    first_text = next(c for c in calls if c.method in ("sendMessage", "sendMessageDraft"))
    assert typing[-1].at <= first_text.at  # only before the first text, never after it


async def test_markdown_becomes_entities_in_every_state(
    tg: FakeTelegram, llm: FakeLLM, bot_app: object
) -> None:
    markdown = (
        "# Title\n\nSome **bold** and _italic_ and `code`, a [link](https://example.com).\n\n"
        "```python\ndef f(x):\n    return x * 2\n```\n\n> a quote\n\n- one\n- two\n"
    ) * 3
    llm.script(Reply(markdown, chunk_size=5, delay=0.01))
    question = tg.send_user_message(USER, "markdown please")["message"]

    [answer] = await final_answer(tg, USER, after=question["message_id"])

    kinds = {e["type"] for e in answer.entities}
    assert {"bold", "italic", "code", "pre", "text_link", "blockquote"} <= kinds
    assert "**" not in answer.text and "```" not in answer.text
    pre = next(e for e in answer.entities if e["type"] == "pre")
    assert pre.get("language") == "python"
    # Every intermediate state was accepted by the (strict) fake: no 400 along the way.
    assert refused_calls(tg) == []
    assert len(answer.history) >= 2
    # ...and none showed a marker still being written: an open `**` is already bold, a link
    # being written shows its text.
    for state in answer.history[:-1]:
        assert "**" not in state and "`" not in state and "](" not in state, state


async def test_long_answer_is_split_without_losing_anything(
    tg: FakeTelegram, llm: FakeLLM, bot_app: object
) -> None:
    paragraphs = [f"Paragraph {i}: " + " ".join(f"w{i}-{j}" for j in range(40)) for i in range(40)]
    text = "\n\n".join(paragraphs)
    assert len(text) > 10_000
    llm.script(Reply(text, chunk_size=200, delay=0.01))
    question = tg.send_user_message(USER, "a long one")["message"]

    messages = await final_answer(tg, USER, after=question["message_id"], timeout=40)

    assert len(messages) >= 3
    for m in messages:
        assert len(m.text.encode("utf-16-le")) // 2 <= 4096
        assert "▌" not in m.text
    assert messages[0].reply_to_message_id == question["message_id"]
    # Nothing lost, nothing duplicated, in order, split at paragraph boundaries.
    assert re.sub(r"\s+", " ", full_text(messages)) == re.sub(r"\s+", " ", text)
    for m in messages:
        assert m.text.startswith("Paragraph ")
    assert tg.count_429 == 0 and refused_calls(tg) == []


async def test_a_part_sent_after_someone_wrote_replies_to_its_question(
    tg: FakeTelegram, llm: FakeLLM, bot_app: object
) -> None:
    """The user writes while a long answer streams: the answer's next part would land under
    that message and read as the answer to it, so it replies to its own question."""
    paragraphs = [f"Paragraph {i}: " + " ".join(f"w{i}-{j}" for j in range(40)) for i in range(40)]
    llm.script(Reply("\n\n".join(paragraphs), chunk_size=100, delay=0.02))
    question = tg.send_user_message(USER, "a long one")["message"]
    await tg.wait_for(lambda: bool(answer_messages(tg, USER, question["message_id"])))
    meanwhile = tg.send_user_message(USER, sticker=True)["message"]

    messages = await final_answer(tg, USER, after=question["message_id"], timeout=40)
    parts = [m for m in messages if m.text.startswith("Paragraph")]
    before = [m for m in parts if m.message_id < meanwhile["message_id"]]
    after = [m for m in parts if m.message_id > meanwhile["message_id"]]
    assert before and len(after) >= 2
    assert before[0].reply_to_message_id == question["message_id"]
    assert all(m.reply_to_message_id is None for m in before[1:])
    # The first part after the sticker says which question it answers; the next ones follow it.
    assert after[0].reply_to_message_id == question["message_id"]
    assert all(m.reply_to_message_id is None for m in after[1:])


async def test_sticker_and_unknown_command_get_clear_answers(
    tg: FakeTelegram, llm: FakeLLM, bot_app: object
) -> None:
    sticker = tg.send_user_message(USER, sticker=True)["message"]
    await tg.wait_for(lambda: bool(answer_messages(tg, USER, sticker["message_id"])))
    [hint] = answer_messages(tg, USER, sticker["message_id"])
    assert "text" in hint.text

    # Events in the chat are not messages to the bot: no "I can only read text" for them.
    for event in (
        {"pinned_message": tg._message_json(tg.message(USER, hint.message_id))},
        {"message_auto_delete_timer_changed": {"message_auto_delete_time": 86400}},
        {"write_access_allowed": {"from_request": True}},
    ):
        tg.send_service_message(USER, event)
    await tg.wait_for(lambda: not tg.pending_updates)
    await tg.wait_idle(quiet=0.5)
    assert answer_messages(tg, USER, hint.message_id) == []

    command = tg.send_user_message(USER, "/frobnicate")["message"]
    await tg.wait_for(lambda: bool(answer_messages(tg, USER, command["message_id"])))
    reply = answer_messages(tg, USER, command["message_id"])[0].text
    assert "don't know that command" in reply and "/ask" in reply
    assert llm.received == []

    # A command of its own, addressed to another bot (pasted from a group): not "unknown".
    command = tg.send_user_message(USER, "/stop@other_bot")["message"]
    await tg.wait_for(lambda: bool(answer_messages(tg, USER, command["message_id"])))
    reply = answer_messages(tg, USER, command["message_id"])[0].text
    assert reply.startswith("That command is addressed to @other_bot") and "/ask" in reply

    # A slash that starts no command name is text: a question.
    for text in ("/usr/bin/python is missing, why?", "/ 2 = ?"):
        question = tg.send_user_message(USER, text)["message"]
        await final_answer(tg, USER, after=question["message_id"])
        assert llm.received[-1].messages[-1]["content"] == text


async def test_help_and_start(tg: FakeTelegram, llm: FakeLLM, bot_app: object) -> None:
    start = tg.send_user_message(USER, "/start", first_name="Ann")["message"]
    await tg.wait_for(lambda: bool(answer_messages(tg, USER, start["message_id"])))
    assert "Ann" in answer_messages(tg, USER, start["message_id"])[0].text
    help_ = tg.send_user_message(USER, "/help")["message"]
    await tg.wait_for(lambda: bool(answer_messages(tg, USER, help_["message_id"])))
    assert f"@{tg.bot_username}" in answer_messages(tg, USER, help_["message_id"])[0].text
    assert llm.received == []


async def test_a_part_the_user_deletes_stays_deleted(
    tg: FakeTelegram, llm: FakeLLM, bot_app: object
) -> None:
    """The user deletes the answer while it streams: no error loop, no resent copy, no crash."""
    llm.script(Reply("word " * 600, chunk_size=10, delay=0.01))
    question = tg.send_user_message(USER, "then delete it")["message"]
    await tg.wait_for(lambda: bool(answer_messages(tg, USER, question["message_id"])))
    first = answer_messages(tg, USER, question["message_id"])[0]
    tg.delete_by_user(USER, first.message_id)
    await tg.wait_for(lambda: not bot_app.answerer.active, timeout=20)  # type: ignore[attr-defined]
    await tg.wait_idle(quiet=0.5)
    assert answer_messages(tg, USER, question["message_id"]) == []
    refused = [c for c in tg.calls if c.status >= 400 and c.method != "getUpdates"]
    assert len(refused) <= 1  # at most the one edit that found the message gone


async def test_a_part_that_ends_up_showing_nothing_is_deleted(tg: FakeTelegram) -> None:
    """The text that opened the last part renders as nothing once complete (`&nbsp` is text,
    `&nbsp;` a space, which Telegram strips): its message is deleted, not left with a cursor
    and a Stop button."""
    from aiogram import Bot
    from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

    from bot.session import make_session
    from bot.streaming.pacer import Pacer
    from bot.streaming.reply import ReplyStream

    question = tg.send_user_message(USER, "with references")["message"]
    bot = Bot(tg.token, session=make_session(tg.base_url))
    stop = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Stop", callback_data="s")]]
    )
    reply = ReplyStream(
        bot, Pacer(), chat_id=USER, reply_to=question["message_id"], stop_markup=stop
    )
    body = "word " * 817 + "end."  # a whole message's worth
    text = body + "\n\n&nbsp;"
    reply.start()
    reply.update(body)
    await tg.wait_for(lambda: len(tg.bot_messages(USER)) == 1)
    reply.update(text[:-1])  # `&nbsp`: text, in a part of its own
    await tg.wait_for(lambda: len(tg.bot_messages(USER)) == 2)
    reply.update(text)
    await reply.close()
    await bot.session.close()

    [message] = tg.bot_messages(USER)
    assert message.text == body
    assert message.reply_markup is None
    assert refused_calls(tg) == []
    assert [c.method for c in tg.calls if c.method == "deleteMessage"] == ["deleteMessage"]
