"""Inline buttons: Stop under a streaming answer, the /model choice."""

from __future__ import annotations

import logging

from aiogram import Bot, Router
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message, MessageGenerationStopped

from bot.access import AccessPolicy, is_chat_admin
from bot.answering import STOP_PREFIX, Answerer
from bot.conversations import Store
from bot.filters import data_starts_with
from bot.handlers.commands import CHOSEN, MODEL_PREFIX, model_keyboard
from bot.notify import Notifier
from bot.texts import t
from config import Settings

log = logging.getLogger(__name__)


async def stop_pressed(
    callback: CallbackQuery, answerer: Answerer, bot: Bot, policy: AccessPolicy, notifier: Notifier
) -> None:
    lang = callback.from_user.language_code
    running = await answerer.find((callback.data or "")[len(STOP_PREFIX) :])
    if running is None:
        await callback.answer(t(lang, "stop_gone"))
        message = callback.message
        if isinstance(message, Message) and message.reply_markup:
            # a button left from before a restart
            await notifier.remove_keyboard(message.chat.id, message.message_id)
        return
    if callback.from_user.id != running.user_id and not await is_chat_admin(
        bot, policy, answerer.chat_now(running.chat_id), callback.from_user.id
    ):
        await callback.answer(t(lang, "stop_not_yours"), show_alert=True)
        return
    log.info("chat %s: answer stopped by user %s", running.chat_id, callback.from_user.id)
    await answerer.stop(running)
    await callback.answer(t(lang, "stop_done"))


async def generation_stopped(event: MessageGenerationStopped, answerer: Answerer) -> None:
    """The client's own stop control under a draft (Bot API 10): private chats only."""
    running = await answerer.find_draft(event.chat.id, event.draft_id)
    if running is not None:
        log.info("chat %s: answer stopped from the draft", event.chat.id)
        await answerer.stop(running)


async def model_chosen(
    callback: CallbackQuery,
    bot: Bot,
    store: Store,
    settings: Settings,
    policy: AccessPolicy,
    notifier: Notifier,
) -> None:
    lang = callback.from_user.language_code
    message = callback.message
    if not isinstance(message, Message):
        await callback.answer()
        return
    chat_id = message.chat.id
    choice = _named(message, callback.data or "")
    if choice not in settings.models:  # a menu from before G4F_MODELS changed
        await callback.answer(t(lang, "model_gone"), show_alert=True)
        prefs = await store.prefs(chat_id)
        current = prefs.model if prefs.model in settings.models else settings.g4f_model
        await _show_menu(notifier, message, lang, settings.models, current)
        return
    if not await is_chat_admin(bot, policy, chat_id, callback.from_user.id):
        await callback.answer(t(lang, "model_not_allowed"), show_alert=True)
        return
    await store.set_pref(chat_id, "model", choice)
    await callback.answer(t(lang, "model_set", model=choice))
    await _show_menu(notifier, message, lang, settings.models, choice)


def _named(menu: Message, data: str) -> str | None:
    """The model the pressed button shows (its label, less the ✅): what the user chose, even on
    a menu from before G4F_MODELS was reordered, where its place in the list names another."""
    rows = menu.reply_markup.inline_keyboard if menu.reply_markup else []
    for button in (button for row in rows for button in row):
        if button.callback_data == data:
            return button.text.removeprefix(CHOSEN)
    return None


async def _show_menu(
    notifier: Notifier, message: Message, lang: str | None, models: tuple[str, ...], current: str
) -> None:
    """Bring the /model menu up to date (a single model: no buttons)."""
    text = t(lang, "model_current", model=current)
    keyboard: InlineKeyboardMarkup | None = model_keyboard(models, current)
    if len(models) == 1:
        text, keyboard = t(lang, "model_only", model=current), None
    if message.text == text and _labels(message.reply_markup) == _labels(keyboard):
        return  # the menu shows that already: Telegram would refuse an edit to the same
    await notifier.edit(message.chat.id, message.message_id, text, keyboard)


def _labels(markup: InlineKeyboardMarkup | None) -> list[str]:
    return [button.text for row in markup.inline_keyboard for button in row] if markup else []


def create_router() -> Router:
    """A fresh router (a router can belong to one Dispatcher only)."""
    router = Router(name="buttons")
    router.callback_query.register(stop_pressed, data_starts_with(STOP_PREFIX))
    router.callback_query.register(model_chosen, data_starts_with(MODEL_PREFIX))
    router.stopped_message_generation.register(generation_stopped)
    return router
