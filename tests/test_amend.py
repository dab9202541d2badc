"""`Conversations.amend` against each moment of an answer, with the real `Answerer` (its reply
engine and model stubbed): a question sent on with more (a comment, then its forwards) is answered
once, as amended, or, when too late, leaves the rest a question of its own; never neither."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import pytest

import bot.answering as answering
from bot.answering import Answerer, Outcome, Question
from bot.conversations import Conversations, SQLiteStore, Turn
from bot.conversations.service import Defaults
from bot.streaming.reply import DeliveryStats, DraftSupport


class _Reply:
    """Stands in for `ReplyStream`: remembers what it was told."""

    made: ClassVar[list[_Reply]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.text = ""
        self.notice: Any = None
        self.chat_id = kwargs["chat_id"]
        self.failed = False
        self.gone = False
        self.last_send = -math.inf
        self.message_ids: list[int] = []
        self.stats = DeliveryStats()
        _Reply.made.append(self)

    def start(self) -> None: ...

    def update(self, text: str) -> None:
        self.text = text

    async def close(self, notice: Any = None, *, complete: bool = True) -> None:
        self.notice = notice

    def shows_nothing(self) -> bool:
        return not self.text.strip()


class _LLM:
    """Streams scripted answers; `on_end` runs as the stream ends (its last step)."""

    api_base = "stub"
    provider_label = "stub"

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.on_end: Callable[[], None] | None = None
        self.hang = False
        self.streaming = asyncio.Event()

    async def catch_up(self, task: object) -> None: ...

    async def stream(self, messages: list[Any], model: str | None) -> AsyncIterator[str]:
        self.asked.append(messages[-1]["content"])
        yield f"Re: {messages[-1]['content']}"
        self.streaming.set()
        if self.hang and len(self.asked) == 1:
            await asyncio.Event().wait()
        if self.on_end is not None and len(self.asked) == 1:
            # Anything the loop runs next (another update's handler) runs before the answer's
            # coroutine learns that its stream ended.
            asyncio.get_running_loop().call_soon(self.on_end)


@pytest.fixture
async def setup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Conversations, Answerer, _LLM]]:
    monkeypatch.setattr(answering, "ReplyStream", _Reply)
    _Reply.made = []
    store = SQLiteStore(tmp_path / "memory.db")
    await store.open()
    llm = _LLM()
    answerer = Answerer(None, llm, None, DraftSupport("edit"))  # type: ignore[arg-type]
    defaults = Defaults(model="m", models=("m",), system_prompt="", max_context_chars=10_000)
    conversations = Conversations(store, answerer, None, defaults)  # type: ignore[arg-type]
    yield conversations, answerer, llm
    await store.close()


QUESTION = Question(chat_id=1, message_id=10, user_id=1, text="Summarise this:")
AMENDED = replace(QUESTION, text="Summarise this:\n\nAnn wrote:\n> Lunch?")


async def test_an_answer_whose_stream_just_ended_is_not_withdrawn(
    setup: tuple[Conversations, Answerer, _LLM],
) -> None:
    """The answer is still registered, but its stream has ended (the answer's coroutine has not
    resumed yet): too late to withdraw it, so `amend` says so and the rest is asked apart."""
    conversations, answerer, llm = setup
    said: list[bool] = []
    llm.on_end = lambda: said.append(conversations.amend(AMENDED))
    outcome = await conversations.ask(QUESTION)
    assert said == [False]
    assert outcome is not None and not outcome.withdrawn and not outcome.stopped
    assert llm.asked == [QUESTION.text]
    assert not answerer._draft_left


async def test_a_stop_pressed_as_the_answer_is_withdrawn_does_not_undo_the_withdrawal(
    setup: tuple[Conversations, Answerer, _LLM],
) -> None:
    """The first stop says how an answer ends: a Stop handled in the same loop pass as the
    withdrawal neither turns it into a user's stop ("⏹ Stopped.") nor loses the amended question;
    and a withdrawal after a user's Stop is refused (the rest is then asked apart)."""
    conversations, answerer, llm = setup
    llm.hang = True
    asking = asyncio.create_task(conversations.ask(QUESTION))
    await llm.streaming.wait()
    [answer_id] = answerer.active
    assert conversations.amend(AMENDED)
    answerer.stop_here(answer_id)
    await asking
    assert llm.asked == [QUESTION.text, AMENDED.text]
    assert _Reply.made[0].notice is None

    llm.streaming.clear()
    llm.asked.clear()
    second = replace(QUESTION, message_id=20)
    asking = asyncio.create_task(conversations.ask(second))
    await llm.streaming.wait()
    [answer_id] = answerer.active
    answerer.stop_here(answer_id)
    assert not conversations.amend(replace(second, text="more"))
    await asking
    assert llm.asked == [second.text]


