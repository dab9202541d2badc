"""Builds the Bot, the Dispatcher and the services, and runs them."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sqlite3
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.types import User
from aiogram.utils.backoff import BackoffConfig
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    ReadOnlyError,
    RedisError,
    ResponseError,
)

from bot.access import AccessMiddleware, AccessPolicy
from bot.answering import Answerer
from bot.cluster.answers import SharedAnswers
from bot.cluster.budgets import SharedBudgets
from bot.cluster.limits import RedisRateLimiter, RedisThrottle
from bot.cluster.node import Cluster
from bot.conversations import Conversations, Defaults, SQLiteStore, Store
from bot.conversations.queues import LocalQueues, Queues, RedisQueues
from bot.conversations.redis_store import RedisStore
from bot.conversations.sqlite import StoreTooNew
from bot.dedup import LocalSeen, OncePerUpdate, RedisSeen, SeenUpdates
from bot.handlers import get_routers
from bot.handlers.errors import failed
from bot.llm import LLMClient
from bot.menu import set_menus
from bot.metrics import Metrics
from bot.notify import Notifier
from bot.ratelimit import Limiter, NoticeGate, RateLimiter, Throttle
from bot.rejoin import Rejoiner
from bot.server import WebServer
from bot.session import make_session
from bot.streaming import Budgets, Pacer
from bot.streaming.reply import DraftSupport
from config import Settings

log = logging.getLogger(__name__)

MAX_CONCURRENT_UPDATES = 500
RECOVERY_SWEEP = 15.0  # seconds between looks for answers a dead replica left (scale-out)


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
    metrics: Metrics
    rejoiner: Rejoiner
    cluster: Cluster | None = None  # with REDIS_URL: what replicas share
    directory: SharedAnswers | None = None
    background: set[asyncio.Task[None]] = field(default_factory=set)


def freeze_startup_objects() -> None:
    """Leave what start-up created (modules, aiogram's ~1,000 models, g4f's providers) out of
    garbage collection from now on. A full collection otherwise walks all of it: 0.2 s in which
    the process does nothing else, measured under load as answers' first text arriving late."""
    gc.collect()
    gc.freeze()


def _unusable(data_dir: Path, error: BaseException) -> str:
    """One line for a DATA_DIR (or the database in it) the bot cannot use."""
    reason = (error.strerror if isinstance(error, OSError) else None) or str(error)
    if data_dir.exists() and not data_dir.is_dir():
        reason = "it is a file, not a folder"
    return f"DATA_DIR {data_dir.absolute()} is not usable: {reason}"


