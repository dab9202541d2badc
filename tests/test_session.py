"""The Bot API session keeps the response models aiogram builds for every call."""

from __future__ import annotations

import gc
import weakref
from typing import Any

from aiogram.methods import Response, SendMessage
from aiogram.types import Message
from pydantic import BaseModel

from bot.session import KeepResponseModels, make_session
from bot.streaming import calls as streaming_calls
from bot.streaming.calls import SentMessage
from bot.streaming.render import Part


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


def test_building_a_streaming_call_builds_no_generic_model(monkeypatch: Any) -> None:
    """`TelegramMethod[SentMessage]` at run time is a pydantic generic class, which pydantic
    caches only weakly: after a garbage collection every call would build it again (~2 ms)."""
    subscripted: list[Any] = []
    original = BaseModel.__class_getitem__

    def counting(cls: Any, params: Any) -> Any:
        subscripted.append((cls, params))
        return original.__func__(cls, params)  # type: ignore[attr-defined]

    monkeypatch.setattr(BaseModel, "__class_getitem__", classmethod(counting))
    part = Part("hi", ({"type": "bold", "offset": 0, "length": 2},))
    streaming_calls.send(5, part, reply_parameters=None, thread_id=None, markup=None)
    streaming_calls.edit(5, 9, part, markup=None)
    streaming_calls.draft(5, 7, part, thread_id=None)
    assert subscripted == []


async def test_streaming_calls_go_as_json_and_arrive_as_aiogram_would_send_them() -> None:
    """Sends, drafts and edits go as JSON bodies; the server gets the same parameters as from
    aiogram's own form encoding (empty values left out, defaults resolved), also when a call is
    built by the reply engine (`bot.streaming.calls`: unvalidated, with the renderer's entity
    dicts, reading back only the message's id)."""
    from aiogram import Bot
    from aiogram.client.default import DefaultBotProperties
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer
    from aiogram.types import (
        InlineKeyboardButton,
        InlineKeyboardMarkup,
        MessageEntity,
        ReplyParameters,
    )

    from tests.fakes.telegram import FakeTelegram

    token = "123456:TEST-token-for-fake-telegram"
    tg = FakeTelegram(
        token=token, private_burst=100, private_per_second=100.0, global_per_second=100
    )
    await tg.start()
    tg.send_user_message(5, "hi")
    entities = [
        MessageEntity(type="bold", offset=0, length=5),
        MessageEntity(type="text_link", offset=6, length=5, url="https://example.com"),
        MessageEntity(type="pre", offset=12, length=4, language="python"),
    ]
    markup = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="⏹ Stop", callback_data="stop:1")]]
    )
    dicts = [e.model_dump(exclude_none=True) for e in entities]
    sent: dict[str, list[Any]] = {}
    for name, session in (
        ("json", make_session(tg.base_url)),
        ("form", AiohttpSession(api=TelegramAPIServer.from_base(tg.base_url))),
        ("unvalidated", make_session(tg.base_url)),  # built by the reply engine
        # ... and through aiogram's form encoding, which the session falls back to
        ("unvalidated form", AiohttpSession(api=TelegramAPIServer.from_base(tg.base_url))),
    ):
        bot = Bot(token, session=session, default=DefaultBotProperties(protect_content=True))
        first = len(tg.calls)
        reply = ReplyParameters(message_id=1, allow_sending_without_reply=True)
        if name.startswith("unvalidated"):
            part = Part("Hello world code", tuple(dicts))
            sent_back = await bot(
                streaming_calls.send(5, part, reply_parameters=reply, thread_id=None, markup=markup)
            )
            assert isinstance(sent_back, SentMessage)  # read back as the id alone
            await bot(streaming_calls.draft(5, 7, part, thread_id=None))
            edited = Part("Hello world code!", tuple(dicts))
            edit = streaming_calls.edit(5, sent_back.message_id, edited, markup=None)
            assert isinstance(await bot(edit), SentMessage)
            message_id = sent_back.message_id
        else:
            message = await bot.send_message(
                chat_id=5,
                text="Hello world code",
                entities=entities,
                reply_parameters=reply,
                reply_markup=markup,
            )
            await bot.send_message_draft(
                chat_id=5,
                draft_id=7,
                text="Hello world code",
                entities=entities,
                can_stop=True,
                keep_on_stop=True,
            )
            await bot.edit_message_text(
                chat_id=5,
                message_id=message.message_id,
                text="Hello world code!",
                entities=entities,
            )
            message_id = message.message_id
        assert tg.message(5, message_id).text == "Hello world code!"
        await bot.send_chat_action(5, "typing")
        calls = tg.calls[first:]
        assert all(c.status == 200 for c in calls), [(c.method, c.status) for c in calls]
        sent[name] = calls
        await session.close()
    await tg.stop()

    assert [c.content_type for c in sent["json"]] == ["application/json"] * 3 + [
        "application/x-www-form-urlencoded"
    ]

    def params(calls: list[Any]) -> list[dict[str, Any]]:
        return [{k: v for k, v in c.params.items() if k != "message_id"} for c in calls]

    for name in ("json", "unvalidated", "unvalidated form"):
        assert params(sent[name]) == params(sent["form"]), name
        assert [c.method for c in sent[name]] == [c.method for c in sent["form"]]
    assert sent["json"][0].params["protect_content"] is True  # a bot default, resolved
    assert "link_preview_options" not in sent["json"][0].params  # an unset default, left out
