"""End-to-end under load: many chats at once stay within every flood limit and end complete."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from tests.conftest import BotRunner
from tests.fakes.llm import FakeLLM, Reply
from tests.fakes.telegram import FakeTelegram
from tests.helpers import answer_messages, full_text, refused_calls

GROUP = -100321


def squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


async def test_thirty_chats_and_a_long_group_answer(
    tg: FakeTelegram, llm: FakeLLM, start_bot: BotRunner
) -> None:
    app: Any = await start_bot(stream_mode="edit")
    private_text = {
        chat: f"Answer for chat {chat}: " + "lorem ipsum " * 60 for chat in range(1, 31)
    }
    group_text = "\n\n".join(f"Group paragraph {i}. " + "dolor sit amet " * 30 for i in range(14))

    def responder(body: dict[str, Any]) -> Reply:
        question = body["messages"][-1]["content"]
        if question.startswith("group"):
            return Reply(group_text, chunk_size=40, delay=0.02)
        chat = int(question.split()[-1])
        return Reply(private_text[chat], chunk_size=12, delay=0.02)

    llm.responder = responder
    questions = {
        chat: tg.send_user_message(chat, f"question {chat}")["message"] for chat in private_text
    }
    group_q = tg.send_user_message(
        GROUP, f"@{tg.bot_username} group long", user_id=99, chat_type="supergroup"
    )["message"]

    await tg.wait_for(lambda: app.answerer.finished >= 31, timeout=120)
    await asyncio.sleep(0.2)

    for chat, text in private_text.items():
        messages = answer_messages(tg, chat, questions[chat]["message_id"])
        assert squash(full_text(messages)) == squash(text), chat
        assert all("▌" not in m.text and m.reply_markup is None for m in messages)
    group_messages = answer_messages(tg, GROUP, group_q["message_id"])
    assert len(group_messages) >= 2
    assert squash(full_text(group_messages)) == squash(group_text)
    # Within every limit, nothing refused, and every stream ran at the same time.
    assert tg.count_429 == 0 and tg.violations == 0
    assert refused_calls(tg) == []
    assert llm.max_open_streams == 31
    group_calls = [c.at for c in tg.calls if c.chat_id == GROUP and c.method != "sendChatAction"]
    assert all(sum(1 for u in group_calls if t <= u < t + 60) <= 20 for t in group_calls)