def build_app(settings: Settings) -> App:
    """Wire everything together; nothing here talks to the network."""
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StartupError(_unusable(settings.data_dir, error)) from None
    session = make_session(settings.telegram_api_url)
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
        read_interval=settings.llm_read_interval,
    )
    try:
        llm.start()
    except ValueError as error:
        raise StartupError(str(error)) from None
    except OSError as error:  # g4f's state goes under DATA_DIR
        raise StartupError(_unusable(settings.data_dir, error)) from None
    budgets = Budgets(
        private_interval=settings.private_interval,
        group_interval=settings.group_interval,
        group_per_minute=settings.group_per_minute,
        global_per_second=settings.global_per_second,
    )
    redis_url = settings.redis_url.get_secret_value()
    cluster = Cluster(redis_url, bot.id) if redis_url else None
    store: Store
    queues: Queues
    limiter: Limiter
    refusals: NoticeGate
    limit_notices: NoticeGate
    seen: SeenUpdates
    directory: SharedAnswers | None = None
    if cluster is None:
        pacer = Pacer(budgets)
        store = SQLiteStore(settings.data_dir / "bot.sqlite3")
        queues = LocalQueues()
        limiter = RateLimiter(*settings.rate_limit)
        refusals, limit_notices = Throttle(60.0), Throttle(60.0)
        seen = LocalSeen()
    else:
        pacer = Pacer(budgets, shared=SharedBudgets(cluster.redis, cluster.prefix, budgets))
        store = RedisStore(cluster)
        queues = RedisQueues(cluster)
        limiter = RedisRateLimiter(cluster.redis, cluster.prefix, *settings.rate_limit)
        refusals = RedisThrottle(cluster.redis, cluster.prefix, 60.0, "refusal")
        limit_notices = RedisThrottle(cluster.redis, cluster.prefix, 60.0, "limit")
        seen = RedisSeen(cluster)
        directory = SharedAnswers(cluster, ttl=settings.llm_total_timeout + 120)
    notifier = Notifier(bot, pacer)
    metrics = Metrics()
    answerer = Answerer(
        bot, llm, pacer, DraftSupport(settings.stream_mode), metrics, directory=directory
    )
    metrics.track_active_streams(lambda: len(answerer.active))
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
        limiter,
        limit_notices,
        exempt=settings.admin_user_ids,
        queues=queues,
    )
    rejoiner = Rejoiner(settings.join_wait, on_hold=notifier.typing)
    dispatcher = Dispatcher(
        settings=settings,
        answerer=answerer,
        conversations=conversations,
        store=store,
        notifier=notifier,
        policy=policy,
        rejoiner=rejoiner,
    )
    dispatcher.update.outer_middleware(OncePerUpdate(seen))  # before counting: a redelivery
    dispatcher.update.outer_middleware(metrics.count_update)  # is not a new update
    dispatcher.message.outer_middleware(answerer.newest.middleware)  # every message, handled or not
    bot.session.middleware(answerer.newest.outgoing)  # and every one the bot sends
    access = AccessMiddleware(policy, store, notifier, refusals)
    dispatcher.message.middleware(access)
    dispatcher.edited_message.middleware(access)
    dispatcher.callback_query.middleware(access)
    dispatcher.include_routers(*get_routers())
    dispatcher.errors.register(failed)
    return App(
        settings,
        bot,
        dispatcher,
        llm,
        pacer,
        store,
        answerer,
        conversations,
        metrics,
        rejoiner,
        cluster,
        directory,
    )


async def wait_for_telegram(bot: Bot, url: str, max_delay: float = 60.0) -> User:
    """`getMe` until Telegram answers, backing off. A rejected token, and an address where no
    Bot API method exists (404: a path after the server's address), are a `StartupError`:
    waiting would not change them."""
    delay = 1.0
    while True:
        try:
            return await bot.get_me()
        except TelegramUnauthorizedError:
            raise StartupError("Telegram rejected BOT_TOKEN (401 Unauthorized)") from None
        except (TimeoutError, TelegramAPIError, OSError) as error:
            answered = _answered(error)
            if isinstance(error, TelegramNotFound) or answered.startswith("HTTP 404"):
                raise StartupError(
                    f"TELEGRAM_API_URL {url} has no Bot API (getMe: 404 Not Found); give the "
                    "server's address alone, without /bot<token>"
                ) from None
            log.warning(
                "Telegram Bot API at %s is unreachable (%s); retrying in %.0f s",
                url,
                answered or type(error).__name__,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)


def _answered(error: BaseException) -> str:
    """What a server that is not the Bot API answered ("HTTP 502: …"), as the session words it
    (no token in it); empty for other errors."""
    if isinstance(error, TelegramNetworkError) and error.message.startswith("HTTP "):
        return error.message
    return ""


async def join_cluster(app: App, max_delay: float = 30.0) -> None:
    """Reach Redis (backing off while it is unreachable) and take stop requests from it."""
    assert app.cluster is not None
    delay = 1.0
    while True:
        try:
            await app.cluster.start()
            break
        except (RedisError, OSError) as error:
            refused = isinstance(error, AuthenticationError | AuthorizationError | ResponseError)
            if refused and not isinstance(error, ReadOnlyError):  # (a replica being promoted)
                # A wrong password or database number: waiting would not change it.
                raise StartupError(f"Redis (REDIS_URL) refused the bot: {error}") from None
            log.warning("Redis (REDIS_URL) is unreachable (%s); retrying in %.0f s", error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)
    if app.directory is not None:
        await app.directory.listen(app.answerer.stop_here)


