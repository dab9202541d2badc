"""Questions: any text in a private chat; in groups, only messages addressed to the bot."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.types import Message

from bot.conversations import Conversations
from bot.filters import AddressedInGroup, is_group, is_plain_text, is_private
from bot.handlers.common import asked, lang_of, private_text
from bot.notify import Notifier
from bot.rejoin import Rejoiner
from bot.texts import t


async def private_question(
    message: Message, bot: Bot, conversations: Conversations, rejoiner: Rejoiner
) -> None:
    joined = await rejoiner.join(message, await private_text(message, bot))
    if joined is None:  # a piece of a long text, asked with its first piece
        return
    if joined.amends:  # forwards after a comment, which was asked at once
        question, _, quote = asked(joined.first, bot.id, joined.text)
        if conversations.amend(question, quote):
            return
        joined = rejoiner.separate(joined)
    await conversations.ask(*asked(joined.first, bot.id, joined.text))


async def group_question(
    message: Message, prompt: str, bot: Bot, conversations: Conversations, notifier: Notifier
) -> None:
    if message.text is None:  # a caption: the model would not see the photo or file under it
        await notifier.to(message, t(lang_of(message), "not_text"))
        return
    question, reply_to, quote = asked(message, bot.id, prompt)
    if not prompt and not (quote and quote.asks):  # a bare mention under a message: about it
        await notifier.to(message, t(lang_of(message), "empty_question"))
        return
    await conversations.ask(question, reply_to, quote)


def create_router() -> Router:
    """A fresh router (a router can belong to one Dispatcher only)."""
    router = Router(name="questions")
    router.message.register(private_question, is_private, is_plain_text)
    router.message.register(group_question, is_group, AddressedInGroup())
    return router
