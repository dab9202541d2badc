"""Questions: any text in a private chat; in groups, only messages addressed to the bot."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.types import Message

from bot.conversations import Conversations
from bot.filters import AddressedInGroup, is_group, is_plain_text, is_private
from bot.handlers.common import lang_of, question_from, quote_of, replied_id
from bot.markup import message_markdown
from bot.notify import Notifier
from bot.texts import t


async def private_question(message: Message, bot: Bot, conversations: Conversations) -> None:
    question = question_from(message, message_markdown(message))
    await conversations.ask(question, reply_to=replied_id(message), quote=quote_of(message, bot.id))


async def group_question(
    message: Message, prompt: str, bot: Bot, conversations: Conversations, notifier: Notifier
) -> None:
    if message.text is None:  # a caption: the model would not see the photo or file under it
        await notifier.to(message, t(lang_of(message), "not_text"))
        return
    quote = quote_of(message, bot.id)  # a bare mention under a message: about that message
    if not prompt and not quote:
        await notifier.to(message, t(lang_of(message), "empty_question"))
        return
    question = question_from(message, prompt)
    await conversations.ask(question, reply_to=replied_id(message), quote=quote)


def create_router() -> Router:
    """A fresh router (a router can belong to one Dispatcher only)."""
    router = Router(name="questions")
    router.message.register(private_question, is_private, is_plain_text)
    router.message.register(group_question, is_group, AddressedInGroup())
    return router
