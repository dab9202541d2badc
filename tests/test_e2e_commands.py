"""End-to-end: commands, menus, access control, the rate limit, the Russian UI."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.conftest import BotRunner
from tests.fakes.llm import FakeLLM, Reply
from tests.fakes.telegram import FakeTelegram, StoredMessage
from tests.helpers import answer_messages, final_answer, refused_calls

USER = 4004
GROUP = -100888
ALICE, BOB, ADMIN = 41, 42, 43


async def reply_to(tg: FakeTelegram, chat_id: int, text: str, **kw: Any) -> StoredMessage:
    """Send a message and return the bot's first message after it."""
    sent = tg.send_user_message(chat_id, text, **kw)["message"]
    await tg.wait_for(lambda: bool(answer_messages(tg, chat_id, sent["message_id"])))
    return answer_messages(tg, chat_id, sent["message_id"])[0]


async def test_menus_are_set_for_private_and_groups_in_two_languages(
    tg: FakeTelegram, bot_app: object
) -> None:
    await tg.wait_for(lambda: len(tg.commands) >= 4)
    scopes = {key for key in tg.commands}
    assert {
        ("all_private_chats", ""),
        ("all_private_chats", "ru"),
        ("all_group_chats", ""),
        ("all_group_chats", "ru"),
    } <= scopes
    group_en = [c["command"] for c in tg.commands[("all_group_chats", "")]]
    assert "ask" in group_en and "new" in group_en
    ru = tg.commands[("all_private_chats", "ru")]
    assert any("разговор" in c["description"] for c in ru)


async def test_retry_answers_the_last_question_again(
    tg: FakeTelegram, llm: FakeLLM, bot_app: object
) -> None:
    first = tg.send_user_message(USER, "earlier")["message"]
    await final_answer(tg, USER, after=first["message_id"])
    question = tg.send_user_message(USER, "the question")["message"]
    await final_answer(tg, USER, after=question["message_id"])
    retry = tg.send_user_message(USER, "/retry")["message"]
    await tg.wait_for(lambda: len(llm.received) == 3)
    [again] = await final_answer(tg, USER, after=retry["message_id"])
    assert again.reply_to_message_id == question["message_id"]
    # Same question, same context as the original (a sibling branch).
    assert llm.received[2].messages == llm.received[1].messages


async def test_commands_are_the_same_in_capitals(
    tg: FakeTelegram, llm: FakeLLM, bot_app: object
) -> None:
    """A phone's keyboard writes `/Help`; `/ASK` is still the command, not a question."""
    assert "/new" in (await reply_to(tg, USER, "/Help")).text
    question = tg.send_user_message(
        GROUP, "/ASK what time is it?", user_id=ALICE, chat_type="supergroup"
    )["message"]
    await final_answer(tg, GROUP, after=question["message_id"])
    assert llm.received[-1].messages[-1]["content"] == "what time is it?"
    named = tg.send_user_message(
        GROUP, f"/Ask@{tg.bot_username} and now?", user_id=ALICE, chat_type="supergroup"
    )
    await final_answer(tg, GROUP, after=named["message"]["message_id"])
    assert llm.received[-1].messages[-1]["content"] == "and now?"


