"""Questions: any text in a private chat; in groups, only messages addressed to the bot."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import Message

from bot.conversations import Conversations
from bot.filters import AddressedInGroup, is_group, is_plain_text, is_private
from bot.handlers.common import lang_of, question_from, replied_id
from bot.notify import Notifier
from bot.texts import t


async def private_question(message: Message, conversations: Conversations) -> None:
    question = question_from(message, (message.text or "").strip())
    await conversations.ask(question, reply_to=replied_id(message))


async def group_question(
    message: Message, prompt: str, conversations: Conversations, notifier: Notifier
) -> None:
    if not prompt:
        await notifier.to(message, t(lang_of(message), "empty_question"))
        return
    await conversations.ask(question_from(message, prompt), reply_to=replied_id(message))


def create_router() -> Router:
    """A fresh router (a router can belong to one Dispatcher only)."""
    router = Router(name="questions")
    router.message.register(private_question, is_private, is_plain_text)
    router.message.register(group_question, is_group, AddressedInGroup())
    return router
