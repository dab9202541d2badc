"""A long text that a Telegram app sent as several messages, asked as one question.

A message holds at most 4,096 characters. Pasting more, the user sends one text, but the app cuts
it into pieces and sends each as a message of its own: Telegram Desktop at a break after half of
the limit, the mobile apps every 4,096 characters. Answered piece by piece, a pasted article with
"summarise this" on top gets an answer per piece, the first about half of the text.

So a private message long enough to be such a piece (`LONG`, 2,000 UTF-16 units) waits a moment
(`LONG_MESSAGE_WAIT`, 1.5 s by default) before it is asked: the sender's next text messages in the
chat join it, until one short enough to be the last piece arrives (then at once) or the moment
passes with no piece. The question is then the pieces' texts, line after line, asked as the first
piece, which is where the paste (and usually the question) begins.

Private chats only: in a group the bot sees the pieces after the first only if each mentions it.
Pieces are joined in memory: with replicas behind a webhook, pieces that reach different replicas
are answered apart. An edit of a piece edits the joined question, while the bot remembers the
join (the latest `KEEP` pieces, until a restart).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final, Literal

from aiogram.types import Message

from bot.streaming.render import utf16_len

LONG = 2000  # UTF-16 units: Telegram Desktop's pieces are at least half of 4,096
KEEP = 1000  # pieces of joined questions remembered, for their edits

HELD: Final = "held"

_Key = tuple[int, int, int | None]  # chat, sender, topic


@dataclass(slots=True)
class Joined:
    """Messages asked as one question: the first one's, with all their texts."""

    first: Message
    ids: list[int]
    texts: list[str]
    more: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def text(self) -> str:
        return "\n".join(self.texts)


class Rejoiner:
    def __init__(self, wait: float) -> None:
        self.wait = wait
        self._held: dict[_Key, Joined] = {}
        self._joined: OrderedDict[tuple[int, int], Joined] = OrderedDict()  # by (chat, message)

    async def join(self, message: Message, text: str) -> Joined | None:
        """The question `message` starts: itself, or (if long) with the pieces that follow it,
        which this waits for. None when `message` is one of those pieces: it was joined to the
        question of an earlier message."""
        key = _key(message)
        held = self._held.get(key)
        if held is not None:
            held.ids.append(message.message_id)
            held.texts.append(text)
            held.more.set()
            return None
        joined = Joined(message, [message.message_id], [text])
        if self.wait <= 0 or utf16_len(text) < LONG:
            return joined
        self._held[key] = joined
        try:
            while True:
                joined.more.clear()
                try:
                    await asyncio.wait_for(joined.more.wait(), self.wait)
                except TimeoutError:
                    break
                if utf16_len(joined.texts[-1]) < LONG:
                    break  # the last piece: a piece before it fills a message
        finally:
            del self._held[key]
        if len(joined.ids) > 1:
            for message_id in joined.ids:
                self._joined[(message.chat.id, message_id)] = joined
            while len(self._joined) > KEEP:
                self._joined.popitem(last=False)
        return joined

    def edited(self, message: Message, text: str) -> Joined | Literal["held"] | None:
        """An edit of a piece: `HELD` when its question is not asked yet (the edit is in it), the
        joined question as it now reads when asked already, None when not a piece."""
        key = (message.chat.id, message.message_id)
        held = self._held.get(_key(message))
        joined = held if held is not None and message.message_id in held.ids else None
        joined = joined or self._joined.get(key)
        if joined is None:
            return None
        joined.texts[joined.ids.index(message.message_id)] = text
        return HELD if joined is held else joined


def _key(message: Message) -> _Key:
    sender = message.from_user.id if message.from_user else message.chat.id
    return message.chat.id, sender, message.message_thread_id
