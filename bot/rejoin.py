"""Messages sent together as one thing, asked as one question: a long text the app cut into
pieces, and messages forwarded at once.

A message holds at most 4,096 characters. Pasting more, the user sends one text, but the app cuts
it into pieces and sends each as a message of its own: Telegram Desktop at a break after half of
the limit, the mobile apps every 4,096 characters. Forwarding several messages at once (a bit of
a conversation, to have it summarised) likewise arrives as a message each. Answered one by one,
a pasted article gets an answer per piece, the first about half of the text, and five forwarded
messages five answers.

So a private message that may be the first of several waits a moment before it is asked, and the
sender's next messages in the chat join it:
- a message long enough to be a piece (`LONG`, 2,000 UTF-16 units) waits `JOIN_WAIT` (1.5 s by
  default). A piece shorter than that is the last one, and ends the wait at once; after a long
  one, the wait starts again.
- a forwarded message waits `FORWARDS_WAIT` (0.5 s) at most: Telegram creates the messages of
  one forward together, so they come together. Joined, each forwarded text is framed with its
  author ("Ann wrote: > …"), so the model reads a conversation; a message forwarded alone is asked
  as it reads, as before.
The question is asked as the first message, which is where a paste (and usually the question)
begins.

A comment typed with a forward comes first, and nothing tells, when it arrives, that a forward
follows: it is asked at once, as any message. The forwarded messages then join it if they are
the sender's next messages and were sent within `COMMENT_GAP` of it (Telegram's dates, so a
slow delivery does not matter): the comment is amended (`Joined.amends`), and its answer, if it
has started, is withdrawn and written again for all of it (`Conversations.amend`).

At shutdown, messages still waiting are asked at once, and so told they were not answered.

Private chats only: in a group the bot sees a message only if it mentions the bot. Messages are
joined in memory: with replicas behind a webhook, those that reach different replicas are answered
apart. An edit of a piece edits the joined question, while the bot remembers the join (the latest
`KEEP` pieces, until a restart).
"""

from __future__ import annotations

import asyncio
import bisect
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Final, Literal

from aiogram.types import (
    Message,
    MessageOriginChannel,
    MessageOriginChat,
    MessageOriginHiddenUser,
    MessageOriginUser,
)

from bot.markup import blockquote
from bot.streaming.render import utf16_len
from bot.streaming.split import TELEGRAM_LIMIT
from bot.texts.framing import framing

LONG = 2000  # UTF-16 units: Telegram Desktop's pieces are at least half of the limit
FORWARDS_WAIT = 0.5  # seconds: the messages of one forward are created together
COMMENT_GAP = 1  # seconds (Telegram's dates are whole seconds) from a comment to its forward
KEEP = 1000  # pieces of joined questions remembered, for their edits

HELD: Final = "held"

_Key = tuple[int, int, int | None]  # chat, sender, topic


@dataclass(slots=True)
class Joined:
    """Messages asked as one question, in the order they were sent, with their texts."""

    messages: list[Message] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    more: asyncio.Event = field(default_factory=asyncio.Event)  # set as one more joins
    amends: bool = False  # the first message was asked already, alone: it is to be amended

    def add(self, message: Message, text: str) -> None:
        # In the order they were sent: two updates' handlers can overtake each other.
        at = bisect.bisect(self.ids, message.message_id)
        self.messages.insert(at, message)
        self.texts.insert(at, text)

    @property
    def first(self) -> Message:
        return self.messages[0]

    @property
    def ids(self) -> list[int]:
        return [message.message_id for message in self.messages]

    @property
    def text(self) -> str:
        if len(self.texts) == 1:
            return self.texts[0]
        lang = self.first.from_user.language_code if self.first.from_user else None
        authors = [forwarded_from(message, lang) for message in self.messages]
        if not any(authors):  # the pieces of one text
            joined = self.texts[0]
            for before, text in zip(self.messages, self.texts[1:], strict=False):
                # The phone apps cut every 4,096 characters, inside a word as often as not.
                joined += ("" if utf16_len(before.text or "") == TELEGRAM_LIMIT else "\n") + text
            return joined
        return "\n\n".join(
            f"{framing(lang, 'wrote', author=author)}\n{blockquote(text)}" if author else text
            for author, text in zip(authors, self.texts, strict=True)
        )

    def rest(self) -> Joined:
        """The messages after the first, joined without it."""
        rest = Joined()
        for message, text in zip(self.messages[1:], self.texts[1:], strict=True):
            rest.add(message, text)
        return rest


