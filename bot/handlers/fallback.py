"""What is left: unknown commands get help (in a group, those that name the bot: `/foo@bot`),
non-text in a private chat gets a hint, and service messages (the user pinned a message, set
auto-delete, allowed the bot to write) get nothing."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.enums import ContentType
from aiogram.types import Message

from bot.filters import addressee, is_command, is_command_to_me, is_group, is_private, names_me
from bot.handlers.common import lang_of
from bot.notify import Notifier
from bot.texts import t


async def unknown_command(message: Message, bot: Bot, notifier: Notifier) -> None:
    """Help, after saying why: the command is not one of the bot's, or (in a private chat) it
    names another bot, as `/stop@other_bot` does, mistyped or pasted from a group."""
    me = await bot.me()
    lang = lang_of(message)
    other = addressee(message.text or "")
    if other is not None and not names_me(other, me.username):
        why = t(lang, "command_for_another_bot", bot=other)
    else:
        why = t(lang, "unknown_command")
    await notifier.to(message, why + "\n\n" + t(lang, "help", username=me.username or ""))


# What a person sends as a message; anything else is an event in the chat, not said to the bot.
SENT_BY_USERS = frozenset(
    {
        ContentType.TEXT,
        ContentType.ANIMATION,
        ContentType.AUDIO,
        ContentType.CHECKLIST,
        ContentType.CONTACT,
        ContentType.DICE,
        ContentType.DOCUMENT,
        ContentType.GAME,
        ContentType.LIVE_PHOTO,
        ContentType.LOCATION,
        ContentType.PAID_MEDIA,
        ContentType.PHOTO,
        ContentType.POLL,
        ContentType.STICKER,
        ContentType.STORY,
        ContentType.VENUE,
        ContentType.VIDEO,
        ContentType.VIDEO_NOTE,
        ContentType.VOICE,
    }
)


async def sent_by_user(message: Message) -> bool:
    return message.content_type in SENT_BY_USERS


async def not_text(message: Message, notifier: Notifier) -> None:
    await notifier.to(message, t(lang_of(message), "not_text"))


def create_router() -> Router:
    """A fresh router (a router can belong to one Dispatcher only)."""
    router = Router(name="fallback")
    router.message.register(unknown_command, is_private, is_command)
    router.message.register(not_text, is_private, sent_by_user)
    router.message.register(unknown_command, is_group, is_command_to_me)
    return router
