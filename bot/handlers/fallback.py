"""What is left in private chats: unknown commands get help, non-text gets a hint."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.types import Message

from bot.filters import is_command, is_private
from bot.handlers.common import lang_of
from bot.notify import Notifier
from bot.texts import t


async def unknown_command(message: Message, bot: Bot, notifier: Notifier) -> None:
    me = await bot.me()
    lang = lang_of(message)
    await notifier.to(
        message, t(lang, "unknown_command") + "\n\n" + t(lang, "help", username=me.username or "")
    )


async def not_text(message: Message, notifier: Notifier) -> None:
    await notifier.to(message, t(lang_of(message), "not_text"))


def create_router() -> Router:
    """A fresh router (a router can belong to one Dispatcher only)."""
    router = Router(name="fallback")
    router.message.filter(is_private)
    router.message.register(unknown_command, is_command)
    router.message.register(not_text)
    return router
