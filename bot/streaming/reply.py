"""The reply engine: shows a growing answer in Telegram, one paced call at a time.

It keeps the whole accumulated text, and whenever the pacer allows a call it renders the newest
snapshot into parts and reconciles them with what the chat shows: the first part that differs is
edited, a part that is not shown yet is sent. Deltas are never appended to Telegram's state, so a
skipped tick, a 429 or a retried call cannot lose or duplicate text.

In a private chat it can stream into a native draft instead (`sendMessageDraft`, Bot API 9.5+):
finished parts are sent as messages, the part being written is shown as a draft, and the final
part is sent once, formatted. A refused draft falls back to editing messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from aiogram import Bot
from aiogram.client.session.middlewares.base import NextRequestMiddlewareType
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.methods import Response, SendMessage, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import InlineKeyboardMarkup, Message, TelegramObject

from bot.streaming import calls
from bot.streaming.pacer import Pacer
from bot.streaming.refusals import cannot_write
from bot.streaming.render import Part
from bot.streaming.split import TELEGRAM_LIMIT, Segmenter

log = logging.getLogger(__name__)

CURSOR = " ▌"
TYPING_EVERY = 4.5  # Telegram shows a chat action for about 5 s
# "typing…" only once the first text is this late: an answer shown sooner needs no indicator,
# and the call it would cost.
TYPING_AFTER = 0.3
MAX_NETWORK_RETRIES = 6
# Telegram drops a draft left unchanged for about 30 s; a model can pause that long mid-answer.
DRAFT_REFRESH = 20.0
CLOSE_TIMEOUT = 900.0  # the longest a final state may wait for delivery (a long retry_after)


@dataclass(frozen=True, slots=True)
class _Shown:
    message_id: int
    part: Part
    button: bool


@dataclass(frozen=True, slots=True)
class Leftover:
    """What a chat that shut the bot out is to show once it lets the bot back in: `part` in
    message `message_id` (None: deleted), or, with no `message_id`, `part` sent as a new
    message in reply to `reply_to`."""

    chat_id: int
    message_id: int | None
    part: Part | None
    reply_to: int | None = None
    thread_id: int | None = None
    turn_id: int | None = None  # the answer's, which a message sent then belongs to

    def to_json(self) -> str:
        """As the store keeps it (the chat id is its key there)."""
        part = None if self.part is None else [self.part.text, list(self.part.entities)]
        return json.dumps([self.message_id, part, self.reply_to, self.thread_id, self.turn_id])

    @classmethod
    def from_json(cls, chat_id: int, item: str) -> Leftover:
        message_id, part, reply_to, thread_id, turn_id = json.loads(item)
        kept = None if part is None else Part(part[0], tuple(part[1]))
        return cls(chat_id, message_id, kept, reply_to, thread_id, turn_id)


@dataclass(frozen=True, slots=True)
class _Op:
    index: int
    part: Part
    button: bool
    kind: Literal["send", "edit", "draft", "delete"]


@dataclass(slots=True)
class DeliveryStats:
    sends: int = 0
    edits: int = 0
    drafts: int = 0
    retry_afters: int = 0
    errors: int = 0


StreamMode = Literal["auto", "draft", "edit"]


class DraftSupport:
    """Where drafts may be used. `auto` remembers refusals (per chat, or for the whole server
    when it lacks the method); `draft` tries again with every answer; `edit` never uses them."""

    def __init__(self, mode: StreamMode = "auto") -> None:
        self.mode = mode
        self._refused: set[int] = set()
        self._server_lacks = False

    def use_for(self, chat_id: int) -> bool:
        if self.mode == "edit" or chat_id <= 0:
            return False
        if self.mode == "draft":
            return True
        return not self._server_lacks and chat_id not in self._refused

    def refused(self, chat_id: int, error: TelegramAPIError) -> None:
        log.info("chat %s: draft refused (%s); editing messages instead", chat_id, error.message)
        if isinstance(error, TelegramNotFound):
            self._server_lacks = True
        self._refused.add(chat_id)


class NewestMessages:
    """The newest message id seen in each chat (a bounded number of chats). Message ids grow
    within a chat whoever writes, so a part of an answer about to be sent can tell whether
    someone wrote after the part before it: then it is sent as a reply to its question, or it
    would read as the answer to that message."""

    LIMIT = 10_000

    def __init__(self) -> None:
        self._ids: dict[int, int] = {}
        self._sending: dict[int, int] = {}  # the bot's messages on their way, by chat

    def saw(self, chat_id: int, message_id: int) -> None:
        if message_id > self._ids.get(chat_id, 0):
            self._ids.pop(chat_id, None)  # the chats written in lately stay
            self._ids[chat_id] = message_id
            if len(self._ids) > self.LIMIT:
                del self._ids[next(iter(self._ids))]

    def newest(self, chat_id: int) -> int:
        return self._ids.get(chat_id, 0)

    def written_after(self, chat_id: int, message_id: int) -> bool:
        """Whether a message came after `message_id`, or one of the bot's is on its way: sent
        at the same moment as the part about to go (another answer's), it lands between."""
        return self.newest(chat_id) > message_id or chat_id in self._sending

    async def outgoing(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        """Session middleware: the bot's own messages, from the moment they are sent."""
        chat_id = method.chat_id if isinstance(method, SendMessage) else None
        if not isinstance(chat_id, int):
            return await make_request(bot, method)
        self._sending[chat_id] = self._sending.get(chat_id, 0) + 1
        try:
            sent = await make_request(bot, method)  # (the result, despite aiogram's types)
        finally:
            if (left := self._sending.pop(chat_id) - 1) > 0:
                self._sending[chat_id] = left
        if isinstance(message_id := getattr(sent, "message_id", None), int):
            self.saw(chat_id, message_id)
        return sent

    async def middleware(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        """Outer middleware for `dispatcher.message`: notes every message that arrives."""
        if isinstance(event, Message):
            self.saw(event.chat.id, event.message_id)
        return await handler(event, data)


class ReplyStream:
    """One answer on its way to one chat. `update()` as text grows, then `close()` once."""

    def __init__(
        self,
        bot: Bot,
        pacer: Pacer,
        *,
        chat_id: int,
        reply_to: int | None = None,
        thread_id: int | None = None,
        stop_markup: InlineKeyboardMarkup | None = None,
        on_sent: Callable[[int, int], Awaitable[None]] | None = None,
        on_shown: Callable[[str], None] | None = None,
        draft_id: int | None = None,
        drafts: DraftSupport | None = None,
        catch_up: Callable[[], Awaitable[None]] | None = None,
        newest: NewestMessages | None = None,
        on_gone: Callable[[], object] | None = None,
    ) -> None:
        self.bot = bot
        self.newest = newest
        # Told when "typing…" finds the chat closed to the bot: no text may come for a while (a
        # reasoning model's thoughts), and the stream is paid for meanwhile.
        self.on_gone = on_gone
        self.catch_up = catch_up  # brings `update()` up to date before a call is made
        self.draft_id = draft_id  # None: stream by editing messages
        self.drafts = drafts
        self.on_sent = on_sent  # (chat id, message id) of each message sent
        self.on_shown = on_shown  # the answer's text that its messages (not drafts) now show
        self.pacer = pacer
        self.chat_id = chat_id
        self.reply_to = reply_to
        self.thread_id = thread_id
        self.stop_markup = stop_markup
        self.stats = DeliveryStats()
        self.failed = False  # the chat cannot be written to (blocked, kicked, gone)
        # The bot may not write there any more (403, 404), or may not send (a 400 for lack of
        # rights: muted, or a group read-only for members, where its own messages can still be
        # edited, so `close` still settles them).
        self.gone = False
        self.last_send = -math.inf  # when a message was last sent (time.monotonic())
        self._segmenter = Segmenter()
        self._text = ""
        self._rendered: str | None = None  # the text `_target` last looked at
        self._closing = False
        self._complete = True  # closed with the whole answer (else stopped or failed midway)
        self._notice: Part | None = None
        self._plain = False  # entities were refused once: send plain text from then on
        self._shown: list[_Shown] = []
        self._draft_shown: Part | None = None
        self._draft_due = False  # the draft shown is about to expire: show it again
        self._draft_at = 0.0  # when it was shown (loop time)
        self._gone: set[int] = set()  # parts the user deleted
        self._seen_before_move = False  # shown in the group this supergroup was
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._typing: asyncio.Task[None] | None = None
        self._typing_timer: asyncio.TimerHandle | None = None

    # -- the caller's side -------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"reply:{self.chat_id}")
        self._typing_timer = asyncio.get_running_loop().call_later(TYPING_AFTER, self._type)

    def update(self, text: str) -> None:
        """The whole answer so far (not a delta)."""
        self._text = text
        self._wake.set()

    async def close(self, notice: Part | None = None, *, complete: bool = True) -> None:
        """Deliver the final state (the whole text, no cursor or button, plus `notice`).

        `complete=False`: the answer stopped midway (a Stop, a failure), so its unfinished last
        paragraph is settled as while streaming: `**bold` shown in bold stays bold, not `**`."""
        self._closing = True
        self._complete = complete
        self._notice = notice
        self._wake.set()
        self.pacer.nudge()
        if self._task is None:
            self.start()
        assert self._task is not None
        try:
            await asyncio.wait_for(asyncio.shield(self._task), CLOSE_TIMEOUT)
        except TimeoutError:
            log.error("chat %s: final state not delivered in %.0f s", self.chat_id, CLOSE_TIMEOUT)
            self._task.cancel()
        except asyncio.CancelledError:  # the answer is abandoned: so is what shows it
            self._task.cancel()
            raise
        finally:
            await self._stop_typing()

    @property
    def started(self) -> bool:
        """Something is shown: a message or a draft."""
        return bool(self._shown) or self._draft_shown is not None

    @property
    def seen(self) -> bool:
        """The chat saw some of it: shown here, or in the group it was before it became a
        supergroup (whose history keeps it)."""
        return self.started or self._seen_before_move

    def shows_nothing(self, *, complete: bool = True) -> bool:
        """Whether the whole answer, rendered as final, shows nothing: only whitespace, or only
        markup such as a link definition (`[1]: https://…`), whatever its snapshots showed.
        `complete=False`: as an answer cut off midway ends (a table's lone header row, say, is
        not shown)."""
        if not self._text.strip():
            return True
        return not self._segmenter.parts(self._text, streaming=not complete)

    def leftovers(self) -> list[Leftover]:
        """For an answer closed in a chat that shut the bot out before its final state was
        shown (the user blocked the bot, the group removed it): what the chat should show once
        the bot is let back in, the final state `close` was given. A message left with a cursor
        and Stop button, or an older snapshot, is edited; text it never showed (a draft's,
        later parts) is sent."""
        messages = [part for part, _ in self._target()[0]]
        left = []
        for i, shown in enumerate(self._shown):
            part = messages[i] if i < len(messages) else None  # (None: no longer in the answer)
            if i not in self._gone and (part != shown.part or shown.button):
                left.append(Leftover(self.chat_id, shown.message_id, part))
        for part in messages[len(self._shown) :]:
            left.append(Leftover(self.chat_id, None, part, self.reply_to, self.thread_id))
        return left

    @property
    def message_ids(self) -> list[int]:
        return [s.message_id for s in self._shown]

    @property
    def text(self) -> str:
        return self._text

    # -- what the chat should show -----------------------------------------------------------------

    def _target(self) -> tuple[list[tuple[Part, bool]], Part | None]:
        """The messages the chat should show (part, has Stop button), and the draft if any."""
        self._rendered = self._text
        parts = (
            self._segmenter.parts(self._text, streaming=not (self._closing and self._complete))
            if self._text.strip()
            else []
        )
        if self._plain:
            parts = [Part(p.text) for p in parts]
        if not self._closing:
            if not parts:
                return [], None
            done, last = [(p, False) for p in parts[:-1]], parts[-1]
            if self.draft_id is not None:
                return done, last
            with_cursor = Part(last.text + CURSOR, last.entities)
            return [*done, (with_cursor, self.stop_markup is not None)], None
        notice = self._notice
        if notice is not None:
            if parts and parts[-1].size + 2 + notice.size <= TELEGRAM_LIMIT:
                parts[-1] = parts[-1].plus(notice)
            else:
                parts.append(notice)
        return [(p, False) for p in parts], None

    def _next_op(self, target: tuple[list[tuple[Part, bool]], Part | None]) -> _Op | None:
        """The next call: a message not shown yet goes first (so the newest part always carries
        the cursor), then the first shown message that differs, then a shown message that is no
        longer part of the answer, then the draft.

        A message can outlive its part: the text that filled the last part can render as nothing
        once it is complete (`[1]: https://…` is a link definition, not text). It is deleted,
        else it would keep its cursor and Stop button for good."""
        messages, draft = target
        if len(messages) > len(self._shown) and not self.gone:
            part, button = messages[len(self._shown)]
            return _Op(len(self._shown), part, button, "send")
        for i, (part, button) in enumerate(messages[: len(self._shown)]):
            shown = self._shown[i]
            if i in self._gone:
                continue
            if shown.part != part or shown.button != button:
                return _Op(i, part, button, "edit")
        if len(self._shown) > len(messages):
            last = len(self._shown) - 1
            return _Op(last, self._shown[last].part, False, "delete")
        if self.gone:
            return None
        if draft is not None and (draft != self._draft_shown or self._draft_due):
            return _Op(len(messages), draft, False, "draft")
        return None

    # -- the delivery loop -------------------------------------------------------------------------

    async def _run(self) -> None:
        network_failures = 0
        refused = 0
        while not self.failed:
            # New text once something is shown: there is surely something to update, and the
            # snapshot is rendered once, after the slot (rendering is most of a tick's cost).
            # The first text is checked before its slot, which has priority over others.
            news = self._text is not self._rendered and not self._closing and self.started
            if not news and self._next_op(self._target()) is None:
                if self._closing:
                    return
                self._wake.clear()
                await self._idle()
                continue
            counted = await self._slot()
            if self.catch_up is not None and not self._closing:
                await self.catch_up()
                counted = self.pacer.departing(self.chat_id, counted)
            op = self._next_op(self._target())  # the newest snapshot, whatever came meanwhile
            if op is None:
                self.pacer.arrived(self.chat_id, counted)  # no call after all: it stays counted
                continue
            try:
                try:
                    await self._apply(op)
                finally:
                    self.pacer.arrived(self.chat_id, counted)
                network_failures = refused = 0
            except TelegramMigrateToChat as e:
                self.stats.errors += 1
                self._moved(e.migrate_to_chat_id)
            except TelegramRetryAfter as e:
                self.stats.retry_afters += 1
                log.warning("chat %s: 429, retry after %s s", self.chat_id, e.retry_after)
                self.pacer.penalize(self.chat_id, float(e.retry_after))
            except (TelegramBadRequest, TelegramNotFound) as e:
                self.stats.errors += 1
                if cannot_write(e) and op.kind != "delete":  # muted in a group, say
                    log.warning("chat %s: may not write there (%s)", self.chat_id, e.message)
                    self.gone = True
                    if op.kind != "send":  # nor edit: nothing more can be shown
                        self.failed = True
                        return
                    continue
                if op.kind == "delete":  # already deleted, by the user or too old: let it be
                    log.info("chat %s: part %d not deleted: %s", self.chat_id, op.index, e.message)
                    self._forget_last()
                    continue
                if op.kind == "draft":
                    self._draft_refused(e)
                    continue
                if isinstance(e, TelegramNotFound):
                    log.error("chat %s: %s", self.chat_id, e)
                    self.failed = self.gone = True
                    return
                refused += 1
                self._bad_request(op, e, refused)
            except (TelegramForbiddenError, TelegramUnauthorizedError) as e:
                log.warning("chat %s: cannot write there any more (%s)", self.chat_id, e.message)
                self.failed = self.gone = True
            except (TelegramNetworkError, TelegramServerError) as e:
                self.stats.errors += 1
                network_failures += 1
                if network_failures > MAX_NETWORK_RETRIES:
                    log.error("chat %s: giving up after %s: %s", self.chat_id, type(e).__name__, e)
                    self.failed = True
                    return
                await asyncio.sleep(min(2.0**network_failures, 30.0))
            except TelegramAPIError as e:
                self.stats.errors += 1
                log.error("chat %s: %s", self.chat_id, e)
                self.failed = True

    async def _idle(self) -> None:
        """Wait for new text (or the close). A draft is shown again before it expires (unless
        nothing may be sent any more)."""
        if self._draft_shown is None or self.gone:
            await self._wake.wait()
            return
        try:
            async with asyncio.timeout_at(self._draft_at + DRAFT_REFRESH):
                await self._wake.wait()
        except TimeoutError:
            self._draft_due = True

    async def _slot(self) -> float:
        """Wait for the pacer (returns when the call was counted); once the answer closes, the
        wait counts as a final's."""
        return await self.pacer.acquire(
            self.chat_id, is_final=lambda: self._closing, first=not self.started
        )

    async def _apply(self, op: _Op) -> None:
        markup = self.stop_markup if op.button else None
        if op.kind == "delete":
            if op.index not in self._gone:
                await self.bot.delete_message(self.chat_id, self._shown[op.index].message_id)
            self._forget_last()
            return
        if op.kind == "draft":
            assert self.draft_id is not None
            await self.bot(
                calls.draft(self.chat_id, self.draft_id, op.part, thread_id=self.thread_id)
            )
            self.stats.drafts += 1
            self._draft_shown = op.part
            self._draft_due = False
            self._draft_at = asyncio.get_running_loop().time()
            await self._stop_typing()
            return
        if op.kind == "edit":
            shown = self._shown[op.index]
            await self.bot(calls.edit(self.chat_id, shown.message_id, op.part, markup=markup))
            self.stats.edits += 1
            self._shown[op.index] = _Shown(shown.message_id, op.part, op.button)
            self._progress()
            return
        reply = None
        if self.reply_to is not None and (op.index == 0 or self._written_after()):
            reply = calls.replying_to(self.reply_to)
        message = await self.bot(
            calls.send(
                self.chat_id,
                op.part,
                reply_parameters=reply,
                thread_id=self.thread_id,
                markup=markup,
            )
        )
        self.stats.sends += 1
        self.last_send = time.monotonic()
        self._shown.append(_Shown(message.message_id, op.part, op.button))
        self._progress()  # (`NewestMessages.outgoing` has noted its id)
        await self._stop_typing()
        if self.on_sent is not None:
            try:
                await self.on_sent(self.chat_id, message.message_id)
            except Exception:
                log.exception(
                    "chat %s: recording message %s failed", self.chat_id, message.message_id
                )

    def _progress(self) -> None:
        """Tell `on_shown` what the messages show now, while the answer is being written (its
        end is stored anyway): should the process die, that is what memory keeps and what the
        last message is left showing, without its cursor."""
        if self.on_shown is None or self._closing or self._rendered is None:
            return
        if self.draft_id is None:
            self.on_shown(self._rendered)
        else:  # the parts sent as messages; the draft of the open one vanishes by itself
            self.on_shown(self._rendered[: self._segmenter.open_from])

    def _moved(self, chat_id: int) -> None:
        """The group became a supergroup, which has a new id. Telegram takes no more calls in
        the old group, whose history keeps what was shown; the answer is shown whole in the
        supergroup, as a new message (the question stays behind in the old history)."""
        log.info("chat %s: became supergroup %s; the answer goes on there", self.chat_id, chat_id)
        self._seen_before_move = self.seen
        self.chat_id = chat_id
        self.reply_to = None
        self._shown.clear()
        self._gone.clear()

    def _written_after(self) -> bool:
        """Whether a message came after the last part shown (a new question, another answer)."""
        if self.newest is None or not self._shown:
            return False
        return self.newest.written_after(self.chat_id, self._shown[-1].message_id)

    def _forget_last(self) -> None:
        """The last shown message is no longer shown."""
        self._gone.discard(len(self._shown) - 1)
        self._shown.pop()

    def _draft_refused(self, error: TelegramAPIError) -> None:
        """Drafts do not work here: go on by editing messages."""
        if self.drafts is not None:
            self.drafts.refused(self.chat_id, error)
        self.draft_id = None
        self._draft_shown = None

    def _bad_request(self, op: _Op, error: TelegramBadRequest, refused: int) -> None:
        message = error.message.lower()
        if "message is not modified" in message and op.kind == "edit":
            shown = self._shown[op.index]
            self._shown[op.index] = _Shown(shown.message_id, op.part, op.button)
        elif "message to edit not found" in message and op.kind == "edit":
            # The user deleted this part: leave it deleted (resending it would put it out of
            # order, and the user chose to remove it); the other parts go on.
            log.info("chat %s: part %d was deleted by the user", self.chat_id, op.index)
            self._gone.add(op.index)
        elif not self._plain:
            log.error(
                "chat %s: Telegram refused formatting (%s); sending plain text",
                self.chat_id,
                error.message,
            )
            self._plain = True
        elif refused >= 3:
            log.error("chat %s: Telegram refused a part: %s", self.chat_id, error.message)
            self.failed = True

    async def may_write(self) -> bool:
        """Whether the chat takes the bot's messages now, asked with one "typing…": for a chat
        that shut the bot out, before its answer costs a model's stream. A timed mute ends, and
        a block is lifted, without an update saying so; this finds out either way."""
        while self.pacer.paused(self.chat_id):  # noqa: ASYNC110 (a retry_after window: not even that)
            await asyncio.sleep(0.5)
        return await self._typing_once(refusal=logging.INFO)  # (it was shut out: no news)

    async def _typing_once(self, refusal: int = logging.WARNING) -> bool:
        """Send "typing…" once. False if the chat refused it for lack of rights (blocked,
        muted, a group made read-only), logged at level `refusal`: `gone` is set. A 429 pauses
        the chat; any other failure is left for the answer's own calls to meet."""
        try:
            await self.bot.send_chat_action(
                self.chat_id, "typing", message_thread_id=self.thread_id
            )
        except TelegramRetryAfter as e:
            self.pacer.penalize(self.chat_id, float(e.retry_after))
        except TelegramAPIError as e:
            if cannot_write(e):
                log.log(refusal, "chat %s: may not write there (%s)", self.chat_id, e.message)
                self.gone = True
            else:
                log.debug("chat %s: typing indicator failed: %s", self.chat_id, e)
        return not self.gone

    def _type(self) -> None:
        """The first text is late: show "typing…" meanwhile."""
        self._typing_timer = None
        if not self.started and not self.failed and not self.gone:
            self._typing = asyncio.create_task(self._keep_typing(), name=f"typing:{self.chat_id}")

    async def _keep_typing(self) -> None:
        """Show "typing…" until the first text is out (Telegram clears it after ~5 s)."""
        while not self.started and not self.failed and not self.gone:
            if self.pacer.paused(self.chat_id):  # inside a retry_after window: not even that
                await asyncio.sleep(0.5)
                continue
            if not await self._typing_once():  # a group made read-only: no update said so
                self._wake.set()
                if self.on_gone is not None:
                    self.on_gone()
                return
            await asyncio.sleep(TYPING_EVERY)

    async def _stop_typing(self) -> None:
        if self._typing_timer is not None:
            self._typing_timer.cancel()
            self._typing_timer = None
        if self._typing is not None and self._typing is not asyncio.current_task():
            self._typing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._typing
            self._typing = None
