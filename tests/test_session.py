"""The Bot API session keeps the response models aiogram builds for every call."""

from __future__ import annotations

import gc
import weakref
from typing import Any

from aiogram.methods import Response, SendMessage
from aiogram.types import Message

from bot.session import KeepResponseModels, make_session


async def test_each_result_types_response_model_is_built_once_and_kept() -> None:
    session = make_session("http://127.0.0.1:9")
    keepers = [m for m in session.middleware[:] if isinstance(m, KeepResponseModels)]
    assert len(keepers) == 1
    keeper = keepers[0]
    calls: list[Any] = []

    async def make_request(bot: Any, method: Any) -> Any:
        calls.append(method)
        return "sent"

    method = SendMessage(chat_id=1, text="hi")
    assert await keeper(make_request, None, method) == "sent"
    assert await keeper(make_request, None, method) == "sent"
    assert calls == [method, method]
    model = keeper.models[Message]
    assert model is Response[Message]
    alive = weakref.ref(model)
    del model
    gc.collect()
    assert alive() is Response[Message]  # pydantic's cache alone holds it only weakly
    await session.close()
