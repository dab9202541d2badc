"""The Stop button under a streaming answer."""

from __future__ import annotations

import contextlib
import logging

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.types import CallbackQuery, Message

from bot.answering import STOP_PREFIX, Answerer
from bot.texts import t

log = logging.getLogger(__name__)


async def stop_pressed(callback: CallbackQuery, answerer: Answerer, bot: Bot) -> None:
    lang = callback.from_user.language_code
    active = answerer.find((callback.data or "")[len(STOP_PREFIX) :])
    if active is None:
        await callback.answer(t(lang, "stop_gone"))
        if isinstance(callback.message, Message) and callback.message.reply_markup:
            with contextlib.suppress(TelegramAPIError):  # a button left from before a restart
                await callback.message.edit_reply_markup(reply_markup=None)
        return
    question = active.question
    if not question.is_private and callback.from_user.id != question.user_id:
        member = await bot.get_chat_member(question.chat_id, callback.from_user.id)
        if member.status not in ("creator", "administrator"):
            await callback.answer(t(lang, "stop_not_yours"), show_alert=True)
            return
    log.info("chat %s: answer stopped by user %s", question.chat_id, callback.from_user.id)
    active.stop()
    await callback.answer(t(lang, "stop_done"))


def create_router() -> Router:
    """A fresh router (a router can belong to one Dispatcher only)."""
    router = Router(name="buttons")
    router.callback_query.register(stop_pressed, F.data.startswith(STOP_PREFIX))
    return router
