"""Answering one question: a g4f stream feeding the reply engine, with Stop and failure notices.

Flow: handler → `Answerer.answer(question)` → `LLMClient.stream` → `ReplyStream` → Telegram.
Failures become a short notice in the chat; what went wrong in detail goes to the log only.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

from aiogram import Bot
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.llm import ChatMessage, FailureKind, LLMClient, LLMFailure
from bot.streaming import Pacer, ReplyStream
from bot.streaming.render import styled
from bot.streaming.reply import DraftSupport, Leftover, NewestMessages
from bot.texts import CATALOGS, DEFAULT_LANGUAGE, t

if TYPE_CHECKING:
    from bot.metrics import Metrics

log = logging.getLogger(__name__)

STOP_PREFIX = "stop:"


@dataclass(frozen=True, slots=True)
class Question:
    """A message addressed to the bot, reduced to what answering needs."""

    chat_id: int
    message_id: int
    user_id: int
    text: str
    lang: str | None = None
    thread_id: int | None = None
    is_private: bool = True


@dataclass(frozen=True, slots=True)
class Quote:
    """The message a question replies to, framed for the model (`Name wrote:` and `>` lines)."""

    text: str
    selected: bool = False  # a part the user selected: it goes with the question in any case
    # One of the bot's own messages: it goes only if memory does not have it (a reset database),
    # and is nothing to ask about on its own.
    own: bool = False

    @property
    def asks(self) -> bool:
        """Whether a bare mention under the message is a question about it."""
        return self.selected or not self.own


@dataclass(slots=True)
class Outcome:
    """How an answer ended: its text, the messages that show it, and the failure if any."""

    text: str
    message_ids: list[int]
    failure: FailureKind | None = None
    stopped: bool = False
    interrupted: bool = False
    withdrawn: bool = False  # its question was sent on with more (`Answerer.withdraw`): redone
    # The chat could not be written to (the bot was removed, say): remembered as failed, not
    # stopped; one cut off by a block told of, whose end was shown all the same (the bot let
    # back in at once, or only muted, its own messages still editable), is stopped.
    undelivered: bool = False
    # A message was sent in a chat the bot had been shut out of: it may write there again.
    writable_again: bool = False
    # ... and what the chat should show of it once the bot is let back in
    left: list[Leftover] = field(default_factory=list)
    first_text_after: float | None = None  # seconds from the question to the first text

    @property
    def result(self) -> Literal["done", "failed", "stopped", "interrupted", "withdrawn"]:
        """How it ended, in one word (a turn's status, a metrics label)."""
        if self.withdrawn:
            return "withdrawn"
        if self.interrupted:
            return "interrupted"
        if self.undelivered:
            return "failed"
        if self.stopped:
            return "stopped"
        return "failed" if self.failure is not None else "done"


@dataclass(frozen=True, slots=True)
class Running:
    """An answer in flight, on this replica or another: enough to check a Stop and send it."""

    answer_id: str
    chat_id: int
    thread_id: int | None
    user_id: int
    draft_id: int | None = None


class Directory(Protocol):
    """Answers in flight on every replica (scale-out); without one, only this replica's count."""

    async def add(self, running: Running) -> None: ...

    async def remove(self, running: Running) -> None: ...

    async def find(self, answer_id: str) -> Running | None: ...

    async def in_chat(self, chat_id: int) -> list[Running]: ...

    async def request_stop(self, answer_id: str) -> None: ...


@dataclass(slots=True)
class ActiveAnswer:
    """An answer being streamed; the Stop button finds it by `answer_id`."""

    answer_id: str
    question: Question
    draft_id: int | None = None
    task: asyncio.Task[None] | None = None
    stopped: bool = False
    interrupted: bool = False  # stopped by a shutdown, not by a user
    withdrawn: bool = False  # to be asked again with more: it leaves nothing in the chat
    started: float = field(default_factory=time.monotonic)

    @property
    def running(self) -> Running:
        q = self.question
        return Running(self.answer_id, q.chat_id, q.thread_id, q.user_id, self.draft_id)

    def stop(self, *, interrupted: bool = False, withdrawn: bool = False) -> bool:
        """Stop the stream; False if too late (its stream has ended) or stopped already: the
        first stop says how the answer ends."""
        if self.stopped or (self.task is not None and self.task.done()):
            return False
        self.stopped = True
        self.interrupted = interrupted
        self.withdrawn = withdrawn
        if self.task is not None:
            self.task.cancel()  # else `answer` cancels it as it starts it
        return True


class Answerer:
    """Runs answers and keeps the registry of those in flight."""

    def __init__(
        self,
        bot: Bot,
        llm: LLMClient,
        pacer: Pacer,
        drafts: DraftSupport | None = None,
        metrics: Metrics | None = None,
        directory: Directory | None = None,
        newest: NewestMessages | None = None,
    ) -> None:
        self.bot = bot
        self.directory = directory
        self.newest = newest or NewestMessages()  # fed by the dispatcher and session
        self.metrics = metrics
        self.llm = llm
        self.pacer = pacer
        self.drafts = drafts or DraftSupport("edit")
        self.active: dict[str, ActiveAnswer] = {}
        self.finished = 0  # answers whose final state has been delivered
        self._gone: dict[int, float] = {}  # chats the bot may no longer write to, since when
        self._back: dict[int, float] = {}  # chats that let it back in, since when
        self._moved: dict[int, int] = {}  # groups upgraded to supergroups: old id -> new id
        # Drafts of withdrawn answers, by chat: the answer asked in their place streams into the
        # same draft, which changes in place rather than lingering beside it for half a minute.
        self._draft_left: dict[tuple[int, int | None], int] = {}  # by chat and topic
        self._ids = itertools.count(1)
        self._salt = secrets.token_hex(3)
        # Draft ids only need to differ within a chat; a random base keeps replicas apart.
        self._draft_base = secrets.randbelow(2**30)

    async def answer(
        self,
        question: Question,
        messages: list[ChatMessage],
        *,
        model: str | None = None,
        on_sent: Callable[[int, int], Awaitable[None]] | None = None,
        on_shown: Callable[[str], None] | None = None,
    ) -> Outcome:
        """Stream the answer to `question` into its chat; returns when the final state is shown.

        `messages` is the whole context (the question last); `on_sent` learns each message (chat id
        and message id: a group that becomes a supergroup mid-answer has a new id) as soon as a
        part of the answer is sent, so replies to a streaming answer can be placed; `on_shown`
        the text its messages show as it grows.
        """
        number = next(self._ids)
        answer_id = f"{self._salt}{number}"
        draft_id = self._draft_left.pop((question.chat_id, question.thread_id), None)
        if not self.drafts.use_for(question.chat_id):
            draft_id = None
        elif draft_id is None:
            draft_id = self._draft_base + number
        active = ActiveAnswer(answer_id, question, draft_id)
        self.active[answer_id] = active
        if self.directory is not None:
            try:
                await self.directory.add(active.running)
            except Exception as error:  # Stop from other replicas misses it; the answer goes on
                log.warning("answer %s not announced (%s)", answer_id, type(error).__name__)
        button = InlineKeyboardButton(
            text=t(question.lang, "stop_button"), callback_data=STOP_PREFIX + answer_id
        )
        reply = ReplyStream(
            self.bot,
            self.pacer,
            chat_id=question.chat_id,
            reply_to=question.message_id,
            thread_id=question.thread_id,
            stop_markup=InlineKeyboardMarkup(inline_keyboard=[[button]]),
            on_sent=on_sent,
            on_shown=on_shown,
            draft_id=draft_id,
            drafts=self.drafts,
            catch_up=lambda: self.llm.catch_up(active.task),
            newest=self.newest,
            on_gone=active.stop,
        )
        reply.start()
        outcome = Outcome(text="", message_ids=[])
        started = time.monotonic()

        # A chat that shut the bot out: a muted bot still gets the group's mentions.
        ask_first = self.shut_out_of(self.chat_now(question.chat_id))

        async def consume() -> None:
            if ask_first and not await reply.may_write():
                return  # nobody would see the answer: the model is not asked
            text = ""
            async with contextlib.aclosing(self.llm.stream(messages, model)) as pieces:
                async for piece in pieces:
                    if not text:
                        outcome.first_text_after = time.monotonic() - started
                    text += piece
                    outcome.text = text
                    reply.update(text)
                    if reply.failed or reply.gone:  # nobody will see more: stop paying for it
                        return

        active.task = asyncio.create_task(consume(), name=f"llm:{answer_id}")
        if active.stopped:  # while it was being announced to other replicas
            active.task.cancel()
        try:
            await active.task
        except asyncio.CancelledError:
            if not active.stopped:
                reply.update(outcome.text)
                await reply.close(styled(t(question.lang, "notice_internal")), complete=False)
                raise
            outcome.stopped = True
            outcome.interrupted = active.interrupted
            outcome.withdrawn = active.withdrawn
            if active.withdrawn:
                reply.update("")  # its messages are deleted: the answer to come replaces it
        except LLMFailure as failure:
            outcome.failure = failure.kind
            log.warning(
                "chat %s: stream failed after %d chars from %s: %s (%s)",
                question.chat_id,
                len(outcome.text),
                self.llm.api_base or self.llm.provider_label,  # which backend to look at
                failure.kind.value,
                failure.detail or type(failure.__cause__).__name__,
            )
        except Exception:
            outcome.failure = FailureKind.INTERNAL
            log.exception("chat %s: answering failed", question.chat_id)
        finally:
            self.active.pop(answer_id, None)
            if self.directory is not None:
                with contextlib.suppress(Exception):  # it expires by itself
                    await self.directory.remove(active.running)

        if reply.gone and outcome.failure is None and not outcome.stopped:
            # The chat refused it midway (a block not told of): cut off, as by `shut_out`.
            outcome.stopped = True
        finished = outcome.failure is None and not outcome.stopped
        if finished and reply.shows_nothing():
            # Only whitespace or markup, even if a snapshot showed something (`[1]` of `[1]: …`).
            outcome.failure = FailureKind.EMPTY
        notice = None
        if outcome.interrupted:
            notice = styled(t(question.lang, "notice_interrupted"))
        elif outcome.stopped and not outcome.withdrawn:
            notice = styled(t(question.lang, "notice_stopped"))
        elif outcome.failure is not None:
            key = f"notice_{outcome.failure.value}"
            if f"{key}_none" in CATALOGS[DEFAULT_LANGUAGE] and reply.shows_nothing(complete=False):
                key += "_none"  # nothing of it shows: there is no incomplete answer to speak of
            notice = styled(t(question.lang, key))
        await reply.close(notice, complete=finished)
        self.finished += 1
        if reply.gone:
            self._shut_out(reply.chat_id)
            unshown = reply.leftovers()
            outcome.undelivered = bool(unshown) or not reply.started
            # One the chat never saw any of (refused at its first send: a question asked in a
            # group that muted the bot) is not brought up once the bot may write again.
            outcome.left = unshown if reply.seen else []
        outcome.undelivered = outcome.undelivered or reply.failed
        shut_out_at = self._gone.get(reply.chat_id, math.inf)
        outcome.writable_again = self.shut_out_of(reply.chat_id) and reply.last_send > shut_out_at
        outcome.message_ids = reply.message_ids
        if self.metrics is not None:
            self.metrics.record_answer(outcome, reply.stats)
        ending = f", {outcome.failure.value}" if outcome.failure else ""
        if outcome.withdrawn:
            ending = ", withdrawn: its question is asked again with the messages sent with it"
        log.info(
            "chat %s: answer %s, %d chars in %d message(s), %d sends, %d edits, %d drafts, "
            "%d×429%s",
            question.chat_id,
            outcome.result,
            len(outcome.text),
            len(outcome.message_ids),
            reply.stats.sends,
            reply.stats.edits,
            reply.stats.drafts,
            reply.stats.retry_afters,
            ending,
        )
        return outcome

    async def find(self, answer_id: str) -> Running | None:
        """The answer a Stop button names, wherever it runs."""
        active = self.active.get(answer_id)
        if active is not None:
            return active.running
        return await self.directory.find(answer_id) if self.directory else None

    async def find_draft(self, chat_id: int, draft_id: int) -> Running | None:
        """The answer streaming into a draft (the client's own stop control names it)."""
        found = [r for r in await self._in_chat(chat_id) if r.draft_id == draft_id]
        return found[0] if found else None

    async def in_chat(self, chat_id: int, thread_id: int | None) -> list[Running]:
        """Answers streaming in a chat's topic (None: outside topics, or a forum's General)."""
        return [r for r in await self._in_chat(chat_id) if r.thread_id == thread_id]

    def moved(self, old: int, new: int) -> None:
        """A group became a supergroup: its answers go on there (the reply engine follows by
        itself), so `/stop` and the client's stop control in the supergroup find them."""
        self._moved[old] = new

    def chat_now(self, chat_id: int) -> int:
        """The chat's id now: a group upgraded to a supergroup has the supergroup's, and
        Telegram answers nothing about the old group any more (an admin check included)."""
        return self._moved.get(chat_id, chat_id)

    async def _in_chat(self, chat_id: int) -> list[Running]:
        here = {
            a.answer_id: a.running
            for a in self.active.values()
            if chat_id in (a.question.chat_id, self.chat_now(a.question.chat_id))
        }
        if self.directory is not None:
            for running in await self.directory.in_chat(chat_id):
                here.setdefault(running.answer_id, running)
        return sorted(here.values(), key=lambda r: r.answer_id)

    async def stop(self, running: Running) -> bool:
        """Stop an answer: here at once, on another replica through the directory. False if it
        had ended already."""
        if self.stop_here(running.answer_id):
            return True
        if self.directory is None:
            return False
        await self.directory.request_stop(running.answer_id)
        return True

    def stop_here(self, answer_id: str) -> bool:
        """Stop the answer if it runs on this replica; False if it does not (any more)."""
        active = self.active.get(answer_id)
        if active is None:
            return False
        active.stop()
        return True

    def gone_since(self, chat_id: int, since: float) -> bool:
        """Whether the bot learned after `since` (a `time.monotonic()`) that it may no longer
        write to this chat: a question that waited meanwhile is not worth a model's answer. One
        asked later is (the bot was added back)."""
        return self._gone.get(chat_id, -math.inf) > since

    async def shut_out(self, chat_id: int) -> int:
        """The chat shut the bot out (the user blocked it, the group removed it): its answers
        stop now, on every replica, not at their next refused call, and questions waiting here
        are not answered (`gone_since`). Returns how many answers were stopped."""
        self._shut_out(chat_id)
        here = [a for a in self.active.values() if self.chat_now(a.question.chat_id) == chat_id]
        stopped = sum(active.stop() for active in here)
        if self.directory is not None:
            with contextlib.suppress(Exception):  # they stop at their next refused call
                for running in await self.directory.in_chat(chat_id):
                    if running.answer_id not in self.active:
                        await self.directory.request_stop(running.answer_id)
                        stopped += 1
        return stopped

    def back_in(self, chat_id: int) -> None:
        """The chat let the bot back in (questions that waited meanwhile stay unanswered)."""
        _stamp(self._back, chat_id)

    def shut_out_of(self, chat_id: int) -> bool:
        """Whether the chat shut the bot out and has not let it back in (as this replica
        knows)."""
        return self._gone.get(chat_id, -math.inf) > self._back.get(chat_id, -math.inf)

    def _shut_out(self, chat_id: int) -> None:
        _stamp(self._gone, chat_id)

    def withdraw(self, chat_id: int, message_id: int) -> bool:
        """Stop the answer to a message, leaving nothing of it in the chat (no notice): the
        message is to be asked again with more. False if no answer to it streams here (any
        more), or it was stopped already."""
        for active in self.active.values():
            question = active.question
            if (question.chat_id, question.message_id) != (chat_id, message_id):
                continue
            if not active.stop(withdrawn=True):
                return False
            if active.draft_id is not None:
                self._draft_left[(chat_id, question.thread_id)] = active.draft_id
            return True
        return False

    def interrupt_all(self) -> int:
        """Stop every answer in flight with an "interrupted" notice (at shutdown)."""
        running = list(self.active.values())
        for active in running:
            active.stop(interrupted=True)
        return len(running)


def _stamp(since: dict[int, float], chat_id: int) -> None:
    """Note the time for a chat, last in the order; the oldest of 10,000 chats is dropped."""
    since.pop(chat_id, None)
    since[chat_id] = time.monotonic()
    if len(since) > 10_000:
        del since[next(iter(since))]
