"""Short service messages (queued, refused, command answers), paced like everything else."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, Literal

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramRetryAfter,
)
from aiogram.methods import (
    DeleteMessage,
    EditMessageReplyMarkup,
    EditMessageText,
    SendMessage,
    TelegramMethod,
)
from aiogram.types import InlineKeyboardMarkup, Message

from bot.streaming import Pacer, calls
from bot.streaming.refusals import cannot_write
from bot.streaming.render import Part
from bot.streaming.reply import Leftover

log = logging.getLogger(__name__)


class Notifier:
    """Plain-text notices, through the pacer: sent as replies (again after a 429), edited and
    deleted."""

    def __init__(self, bot: Bot, pacer: Pacer) -> None:
        self.bot = bot
        self.pacer = pacer

    async def reply(
        self,
        chat_id: int,
        text: str,
        *,
        reply_to: int | None = None,
        thread_id: int | None = None,
        markup: InlineKeyboardMarkup | None = None,
    ) -> Message | None:
        call = SendMessage(
            chat_id=chat_id,
            text=text,
            message_thread_id=thread_id,
            reply_parameters=calls.replying_to(reply_to or None),
            reply_markup=markup,
        )
        try:
            sent: Message | None = await self._paced(chat_id, call, final=True, tries=3)
        except TelegramAPIError as e:
            log.warning("chat %s: could not send a notice: %s", chat_id, e)
            return None
        return sent

    async def _paced(
        self, chat_id: int, call: TelegramMethod[Any], *, final: bool, tries: int
    ) -> Any:
        """Make a call through the pacer, again after a 429, `tries` times at most: its
        result, or None if every try met a 429. Other refusals are raised."""
        for _ in range(tries):
            async with self.pacer.call(chat_id, final=final):
                try:
                    return await self.bot(call)
                except TelegramRetryAfter as e:
                    self.pacer.penalize(chat_id, float(e.retry_after))
        return None

    async def typing(self, message: Message) -> None:
        """Show "typing…" in a message's chat, now (not inside a `retry_after` window); errors
        are ignored: it is a hint."""
        if self.pacer.paused(message.chat.id):
            return
        try:
            await self.bot.send_chat_action(
                message.chat.id, "typing", message_thread_id=message.message_thread_id
            )
        except (TelegramAPIError, OSError, TimeoutError) as e:
            log.debug("chat %s: typing indicator failed: %s", message.chat.id, e)

    async def remove_keyboard(self, chat_id: int, message_id: int) -> None:
        """Take the buttons off a message (a Stop button left by a crash); errors are ignored."""
        await self.edit(chat_id, message_id, None, None)

    async def edit(
        self,
        chat_id: int,
        message_id: int,
        text: str | None,
        markup: InlineKeyboardMarkup | None,
    ) -> None:
        """Edit a message's text (or, with `text` None, only its buttons) through the pacer."""
        if text is None:
            call: TelegramMethod[Any] = EditMessageReplyMarkup(
                chat_id=chat_id, message_id=message_id, reply_markup=markup
            )
        else:
            call = EditMessageText(
                text=text, chat_id=chat_id, message_id=message_id, reply_markup=markup
            )
        await self._edit(chat_id, message_id, call)

    async def edit_part(self, chat_id: int, message_id: int, part: Part) -> bool:
        """Show `part` (text and formatting) in a message, without buttons; whether it did (or
        the message showed that already)."""
        return await self._edit(
            chat_id, message_id, calls.edit(chat_id, message_id, part, markup=None)
        )

    async def _edit(self, chat_id: int, message_id: int, call: TelegramMethod[Any]) -> bool:
        """Make an edit through the pacer (again after a 429); whether it was made (or had
        been already)."""
        try:
            return await self._paced(chat_id, call, final=True, tries=3) is not None
        except TelegramAPIError as e:
            log.debug("chat %s: could not edit message %s: %s", chat_id, message_id, e)
            return "not modified" in str(e)

    async def delete(self, chat_id: int, message_id: int) -> bool:
        """Delete a notice that no longer holds; errors are ignored. Tidying up waits behind
        finals and first texts (an intermediate update's priority). False if the chat has shut
        the bot out (blocked it, removed it, muted it): the notice is still there."""
        call = DeleteMessage(chat_id=chat_id, message_id=message_id)
        try:
            await self._paced(chat_id, call, final=False, tries=2)
        except TelegramAPIError as e:
            if cannot_write(e):
                return False
            log.debug("chat %s: could not delete message %s: %s", chat_id, message_id, e)
        return True

    async def put_right(self, left: Leftover) -> int | Literal[False] | None:
        """Show what a chat that shut the bot out was left to show, now that it let the bot
        back in: an answer's message as it ended, a part it never showed (the id of the message
        sent is returned), a notice deleted. False if the chat refused it (it shut the bot out
        again): it is still to be done. Other errors are logged, and it is done with."""
        chat_id = left.chat_id
        call: TelegramMethod[Any]
        if left.message_id is None:
            assert left.part is not None
            reply = calls.replying_to(left.reply_to)
            call = calls.send(
                chat_id, left.part, reply_parameters=reply, thread_id=left.thread_id, markup=None
            )
        elif left.part is None:
            call = DeleteMessage(chat_id=chat_id, message_id=left.message_id)
        else:
            call = calls.edit(chat_id, left.message_id, left.part, markup=None)
        try:
            done = await self._paced(chat_id, call, final=True, tries=3)
        except TelegramAPIError as e:
            if cannot_write(e):
                return False
            refused = isinstance(e, TelegramBadRequest) and "not modified" not in e.message
            if refused and left.part and left.part.entities:
                # The formatting, maybe: as the reply engine does, plain text then.
                return await self.put_right(replace(left, part=Part(left.part.text)))
            log.info("chat %s: could not put a message right: %s", chat_id, e)
            return None
        sent = getattr(done, "message_id", None) if left.message_id is None else None
        return sent if isinstance(sent, int) else None

    async def to(self, message: Message, text: str, **kw: object) -> Message | None:
        """Reply to a user's message (in its topic)."""
        thread = message.message_thread_id if message.is_topic_message else None
        markup = kw.get("markup")
        return await self.reply(
            message.chat.id,
            text,
            reply_to=message.message_id,
            thread_id=thread,
            markup=markup if isinstance(markup, InlineKeyboardMarkup) else None,
        )
