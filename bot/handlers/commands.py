"""Commands: /start /help /new /retry /stop /model /ask /system."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.enums import ChatType
from aiogram.filters import Command, CommandStart
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.access import AccessPolicy, is_chat_admin
from bot.answering import Answerer
from bot.conversations import Conversations, Store
from bot.handlers.common import asked, lang_of, question_from, replied_id, sender_id, topic_of
from bot.markup import command_args
from bot.notify import Notifier
from bot.texts import t
from config import Settings

MODEL_PREFIX = "model:"
CHOSEN = "✅ "  # before the model in use, in the /model menu
SHOWN_PROMPT_CHARS = 1800  # UTF-16 units at most twice this: well within a message


async def start(message: Message, bot: Bot, notifier: Notifier) -> None:
    name = message.from_user.first_name if message.from_user else ""
    if message.chat.type == ChatType.PRIVATE:
        await notifier.to(message, t(lang_of(message), "start", name=name))
        return
    me = await bot.me()  # a group: a plain message is not a question there
    await notifier.to(
        message, t(lang_of(message), "start_group", name=name, username=me.username or "")
    )


async def help_(message: Message, bot: Bot, notifier: Notifier) -> None:
    me = await bot.me()
    await notifier.to(message, t(lang_of(message), "help", username=me.username or ""))


async def ask(
    message: Message,
    bot: Bot,
    conversations: Conversations,
    notifier: Notifier,
) -> None:
    if message.text is None:  # a photo or file captioned "/ask …": only text can be read
        await notifier.to(message, t(lang_of(message), "not_text"))
        return
    prompt = command_args(message)
    question, reply_to, quote = asked(message, bot.id, prompt)
    if not prompt and not (quote and quote.asks):
        await notifier.to(message, t(lang_of(message), "empty_question"))
        return
    await conversations.ask(question, reply_to, quote)


async def new(message: Message, conversations: Conversations, notifier: Notifier) -> None:
    if message.chat.type != "private":
        await notifier.to(message, t(lang_of(message), "new_group"))
        return
    await conversations.new(question_from(message, ""))
    await notifier.to(message, t(lang_of(message), "new_done"))


async def retry(message: Message, conversations: Conversations) -> None:
    await conversations.retry(question_from(message, ""), reply_to=replied_id(message))


async def stop(
    message: Message, bot: Bot, answerer: Answerer, policy: AccessPolicy, notifier: Notifier
) -> None:
    lang = lang_of(message)
    user_id = sender_id(message)
    running = await answerer.in_chat(message.chat.id, topic_of(message))
    in_group = message.chat.type != "private"
    if running and in_group and not await is_chat_admin(bot, policy, message.chat.id, user_id):
        running = [r for r in running if r.user_id == user_id]
        if not running:  # somebody else's answers: say so, not that nothing is running
            await notifier.to(message, t(lang, "stop_not_yours"))
            return
    if not running:
        await notifier.to(message, t(lang, "stop_none"))
        return
    stopped = [await answerer.stop(answer) for answer in running]
    if not any(stopped):  # each stopped one ends with "⏹ Stopped.": no reply to say so again
        await notifier.to(message, t(lang, "stop_gone"))


def model_keyboard(models: tuple[str, ...], current: str) -> InlineKeyboardMarkup:
    rows = [
        [
            InlineKeyboardButton(
                text=(CHOSEN if name == current else "") + name,
                callback_data=f"{MODEL_PREFIX}{i}",
            )
        ]
        for i, name in enumerate(models)
    ]
    return InlineKeyboardMarkup(inline_keyboard=rows)


async def model(
    message: Message,
    bot: Bot,
    store: Store,
    settings: Settings,
    policy: AccessPolicy,
    notifier: Notifier,
) -> None:
    """The model in use, and a menu to choose another for whoever may (in a group, an admin:
    a member would be shown buttons that only refuse)."""
    prefs = await store.prefs(message.chat.id)
    current = prefs.model if prefs.model in settings.models else settings.g4f_model
    if settings.models == (current,):  # nothing to choose from
        await notifier.to(message, t(lang_of(message), "model_only", model=current))
        return
    if not await is_chat_admin(bot, policy, message.chat.id, sender_id(message)):
        await notifier.to(message, t(lang_of(message), "model_admins_choose", model=current))
        return
    await notifier.to(
        message,
        t(lang_of(message), "model_current", model=current),
        markup=model_keyboard(settings.models, current),
    )


async def system(
    message: Message,
    bot: Bot,
    store: Store,
    settings: Settings,
    policy: AccessPolicy,
    notifier: Notifier,
) -> None:
    lang = lang_of(message)
    prefs = await store.prefs(message.chat.id)
    text = command_args(message)
    if not text:
        current = prefs.system_prompt if prefs.system_prompt is not None else settings.system_prompt
        if len(current) > SHOWN_PROMPT_CHARS:  # the notice must fit one message
            current = current[:SHOWN_PROMPT_CHARS].rstrip() + "…"
        await notifier.to(
            message,
            t(lang, "system_show", prompt=current) if current else t(lang, "system_none"),
        )
        return
    user_id = sender_id(message)
    if not await is_chat_admin(bot, policy, message.chat.id, user_id):
        await notifier.to(message, t(lang, "system_not_allowed"))
        return
    if text.strip("*_~` ").lower() in ("reset", "default", "-", "сброс"):  # bold or not
        await store.set_pref(message.chat.id, "system_prompt", None)
        await notifier.to(message, t(lang, "system_reset"))
        return
    await store.set_pref(message.chat.id, "system_prompt", text)
    await notifier.to(message, t(lang, "system_set"))


def create_router() -> Router:
    """A fresh router (a router can belong to one Dispatcher only)."""
    router = Router(name="commands")
    # `/Help` or `/ASK` (a phone's keyboard capitalises the first letter) are the same commands.
    router.message.register(start, CommandStart(ignore_case=True))
    router.message.register(help_, Command("help", ignore_case=True))
    router.message.register(ask, Command("ask", ignore_case=True))
    router.message.register(new, Command("new", ignore_case=True))
    router.message.register(retry, Command("retry", ignore_case=True))
    router.message.register(stop, Command("stop", ignore_case=True))
    router.message.register(model, Command("model", ignore_case=True))
    router.message.register(system, Command("system", ignore_case=True))
    return router
