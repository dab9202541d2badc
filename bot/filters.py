"""Deciding whether a message is meant for the bot, and what the question is."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from aiogram import Bot
from aiogram.enums import ChatType
from aiogram.filters import Filter
from aiogram.types import CallbackQuery, Message

from bot.markup import without_mentions


class AddressedInGroup(Filter):
    """A group message meant for the bot: it mentions the bot or replies to one of its messages.

    Commands are left to the command routers. The question, as Markdown with the mention
    removed, is passed to the handler as `prompt`.
    """

    async def __call__(self, message: Message, bot: Bot) -> bool | dict[str, str]:
        text = message.text or message.caption
        if not text or looks_like_command(text):
            return False
        if message.is_automatic_forward:
            return False  # a channel's post copied into its discussion group: nobody asked
        if message.sender_chat is None and (message.from_user is None or message.from_user.is_bot):
            return False  # another bot (an anonymous admin's placeholder bot has `sender_chat`)
        me = await bot.me()
        prompt, mentioned = without_mentions(message, me.username or "")
        replied = message.reply_to_message
        is_reply_to_bot = bool(replied and replied.from_user and replied.from_user.id == me.id)
        if not mentioned and not is_reply_to_bot:
            return False
        return {"prompt": prompt}


# aiogram runs a synchronous filter — its magic `F.…` filters included — in a worker thread, once
# per handler it checks, for every update. These plain coroutines do the same checks on the loop.


async def is_private(message: Message) -> bool:
    return message.chat.type == ChatType.PRIVATE


async def is_group(message: Message) -> bool:
    return message.chat.type in (ChatType.GROUP, ChatType.SUPERGROUP)


# As Telegram marks a bot command: `/` and a name, maybe `@bot`, then a space or the end.
# `/usr/bin/python is missing` or `/ 2 = ?` is a question.
_COMMAND = re.compile(r"/[A-Za-z0-9_]{1,32}(?:@\w+)?(?:\s|$)")


def looks_like_command(text: str) -> bool:
    return bool(_COMMAND.match(text))


def addressee(text: str) -> str | None:
    """The bot a command names (`/stop@some_bot`: "some_bot"), if it names one."""
    match = _COMMAND.match(text)
    if not match or "@" not in match.group():
        return None
    return match.group().split("@", 1)[1].strip()


def names_me(mention: str, username: str | None) -> bool:
    """Whether a command's `@name` is this bot's (Telegram's usernames ignore case)."""
    return bool(username) and mention.lower() == (username or "").lower()


async def is_command_to_me(message: Message, bot: Bot) -> bool:
    """`/anything@this_bot`: in a group, a command meant for this bot and no other."""
    mention = addressee(message.text or "")
    if mention is None:
        return False
    return names_me(mention, (await bot.me()).username)


async def is_command(message: Message) -> bool:
    return bool(message.text and looks_like_command(message.text))


async def is_plain_text(message: Message) -> bool:
    """Text that is not a command."""
    return bool(message.text) and not await is_command(message)


def data_starts_with(prefix: str) -> Callable[[CallbackQuery], Awaitable[bool]]:
    async def check(callback: CallbackQuery) -> bool:
        return bool(callback.data and callback.data.startswith(prefix))

    return check
