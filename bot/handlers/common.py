"""Helpers the routers share."""

from __future__ import annotations

from aiogram.types import Message

from bot.answering import Question


def question_from(message: Message, text: str) -> Question:
    """The `Question` a message asks, keeping its forum topic."""
    user = message.from_user
    return Question(
        chat_id=message.chat.id,
        message_id=message.message_id,
        user_id=user.id if user else message.chat.id,
        text=text,
        lang=user.language_code if user else None,
        thread_id=message.message_thread_id if message.is_topic_message else None,
        is_private=message.chat.type == "private",
    )


def lang_of(message: Message) -> str | None:
    return message.from_user.language_code if message.from_user else None
