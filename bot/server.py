"""The web server, in both modes: `GET /healthz`, `GET /metrics` and, with webhooks, the webhook.

Listens on `WEB_HOST:WEB_PORT`. In webhook mode Telegram posts updates to the path of
`WEBHOOK_URL`; a request without the right `X-Telegram-Bot-Api-Secret-Token` gets 401 before its
body is read, so it causes nothing. Bodies over `WEB_MAX_BODY` get 413. Updates are handled in the
background (Telegram gets its 200 at once), at most `max_updates` at a time: past that the
response waits, and Telegram, which keeps a bounded number of connections open, slows down.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import time
from typing import TYPE_CHECKING, Any

from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramAPIError, TelegramUnauthorizedError
from aiogram.methods import TelegramMethod
from aiogram.types import Update
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web
from pydantic import ValidationError

from bot.metrics import CONTENT_TYPE
from bot.session import PollingConflicts

if TYPE_CHECKING:
    from bot.app import App
    from bot.conversations import Store

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
HEALTH_TTL = 10.0  # seconds a getMe result is reused, so health checks do not hammer Telegram
CHECK_TIMEOUT = 5.0
REFUSED_LOG_EVERY = 60.0  # seconds between log lines about webhook requests with a wrong secret


class WebhookHandler(SimpleRequestHandler):
    """aiogram's handler, with a constant-time secret check on bytes that never fails open.

    aiogram compares `str`s with `secrets.compare_digest`, which raises `TypeError` (a 500) on a
    non-ASCII header and lets everything in when the secret is empty. Here a missing secret
    refuses every request, the body is only read once the secret matched, malformed updates get
    400 instead of a 500, and closing does not close the bot's session: the runner does that after
    the answers in progress have been drained.
    """

    def __init__(
        self,
        dispatcher: Dispatcher,
        bot: Bot,
        *,
        secret_token: str,
        max_updates: int,
        **data: Any,
    ) -> None:
        super().__init__(
            dispatcher, bot, handle_in_background=True, secret_token=secret_token, **data
        )
        self._secret = secret_token.encode()
        self._slots = asyncio.Semaphore(max_updates)
        self.ready = False  # until start-up is done, updates get 503 and Telegram retries later
        self._refused = 0  # requests with a wrong secret not logged yet
        self._refused_logged = -math.inf

    def verify_secret(self, telegram_secret_token: str, bot: Bot) -> bool:
        given = telegram_secret_token.encode("utf-8", "surrogateescape")
        return bool(self._secret) and hmac.compare_digest(given, self._secret)

    async def close(self) -> None:
        """Nothing to close here; the bot's session outlives the web server."""

    async def handle(self, request: web.Request) -> web.Response:
        bot = await self.resolve_bot(request)
        if not self.verify_secret(request.headers.get(SECRET_HEADER, ""), bot):
            self._refused += 1  # a scanner can send thousands: the log says so once a minute
            now = time.monotonic()
            if now - self._refused_logged >= REFUSED_LOG_EVERY:
                log.warning(
                    "webhook: %d request(s) with a wrong or missing secret refused", self._refused
                )
                self._refused, self._refused_logged = 0, now
            return web.Response(status=401, text="Unauthorized")
        if not self.ready:
            return web.Response(status=503, text="Starting")
        try:
            data = await request.json(loads=bot.session.json_loads)  # 413 past client_max_size
            update = Update.model_validate(data, context={"bot": bot})
        except (ValueError, ValidationError):
            return web.Response(status=400, text="Not a Telegram update")
        await self._slots.acquire()
        task = asyncio.create_task(self._feed(bot, update), name=f"update:{update.update_id}")
        self._background_feed_update_tasks.add(task)
        task.add_done_callback(self._background_feed_update_tasks.discard)
        return web.json_response({})

    __call__ = handle

    async def _feed(self, bot: Bot, update: Update) -> None:
        try:
            result = await self.dispatcher.feed_update(bot, update, **self.data)
            if isinstance(result, TelegramMethod):
                await self.dispatcher.silent_call_request(bot=bot, result=result)
        except Exception:
            log.exception("update %s: handling failed", update.update_id)
        finally:
            self._slots.release()


