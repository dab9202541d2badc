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

from bot.answering import Answerer
from bot.handlers import get_routers
from bot.llm import LLMClient
from bot.streaming import Budgets, Pacer
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
    answerer: Answerer


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
    answerer = Answerer(bot, llm, pacer, system_prompt=settings.system_prompt)
    dispatcher = Dispatcher(answerer=answerer, settings=settings)
    dispatcher.include_routers(*get_routers())
    return App(settings, bot, dispatcher, llm, pacer, answerer)


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


async def run_polling(app: App, *, handle_signals: bool = True, polling_timeout: int = 10) -> None:
    """Start-up checks, then long polling until stopped; cleans up on the way out."""
    try:
        me = await wait_for_telegram(app.bot, app.settings.telegram_api_url)
        log.info(
            "started as @%s; model %s via %s",
            me.username,
            app.settings.g4f_model,
            app.llm.provider_label,
        )
        await app.dispatcher.start_polling(
            app.bot,
            handle_signals=handle_signals,
            polling_timeout=polling_timeout,
            allowed_updates=app.dispatcher.resolve_used_update_types(),
            tasks_concurrency_limit=MAX_CONCURRENT_UPDATES,
        )
    finally:
        await app.answerer.stop_all()
        await app.llm.close()
        await app.bot.session.close()