async def test_stop_command_stops_the_streaming_answer(
    tg: FakeTelegram, llm: FakeLLM, bot_app: object, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot")
    nothing = await reply_to(tg, USER, "/stop")
    assert "Nothing is being answered" in nothing.text
    llm.script(Reply("word " * 3000, chunk_size=5, delay=0.01))
    question = tg.send_user_message(USER, "long")["message"]
    await tg.wait_for(lambda: bool(answer_messages(tg, USER, question["message_id"])))
    command = tg.send_user_message(USER, "/stop")["message"]
    messages = await final_answer(tg, USER, after=question["message_id"])
    assert messages[-1].text.endswith("⏹ Stopped.")
    # The answer says it was stopped; no reply to /stop says it again.
    assert [m.message_id for m in messages if m.reply_to_message_id == command["message_id"]] == []
    await tg.wait_for(lambda: llm.received[-1].client_closed, timeout=5)
    assert any("answer stopped, " in r.getMessage() for r in caplog.records)  # not "answered"


async def test_model_choice_is_stored_per_chat(
    tg: FakeTelegram, llm: FakeLLM, start_bot: BotRunner
) -> None:
    await start_bot(g4f_models="gpt-4,claude-x,llama-y")
    menu = await reply_to(tg, USER, "/model")
    assert "gpt-4" in menu.text
    buttons = [row[0] for row in menu.reply_markup["inline_keyboard"]]  # type: ignore[index]
    assert [b["text"] for b in buttons] == ["✅ gpt-4", "claude-x", "llama-y"]
    tg.press_button(USER, menu.message_id, buttons[1]["callback_data"], user_id=USER)
    await tg.wait_for(lambda: "claude-x" in tg.message(USER, menu.message_id).text)
    # The same choice again: answered, and no edit to the same text that Telegram would refuse.
    tg.press_button(USER, menu.message_id, buttons[1]["callback_data"], user_id=USER)
    await tg.wait_for(lambda: sum(c.method == "answerCallbackQuery" for c in tg.calls) == 2)
    await tg.wait_idle(quiet=1.5)  # past the chat's pace: an edit would have gone by then
    assert refused_calls(tg) == []
    question = tg.send_user_message(USER, "which model?")["message"]
    await final_answer(tg, USER, after=question["message_id"])
    assert llm.received[-1].body["model"] == "claude-x"
    # Another chat still uses the default.
    other = tg.send_user_message(USER + 1, "and here?")["message"]
    await final_answer(tg, USER + 1, after=other["message_id"])
    assert llm.received[-1].body["model"] == "gpt-4"
    # A button of a menu from before G4F_MODELS was shortened: said so, and the menu (up to
    # date already here) is left as it is.
    tg.press_button(USER, menu.message_id, "model:7", user_id=USER, check_keyboard=False)
    await tg.wait_for(lambda: sum(c.method == "answerCallbackQuery" for c in tg.calls) == 3)
    told = [c for c in tg.calls if c.method == "answerCallbackQuery"][-1]
    assert told.params["text"].startswith("That model is no longer available")
    await tg.wait_idle(quiet=1.5)
    assert refused_calls(tg) == []


async def test_a_menu_from_before_the_models_were_reordered_picks_what_it_shows(
    tg: FakeTelegram, llm: FakeLLM, start_bot: BotRunner
) -> None:
    app = await start_bot(g4f_models="gpt-4,claude-x,llama-y")
    menus = [await reply_to(tg, USER, "/model") for _ in range(2)]
    buttons = [row[0] for row in menus[0].reply_markup["inline_keyboard"]]  # type: ignore[index]
    await start_bot.stop(app)
    await start_bot(g4f_models="llama-y,gpt-4")  # claude-x gone, the rest reordered
    tg.press_button(USER, menus[0].message_id, buttons[0]["callback_data"], user_id=USER)
    await tg.wait_for(lambda: sum(c.method == "answerCallbackQuery" for c in tg.calls) == 1)
    told = [c for c in tg.calls if c.method == "answerCallbackQuery"][-1]
    assert told.params["text"] == "Model set to gpt-4."
    tg.press_button(USER, menus[1].message_id, buttons[1]["callback_data"], user_id=USER)
    await tg.wait_for(lambda: sum(c.method == "answerCallbackQuery" for c in tg.calls) == 2)
    told = [c for c in tg.calls if c.method == "answerCallbackQuery"][-1]
    assert told.params["text"].startswith("That model is no longer available")
    question = tg.send_user_message(USER, "which model?")["message"]
    await final_answer(tg, USER, after=question["message_id"])
    assert llm.received[-1].body["model"] == "gpt-4"


async def test_model_with_nothing_to_choose_from(
    tg: FakeTelegram, llm: FakeLLM, bot_app: object
) -> None:
    shown = await reply_to(tg, USER, "/model")
    assert shown.text == "Model: gpt-4. It is the only one available here."
    assert shown.reply_markup is None


async def test_group_commands_say_how_groups_work(
    tg: FakeTelegram, llm: FakeLLM, bot_app: object
) -> None:
    """In a group a plain message is not a question, and a command naming the bot is for it."""
    start = await reply_to(tg, GROUP, "/start", user_id=ALICE, chat_type="supergroup")
    assert f"mention me (@{tg.bot_username})" in start.text
    assert "Just send me a question" not in start.text
    unknown = await reply_to(
        tg, GROUP, f"/frobnicate@{tg.bot_username}", user_id=ALICE, chat_type="supergroup"
    )
    assert unknown.text.startswith("I don't know that command.") and "/ask" in unknown.text
    # Not named: it may be another bot's; named for another bot: not ours.
    for text in ("/frobnicate", "/frobnicate@other_bot"):
        tg.send_user_message(GROUP, text, user_id=ALICE, chat_type="supergroup")
    await tg.wait_for(lambda: not tg.pending_updates)
    await tg.wait_idle(quiet=0.5)
    assert answer_messages(tg, GROUP, unknown.message_id) == []
    assert llm.received == []


async def test_model_change_in_a_group_needs_an_admin(
    tg: FakeTelegram, llm: FakeLLM, start_bot: BotRunner
) -> None:
    await start_bot(g4f_models="gpt-4,claude-x")
    tg.set_admin(GROUP, ADMIN)
    # A member is told which model, and who may change it: no buttons that only refuse.
    shown = await reply_to(tg, GROUP, "/model", user_id=ALICE, chat_type="supergroup")
    assert shown.text == "Model: gpt-4. Only a chat admin can change it here."
    assert shown.reply_markup is None
    # The menu an admin brings up is there for everyone to see: a member's press is refused.
    menu = await reply_to(tg, GROUP, "/model", user_id=ADMIN, chat_type="supergroup")
    data = menu.reply_markup["inline_keyboard"][1][0]["callback_data"]  # type: ignore[index]
    tg.press_button(GROUP, menu.message_id, data, user_id=ALICE)
    await tg.wait_for(lambda: any(c.method == "answerCallbackQuery" for c in tg.calls))
    refusal = [c for c in tg.calls if c.method == "answerCallbackQuery"][-1]
    assert "Only a chat admin" in str(refusal.params.get("text"))
    tg.press_button(GROUP, menu.message_id, data, user_id=ADMIN)
    await tg.wait_for(lambda: "claude-x" in tg.message(GROUP, menu.message_id).text)


async def test_system_prompt_show_and_set(
    tg: FakeTelegram, llm: FakeLLM, start_bot: BotRunner
) -> None:
    await start_bot(system_prompt="Default prompt.")
    shown = await reply_to(tg, USER, "/system")
    assert "Default prompt." in shown.text
    saved = await reply_to(tg, USER, "/system Answer like a pirate.")
    assert "saved" in saved.text
    question = tg.send_user_message(USER, "hello")["message"]
    await final_answer(tg, USER, after=question["message_id"])
    assert llm.received[-1].messages[0] == {"role": "system", "content": "Answer like a pirate."}
    # In a group only admins may set it.
    tg.set_admin(GROUP, ADMIN)
    refused = await reply_to(tg, GROUP, "/system Be rude.", user_id=ALICE, chat_type="supergroup")
    assert "Only a chat admin" in refused.text
    ok = await reply_to(tg, GROUP, "/system Be kind.", user_id=ADMIN, chat_type="supergroup")
    assert "saved" in ok.text
    reset = await reply_to(tg, USER, "/system reset")
    assert "reset" in reset.text
    assert "Default prompt." in (await reply_to(tg, USER, "/system")).text
    # The Russian word resets too, rather than becoming the prompt.
    await reply_to(tg, USER, "/system Be brief.")
    assert "reset" in (await reply_to(tg, USER, "/system сброс")).text
    assert "Default prompt." in (await reply_to(tg, USER, "/system")).text


async def test_a_group_upgraded_to_a_supergroup_keeps_its_settings(
    tg: FakeTelegram, llm: FakeLLM, bot_app: Any
) -> None:
    """The supergroup gets a new chat id; the prompt an admin set must not silently vanish."""
    old, new = -4321, -1004321
    tg.set_admin(old, ADMIN)
    saved = await reply_to(tg, old, "/system Answer in French.", user_id=ADMIN, chat_type="group")
    assert "saved" in saved.text
    tg.upgrade_group(old, new)
    await tg.wait_for(lambda: not tg.pending_updates)
    await tg.wait_idle(quiet=0.3)
    question = tg.send_user_message(
        new, f"@{tg.bot_username} hello", user_id=ALICE, chat_type="supergroup"
    )["message"]
    await final_answer(tg, new, after=question["message_id"])
    assert llm.received[-1].messages[0] == {"role": "system", "content": "Answer in French."}


async def test_stranger_in_private_is_refused_with_their_id(
    tg: FakeTelegram, llm: FakeLLM, start_bot: BotRunner
) -> None:
    await start_bot(allowed_user_ids="1,2", admin_user_ids="99")
    refusal = await reply_to(tg, USER, "let me in")
    assert str(USER) in refusal.text and "private" in refusal.text
    # Admins and listed users are let in.
    question = tg.send_user_message(99, "admin here")["message"]
    await final_answer(tg, 99, after=question["message_id"])
    question = tg.send_user_message(2, "listed")["message"]
    await final_answer(tg, 2, after=question["message_id"])
    assert [r.messages[-1]["content"] for r in llm.received] == ["admin here", "listed"]


async def test_unlisted_group_gets_one_notice(
    tg: FakeTelegram, llm: FakeLLM, start_bot: BotRunner
) -> None:
    await start_bot(allowed_chat_ids=str(GROUP))
    llm.script(Reply("word " * 2000, chunk_size=5, delay=0.02))
    question = tg.send_user_message(
        GROUP, f"@{tg.bot_username} go", user_id=ALICE, chat_type="supergroup"
    )["message"]
    await tg.wait_for(
        lambda: any(m.reply_markup for m in answer_messages(tg, GROUP, question["message_id"]))
    )
    shown = answer_messages(tg, GROUP, question["message_id"])[-1]
    data = shown.reply_markup["inline_keyboard"][0][0]["callback_data"]  # type: ignore[index]
    # The same button pressed in a chat that is not allowed (a forwarded keyboard, say).
    tg.send_user_message(-100999, "hi", user_id=BOB, chat_type="supergroup")
    stray = tg.send_user_message(
        -100999, f"@{tg.bot_username} hi", user_id=BOB, chat_type="supergroup"
    )
    await tg.wait_for(lambda: bool(tg.bot_messages(-100999)))
    notice = tg.bot_messages(-100999)[0]
    assert "not enabled for this chat" in notice.text
    assert stray["message"]["message_id"] == notice.reply_to_message_id
    tg.send_user_message(-100999, f"@{tg.bot_username} again", user_id=BOB, chat_type="supergroup")
    await tg.wait_for(lambda: not tg.pending_updates)
    await tg.wait_idle(quiet=0.3)
    assert len(tg.bot_messages(-100999)) == 1  # one notice per chat, then silence
    assert len(llm.received) == 1
    # Stop for good: the allowed asker presses it.
    tg.press_button(GROUP, shown.message_id, data, user_id=ALICE)
    messages = await final_answer(tg, GROUP, after=question["message_id"], timeout=30)
    assert messages[-1].text.endswith("Stopped.")


async def test_button_from_a_stranger_is_refused(
    tg: FakeTelegram, llm: FakeLLM, start_bot: BotRunner
) -> None:
    await start_bot(allowed_user_ids=str(ALICE), g4f_models="gpt-4,other")
    menu = await reply_to(tg, ALICE, "/model")
    data = menu.reply_markup["inline_keyboard"][1][0]["callback_data"]  # type: ignore[index]
    tg.press_button(ALICE, menu.message_id, data, user_id=BOB)
    await tg.wait_for(lambda: any(c.method == "answerCallbackQuery" for c in tg.calls))
    answer = [c for c in tg.calls if c.method == "answerCallbackQuery"][-1]
    assert "not allowed" in str(answer.params.get("text"))
    assert "✅ gpt-4" in str(tg.message(ALICE, menu.message_id).reply_markup)


async def test_rate_limit_says_when_to_come_back(
    tg: FakeTelegram, llm: FakeLLM, start_bot: BotRunner
) -> None:
    await start_bot(user_rate_limit="2/600")
    for text in ("one", "two"):
        question = tg.send_user_message(USER, text)["message"]
        await final_answer(tg, USER, after=question["message_id"])
    limited = await reply_to(tg, USER, "three")
    assert "limit" in limited.text and "10 min" in limited.text
    assert len(llm.received) == 2


async def test_russian_ui(tg: FakeTelegram, llm: FakeLLM, bot_app: object) -> None:
    help_ = await reply_to(tg, USER, "/help", language_code="ru")
    assert "Команды" in help_.text
    llm.script(Reply(fault="http500"))
    question = tg.send_user_message(USER, "вопрос", language_code="ru")["message"]
    [failed] = await final_answer(tg, USER, after=question["message_id"])
    assert "Сервис модели вернул ошибку" in failed.text
    sticker = await reply_to(tg, USER, None, sticker=True, language_code="ru")
    assert "текстовые" in sticker.text
    english = await reply_to(tg, USER, "/help", language_code="pt-br")
    assert "Commands" in english.text