class Rejoiner:
    def __init__(
        self, wait: float, on_hold: Callable[[Message], Awaitable[object]] | None = None
    ) -> None:
        self.wait = wait
        self.on_hold = on_hold  # told of a message that waits ("typing…" meanwhile)
        self._hints: set[asyncio.Task[object]] = set()
        self._held: dict[_Key, Joined] = {}
        self._joined: OrderedDict[tuple[int, int], Joined] = OrderedDict()  # by (chat, message)
        self._latest: OrderedDict[_Key, Joined] = OrderedDict()  # asked at once: a comment?
        self._holding: set[asyncio.Future[None]] = set()  # set when a held message is let go
        self._closing = False

    async def join(self, message: Message, text: str) -> Joined | None:
        """The question `message` starts: itself, or (if long or forwarded) with the messages
        that follow it, which this waits for. None when `message` is one of those: it was joined
        to the question of an earlier message."""
        key = _key(message)
        held = self._held.get(key)
        if held is not None:
            held.add(message, text)
            held.more.set()
            return None
        joining = self.wait > 0 and not self._closing
        comment = self._latest.pop(key, None)
        joined = Joined()
        forwarded = message.forward_origin is not None
        if joining and forwarded and comment is not None and _comment(comment.first, message):
            joined.amends = True
            joined.add(comment.first, comment.texts[0])
        joined.add(message, text)
        pieces = not forwarded and _long(message)  # a long text cut into pieces, maybe
        if not joining or not (pieces or forwarded):
            if joining and not forwarded:  # a comment, if a forward follows
                self._latest[key] = joined
                while len(self._latest) > KEEP:
                    self._latest.popitem(last=False)
            return joined
        wait = self.wait if pieces else min(self.wait, FORWARDS_WAIT)
        self._held[key] = joined
        if self.on_hold is not None:
            hint = asyncio.ensure_future(self.on_hold(message))
            self._hints.add(hint)
            hint.add_done_callback(self._hints.discard)
        let_go = asyncio.get_running_loop().create_future()  # `flush` waits for it
        self._holding.add(let_go)
        try:
            while not self._closing:
                joined.more.clear()
                try:
                    await asyncio.wait_for(joined.more.wait(), wait)
                except TimeoutError:
                    break
                latest = max(joined.messages, key=lambda m: m.message_id)
                if pieces and latest.forward_origin is None and not _long(latest):
                    break  # the last piece: a piece before it fills a message
        finally:
            del self._held[key]
            self._holding.discard(let_go)
            let_go.set_result(None)  # its handler asks it before `flush` wakes: no await till then
        if len(joined.messages) > 1:
            for message_id in joined.ids:
                self._joined[(message.chat.id, message_id)] = joined
            while len(self._joined) > KEEP:
                self._joined.popitem(last=False)
        return joined

    async def flush(self, within: float) -> None:
        """At shutdown: messages still waiting for the rest of theirs are asked at once (and so
        told they were not answered, as questions that have not started are); this waits until
        they are asked, which `Conversations.drain` then waits for as for any other. Messages
        arriving from now on are asked as they come."""
        self._closing = True
        for joined in self._held.values():
            joined.more.set()
        if self._holding:
            await asyncio.wait(set(self._holding), timeout=within)

    def separate(self, joined: Joined) -> Joined:
        """The messages after an amended question's comment, on their own: the comment was
        answered before they came (`Conversations.amend` said it was too late)."""
        rest = joined.rest()
        for message in joined.messages:
            self._joined.pop((message.chat.id, message.message_id), None)
        if len(rest.messages) > 1:
            for message in rest.messages:
                self._joined[(message.chat.id, message.message_id)] = rest
        return rest

    def edited(self, message: Message, text: str) -> Joined | Literal["held"] | None:
        """An edit of a piece: `HELD` when its question is not asked yet (the edit is in it), the
        joined question as it now reads when asked already, None when not a piece."""
        held = self._held.get(_key(message))
        joined = held if held is not None and message.message_id in held.ids else None
        joined = joined or self._joined.get((message.chat.id, message.message_id))
        if joined is None:
            return None
        joined.texts[joined.ids.index(message.message_id)] = text
        return HELD if joined is held else joined


def forwarded_from(message: Message, lang: str | None = None) -> str | None:
    """Who wrote a forwarded message, as Telegram tells (None: not forwarded); one Telegram
    does not name is named in `lang`, as the model is told of it."""
    origin = message.forward_origin
    if isinstance(origin, MessageOriginUser):
        return origin.sender_user.full_name
    if isinstance(origin, MessageOriginHiddenUser):
        return origin.sender_user_name
    if isinstance(origin, MessageOriginChat):
        return origin.author_signature or origin.sender_chat.title or framing(lang, "a_chat")
    if isinstance(origin, MessageOriginChannel):
        return origin.author_signature or origin.chat.title or framing(lang, "a_channel")
    return None if origin is None else framing(lang, "someone")


def _comment(comment: Message, forward: Message) -> bool:
    """Whether `comment`, the sender's latest message, was typed with `forward`."""
    return forward.message_id > comment.message_id and timedelta(0) <= (
        forward.date - comment.date
    ) <= timedelta(seconds=COMMENT_GAP)


def _long(message: Message) -> bool:
    """Long enough to be a piece of a longer text, as sent (before it is made Markdown)."""
    return utf16_len(message.text or "") >= LONG


def _key(message: Message) -> _Key:
    sender = message.from_user.id if message.from_user else message.chat.id
    return message.chat.id, sender, message.message_thread_id
