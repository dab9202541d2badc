"""Who may use the bot: `ALLOWED_USER_IDS`, `ALLOWED_CHAT_IDS`, `ADMIN_USER_IDS`.

An empty list is open to all. Admins may always use the bot. A listed chat is open to all its
members; otherwise the user must be listed (when the user list is set). A stranger in a private chat
gets a short refusal naming their id; a group that is not allowed gets one notice, then silence.
The check is an inner middleware, so it sees exactly the updates some handler would act on.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import CallbackQuery, Chat, Message, TelegramObject, User

from bot.conversations.store import Store
from bot.notify import Notifier
from bot.ratelimit import NoticeGate, Throttle
from bot.texts import t

log = logging.getLogger(__name__)


class AccessPolicy:
    def __init__(
        self,
        allowed_users: frozenset[int],
        allowed_chats: frozenset[int],
        admins: frozenset[int],
    ) -> None:
        self.allowed_users = allowed_users
        self.allowed_chats = allowed_chats
        self.admins = admins

    def is_admin(self, user_id: int) -> bool:
        return user_id in self.admins

    def chat_allowed(self, chat: Chat) -> bool:
        if chat.type == "private":
            return True
        return not self.allowed_chats or chat.id in self.allowed_chats

    def allows(self, user: User, chat: Chat) -> bool:
        if user.id in self.admins or chat.id in self.allowed_chats:
            return True
        if not self.chat_allowed(chat):
            return False
        if chat.type == "private" and self.allowed_chats and not self.allowed_users:
            return False  # only chats are listed: private chats are not among them
        return not self.allowed_users or user.id in self.allowed_users


async def is_chat_admin(bot: Bot, policy: AccessPolicy, chat_id: int, user_id: int) -> bool:
    """A chat's creator/administrator, or one of `ADMIN_USER_IDS`. `user_id` may be a chat's id
    (`sender_id`): a group speaking as itself is one of its anonymous admins."""
    if policy.is_admin(user_id) or user_id == chat_id:  # a private chat belongs to its user
        return True
    if chat_id > 0 or user_id < 0:  # a channel speaking in a group is not one of its admins
        return False
    try:
        member = await bot.get_chat_member(chat_id, user_id)
    except TelegramAPIError as e:
        log.warning("chat %s: cannot check admin rights of %s: %s", chat_id, user_id, e)
        return False
    return member.status in ("creator", "administrator")


class AccessMiddleware(BaseMiddleware):
    """Refuses messages and button presses that the policy does not allow."""

    def __init__(
        self,
        policy: AccessPolicy,
        store: Store,
        notifier: Notifier,
        throttle: NoticeGate | None = None,
    ) -> None:
        self.policy = policy
        self.store = store
        self.notifier = notifier
        self.throttle = throttle or Throttle(60.0)

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        user: User | None = data.get("event_from_user")
        chat: Chat | None = data.get("event_chat")
        if user is None or chat is None or self.policy.allows(user, chat):
            return await handler(event, data)
        log.info("refused user %s in chat %s", user.id, chat.id)
        lang = user.language_code
        if isinstance(event, CallbackQuery):
            await event.answer(t(lang, "access_denied_button"), show_alert=True)
        elif isinstance(event, Message):
            await self._refuse(event, user, chat, lang)
        return None

    async def _refuse(self, message: Message, user: User, chat: Chat, lang: str | None) -> None:
        if not await self.throttle.allow(chat.id, user.id):
            return
        if chat.type == "private":
            await self.notifier.to(message, t(lang, "access_denied_private", user_id=user.id))
        elif not self.policy.chat_allowed(chat):
            if await self.store.claim_denied_notice(chat.id):
                await self.notifier.to(message, t(lang, "access_denied_chat", chat_id=chat.id))
        else:
            await self.notifier.to(message, t(lang, "access_denied_user", user_id=user.id))
