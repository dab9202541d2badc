"""Small helpers for end-to-end tests: wait for answers, read what a user would see."""

from __future__ import annotations

from pathlib import Path

from bot.llm import LLMClient
from tests.fakes.telegram import FakeTelegram, StoredMessage

CURSOR = "▌"


def started_client(
    data_dir: Path,
    *,
    api_base: str,
    api_key: str = "",
    idle: float = 5,
    total: float = 30,
    read_interval: float = 0.0,
) -> LLMClient:
    """An `LLMClient` for model "gpt-4", started (`api_base` "": g4f's automatic provider)."""
    client = LLMClient(
        model="gpt-4",
        providers=[],
        api_base=api_base,
        api_key=api_key,
        data_dir=data_dir,
        idle_timeout=idle,
        total_timeout=total,
        read_interval=read_interval,
    )
    client.start()
    return client


def answer_messages(
    tg: FakeTelegram, chat_id: int, after: int = 0, thread_id: int | None = None
) -> list[StoredMessage]:
    """The bot's messages in a chat sent after message id `after`."""
    return [m for m in tg.bot_messages(chat_id, thread_id) if m.message_id > after]


def is_final(messages: list[StoredMessage]) -> bool:
    return bool(messages) and all(CURSOR not in m.text and not m.reply_markup for m in messages)


async def final_answer(
    tg: FakeTelegram,
    chat_id: int,
    after: int = 0,
    thread_id: int | None = None,
    timeout: float = 20.0,  # noqa: ASYNC109
) -> list[StoredMessage]:
    """Wait until the answer after message `after` is complete (no cursor, no Stop button)."""
    await tg.wait_for(
        lambda: is_final(answer_messages(tg, chat_id, after, thread_id)), timeout=timeout
    )
    await tg.wait_idle(quiet=0.3, timeout=timeout)
    return answer_messages(tg, chat_id, after, thread_id)


def full_text(messages: list[StoredMessage]) -> str:
    return "\n".join(m.text for m in messages)


def refused_calls(tg: FakeTelegram) -> list[str]:
    """Every call Telegram refused (except the long poll's own statuses)."""
    return [
        f"{c.method} {c.status} {c.params.get('text', '')!r:.80}"
        for c in tg.calls
        if c.status >= 400 and c.method != "getUpdates"
    ]
