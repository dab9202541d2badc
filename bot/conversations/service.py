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
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from functools import partial

from aiogram.types import Message

from bot.answering import Answerer, Outcome, Question, Quote
from bot.conversations.context import build_context
from bot.conversations.models import Turn, TurnStatus
from bot.conversations.queues import LocalQueues, Queues
from bot.conversations.store import Store
from bot.notify import Notifier
from bot.ratelimit import Limiter, NoticeGate, Throttle
from bot.retrying import Retrying
from bot.streaming.reply import Leftover
from bot.streaming.split import Segmenter
from bot.texts import t

log = logging.getLogger(__name__)

# A write that failed (Redis restarting, a full disk) is tried again after 1 s, 2 s, 4 s … 30 s,
# for up to 10 minutes.
RETRY_FIRST = 1.0
RETRY_MAX = 30.0
RETRY_FOR = 600.0
ABANDON_AFTER = 5.0  # s an interrupted answer is given to end when a shutdown was cut short


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
        # Questions asked and not stored yet, by (chat, message): None, or an edit made to one
        # meanwhile (its question and quote), answered or stored in the question's place.
        self._pending: dict[tuple[int, int], tuple[Question, Quote | None] | None] = {}
        # Turns whose edit was told of (bounded), and the notice that told it, if sent.
        self._told_edited: dict[int, int | None] = {}
        # Answers being written here, by question: None, or the edit to tell of once it is done
        # (told at once, the notice would come before the answer's message in a draft chat).
        self._answering: dict[tuple[int, int], tuple[Turn, Question] | None] = {}
        # Questions sent on with more (`amend`) while their answer starts or streams: what they
        # now ask, answered in the withdrawn answer's place. `_starting`: answers between their
        # start and the model's stream, which `amend` can still stop before they stream.
        self._amended: dict[tuple[int, int], tuple[Question, Quote | None]] = {}
        self._starting: set[tuple[int, int]] = set()
        self._edit_order = LocalQueues()
        self._closing = False
        self._abandoning = False  # see `abandon`
        self.retrying = Retrying(first=RETRY_FIRST, most=RETRY_MAX, give_up_after=RETRY_FOR)

    def close(self) -> None:
        """From now on, no answer starts: a question is told it was not answered."""
        self._closing = True

    @contextlib.contextmanager
    def _in_flight(self) -> Iterator[None]:
        """The current task is an answer in flight (`drain` waits for it) until the block ends;
        nested, until the outermost one ends."""
        task = asyncio.current_task()
        if task is None or task in self._inflight:
            yield
            return
        self._inflight.add(task)
        try:
            yield
        finally:
            self._inflight.discard(task)

    async def drain(self, grace: float, hurry: asyncio.Event | None = None) -> None:
        """At shutdown: let answers finish within `grace` s (or until `hurry` is set), then
        interrupt and record the rest.

        Questions still queued are not started any more: they are told they were not answered.
        """
        self.close()
        hint = "; SIGINT or SIGTERM again interrupts them now" if hurry else ""
        hurry = hurry or asyncio.Event()
        if self._inflight and not hurry.is_set():
            log.info("waiting up to %.0f s for %d answer(s)%s", grace, len(self._inflight), hint)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + grace
            hurried = asyncio.create_task(hurry.wait())
            try:
                while self._inflight and not hurry.is_set() and loop.time() < deadline:
                    await asyncio.wait(
                        {*self._inflight, hurried},
                        timeout=deadline - loop.time(),
                        return_when=asyncio.FIRST_COMPLETED,
                    )
            finally:
                hurried.cancel()
        if self._inflight:
            count = self.answerer.interrupt_all()
            log.info("interrupting %d answer(s)", count)
            await asyncio.wait(set(self._inflight), timeout=30)
        await self.retrying.last_tries()  # writes storage refused: a last try, then lost

    async def abandon(self) -> None:
        """A shutdown cut short (cancelled, or a step of it failed) while answers still run:
        they are interrupted as `drain` does, but given only a few seconds; any still running
        then is cancelled and left as a crash leaves it (the next start tells its asker). When
        this returns, nothing of the bot's runs any more: storage may close."""
        self.close()
        if not self._inflight:
            return
        log.warning("interrupting %d answer(s): the shutdown was cut short", len(self._inflight))
        self.answerer.interrupt_all()
        await asyncio.wait(set(self._inflight), timeout=ABANDON_AFTER)
        self._abandoning = True
        while running := set(self._inflight):
            log.warning("abandoning %d answer(s), as a crash would", len(running))
            for task in running:
                task.cancel()
            await asyncio.wait(running, timeout=1)
        await self.retrying.last_tries()

    async def ask(
        self, question: Question, reply_to: int | None = None, quote: Quote | None = None
    ) -> Outcome | None:
        """Answer a question, continuing the conversation it belongs to.

        `quote`: the message replied to; it goes before the question unless that message is in
        the conversation already (a question asked earlier), and a part the user selected goes
        in any case."""
        key = (question.chat_id, question.message_id)
        arrived = time.monotonic()
        self._pending[key] = None  # before any await: from now on, an edit of it is kept
        with self._in_flight():  # also before any await: `drain` waits for it from now on
            try:
                if await self._rate_limited(question):
                    return None
                replied = await self._turn_of(question.chat_id, reply_to)
                framed = _framed(question, replied, quote)

                async def answer() -> Outcome:
                    # Queued behind another answer, it is answered as its message reads now.
                    edit = self._pending.get(key)
                    self._pending[key] = None
                    current = _framed(edit[0], replied, edit[1]) if edit else framed

                    async def stored(turn: Turn) -> None:  # an edit while the answer was starting
                        async with self._editing(key):
                            if late := self._pending.pop(key, None):
                                await self._edited(turn, _framed(late[0], replied, late[1]))

                    try:
                        while True:
                            self._starting.add(key)
                            outcome = await self._answering_while(
                                key, current, self._answer(current, replied, on_stored=stored)
                            )
                            amended = self._amended.pop(key, None)
                            if amended is None or not outcome.withdrawn:
                                return outcome
                            current = _framed(amended[0], replied, amended[1])
                            if self._closing:  # withdrawn as the bot stops: nothing of it is shown
                                await self._notice(current, "notice_not_started")
                                return outcome
                            self._pending[key] = None  # an edit from now on is the new turn's
                    finally:
                        self._starting.discard(key)
                        self._amended.pop(key, None)

                return await self._run(await self._key(framed, replied), framed, answer, arrived)
            finally:
                self._pending.pop(key, None)

    def amend(self, question: Question, quote: Quote | None = None) -> bool:
        """A private question was sent with more, which now joins it (a comment typed with a
        forward comes first, the forwarded messages after it): it reads `question.text` now.

        Still waiting, it is answered so. Being answered, that answer is withdrawn (its messages
        deleted, no notice) and the question asked again so, continuing from where it did: the
        user sees one answer, to all of it. False when too late, the answer complete or being
        delivered, or the bot stopping: the rest is then a question of its own."""
        key = (question.chat_id, question.message_id)
        if self._closing:
            return False
        if key in self._pending and key not in self._answering:
            self._pending[key] = (question, quote)
            return True
        if key in self._starting or self.answerer.withdraw(*key):
            self._amended[key] = (question, quote)
            return True
        return False

    async def edit(
        self, question: Question, reply_to: int | None = None, quote: Quote | None = None
    ) -> Outcome | None:
        """A question's message was edited: memory keeps what it now says.

        Still waiting for its turn, it is answered as edited. Answered (or being answered), its
        turn takes the new text, so the conversation goes on from it and `/retry` answers it,
        and the user is told so. In a group, a message edited to address the bot that it has not
        answered (its mention was forgotten) is asked now.
        """
        key = (question.chat_id, question.message_id)
        async with self._editing(key):
            if key in self._pending:
                self._pending[key] = (question, quote)
                return None
            turn = await self.store.turn_by_message(question.chat_id, question.message_id)
            if turn is not None:
                replied = await self._turn_of(question.chat_id, reply_to)
                if replied is not None and replied.id != turn.parent_id:
                    replied = None  # not in the conversation when it was asked: quoted then
                await self._edited(turn, _framed(question, replied, quote))
                return None
            if key in self._pending:  # asked while the store was read
                self._pending[key] = (question, quote)
                return None
            if question.is_private:
                return None  # never asked: a command when sent, or refused over the limit
        return await self.ask(question, reply_to, quote)  # registers it before any await

    async def retry(self, question: Question, reply_to: int | None = None) -> Outcome | None:
        """Answer the last question (or the one replied to) again, as a sibling branch."""
        arrived = time.monotonic()
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
        key = (again.chat_id, again.message_id)

        async def answer() -> Outcome:
            # The question as it reads once its turn comes (it may be edited while queued).
            self._answering[key] = None  # from now on, an edit is told of after this answer
            current = await self.store.get_turn(target.id)
            asked = replace(again, text=current.question if current else again.text)

            async def stored(turn: Turn) -> None:  # an edit between that read and this turn
                now = await self.store.get_turn(target.id)
                if now is not None and now.question != asked.text:
                    await self.store.set_question(asked.chat_id, asked.message_id, now.question)

            outcome = await self._answering_while(
                key, asked, self._answer(asked, parent, fresh=parent is None, on_stored=stored)
            )
            if outcome.result == "done" and (told := self._told_edited.get(target.id)):
                # "✏️ … to have this one answered, /retry": it is answered; the notice goes.
                self._told_edited[target.id] = None
                await self.notifier.delete(again.chat_id, told)
            return outcome

        return await self._run(await self._key(again, parent or target), again, answer, arrived)

    async def recover(self) -> int:
        """At start-up: answers a crash left unfinished are marked interrupted, their Stop button
        is removed and the asker is told to ask again; so is a question that was waiting behind
        one. Returns how many answers there were."""
        turns = await self.store.unfinished()
        for turn in turns:
            # `answer`: what its messages showed when last stored (`_Progress`).
            await self.store.finish_turn(
                turn.id, answer=turn.answer, status=TurnStatus.INTERRUPTED, message_ids=[]
            )
            try:
                await self._settle_messages(turn)
            except Exception:  # a start-up must not fail over one old message
                log.exception("chat %s: the messages of turn %s not settled", turn.chat_id, turn.id)
            await self.notifier.reply(
                turn.chat_id,
                t(turn.lang, "notice_interrupted"),
                reply_to=turn.question_message_id,
                thread_id=turn.thread_id,
            )
        if turns:
            log.info("marked %d unfinished answer(s) as interrupted", len(turns))
        # Questions that were waiting behind those answers: their "⏳" promise goes, and they are
        # told, as at a clean shutdown, that they were not answered.
        waiting = await self.store.orphaned_waiting()
        for question in waiting:
            if not await self.notifier.delete(question.chat_id, question.notice_id):
                await self._leave(Leftover(question.chat_id, question.notice_id, None))
            await self.notifier.reply(
                question.chat_id,
                t(question.lang, "notice_not_started"),
                reply_to=question.message_id,
                thread_id=question.thread_id,
            )
        if waiting:
            log.info("told %d waiting question(s) they were not answered", len(waiting))
        return len(turns)

    async def _settle_messages(self, turn: Turn) -> None:
        """The messages of an answer a crash left: each shows its part of the text stored,
        without Stop button and cursor (one whose part is not known loses its button only). Not
        only the last: a part is sent before the one before it loses its cursor, and a crash
        between the two left both with theirs."""
        parts = Segmenter().parts(turn.answer, streaming=True) if turn.answer.strip() else []
        for i, message_id in enumerate(sorted(turn.message_ids)):
            if i >= len(parts) or not await self.notifier.edit_part(
                turn.chat_id, message_id, parts[i]
            ):
                await self.notifier.remove_keyboard(turn.chat_id, message_id)

    async def let_back_in(self, chat_id: int) -> int:
        """The chat let the bot back in (unblocked it, added it again): what it was left with
        when it shut the bot out is put right. An answer cut off shows as it ended (a stop's
        "⏹ Stopped.", a failure's notice), without cursor and Stop button; the text a draft
        showed is sent; no "⏳" promise stands. Shut out again meanwhile, what is not done yet
        is kept for the next time. Returns how many messages were put right."""
        self.answerer.back_in(chat_id)
        items = await self.store.take_left(chat_id)
        for i, item in enumerate(items):
            try:
                left = Leftover.from_json(chat_id, item)
                done = await self.notifier.put_right(left)
            except Exception:  # one that cannot be done does not stop the others
                log.exception("chat %s: a message not put right", chat_id)
                continue
            if done is False:
                for rest in items[i:]:
                    await self._written(
                        f"what chat {chat_id} is to show", partial(self.store.leave, chat_id, rest)
                    )
                return i
            if done is not None and left.turn_id is not None:  # a part sent: the answer's
                await self._written(
                    f"message {done} of turn {left.turn_id}",
                    partial(self.store.link_message, chat_id, done, left.turn_id),
                )
        return len(items)

    async def _leave(self, left: Leftover) -> None:
        """Store what a chat that shut the bot out is to show once it lets it back in; if it
        did so before this was stored, it is put right at once."""
        chat_id = left.chat_id

        async def write() -> None:
            await self.store.leave(chat_id, left.to_json())
            if not self.answerer.shut_out_of(chat_id):
                try:
                    await self.let_back_in(chat_id)
                except Exception:  # (not a failed write, to be tried again)
                    log.exception("chat %s: not put right", chat_id)

        await self._written(f"what chat {chat_id} is to show", write)

    async def new(self, question: Question) -> None:
        """`/new`: the next plain message in this private chat starts a new conversation. A
        question sent before it and still waiting for its turn is answered in the old one."""
        await self.store.start_afresh(question.chat_id, question.thread_id, question.message_id)

    # -- internals -------------------------------------------------------------------------------

    async def _turn_of(self, chat_id: int, message_id: int | None) -> Turn | None:
        return await self.store.turn_by_message(chat_id, message_id) if message_id else None

    def _editing(self, key: tuple[int, int]) -> AbstractAsyncContextManager[None]:
        """One edit of a message at a time: each reads the stored question, then writes it."""
        return self._edit_order.hold(f"{key[0]}:{key[1]}", _nothing)

    async def _answering_while(
        self, key: tuple[int, int], question: Question, answering: Awaitable[Outcome]
    ) -> Outcome:
        """Await the answer to `question`; an edit of it meanwhile is told of after it, not
        before (in a draft chat the answer's message comes at the end)."""
        self._answering.setdefault(key, None)  # kept if an edit came while it was starting
        try:
            return await answering
        finally:
            edited = self._answering.pop(key, None)
            if edited is not None and edited[1].text != question.text:
                await self._tell_edited(*edited)

    async def _edited(self, turn: Turn, question: Question) -> None:
        """The question of a stored turn was edited: store the new text, and say (once) that
        the answer is to the earlier version; the notice leads `/retry` to this turn too."""
        if turn.question == question.text:
            return  # nothing the model reads changed (a link preview, a quote the same)
        await self.store.set_question(question.chat_id, question.message_id, question.text)
        key = (question.chat_id, question.message_id)
        if key in self._answering:
            self._answering[key] = (turn, question)  # told once the answer is done
        else:
            await self._tell_edited(turn, question)

    async def _tell_edited(self, turn: Turn, question: Question) -> None:
        """Once per answer (quick typo fixes are one edit to the user); an answer that came to
        nothing (a failure, a stop before any text) is not spoken of as an answer."""
        if turn.id in self._told_edited:
            return
        self._told_edited[turn.id] = None
        if len(self._told_edited) > 10_000:
            del self._told_edited[next(iter(self._told_edited))]
        now = await self.store.get_turn(turn.id)  # as the answer ended
        key = "edited" if now is not None and now.answer.strip() else "edited_unanswered"
        if notice := await self._notice(question, key):
            if turn.id in self._told_edited:
                self._told_edited[turn.id] = notice.message_id
            await self.store.link_message(question.chat_id, notice.message_id, turn.id)

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
        self,
        key: str,
        question: Question,
        work: Callable[[], Awaitable[Outcome]],
        arrived: float,
    ) -> Outcome | None:
        with self._in_flight():
            queued: Message | None = None  # "⏳ I'll answer this right after…"
            waiting: int | None = None  # its record, for the case of a crash meanwhile

            async def on_queued() -> None:
                nonlocal queued, waiting
                queued = await self._notice(question, "queued")
                if queued is None:
                    return
                try:
                    waiting = await self.store.add_waiting(
                        chat_id=question.chat_id,
                        thread_id=question.thread_id,
                        message_id=question.message_id,
                        notice_id=queued.message_id,
                        lang=question.lang,
                    )
                except Exception as error:  # only a crash meanwhile would need it
                    log.warning("waiting question not stored (%s)", type(error).__name__)

            try:
                async with self.queues.hold(key, on_queued):
                    if self._closing:
                        await self._notice(question, "notice_not_started")
                        return None
                    if self.answerer.gone_since(question.chat_id, arrived):
                        log.info("chat %s: not answering, the bot was removed", question.chat_id)
                        return None
                    return await work()
            finally:  # (all of it in flight: `drain` waits for the delete too)
                if queued is not None:  # answered (or told why not): the promise is kept or void
                    chat, notice = queued.chat.id, queued.message_id
                    if not await self.notifier.delete(chat, notice):  # the chat shut the bot out
                        await self._leave(Leftover(chat, notice, None))  # deleted once back in
                if waiting is not None:  # else a restart would say it was not answered
                    await self._written(
                        f"waiting question {waiting} done",
                        partial(self.store.remove_waiting, waiting),
                    )

    async def _answer(
        self,
        question: Question,
        replied: Turn | None,
        *,
        fresh: bool = False,
        on_stored: Callable[[Turn], Awaitable[None]] | None = None,
    ) -> Outcome:
        parent_id: int | None = replied.id if replied else None
        if replied is None and question.is_private and not fresh:
            parent_id = await self.store.head_for(
                question.chat_id, question.thread_id, question.message_id
            )
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

        async def link(chat_id: int, message_id: int) -> None:
            await self._written(
                f"message {message_id} of turn {turn.id}",
                partial(self.store.link_message, chat_id, message_id, turn.id),
            )

        status = TurnStatus.INTERRUPTED
        outcome: Outcome | None = None
        progress = _Progress(partial(self.store.save_progress, turn.id))
        try:
            if question.is_private:
                await self.store.set_head(question.chat_id, question.thread_id, turn.id)
            if on_stored is not None:
                await on_stored(turn)
            key = (question.chat_id, question.message_id)
            self._starting.discard(key)  # from here on, `amend` withdraws the answer itself
            if key in self._amended:  # amended while starting: it is asked again at once
                outcome = Outcome(text="", message_ids=[], stopped=True, withdrawn=True)
            else:
                outcome = await self.answerer.answer(
                    question, messages, model=model, on_sent=link, on_shown=progress
                )
            for left in outcome.left:  # what the chat shows once it lets the bot back in
                await self._leave(replace(left, turn_id=turn.id))
            if outcome.writable_again:
                # A group no longer read-only, or that made the bot an admin, tells nobody:
                # what it was left with is put right once the bot could send there again.
                try:  # (in the supergroup, if the group became one meanwhile)
                    await self.let_back_in(self.answerer.chat_now(question.chat_id))
                except Exception:
                    log.exception("chat %s: not put right", question.chat_id)
            if outcome.withdrawn and question.is_private:
                # The question asked in its place continues from where this one did.
                await self.store.set_head(question.chat_id, question.thread_id, parent_id)
            status = TurnStatus(outcome.result)
            return outcome
        finally:
            progress.close()  # no waiting here: the answer's end is stored in any case
            # Abandoned, it is left as a crash leaves it: stored as far as it was shown, found
            # unfinished by the next start, which tells its asker.
            if outcome is not None or not self._abandoning:
                finish = partial(
                    self.store.finish_turn,
                    turn.id,
                    answer=outcome.text if outcome else "",
                    status=status,
                    message_ids=outcome.message_ids if outcome else [],
                )
                await self._written(f"the answer of turn {turn.id}", finish)

    async def _written(self, what: str, write: Callable[[], Awaitable[object]]) -> None:
        """Write now or, while storage fails, keep trying in the background: an answer the chat
        shows must not stay "streaming" in memory (a restart would call it interrupted, and the
        conversation would go on without it)."""
        try:
            await write()
        except Exception as error:
            log.warning("%s not stored (%s); trying again", what, type(error).__name__)
            self.retrying.start(what, write)

    async def _retry_target(self, question: Question, reply_to: int | None) -> Turn | None:
        if reply_to:
            turn = await self.store.turn_by_message(question.chat_id, reply_to)
            if turn is not None:
                return turn
        if question.is_private:
            head = await self.store.get_head(question.chat_id, question.thread_id)
            return await self.store.get_turn(head) if head else None
        return await self.store.latest_turn(question.chat_id, question.thread_id, question.user_id)


class _Progress:
    """Writes what an answer's messages show as it grows (`Store.save_progress`): one write at
    a time, the newest text next, none once the answer has ended. A failed write costs nothing
    but a log line: the answer's end is stored anyway."""

    def __init__(self, write: Callable[[str], Awaitable[None]]) -> None:
        self._write = write
        self._next: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def __call__(self, text: str) -> None:
        if self._closed:
            return
        self._next = text
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="answer-progress")

    async def _run(self) -> None:
        while self._next is not None:
            text, self._next = self._next, None
            try:
                await self._write(text)
            except Exception as error:
                log.debug("progress of an answer not stored: %s", error)

    def close(self) -> None:
        """No more writes; one under way is harmless: a finished turn takes none."""
        self._next = None
        self._closed = True


def _framed(question: Question, replied: Turn | None, quote: Quote | None) -> Question:
    """The question with the message it replies to quoted before it, unless that message is in
    the conversation already (a question asked earlier, an answer); a part the user selected
    goes in any case."""
    if quote and (quote.selected or replied is None or (not question.text and quote.asks)):
        return replace(question, text=f"{quote.text}\n\n{question.text}".rstrip())
    return question


async def _nothing() -> None:
    """Nobody is told when an edit waits for the one before it."""
