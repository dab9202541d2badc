"""Builds the Bot, the Dispatcher and the services, and runs them."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramAPIError, TelegramUnauthorizedError
from aiogram.types import User

from bot.access import AccessMiddleware, AccessPolicy
from bot.answering import Answerer
from bot.conversations import Conversations, Defaults, SQLiteStore, Store
from bot.handlers import get_routers
from bot.llm import LLMClient
from bot.menu import set_menus
from bot.notify import Notifier
from bot.ratelimit import RateLimiter
from bot.streaming import Budgets, Pacer
from bot.streaming.reply import DraftSupport
from config import Settings

log = logging.getLogger(__name__)

MAX_CONCURRENT_UPDATES = 500


class StartupError(Exception):
    """The bot cannot start with these settings; the message is one line for the user."""


@dataclass(slots=True)
class App:
    settings: Settings
    bot: Bot
    dispatcher: Dispatcher
    llm: LLMClient
    pacer: Pacer
    store: Store
    answerer: Answerer
    conversations: Conversations


def build_app(settings: Settings) -> App:
    """Wire everything together; nothing here talks to the network."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_url))
    bot = Bot(
        settings.bot_token.get_secret_value(),
        session=session,
        default=DefaultBotProperties(parse_mode=None),
    )
    llm = LLMClient(
        model=settings.g4f_model,
        providers=settings.providers,
        api_base=settings.g4f_api_base,
        api_key=settings.g4f_api_key.get_secret_value(),
        data_dir=settings.data_dir,
        idle_timeout=settings.llm_idle_timeout,
        total_timeout=settings.llm_total_timeout,
    )
    try:
        llm.start()
    except ValueError as error:
        raise StartupError(str(error)) from None
    pacer = Pacer(
        Budgets(
            private_interval=settings.private_interval,
            group_interval=settings.group_interval,
            group_per_minute=settings.group_per_minute,
            global_per_second=settings.global_per_second,
        )
    )
    store = SQLiteStore(settings.data_dir / "bot.sqlite3")
    notifier = Notifier(bot, pacer)
    answerer = Answerer(bot, llm, pacer, DraftSupport(settings.stream_mode))
    policy = AccessPolicy(
        settings.allowed_user_ids, settings.allowed_chat_ids, settings.admin_user_ids
    )
    conversations = Conversations(
        store,
        answerer,
        notifier,
        Defaults(
            model=settings.g4f_model,
            models=settings.models,
            system_prompt=settings.system_prompt,
            max_context_chars=settings.max_context_chars,
        ),
        RateLimiter(*settings.rate_limit),
        exempt=settings.admin_user_ids,
    )
    dispatcher = Dispatcher(
        settings=settings,
        answerer=answerer,
        conversations=conversations,
        store=store,
        notifier=notifier,
        policy=policy,
    )
    access = AccessMiddleware(policy, store, notifier)
    dispatcher.message.middleware(access)
    dispatcher.callback_query.middleware(access)
    dispatcher.include_routers(*get_routers())
    return App(settings, bot, dispatcher, llm, pacer, store, answerer, conversations)


async def wait_for_telegram(bot: Bot, url: str, max_delay: float = 60.0) -> User:
    """`getMe` until Telegram answers, backing off; a rejected token is a `StartupError`."""
    delay = 1.0
    while True:
        try:
            return await bot.get_me()
        except TelegramUnauthorizedError:
            raise StartupError("Telegram rejected BOT_TOKEN (401 Unauthorized)") from None
        except (TimeoutError, TelegramAPIError, OSError) as error:
            log.warning(
                "Telegram Bot API at %s is unreachable (%s); retrying in %.0f s",
                url,
                type(error).__name__,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)


async def startup(app: App) -> User:
    """Open storage, reach Telegram, set the menus; what every runner does first."""
    await app.store.open()
    me = await wait_for_telegram(app.bot, app.settings.telegram_api_url)
    await app.conversations.recover()
    await set_menus(app.bot)
    log.info(
        "started as @%s; model %s via %s",
        me.username,
        app.settings.g4f_model,
        app.llm.provider_label,
    )
    return me


async def shutdown(app: App) -> None:
    """After updates stopped coming: finish or interrupt the answers, then close everything."""
    await app.conversations.drain(app.settings.shutdown_grace)
    await app.llm.close()
    await app.store.close()
    await app.bot.session.close()


async def run_polling(app: App, *, handle_signals: bool = True, polling_timeout: int = 10) -> None:
    """Start-up, then long polling until stopped; cleans up on the way out."""
    try:
        await startup(app)
        await app.dispatcher.start_polling(
            app.bot,
            handle_signals=handle_signals,
            polling_timeout=polling_timeout,
            allowed_updates=app.dispatcher.resolve_used_update_types(),
            tasks_concurrency_limit=MAX_CONCURRENT_UPDATES,
        )
    finally:
        await shutdown(app)
