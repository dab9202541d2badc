"""The command menus Telegram shows (setMyCommands), for private chats and groups, in en and ru."""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import (
    BotCommand,
    BotCommandScopeAllGroupChats,
    BotCommandScopeAllPrivateChats,
    BotCommandScopeUnion,
)

from bot.texts import CATALOGS, t

log = logging.getLogger(__name__)

PRIVATE_COMMANDS = ("new", "retry", "stop", "model", "system", "help")
GROUP_COMMANDS = ("ask", "new", "retry", "stop", "model", "system", "help")


def commands_for(names: tuple[str, ...], lang: str) -> list[BotCommand]:
    return [BotCommand(command=name, description=t(lang, f"cmd_{name}")) for name in names]


async def set_menus(bot: Bot) -> None:
    """Set the menus; a failure is logged, not fatal (the bot works without them)."""
    scopes: list[tuple[BotCommandScopeUnion, tuple[str, ...]]] = [
        (BotCommandScopeAllPrivateChats(), PRIVATE_COMMANDS),
        (BotCommandScopeAllGroupChats(), GROUP_COMMANDS),
    ]
    try:
        for scope, names in scopes:
            for lang in CATALOGS:
                await bot.set_my_commands(
                    commands_for(names, lang),
                    scope=scope,
                    language_code=None if lang == "en" else lang,
                )
    except TelegramAPIError as e:
        log.warning("could not set the command menus: %s", e)
