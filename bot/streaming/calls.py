"""The Bot API calls a streamed answer makes again and again, built and read back cheaply.

They are built unvalidated, as copies of a template with the new values put in: those come from
the reply engine and the renderer, whose entities are already the Bot API's dicts. Validating
them into aiogram's models only for the session to dump them again was half of a call's cost in
the bot, and even an unvalidated model built anew fills and copies each of its defaults (two
dozen fields for a send).

Of what Telegram returns, the reply engine reads only the id of the message it sent. aiogram
would parse the whole `Message` back, its text's entities included: about 0.5 ms for a part with
a few dozen entities, at every send and at every edit of a group's answer.
"""

from __future__ import annotations

from typing import Any, cast

from aiogram.methods import EditMessageText, SendMessage, SendMessageDraft, TelegramMethod
from aiogram.types import InlineKeyboardMarkup, ReplyParameters
from pydantic import BaseModel, ConfigDict

from bot.streaming.render import Part


class SentMessage(BaseModel):
    """A message as the reply engine reads it back: its id, the rest ignored."""

    model_config = ConfigDict(extra="ignore")

    message_id: int


# The same calls, read back as `SentMessage` (aiogram parses a reply as the method's
# `__returning__`); typed as such by the casts below, which are strings: `TelegramMethod[...]` is
# a pydantic generic, built anew at run time whenever its weakly cached class has been collected.
class _SendPart(SendMessage):
    __returning__ = SentMessage  # type: ignore[assignment]


class _EditPart(EditMessageText):
    __returning__ = SentMessage | bool


_SEND = _SendPart.model_construct(chat_id=0, text="")
_EDIT = _EditPart.model_construct(text="")
_DRAFT = SendMessageDraft.model_construct(
    chat_id=0, draft_id=0, text="", can_stop=True, keep_on_stop=True
)


def _entities(part: Part) -> Any:
    return list(part.entities) or None  # the Bot API's dicts, dumped as they are


def replying_to(message_id: int | None) -> ReplyParameters | None:
    """A reply to that message, sent even if the message was deleted meanwhile (None: not a
    reply)."""
    if message_id is None:
        return None
    return ReplyParameters(message_id=message_id, allow_sending_without_reply=True)


def send(
    chat_id: int,
    part: Part,
    *,
    reply_parameters: ReplyParameters | None,
    thread_id: int | None,
    markup: InlineKeyboardMarkup | None,
) -> TelegramMethod[SentMessage]:
    call = _SEND.model_copy(
        update={
            "chat_id": chat_id,
            "text": part.text,
            "entities": _entities(part),
            "reply_parameters": reply_parameters,
            "message_thread_id": thread_id,
            "reply_markup": markup,
        }
    )
    return cast("TelegramMethod[SentMessage]", call)


def edit(
    chat_id: int, message_id: int, part: Part, *, markup: InlineKeyboardMarkup | None
) -> TelegramMethod[SentMessage | bool]:
    call = _EDIT.model_copy(
        update={
            "chat_id": chat_id,
            "message_id": message_id,
            "text": part.text,
            "entities": _entities(part),
            "reply_markup": markup,
        }
    )
    return cast("TelegramMethod[SentMessage | bool]", call)


def draft(chat_id: int, draft_id: int, part: Part, *, thread_id: int | None) -> SendMessageDraft:
    return _DRAFT.model_copy(
        update={
            "chat_id": chat_id,
            "draft_id": draft_id,
            "text": part.text,
            "entities": _entities(part),
            "message_thread_id": thread_id,
        }
    )