async def sweep_orphans(app: App, every: float = RECOVERY_SWEEP) -> None:
    """With replicas: answers a dead replica left are taken over, not only at start-up (its
    heartbeat may still look alive when this replica starts)."""
    while True:
        await asyncio.sleep(every)
        try:
            await app.conversations.recover()
        except (RedisError, OSError, TelegramAPIError) as error:
            log.warning("looking for answers left by other replicas failed (%s)", error)


async def startup(app: App) -> User:
    """Open storage, reach Telegram, set the menus; what every runner does first."""
    if app.cluster is not None:
        await join_cluster(app)
    try:
        await app.store.open()
    except (OSError, sqlite3.Error, StoreTooNew) as error:
        raise StartupError(_unusable(app.settings.data_dir, error)) from None
    app.background.add(asyncio.create_task(check_backend(app), name="check-backend"))
    me = await wait_for_telegram(app.bot, app.settings.telegram_api_url)
    await app.conversations.recover()
    if app.cluster is not None:
        app.background.add(asyncio.create_task(sweep_orphans(app), name="sweep-orphans"))
    await set_menus(app.bot)
    log.info(
        "started as @%s; model %s via %s",
        me.username,
        app.settings.g4f_model,
        app.llm.provider_label,
    )
    return me


async def check_backend(app: App) -> None:
    """A word in the log if `G4F_API_BASE` does not look right (the bot starts either way)."""
    problem = await app.llm.check_endpoint()
    if problem:
        log.warning("model backend: %s", problem)


async def shutdown(app: App, *, handle_signals: bool = False) -> None:
    """After updates stopped coming: finish or interrupt the answers, then close everything.

    With `handle_signals`, a second SIGINT or SIGTERM (Ctrl+C pressed again) interrupts the
    answers at once instead of waiting out SHUTDOWN_GRACE. Everything is closed even if this
    fails or is cancelled half-way: the SQLite connection's thread alone would keep the process
    from ever exiting."""
    hurry = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT) if handle_signals else ()
    for sig in signals:
        loop.add_signal_handler(sig, _hurry, hurry)
    try:
        for task in app.background:
            task.cancel()
        await asyncio.gather(*app.background, return_exceptions=True)
        app.conversations.close()  # a question not started now is told it was not answered
        await app.rejoiner.flush(within=5)  # messages waiting for the rest of theirs, among them
        await app.conversations.drain(app.settings.shutdown_grace, hurry if signals else None)
    finally:
        try:
            await app.conversations.abandon()  # only answers a cut-short drain left running
        finally:
            await _close_all(app)
            for sig in signals:
                loop.remove_signal_handler(sig)


def _hurry(hurry: asyncio.Event) -> None:
    if not hurry.is_set():
        log.warning("signal received again: interrupting the answers now")
        hurry.set()


async def _close_all(app: App) -> None:
    """Close what the bot opened, each even if closing another failed."""
    closers = [
        app.llm.close,
        app.store.close,
        *([app.directory.close] if app.directory is not None else []),
        *([app.cluster.close] if app.cluster is not None else []),
        app.bot.session.close,
    ]
    for close in closers:
        try:
            await close()
        except Exception:
            log.exception("closing %s failed", getattr(close, "__qualname__", close))


async def start_web(app: App, *, webhook: bool) -> WebServer:
    """Listen on WEB_HOST:WEB_PORT; a port that cannot be had is a `StartupError`."""
    server = WebServer(app, webhook=webhook, max_updates=MAX_CONCURRENT_UPDATES)
    try:
        await server.start()
    except OSError as error:
        where = f"{app.settings.web_host}:{app.settings.web_port}"
        reason = error.strerror or type(error).__name__
        raise StartupError(f"cannot listen on {where} (WEB_HOST, WEB_PORT): {reason}") from None
    return server


