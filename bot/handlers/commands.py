"""/start, /help and /ask."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import Message

from bot.answering import Answerer
from bot.handlers.common import lang_of, question_from
from bot.texts import t


async def start(message: Message) -> None:
    name = message.from_user.first_name if message.from_user else ""
    await message.answer(t(lang_of(message), "start", name=name))


async def help_(message: Message, bot: Bot) -> None:
    me = await bot.me()
    await message.answer(t(lang_of(message), "help", username=me.username or ""))


async def ask(message: Message, command: CommandObject, answerer: Answerer) -> None:
    prompt = (command.args or "").strip()
    if not prompt:
        await message.reply(t(lang_of(message), "empty_question"))
        return
    await answerer.answer(question_from(message, prompt))


def create_router() -> Router:
    """A fresh router (a router can belong to one Dispatcher only)."""
    router = Router(name="commands")
    router.message.register(start, CommandStart())
    router.message.register(help_, Command("help"))
    router.message.register(ask, Command("ask"))
    return router