class Health:
    """Whether Telegram answers `getMe` (cached for `ttl` s) and storage answers a ping."""

    def __init__(
        self,
        bot: Bot,
        store: Store,
        ttl: float = HEALTH_TTL,
        conflicts: PollingConflicts | None = None,
    ) -> None:
        self.bot = bot
        self.store = store
        self.conflicts = conflicts  # another process polling with the token
        self.ttl = ttl
        self._telegram: tuple[float, str] | None = None  # (when, result)
        self._storage_ok = True
        self._lock = asyncio.Lock()

    async def check(self) -> dict[str, str]:
        telegram, storage = await asyncio.gather(self._check_telegram(), self._check_storage())
        if telegram == "ok" and self.conflicts is not None and self.conflicts.recent():
            telegram = "conflict"  # reachable, but updates are split with another process
        return {"telegram": telegram, "storage": storage}

    async def _check_telegram(self) -> str:
        async with self._lock:  # concurrent checks share one getMe
            now = time.monotonic()
            if self._telegram is not None and now - self._telegram[0] < self.ttl:
                return self._telegram[1]
            try:
                await self.bot.get_me(request_timeout=int(CHECK_TIMEOUT))
                result = "ok"
            except TelegramUnauthorizedError:
                result = "unauthorized"
            except (TimeoutError, TelegramAPIError, OSError) as error:
                log.warning("health: Telegram did not answer getMe (%s)", type(error).__name__)
                result = "unreachable"
            self._telegram = (time.monotonic(), result)
            return result

    async def _check_storage(self) -> str:
        try:
            ok = await asyncio.wait_for(self.store.ping(), CHECK_TIMEOUT)
        except Exception as error:
            log.warning("health: storage did not answer (%s)", type(error).__name__)
            ok = False
        if ok != self._storage_ok:  # said once per change, not at every check
            if ok:
                log.info("health: storage is available again")
            else:
                log.warning(
                    "health: storage is unavailable (no answer, or under 1 MB free on its disk)"
                )
            self._storage_ok = ok
        return "ok" if ok else "unavailable"


class WebServer:
    """The aiohttp app and its listener; `webhook=True` adds the webhook route."""

    def __init__(self, app: App, *, webhook: bool, max_updates: int = 500) -> None:
        settings = app.settings
        self.app = app
        self.host = settings.web_host
        self.port = settings.web_port  # the real one once started (WEB_PORT=0: any free port)
        self.health = Health(
            app.bot, app.store, conflicts=getattr(app.bot.session, "conflicts", None)
        )
        self.webhook: WebhookHandler | None = None
        self.web = web.Application(client_max_size=settings.web_max_body)
        self.web.router.add_get("/healthz", self._healthz)
        self.web.router.add_get("/metrics", self._metrics)
        if webhook:
            self.webhook = WebhookHandler(
                app.dispatcher,
                app.bot,
                secret_token=settings.webhook_secret.get_secret_value(),
                max_updates=max_updates,
            )
            self.webhook.register(self.web, path=settings.webhook_path)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Listen; an `OSError` (say, the port is taken) is left to the caller."""
        runner = web.AppRunner(self.web, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        if runner.addresses:
            self.port = int(runner.addresses[0][1])
        paths = "/healthz, /metrics" + (
            f", {self.app.settings.webhook_path}" if self.webhook else ""
        )
        log.info("web server on %s:%d (%s)", self.host, self.port, paths)

    def set_ready(self) -> None:
        """Start-up is done: webhook updates are taken from now on."""
        if self.webhook is not None:
            self.webhook.ready = True

    async def stop(self) -> None:
        """Stop listening; answers already running go on (the runner drains them)."""
        if self.webhook is not None:
            self.webhook.ready = False
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _healthz(self, request: web.Request) -> web.Response:
        parts = await self.health.check()
        ok = all(value == "ok" for value in parts.values())
        body = {"ok": ok, **parts, "mode": self.app.settings.bot_mode}
        return web.json_response(body, status=200 if ok else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self.app.metrics.render(), headers={"Content-Type": CONTENT_TYPE})
