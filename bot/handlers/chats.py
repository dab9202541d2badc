"""Updates about a chat itself: a group upgraded to a supergroup keeps its settings and its
answers being written; a chat that shuts the bot out, and lets it back in, gets no stale
messages.

Telegram gives the supergroup a new chat id, and the settings (system prompt, model) are kept by
chat id: without this, an admin's `/system` would silently stop applying after the upgrade.

A user who blocks the bot mid-answer (or a group that removes it, or mutes it: an admin takes
away its right to send messages) would otherwise pay for the rest of the stream until a call is
refused, and find, once the bot is back, an answer with its cursor and Stop button and a "⏳"
promise that will never be kept.
"""

from __future__ import annotations

import logging

from aiogram import Router
from aiogram.types import (
    ChatMemberAdministrator,
    ChatMemberMember,
    ChatMemberOwner,
    ChatMemberRestricted,
    ChatMemberUpdated,
    Message,
)

from bot.answering import Answerer
from bot.conversations import Conversations, Store

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


def may_write(member: object) -> bool:
    """Whether the bot may send messages as this member of a chat: not once blocked, removed,
    or restricted without the right to send messages."""
    if isinstance(member, ChatMemberRestricted):
        return member.is_member and member.can_send_messages
    return isinstance(member, ChatMemberOwner | ChatMemberAdministrator | ChatMemberMember)


async def is_shut_out(event: ChatMemberUpdated) -> bool:
    return may_write(event.old_chat_member) and not may_write(event.new_chat_member)


async def is_let_back_in(event: ChatMemberUpdated) -> bool:
    return not may_write(event.old_chat_member) and may_write(event.new_chat_member)


async def shut_out(event: ChatMemberUpdated, answerer: Answerer) -> None:
    """Blocked by the user, removed from the group or muted there: its answers stop at once."""
    stopped = await answerer.shut_out(event.chat.id)
    member = event.new_chat_member
    if event.chat.type == "private":
        how = "blocked by the user"
    elif isinstance(member, ChatMemberRestricted) and member.is_member:
        how = "muted"
    else:
        how = "removed"
    log.info("chat %s: the bot was %s; %d answer(s) stopped", event.chat.id, how, stopped)


async def let_back_in(event: ChatMemberUpdated, conversations: Conversations) -> None:
    """Unblocked, added again or unmuted: what the chat was left showing is put right."""
    if tidied := await conversations.let_back_in(event.chat.id):
        log.info("chat %s: the bot is back; %d message(s) put right", event.chat.id, tidied)


def create_router() -> Router:
    router = Router(name="chats")
    router.message.register(upgraded, is_upgraded_group)
    router.my_chat_member.register(shut_out, is_shut_out)
    router.my_chat_member.register(let_back_in, is_let_back_in)
    return router
