"""Short service messages (queued, refused, command answers), paced like everything else."""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramForbiddenError, TelegramRetryAfter
from aiogram.methods import EditMessageReplyMarkup, EditMessageText, TelegramMethod
from aiogram.types import InlineKeyboardMarkup, Message, ReplyParameters

from bot.streaming import Pacer, calls
from bot.streaming.render import Part

log = logging.getLogger(__name__)

LEFT_CHATS = 10_000  # chats whose leftovers are remembered (`Notifier.leave`), the latest


class Notifier:
    """Plain-text notices, through the pacer: sent as replies (again after a 429), edited and
    deleted."""

    def __init__(self, bot: Bot, pacer: Pacer) -> None:
        self.bot = bot
        self.pacer = pacer
        # What chats that shut the bot out (blocked it, removed it) were left showing, by chat:
        # a notice to delete (None), or an answer's message to show as it ended, without its
        # cursor and Stop button. Tidied when the bot is let back in; in memory only.
        self._left: OrderedDict[int, list[tuple[int, Part | None]]] = OrderedDict()

    async def reply(
        self,
        chat_id: int,
        text: str,
        *,
        reply_to: int | None = None,
        thread_id: int | None = None,
        markup: InlineKeyboardMarkup | None = None,
    ) -> Message | None:
        for _ in range(3):
            async with self.pacer.call(chat_id, final=True):
                try:
                    return await self.bot.send_message(
                        chat_id=chat_id,
                        text=text,
                        message_thread_id=thread_id,
                        reply_parameters=ReplyParameters(
                            message_id=reply_to, allow_sending_without_reply=True
                        )
                        if reply_to
                        else None,
                        reply_markup=markup,
                    )
                except TelegramRetryAfter as e:
                    self.pacer.penalize(chat_id, float(e.retry_after))
                except TelegramAPIError as e:
                    log.warning("chat %s: could not send a notice: %s", chat_id, e)
                    return None
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
        """Make an edit through the pacer; whether it was made (or had been already)."""
        async with self.pacer.call(chat_id, final=True):
            try:
                await self.bot(call)
            except TelegramRetryAfter as e:
                self.pacer.penalize(chat_id, float(e.retry_after))
            except TelegramAPIError as e:
                log.debug("chat %s: could not edit message %s: %s", chat_id, message_id, e)
                return "not modified" in str(e)
            else:
                return True
        return False

    async def delete(self, chat_id: int, message_id: int) -> None:
        """Delete a notice that no longer holds; errors are ignored. Tidying up waits behind
        finals and first texts (an intermediate update's priority)."""
        for _ in range(2):
            async with self.pacer.call(chat_id, final=False):
                try:
                    await self.bot.delete_message(chat_id=chat_id, message_id=message_id)
                    return
                except TelegramRetryAfter as e:
                    self.pacer.penalize(chat_id, float(e.retry_after))
                except TelegramForbiddenError:
                    self.leave(chat_id, message_id, None)  # blocked: deleted once let back in
                    return
                except TelegramAPIError as e:
                    log.debug("chat %s: could not delete message %s: %s", chat_id, message_id, e)
                    return

    def leave(self, chat_id: int, message_id: int, part: Part | None) -> None:
        """A message the chat shut the bot out with (a cursor, a Stop button, a stale notice):
        `tidy` shows `part` in it (None: deletes it) once the bot is let back in."""
        self._left.setdefault(chat_id, []).append((message_id, part))
        self._left.move_to_end(chat_id)
        while len(self._left) > LEFT_CHATS:
            self._left.popitem(last=False)

    async def tidy(self, chat_id: int) -> int:
        """The bot is back in a chat (unblocked, added again): what it was shut out with goes,
        so no answer keeps a cursor or Stop button and no "⏳" promise stands. Returns how many
        messages it tidied."""
        left = self._left.pop(chat_id, [])
        for message_id, part in left:
            if part is None:
                await self.delete(chat_id, message_id)
            else:
                await self.edit_part(chat_id, message_id, part)
        return len(left)

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
