"""End-to-end: native draft streaming in private chats (STREAM_MODE=auto, the default)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from tests.conftest import BotRunner
from tests.fakes.llm import FakeLLM, Reply
from tests.fakes.telegram import FakeTelegram
from tests.helpers import answer_messages, full_text, refused_calls

USER = 5005
GROUP = -100555


async def finished(tg: FakeTelegram, app: Any, count: int = 1, timeout: float = 30) -> None:  # noqa: ASYNC109
    await tg.wait_for(lambda: app.answerer.finished >= count, timeout=timeout)


async def test_private_answer_streams_into_a_draft_then_one_message(
    tg: FakeTelegram, llm: FakeLLM, start_bot: BotRunner
) -> None:
    app = await start_bot(stream_mode="auto")
    text = "Some **bold** words " * 40
    llm.script(Reply(text, chunk_size=10, delay=0.03))
    question = tg.send_user_message(USER, "draft please")["message"]
    await finished(tg, app)

    drafts = [c for c in tg.drafts if c.status == 200]
    assert len(drafts) >= 2
    ids = {str(c.params["draft_id"]) for c in drafts}
    assert len(ids) == 1 and ids != {"0"}
    assert all(str(c.params.get("can_stop")).lower() == "true" for c in drafts)
    # Drafts grow; the final message is sent once, formatted, as a reply; no edits at all.
    [answer] = answer_messages(tg, USER, question["message_id"])
    assert answer.reply_to_message_id == question["message_id"]
    assert answer.text == re.sub(r"\*\*", "", text).strip()
    assert any(e["type"] == "bold" for e in answer.entities)
    assert answer.edits == 0 and answer.reply_markup is None
    assert not any(c.method == "editMessageText" for c in tg.calls)
    assert tg.count_429 == 0 and refused_calls(tg) == []


async def test_long_answer_with_drafts_sends_finished_parts_as_messages(
    tg: FakeTelegram, llm: FakeLLM, start_bot: BotRunner
) -> None:
    app = await start_bot(stream_mode="auto")
    text = "\n\n".join(f"Paragraph {i}: " + "word " * 60 for i in range(40))
    llm.script(Reply(text, chunk_size=300, delay=0.01))
    question = tg.send_user_message(USER, "long")["message"]
    await finished(tg, app)
    messages = answer_messages(tg, USER, question["message_id"])
    assert len(messages) >= 3
    assert re.sub(r"\s+", " ", full_text(messages)) == re.sub(r"\s+", " ", text).strip()
    assert all(m.edits == 0 for m in messages)
    assert tg.count_429 == 0 and refused_calls(tg) == []


async def test_failure_in_draft_mode_keeps_the_partial_text(
    tg: FakeTelegram, llm: FakeLLM, start_bot: BotRunner
) -> None:
    app = await start_bot(stream_mode="auto")
    llm.script(Reply("Partial text before it breaks", fault="drop", fault_after=20))
    question = tg.send_user_message(USER, "q")["message"]
    await finished(tg, app)
    [answer] = answer_messages(tg, USER, question["message_id"])
    assert answer.text.startswith("Partial text before")
    assert "connection to the model was lost" in answer.text


async def test_client_stop_control_stops_the_answer(
    tg: FakeTelegram, llm: FakeLLM, start_bot: BotRunner
) -> None:
    app = await start_bot(stream_mode="auto")
    llm.script(Reply("word " * 3000, chunk_size=5, delay=0.01))
    question = tg.send_user_message(USER, "go on")["message"]
    await tg.wait_for(lambda: any(c.status == 200 for c in tg.drafts))
    tg.stop_generation(USER, int(tg.drafts[0].params["draft_id"]))
    await finished(tg, app)
    await tg.wait_for(lambda: llm.received[-1].client_closed, timeout=5)
    [answer] = answer_messages(tg, USER, question["message_id"])
    assert answer.text.startswith("word") and answer.text.endswith("Stopped.")


async def test_server_without_drafts_falls_back_to_edits(
    tg: FakeTelegram, llm: FakeLLM, start_bot: BotRunner
) -> None:
    app = await start_bot(stream_mode="auto")
    tg.drafts_enabled = False
    llm.script(Reply("word " * 200, chunk_size=10, delay=0.01), Reply("second answer"))
    question = tg.send_user_message(USER, "q")["message"]
    await finished(tg, app)
    [answer] = answer_messages(tg, USER, question["message_id"])
    assert answer.text == ("word " * 200).strip()
    assert answer.edits >= 1  # streamed by editing after the draft was refused
    assert len(tg.drafts) == 1
    # The refusal is remembered: the next answer does not try drafts again.
    second = tg.send_user_message(USER + 1, "another chat")["message"]
    await finished(tg, app, 2)
    assert answer_messages(tg, USER + 1, second["message_id"])[0].text == "second answer"
    assert len(tg.drafts) == 1


async def test_groups_always_edit(tg: FakeTelegram, llm: FakeLLM, start_bot: BotRunner) -> None:
    app = await start_bot(stream_mode="draft")
    question = tg.send_user_message(
        GROUP, f"@{tg.bot_username} hi", user_id=7, chat_type="supergroup"
    )["message"]
    await finished(tg, app)
    assert answer_messages(tg, GROUP, question["message_id"])[0].text == "You said: hi"
    assert tg.drafts == []


async def test_a_draft_is_shown_again_before_it_expires(
    tg: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Telegram drops a draft left unchanged for about 30 s: while the model pauses, the same
    draft is sent again, so the user keeps seeing the answer so far."""
    from aiogram import Bot

    from bot.session import make_session
    from bot.streaming import reply as reply_module
    from bot.streaming.pacer import Pacer

    monkeypatch.setattr(reply_module, "DRAFT_REFRESH", 1.2)
    tg.send_user_message(USER, "think hard")
    bot = Bot(tg.token, session=make_session(tg.base_url))
    reply = reply_module.ReplyStream(bot, Pacer(), chat_id=USER, draft_id=7)
    reply.start()
    reply.update("Thinking about **it**")
    await asyncio.sleep(3.0)  # the model pauses
    reply.update("Thinking about **it**, and done.")
    await reply.close()
    await bot.session.close()

    drafts = [c.params["text"] for c in tg.drafts if c.status == 200]
    assert drafts == ["Thinking about it"] * 3  # at once, then after 1.2 and 2.4 s
    [message] = tg.bot_messages(USER)
    assert message.text == "Thinking about it, and done."
    assert tg.count_429 == 0 and refused_calls(tg) == []


