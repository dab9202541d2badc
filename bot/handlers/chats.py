"""Service messages about a chat itself: a group upgraded to a supergroup keeps its settings
and its answers being written.

Telegram gives the supergroup a new chat id, and the settings (system prompt, model) are kept by
chat id: without this, an admin's `/system` would silently stop applying after the upgrade."""

from __future__ import annotations

import logging

from aiogram import Router
from aiogram.types import Message

from bot.answering import Answerer
from bot.conversations import Store

log = logging.getLogger(__name__)


async def is_upgraded_group(message: Message) -> bool:
    return message.migrate_from_chat_id is not None


async def upgraded(message: Message, store: Store, answerer: Answerer) -> None:
    """The first message in the new supergroup names the group it was: its settings move over
    (unless the supergroup has its own already), and so do the answers being written."""
    old = message.migrate_from_chat_id
    assert old is not None
    new = message.chat.id
    answerer.moved(old, new)
    before, now = await store.prefs(old), await store.prefs(new)
    if now.model is None and before.model is not None:
        await store.set_pref(new, "model", before.model)
    if now.system_prompt is None and before.system_prompt is not None:
        await store.set_pref(new, "system_prompt", before.system_prompt)
    log.info(
        "group %s became supergroup %s: its settings moved (ALLOWED_CHAT_IDS needs the new id)",
        old,
        new,
    )


def create_router() -> Router:
    router = Router(name="chats")
    router.message.register(upgraded, is_upgraded_group)
    return router
