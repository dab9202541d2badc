"""The HTTP session to the Bot API: aiogram's own, with two costs of a streamed answer removed.

For every call aiogram parses the reply as `Response[<the method's result type>]`, a pydantic
generic model. pydantic caches such models only weakly, so once a garbage collection frees one
the next call builds it again — a few milliseconds each time, which measured as the largest
single cost of a streamed answer after the model's own stream. Holding one reference per result
type makes each of them a one-time cost.

aiogram sends every call as a form: it dumps the method, walks the dump in Python to drop empty
values, turns nested values (the formatting entities) into JSON strings and URL-encodes the lot.
For a draft or an edit with a few dozen entities that was most of the call's CPU time in the bot.
The Bot API takes JSON bodies too: the three calls a streamed answer makes again and again go as
JSON; every other call goes as aiogram sends it.

A reply that is not the Bot API's JSON (the HTML "502 Bad Gateway" page Telegram's front end
returns now and then) is a network error here: aiogram raises `ClientDecodeError`, which is not a
`TelegramAPIError`, so every caller that retries network errors would have let it through.
"""

from __future__ import annotations

import logging
import time
from typing import Any, cast

from aiogram import Bot
from aiogram.client.default import Default
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import ClientDecodeError, TelegramConflictError, TelegramNetworkError
from aiogram.methods import (
    EditMessageText,
    GetUpdates,
    Response,
    SendMessage,
    SendMessageDraft,
    TelegramMethod,
)
from aiogram.methods.base import TelegramType
from aiogram.types import MessageEntity
from aiohttp import ClientError, ClientTimeout

log = logging.getLogger(__name__)


class KeepResponseModels(BaseRequestMiddleware):
    """Keeps `Response[T]` alive for every result type `T` the bot has asked for."""

    def __init__(self) -> None:
        self.models: dict[Any, type[Response[Any]]] = {}

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        returning = method.__returning__
        if returning not in self.models:
            self.models[returning] = Response[returning]  # type: ignore[valid-type]
        return await make_request(bot, method)


# No file fields; the reply engine's own versions of them (`bot.streaming.calls`) included.
JSON_METHODS = (SendMessage, SendMessageDraft, EditMessageText)
_JSON_HEADERS = {"Content-Type": "application/json"}
_ENTITIES = {"entities"}


class BotAPISession(AiohttpSession):
    """aiogram's session; a streamed answer's sends, drafts and edits go as JSON bodies."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conflicts = PollingConflicts()

    async def make_request(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        timeout: int | None = None,  # noqa: ASYNC109 (aiogram's signature)
    ) -> TelegramType:
        if not issubclass(type(method), JSON_METHODS):
            return await super().make_request(bot, method, timeout)
        try:
            # The entities are left out of pydantic's dump and added as they are: the reply
            # engine passes the renderer's dicts, which pydantic would try (and fail) to
            # serialize as models one by one before falling back to plain values.
            dump = method.model_dump(warnings=False, exclude_none=True, exclude=_ENTITIES)
            params = _resolve(dump, bot)
            entities = getattr(method, "entities", None)
            if entities:
                params["entities"] = [_entity(e) for e in entities]
            body = self.json_dumps(params)
        except (TypeError, ValueError):  # a value JSON cannot hold (a date): aiogram's way
            return await super().make_request(bot, method, timeout)
        session = await self.create_session()
        url = self.api.api_url(token=bot.token, method=method.__api_method__)
        # From here on as aiogram's own `make_request`, with a JSON body instead of a form.
        try:
            async with session.post(
                url,
                data=body,
                headers=_JSON_HEADERS,
                timeout=ClientTimeout(total=self.timeout if timeout is None else timeout),
            ) as resp:
                raw_result = await resp.text()
        except TimeoutError as e:
            raise TelegramNetworkError(method=method, message="Request timeout error") from e
        except ClientError as e:
            raise TelegramNetworkError(method=method, message=f"{type(e).__name__}: {e}") from e
        response = self.check_response(
            bot=bot, method=method, status_code=resp.status, content=raw_result
        )
        return cast(TelegramType, response.result)

    def check_response(
        self, bot: Bot, method: TelegramMethod[TelegramType], status_code: int, content: str
    ) -> Response[TelegramType]:
        try:
            return super().check_response(bot, method, status_code, content)
        except ClientDecodeError as error:
            raise TelegramNetworkError(
                method=method, message=f"HTTP {status_code}: not the Bot API's JSON"
            ) from error


def _resolve(value: Any, bot: Bot) -> Any:
    """A method's dump as the Bot API takes it: empty values left out, aiogram's `Default`
    placeholders replaced by the bot's defaults (as aiogram's form encoding does)."""
    if isinstance(value, dict):
        resolved = {}
        for key, item in value.items():
            # Plain values (most of an entity's) are kept without a call: dumps of drafts with
            # dozens of entities are walked many times a second.
            if isinstance(item, dict | list | Default):
                item = _resolve(item, bot)
            if item is not None:
                resolved[key] = item
        return resolved
    if isinstance(value, list):
        return [_resolve(item, bot) for item in value if item is not None]
    if isinstance(value, Default):
        return _resolve(bot.default[value.name], bot)
    return value


def _entity(entity: MessageEntity | dict[str, Any]) -> dict[str, Any]:
    return entity if isinstance(entity, dict) else entity.model_dump(exclude_none=True)


class PollingConflicts(BaseRequestMiddleware):
    """Notices another process polling with the same token (409 Conflict on `getUpdates`):
    Telegram then hands each update to one of them, and the two keep ending each other's
    requests. aiogram retries quietly for ever; this says so once in the log, and /healthz
    reports it for `RECENT` seconds after the last one."""

    RECENT = 60.0

    def __init__(self) -> None:
        self.last: float | None = None  # when the last 409 came (monotonic)

    def recent(self) -> bool:
        return self.last is not None and time.monotonic() - self.last < self.RECENT

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        try:
            return await make_request(bot, method)
        except TelegramConflictError as error:
            if isinstance(method, GetUpdates):
                if not self.recent():
                    other = "polling"
                    if "webhook" in error.message.lower():
                        other = "running in webhook mode (it set a webhook)"
                    log.error(
                        "another process is %s with this bot token (409 Conflict): updates do "
                        "not all reach this one; stop the other one (replicas need "
                        "BOT_MODE=webhook and REDIS_URL)",
                        other,
                    )
                self.last = time.monotonic()
            raise


def make_session(api_url: str) -> BotAPISession:
    session = BotAPISession(api=TelegramAPIServer.from_base(api_url))
    session.middleware(KeepResponseModels())
    session.middleware(session.conflicts)
    return session