class _Notifier:
    def __init__(self) -> None:
        self.told: list[str] = []

    async def reply(self, chat_id: int, text: str, **kwargs: Any) -> None:
        self.told.append(text)


async def test_an_edit_between_the_withdrawn_answer_and_the_new_one_reaches_the_new_turn(
    setup: tuple[Conversations, Answerer, _LLM],
) -> None:
    """An edit of the comment while the question is asked again (the withdrawn turn stored, the
    new one not yet) is the new turn's: memory keeps the edited text, and the withdrawn turn, which
    nothing shows, is not spoken of."""
    conversations, _, llm = setup
    notifier = _Notifier()
    conversations.notifier = notifier  # type: ignore[assignment]
    store = conversations.store
    llm.hang = True
    adding, go_on = asyncio.Event(), asyncio.Event()
    add_turn = store.add_turn
    calls = 0

    async def slow_second_add_turn(**kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            adding.set()
            await go_on.wait()
        return await add_turn(**kwargs)

    store.add_turn = slow_second_add_turn  # type: ignore[method-assign]
    asking = asyncio.create_task(conversations.ask(QUESTION))
    await llm.streaming.wait()
    assert conversations.amend(AMENDED)
    await adding.wait()
    edited = replace(AMENDED, text=AMENDED.text.replace("Summarise", "Translate"))
    await conversations.edit(edited)
    go_on.set()
    await asking
    head = await store.get_head(1, None)
    turn = await store.get_turn(head)  # type: ignore[arg-type]
    assert turn is not None and turn.question == edited.text


class _StubAnswerer:
    """Answers at once with the question's text; `withdraw` finds nothing streaming."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def gone_since(self, chat_id: int, since: float) -> bool:
        return False

    def withdraw(self, chat_id: int, message_id: int) -> bool:
        return False

    async def answer(self, question: Question, messages: object, **kwargs: object) -> Outcome:
        self.asked.append(question.text)
        return Outcome(text=f"Re: {question.text}", message_ids=[])


async def test_a_question_amended_while_its_answer_starts_is_answered_as_amended(
    tmp_path: Path,
) -> None:
    """Between an answer's start and its stream (the store being read and written), `amend`
    cannot stop a stream: the answer starts with the amended question instead."""
    store = SQLiteStore(tmp_path / "memory.db")
    await store.open()
    answerer = _StubAnswerer()
    defaults = Defaults(model="m", models=("m",), system_prompt="", max_context_chars=10_000)
    conversations = Conversations(store, answerer, None, defaults)  # type: ignore[arg-type]
    adding = asyncio.Event()
    go_on = asyncio.Event()
    add_turn = store.add_turn

    async def slow_add_turn(**kwargs: Any) -> Turn:
        adding.set()
        await go_on.wait()
        return await add_turn(**kwargs)

    store.add_turn = slow_add_turn  # type: ignore[method-assign]
    question = Question(chat_id=1, message_id=10, user_id=1, text="Summarise this:")
    asking = asyncio.create_task(conversations.ask(question))
    await adding.wait()
    amended = replace(question, text="Summarise this:\n\nAnn wrote:\n> Lunch?")
    assert conversations.amend(amended)
    go_on.set()
    outcome = await asking
    assert outcome is not None and outcome.text == f"Re: {amended.text}"
    assert answerer.asked == [amended.text]  # the first version never streamed
    head = await store.get_head(1, None)
    assert head is not None
    [turn] = await store.chain(head)  # continuing from where the question did: nothing before
    assert turn.question == amended.text
    # Once answered, it is too late: the rest is a question of its own.
    assert not conversations.amend(replace(question, text="more"))
    await store.close()
