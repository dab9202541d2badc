"""Conversations: which turn a question continues, the context sent, one answer at a time.

- Private chat: a plain message continues the latest branch (the chat's head); `/new` starts
  afresh; a reply to any earlier answer continues from that point (a branch).
- Group: an addressed message that is not a reply starts a new thread; a reply to one of the bot's
  answers continues that thread. Forum topics never share memory, nor do groups and private chats
  (turns are looked up by chat and message id).
- A question asked while an answer in the same conversation is streaming waits for it (the user is
  told at once) and then sees that exchange in its context.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from aiogram.types import Message

from bot.answering import Answerer, Outcome, Question, Quote
from bot.conversations.context import build_context
from bot.conversations.models import Turn, TurnStatus
from bot.conversations.queues import LocalQueues, Queues
from bot.conversations.store import Store
from bot.notify import Notifier
from bot.ratelimit import Limiter, NoticeGate, Throttle
from bot.texts import t

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Defaults:
    model: str
    models: tuple[str, ...]
    system_prompt: str
    max_context_chars: int


class Conversations:
    def __init__(
        self,
        store: Store,
        answerer: Answerer,
        notifier: Notifier,
        defaults: Defaults,
        limiter: Limiter | None = None,
        notice_gate: NoticeGate | None = None,
        exempt: frozenset[int] = frozenset(),
        queues: Queues | None = None,
    ) -> None:
        self.store = store
        self.answerer = answerer
        self.notifier = notifier
        self.defaults = defaults
        self.limiter = limiter
        self.exempt = exempt  # user ids the rate limit does not apply to
        self._limit_notices = notice_gate or Throttle(60.0)
        self.queues = queues or LocalQueues()
        self._inflight: set[asyncio.Task[object]] = set()
        # Questions asked, by (chat, message): the question while it waits its turn, None once
        # its answer has started.
        self._waiting: dict[tuple[int, int], Question | None] = {}
        self._closing = False

    async def drain(self, grace: float) -> None:
        """At shutdown: let answers finish within `grace` s, then interrupt and record the rest.

        Questions still queued are not started any more: they get the "interrupted" notice.
        """
        self._closing = True
        if self._inflight:
            log.info("waiting up to %.0f s for %d answer(s)", grace, len(self._inflight))
            await asyncio.wait(set(self._inflight), timeout=grace)
        if self._inflight:
            count = self.answerer.interrupt_all()
            log.info("interrupting %d answer(s)", count)
            await asyncio.wait(set(self._inflight), timeout=30)

    async def ask(
        self, question: Question, reply_to: int | None = None, quote: Quote | None = None
    ) -> Outcome | None:
        """Answer a question, continuing the conversation it belongs to.

        `quote`: the message replied to; it goes before the question unless that message is in
        the conversation already (a question asked earlier), and a part the user selected goes
        in any case."""
        if await self._rate_limited(question):
            return None
        replied = await self.store.turn_by_message(question.chat_id, reply_to) if reply_to else None
        return await self._ask(_framed(question, replied, quote), replied)

    async def edit(
        self, question: Question, reply_to: int | None = None, quote: Quote | None = None
    ) -> Outcome | None:
        """A question's message was edited: memory keeps what it now says.

        Still waiting for its turn, it is answered as edited. Answered (or being answered), its
        turn takes the new text, so the conversation goes on from it and `/retry` answers it,
        and the user is told so. In a group, a message edited to address the bot that it never
        answered (its mention was forgotten) is asked now.
        """
        replied = await self.store.turn_by_message(question.chat_id, reply_to) if reply_to else None
        question = _framed(question, replied, quote)
        waiting = (question.chat_id, question.message_id)
        if self._waiting.get(waiting) is not None:
            self._waiting[waiting] = question
            return None
        turn = await self.store.turn_by_message(question.chat_id, question.message_id)
        if turn is not None:
            if turn.question_message_id == question.message_id and turn.question != question.text:
                await self.store.set_question(turn.id, question.text)
                await self._notice(question, "edited")
            return None
        if waiting in self._waiting:
            return None  # its answer is starting: it was asked, as it read a moment ago
        if question.is_private or await self._rate_limited(question):
            return None  # never asked in a private chat: a command once, or over the limit
        return await self._ask(question, replied)

    async def retry(self, question: Question, reply_to: int | None = None) -> Outcome | None:
        """Answer the last question (or the one replied to) again, as a sibling branch."""
        target = await self._retry_target(question, reply_to)
        if target is None:
            await self._notice(question, "retry_nothing")
            return None
        if await self._rate_limited(question):
            return None
        parent = await self.store.get_turn(target.parent_id) if target.parent_id else None
        again = Question(
            chat_id=question.chat_id,
            message_id=target.question_message_id,
            user_id=question.user_id,
            text=target.question,
            lang=question.lang,
            thread_id=target.thread_id,
            is_private=question.is_private,
        )
        key = await self._key(again, parent if parent else target)
        return await self._run(
            key, again, lambda: self._answer(again, parent, fresh=parent is None)
        )

    async def recover(self) -> int:
        """At start-up: answers a crash left unfinished are marked interrupted, their Stop button
        is removed and the asker is told to ask again. Returns how many there were."""
        turns = await self.store.unfinished()
        for turn in turns:
            await self.store.finish_turn(
                turn.id, answer=turn.answer, status=TurnStatus.INTERRUPTED, message_ids=[]
            )
            for message_id in turn.message_ids[-1:]:
                await self.notifier.remove_keyboard(turn.chat_id, message_id)
            await self.notifier.reply(
                turn.chat_id,
                t(turn.lang, "notice_interrupted"),
                reply_to=turn.question_message_id,
                thread_id=turn.thread_id,
            )
        if turns:
            log.info("marked %d unfinished answer(s) as interrupted", len(turns))
        return len(turns)

    async def new(self, question: Question) -> None:
        """`/new`: the next plain message in this private chat starts a new conversation."""
        await self.store.set_head(question.chat_id, question.thread_id, None)

    # -- internals -------------------------------------------------------------------------------

    async def _ask(self, question: Question, replied: Turn | None) -> Outcome | None:
        key = await self._key(question, replied)
        waiting = (question.chat_id, question.message_id)
        self._waiting[waiting] = question

        def start() -> Awaitable[Outcome]:
            # Queued behind another answer, it is answered as its message reads when its turn
            # comes (`edit` replaces it meanwhile).
            current = self._waiting.get(waiting) or question
            self._waiting[waiting] = None
            return self._answer(current, replied)

        try:
            return await self._run(key, question, start)
        finally:
            self._waiting.pop(waiting, None)

    async def _rate_limited(self, question: Question) -> bool:
        """Count the request; over the limit, tell the user when to come back."""
        if self.limiter is None or question.user_id in self.exempt:
            return False
        wait = await self.limiter.hit(question.user_id)
        if wait <= 0:
            return False
        log.info("user %s: rate limited for %.0f s", question.user_id, wait)
        if await self._limit_notices.allow(question.chat_id, question.user_id):
            await self._notice(question, "rate_limited", minutes=max(1, math.ceil(wait / 60)))
        return True

    async def _notice(self, question: Question, key: str, **values: object) -> Message | None:
        return await self.notifier.reply(
            question.chat_id,
            t(question.lang, key, **values),
            reply_to=question.message_id,
            thread_id=question.thread_id,
        )

    async def _key(self, question: Question, replied: Turn | None) -> str:
        """Questions with the same key are answered one after another."""
        if question.is_private:
            return f"private:{question.chat_id}:{question.thread_id or 0}"
        if replied is None:
            return f"thread:{question.chat_id}:{question.message_id}"
        chain = await self.store.chain(replied.id)
        return f"thread:{question.chat_id}:{chain[0].question_message_id}"

    async def _run(
        self, key: str, question: Question, work: Callable[[], Awaitable[Outcome]]
    ) -> Outcome | None:
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        queued: list[Message] = []  # "⏳ I'll answer this right after…"

        async def on_queued() -> None:
            if notice := await self._notice(question, "queued"):
                queued.append(notice)

        try:
            async with self.queues.hold(key, on_queued):
                if self._closing:
                    await self._notice(question, "notice_not_started")
                    return None
                return await work()
        finally:
            self._inflight.discard(task)
            for notice in queued:  # answered (or told why not): the promise is kept or void
                await self.notifier.delete(notice.chat.id, notice.message_id)

    async def _answer(
        self, question: Question, replied: Turn | None, *, fresh: bool = False
    ) -> Outcome:
        parent_id: int | None = replied.id if replied else None
        if replied is None and question.is_private and not fresh:
            parent_id = await self.store.get_head(question.chat_id, question.thread_id)
        history = await self.store.chain(parent_id) if parent_id else []
        prefs = await self.store.prefs(question.chat_id)
        model = prefs.model if prefs.model in self.defaults.models else self.defaults.model
        system = (
            prefs.system_prompt if prefs.system_prompt is not None else self.defaults.system_prompt
        )
        messages = build_context(system, history, question.text, self.defaults.max_context_chars)
        turn = await self.store.add_turn(
            chat_id=question.chat_id,
            thread_id=question.thread_id,
            user_id=question.user_id,
            parent_id=parent_id,
            question=question.text,
            question_message_id=question.message_id,
            model=model,
            lang=question.lang,
        )
        if question.is_private:
            await self.store.set_head(question.chat_id, question.thread_id, turn.id)

        async def link(message_id: int) -> None:
            await self.store.link_message(question.chat_id, message_id, turn.id)

        status = TurnStatus.INTERRUPTED
        outcome: Outcome | None = None
        try:
            outcome = await self.answerer.answer(question, messages, model=model, on_sent=link)
            status = TurnStatus(outcome.result)
            return outcome
        finally:
            await self.store.finish_turn(
                turn.id,
                answer=outcome.text if outcome else "",
                status=status,
                message_ids=outcome.message_ids if outcome else [],
            )

    async def _retry_target(self, question: Question, reply_to: int | None) -> Turn | None:
        if reply_to:
            turn = await self.store.turn_by_message(question.chat_id, reply_to)
            if turn is not None:
                return turn
        if question.is_private:
            head = await self.store.get_head(question.chat_id, question.thread_id)
            return await self.store.get_turn(head) if head else None
        return await self.store.latest_turn(question.chat_id, question.thread_id, question.user_id)


def _framed(question: Question, replied: Turn | None, quote: Quote | None) -> Question:
    """The question with the message it replies to quoted before it, unless that message is in
    the conversation already (a question asked earlier); a part the user selected goes in any
    case."""
    if quote and (quote.selected or replied is None or not question.text):
        return replace(question, text=f"{quote.text}\n\n{question.text}".rstrip())
    return question