async def test_a_draft_chat_that_refuses_a_send_waits_quietly_for_the_close(
    tg: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a send is refused for lack of rights, no draft is shown again either: the engine
    must not wake up again and again to refresh the draft it may no longer send while the
    model is silent."""
    from aiogram import Bot

    from bot.session import make_session
    from bot.streaming import reply as reply_module
    from bot.streaming.pacer import Pacer

    monkeypatch.setattr(reply_module, "DRAFT_REFRESH", 0.3)
    tg.send_user_message(USER, "hi")
    bot = Bot(tg.token, session=make_session(tg.base_url))
    reply = reply_module.ReplyStream(bot, Pacer(), chat_id=USER, draft_id=7)
    reply.start()
    reply.update("word " * 100)
    await tg.wait_for(lambda: bool(tg.drafts))
    tg.mute(USER, tell=False)
    reply.update("word " * 1000 + "\n\n" + "more " * 200)  # a part done: its send is refused
    await tg.wait_for(lambda: reply.gone)
    looked = 0
    target = reply._target

    def counted() -> Any:
        nonlocal looked
        looked += 1
        return target()

    monkeypatch.setattr(reply, "_target", counted)
    await asyncio.sleep(1.0)  # the model is silent
    await reply.close()
    await bot.session.close()
    assert looked < 10, f"the engine looked at its target {looked} times in a quiet second"


async def test_a_reasoning_models_thinking_is_not_shown_or_remembered(
    tg: FakeTelegram, llm: FakeLLM, start_bot: BotRunner
) -> None:
    """DeepSeek-R1 and the like write `<think>…</think>` before the answer, as text."""
    app = await start_bot(stream_mode="auto")
    thinking = (
        "<think>\nThe user asks about 6*7. " + "Let me check it twice. " * 20 + "\n</think>\n\n"
    )
    llm.script(Reply(thinking + "It is **42**.", chunk_size=7, delay=0.01))
    question = tg.send_user_message(USER, "6 times 7?")["message"]
    await finished(tg, app)
    [answer] = answer_messages(tg, USER, question["message_id"])
    assert answer.text == "It is 42."
    assert answer.entities == [{"type": "bold", "offset": 6, "length": 2}]
    shown = [str(c.params.get("text", "")) for c in tg.drafts]
    assert not any("think" in text or "Let me" in text for text in shown)

    llm.script(Reply("And 6*8 is 48."))
    tg.send_user_message(USER, "and 6*8?")
    await finished(tg, app, count=2)
    assert llm.received[-1].messages[-2] == {"role": "assistant", "content": "It is **42**."}
