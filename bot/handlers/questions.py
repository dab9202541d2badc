"""Questions: any text in a private chat; in groups, only messages addressed to the bot."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.types import Message

from bot.answering import Answerer
from bot.filters import AddressedInGroup
from bot.handlers.common import lang_of, question_from
from bot.texts import t


async def private_question(message: Message, answerer: Answerer) -> None:
    await answerer.answer(question_from(message, (message.text or "").strip()))


async def group_question(message: Message, prompt: str, answerer: Answerer) -> None:
    if not prompt:
        await message.reply(t(lang_of(message), "empty_question"))
        return
    await answerer.answer(question_from(message, prompt))


def create_router() -> Router:
    """A fresh router (a router can belong to one Dispatcher only)."""
    router = Router(name="questions")
    router.message.register(
        private_question, F.chat.type == ChatType.PRIVATE, F.text, ~F.text.startswith("/")
    )
    router.message.register(
        group_question,
        F.chat.type.in_({ChatType.GROUP, ChatType.SUPERGROUP}),
        AddressedInGroup(),
    )
    return router