async def run_polling(
    app: App, *, handle_signals: bool = True, polling_timeout: int = 10, web: bool = False
) -> None:
    """Start-up, then long polling until stopped; cleans up on the way out.

    `web=True` also serves /healthz and /metrics on WEB_HOST:WEB_PORT (`python -m bot` does).
    """
    server = None
    try:
        if web:
            server = await start_web(app, webhook=False)
        if not await _unless_stopped(_start_polling(app), handle_signals):
            return
        await app.dispatcher.start_polling(
            app.bot,
            close_bot_session=False,  # shutdown() closes it, after the answers are drained
            handle_signals=handle_signals,
            polling_timeout=polling_timeout,
            allowed_updates=app.dispatcher.resolve_used_update_types(),
            tasks_concurrency_limit=MAX_CONCURRENT_UPDATES,
            # aiogram logs two lines per failed getUpdates: every 5 s through a Telegram outage
            # by default (35,000 lines a day); pauses grow to 30 s, short blips still pass fast.
            backoff_config=BackoffConfig(min_delay=1.0, max_delay=30.0, factor=1.3, jitter=0.1),
        )
    finally:
        if server is not None:
            await server.stop()
        await shutdown(app, handle_signals=handle_signals)


async def _start_polling(app: App) -> None:
    await startup(app)
    with contextlib.suppress(TelegramAPIError):  # a webhook left set blocks getUpdates
        await app.bot.delete_webhook(drop_pending_updates=False)


async def _unless_stopped(work: Coroutine[Any, Any, None], handle_signals: bool) -> bool:
    """Run start-up `work` (which may wait minutes for Telegram or Redis) so that SIGTERM or
    SIGINT end it: True if it finished, False if a signal came first. aiogram only handles
    signals once polling runs."""
    if not handle_signals:
        await work
        return True
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    working = asyncio.create_task(work, name="start-up")
    stopping = asyncio.create_task(stop.wait(), name="start-up-stop")
    try:
        done, _ = await asyncio.wait({working, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        working.cancel()
        stopping.cancel()
        await asyncio.gather(working, stopping, return_exceptions=True)
    if working in done:
        working.result()  # a StartupError, say
        return True
    log.info("stopped during start-up")
    return False


async def set_webhook(app: App, max_delay: float = 60.0) -> None:
    """Tell Telegram where to post updates; retried while Telegram is unreachable or busy."""
    settings = app.settings
    delay = 1.0
    while True:
        try:
            await app.bot.set_webhook(
                url=settings.webhook_url,
                secret_token=settings.webhook_secret.get_secret_value(),
                allowed_updates=app.dispatcher.resolve_used_update_types(),
                drop_pending_updates=False,
            )
            log.info("webhook set; Telegram posts updates to %s", settings.webhook_path)
            return
        except TelegramRetryAfter as error:
            wait = float(error.retry_after)
        except (TimeoutError, TelegramNetworkError, TelegramServerError, OSError) as error:
            log.warning("setWebhook failed (%s); retrying in %.0f s", type(error).__name__, delay)
            wait, delay = delay, min(delay * 2, max_delay)
        except TelegramAPIError as error:
            raise StartupError(f"Telegram refused WEBHOOK_URL: {error.message}") from None
        await asyncio.sleep(wait)


async def run_webhook(
    app: App, *, handle_signals: bool = True, stop: asyncio.Event | None = None
) -> None:
    """Start-up, the web server with the webhook, `setWebhook`, then serve until stopped
    (SIGTERM/SIGINT, or `stop` set); then the same graceful drain as polling.

    The webhook stays set when the bot stops: Telegram keeps the updates until it is back.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT) if handle_signals else ()
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    server = None
    try:
        server = await start_web(app, webhook=True)

        async def serve() -> None:
            assert server is not None
            await startup(app)
            server.set_ready()
            await set_webhook(app)
            await asyncio.Event().wait()  # until stopped

        serving = asyncio.create_task(serve(), name="webhook")
        stopping = asyncio.create_task(stop.wait(), name="webhook-stop")
        try:
            done, _ = await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            serving.cancel()
            stopping.cancel()
            await asyncio.gather(serving, stopping, return_exceptions=True)
        if serving in done:
            serving.result()  # it only ends by itself by raising (a StartupError, say)
        log.info("stopping: webhook requests are refused from now on")
    finally:
        # The handlers stay until `shutdown` puts its own in their place: a second signal while
        # the server stops must not kill the process.
        if server is not None:
            await server.stop()
        await shutdown(app, handle_signals=handle_signals)
