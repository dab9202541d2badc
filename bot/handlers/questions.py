"""Questions: any text in a private chat; in groups, only messages addressed to the bot."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.types import Message

from bot.conversations import Conversations
from bot.filters import AddressedInGroup, is_group, is_plain_text, is_private
from bot.handlers.common import lang_of, question_from, replied_id, with_quote
from bot.notify import Notifier
from bot.texts import t


async def private_question(message: Message, bot: Bot, conversations: Conversations) -> None:
    text = with_quote(message, (message.text or "").strip(), bot.id)
    await conversations.ask(question_from(message, text), reply_to=replied_id(message))


async def group_question(
    message: Message, prompt: str, bot: Bot, conversations: Conversations, notifier: Notifier
) -> None:
    if message.text is None:  # a caption: the model would not see the photo or file under it
        await notifier.to(message, t(lang_of(message), "not_text"))
        return
    text = with_quote(message, prompt, bot.id)  # a bare mention under a message: about it
    if not text:
        await notifier.to(message, t(lang_of(message), "empty_question"))
        return
    await conversations.ask(question_from(message, text), reply_to=replied_id(message))


def create_router() -> Router:
    """A fresh router (a router can belong to one Dispatcher only)."""
    router = Router(name="questions")
    router.message.register(private_question, is_private, is_plain_text)
    router.message.register(group_question, is_group, AddressedInGroup())
    return router
