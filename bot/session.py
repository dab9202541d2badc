"""The HTTP session to the Bot API: aiogram's own, with its response models kept alive.

For every call aiogram parses the reply as `Response[<the method's result type>]`, a pydantic
generic model. pydantic caches such models only weakly, so once a garbage collection frees one
the next call builds it again — a few milliseconds each time, which measured as the largest
single cost of a streamed answer after the model's own stream. Holding one reference per result
type makes each of them a one-time cost.
"""

from __future__ import annotations

from typing import Any

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.client.telegram import TelegramAPIServer
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType


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


def make_session(api_url: str) -> AiohttpSession:
    session = AiohttpSession(api=TelegramAPIServer.from_base(api_url))
    session.middleware(KeepResponseModels())
    return session
