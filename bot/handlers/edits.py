"""Edited questions: memory keeps what the message now says (`Conversations.edit`).

Edits of commands and captions are left alone: a command has done its work, and the model would
not see the photo or file under a caption.
"""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.types import Message

from bot.conversations import Conversations
from bot.filters import AddressedInGroup, is_group, is_plain_text, is_private
from bot.handlers.common import asked, private_text
from bot.rejoin import HELD, Rejoiner


async def private_edit(
    message: Message, bot: Bot, conversations: Conversations, rejoiner: Rejoiner
) -> None:
    text = await private_text(message, bot)
    joined = rejoiner.edited(message, text)
    if joined is None:
        await conversations.edit(*asked(message, bot.id, text))
    elif joined != HELD:  # a piece of a long text asked as one question: that question is edited
        await conversations.edit(*asked(joined.first, bot.id, joined.text))


async def group_edit(message: Message, prompt: str, bot: Bot, conversations: Conversations) -> None:
    question, reply_to, quote = asked(message, bot.id, prompt)
    if message.text is not None and (prompt or quote):
        await conversations.edit(question, reply_to, quote)


def create_router() -> Router:
    """A fresh router (a router can belong to one Dispatcher only)."""
    router = Router(name="edits")
    router.edited_message.register(private_edit, is_private, is_plain_text)
    router.edited_message.register(group_edit, is_group, AddressedInGroup())
    return router
