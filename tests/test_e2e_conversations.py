"""End-to-end: memory as the backend sees it, branches, groups and topics, restarts, queueing."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import pytest

from tests.conftest import BotRunner
from tests.fakes.llm import FakeLLM, Reply
from tests.fakes.telegram import FakeTelegram
from tests.helpers import answer_messages, final_answer

USER = 3003
GROUP = -100777
ALICE, BOB = 31, 32


def dialog(llm: FakeLLM, index: int = -1) -> list[tuple[str, str]]:
    """The (role, content) pairs of one request the backend received."""
    return [(m["role"], m["content"]) for m in llm.received[index].messages]


async def ask(
    tg: FakeTelegram, chat_id: int, text: str, **kw: Any
) -> tuple[dict[str, Any], list[Any]]:
    """Send a message and wait for the complete answer to it."""
    question = tg.send_user_message(chat_id, text, **kw)["message"]
    thread = kw.get("message_thread_id")
    answer = await final_answer(tg, chat_id, after=question["message_id"], thread_id=thread)
    return question, answer


def _notices(tg: FakeTelegram, chat_id: int, about: int, words: str) -> list[Any]:
    return [
        m for m in tg.bot_messages(chat_id) if m.reply_to_message_id == about and words in m.text
    ]


async def _queued(tg: FakeTelegram, llm: FakeLLM, text: str, words: int) -> tuple[Any, Any, Any]:
    """Ask `text` while a first answer of `words` words streams: the first question, this one
    and the "⏳ I'll answer this right after…" notice it gets."""
    llm.script(Reply("first answer " * words, chunk_size=10, delay=0.02))
    first = tg.send_user_message(USER, "first")["message"]
    await tg.wait_for(lambda: bool(answer_messages(tg, USER, first["message_id"])))
    second = tg.send_user_message(USER, text)["message"]
    await tg.wait_for(lambda: bool(_notices(tg, USER, second["message_id"], "right after")))
    [waiting] = _notices(tg, USER, second["message_id"], "right after")
    return first, second, waiting


async def test_private_memory_is_sent_oldest_first(
    tg: FakeTelegram, llm: FakeLLM, start_bot: BotRunner
) -> None:
    await start_bot(system_prompt="You are terse.")
    for text in ("one", "two", "three"):
        await ask(tg, USER, text)
    assert dialog(llm) == [
        ("system", "You are terse."),
        ("user", "one"),
        ("assistant", "You said: one"),
        ("user", "two"),
        ("assistant", "You said: two"),
        ("user", "three"),
    ]


async def test_new_starts_afresh(tg: FakeTelegram, llm: FakeLLM, bot_app: object) -> None:
    await ask(tg, USER, "remember me")
    new = tg.send_user_message(USER, "/new")["message"]
    await tg.wait_for(lambda: bool(answer_messages(tg, USER, new["message_id"])))
    [told] = answer_messages(tg, USER, new["message_id"])
    assert "New conversation" in told.text
    await ask(tg, USER, "fresh")
    assert dialog(llm) == [("user", "fresh")]
    # A reply to the bot's own notice is not about it (it would reach the model as "You wrote
    # earlier: > 🆕 New conversation…", as a lost answer does).
    await ask(tg, USER, "hello there", reply_to_message_id=told.message_id)
    assert dialog(llm)[-1] == ("user", "hello there")


async def test_new_waits_for_the_questions_sent_before_it(
    tg: FakeTelegram, llm: FakeLLM, bot_app: object
) -> None:
    """`/new` sent while a question waits behind an answer: that question is answered in the
    conversation it was asked in, and the one sent after `/new` starts afresh. The user is told
    of the new conversation at once."""
    _, second, _ = await _queued(tg, llm, "What is my name?", words=60)
    new = tg.send_user_message(USER, "/new")["message"]
    await tg.wait_for(lambda: bool(answer_messages(tg, USER, new["message_id"])))
    assert len(llm.received) == 1  # told before the first answer ended
    fresh = tg.send_user_message(USER, "Fresh topic")["message"]
    await tg.wait_for(lambda: len(llm.received) == 3, timeout=20)
    await final_answer(tg, USER, after=fresh["message_id"])
    assert [c for _, c in dialog(llm, 1)] == ["first", "first answer " * 60, "What is my name?"]
    assert dialog(llm, 2) == [("user", "Fresh topic")]
    assert [m.message_id for m in answer_messages(tg, USER, second["message_id"])]


async def test_new_and_a_question_sent_right_after_it(
    tg: FakeTelegram, llm: FakeLLM, bot_app: object
) -> None:
    """Both come in one batch of updates, handled at the same time: the question starts the new
    conversation all the same, and the next one continues that."""
    await ask(tg, USER, "remember me")
    tg.send_user_message(USER, "/new")
    fresh = tg.send_user_message(USER, "Fresh topic")["message"]
    await tg.wait_for(lambda: len(llm.received) == 2, timeout=20)
    await final_answer(tg, USER, after=fresh["message_id"])
    assert dialog(llm) == [("user", "Fresh topic")]
    more = tg.send_user_message(USER, "and more?")["message"]
    await tg.wait_for(lambda: len(llm.received) == 3, timeout=20)
    await final_answer(tg, USER, after=more["message_id"])
    assert [c for _, c in dialog(llm)] == ["Fresh topic", "You said: Fresh topic", "and more?"]


async def test_new_that_cannot_be_stored_is_not_said_to_be_done(
    tg: FakeTelegram, llm: FakeLLM, bot_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = bot_app.conversations.store

    async def full_disk(*args: object) -> None:
        await asyncio.sleep(0.01)
        raise sqlite3.OperationalError("database or disk is full")

    await ask(tg, USER, "remember me")
    monkeypatch.setattr(store, "start_afresh", full_disk)
    new = tg.send_user_message(USER, "/new")["message"]
    await tg.wait_for(lambda: bool(answer_messages(tg, USER, new["message_id"])))
    [told] = answer_messages(tg, USER, new["message_id"])
    assert "went wrong" in told.text and "New conversation" not in told.text


async def test_reply_to_an_older_answer_branches(
    tg: FakeTelegram, llm: FakeLLM, bot_app: object
) -> None:
    _, [first] = await ask(tg, USER, "A")
    await ask(tg, USER, "B")
    await ask(tg, USER, "C")
    await ask(tg, USER, "A2", reply_to_message_id=first.message_id)
    assert dialog(llm) == [("user", "A"), ("assistant", "You said: A"), ("user", "A2")]
    # A plain message now continues the new branch, without B and C.
    await ask(tg, USER, "next")
    assert [c for _, c in dialog(llm)] == ["A", "You said: A", "A2", "You said: A2", "next"]


async def test_group_threads_are_separate_and_replies_continue_them(
    tg: FakeTelegram, llm: FakeLLM, bot_app: object
) -> None:
    group = {"chat_type": "supergroup"}
    mention = f"@{tg.bot_username}"
    await ask(tg, ALICE, "private secret")  # private memory must not leak into the group
    _, [x] = await ask(tg, GROUP, f"{mention} x", user_id=ALICE, **group)
    assert dialog(llm) == [("user", "x")]
    await ask(tg, GROUP, f"{mention} y", user_id=BOB, **group)
    assert dialog(llm) == [("user", "y")]
    await ask(tg, GROUP, "more on x", user_id=BOB, reply_to_message_id=x.message_id, **group)
    assert dialog(llm) == [("user", "x"), ("assistant", "You said: x"), ("user", "more on x")]
    # Private memory continues by itself.
    await ask(tg, ALICE, "private again")
    assert dialog(llm)[0] == ("user", "private secret")


async def test_forum_topics_do_not_share_memory(
    tg: FakeTelegram, llm: FakeLLM, bot_app: object
) -> None:
    group = {"chat_type": "supergroup", "user_id": ALICE}
    mention = f"@{tg.bot_username}"
    _, [t1] = await ask(tg, GROUP, f"{mention} in topic 1", message_thread_id=101, **group)
    assert t1.message_thread_id == 101
    _, [t2] = await ask(tg, GROUP, f"{mention} in topic 2", message_thread_id=202, **group)
    assert t2.message_thread_id == 202
    assert dialog(llm) == [("user", "in topic 2")]
    _, [again] = await ask(
        tg, GROUP, "follow-up", reply_to_message_id=t1.message_id, message_thread_id=101, **group
    )
    assert again.message_thread_id == 101
    assert [c for _, c in dialog(llm)] == ["in topic 1", "You said: in topic 1", "follow-up"]


async def test_memory_survives_a_restart(
    tg: FakeTelegram, llm: FakeLLM, start_bot: BotRunner
) -> None:
    app = await start_bot()
    await ask(tg, USER, "before restart")
    await start_bot.stop(app)
    await start_bot()
    await ask(tg, USER, "after restart")
    assert [c for _, c in dialog(llm)] == [
        "before restart",
        "You said: before restart",
        "after restart",
    ]


async def test_a_reply_to_an_answer_memory_lost_quotes_it(
    tg: FakeTelegram, llm: FakeLLM, start_bot: BotRunner, tmp_path: Any
) -> None:
    """The data was reset (or moved) since: the answer replied to is quoted, not dropped."""
    app = await start_bot()
    _, [answer] = await ask(tg, USER, "capital of Australia?")
    await start_bot.stop(app)
    await start_bot(data_dir=tmp_path / "reset")
    await ask(tg, USER, "why not Sydney?", reply_to_message_id=answer.message_id)
    assert dialog(llm) == [
        ("user", "You wrote earlier:\n> You said: capital of Australia?\n\nwhy not Sydney?")
    ]


async def test_second_question_is_queued_and_sees_the_first_exchange(
    tg: FakeTelegram, llm: FakeLLM, bot_app: Any
) -> None:
    # The user sees at once that the second question waits.
    _, second, waiting = await _queued(tg, llm, "second", words=100)  # still streaming then
    assert "right after the current answer" in waiting.text
    assert len(llm.received) == 1  # not started yet
    await tg.wait_for(lambda: len(llm.received) == 2, timeout=20)
    await final_answer(tg, USER, after=second["message_id"])
    assert [c for _, c in dialog(llm)] == ["first", "first answer " * 100, "second"]
    # Answered: the promise is kept, and its notice goes.
    await tg.wait_for(lambda: tg.message(USER, waiting.message_id).deleted)
    # Nothing is left for a restart to call unanswered.
    assert await bot_app.store.orphaned_waiting() == []


async def test_at_shutdown_a_queued_question_is_told_it_was_not_answered(
    tg: FakeTelegram, llm: FakeLLM, bot_app: Any
) -> None:
    first, second, waiting = await _queued(tg, llm, "second", words=200)
    await bot_app.conversations.drain(0.2)
    [notice] = _notices(tg, USER, second["message_id"], "stopped before")
    assert notice.text.startswith("⚠️ The bot stopped before it could answer this.")
    assert tg.message(USER, waiting.message_id).deleted
    assert len(llm.received) == 1
    assert await bot_app.store.orphaned_waiting() == []  # told once: not again at start-up
    shown = answer_messages(tg, USER, first["message_id"])
    assert "stopped before this answer was finished" in shown[0].text


async def test_failed_answer_is_stored_with_what_was_shown(
    tg: FakeTelegram, llm: FakeLLM, bot_app: Any
) -> None:
    llm.script(Reply("Partial words then", fault="drop", fault_after=13))
    await ask(tg, USER, "will fail")
    turn = await bot_app.store.latest_turn(USER, None)
    assert turn.status.value == "failed" and turn.answer == "Partial words"
    await ask(tg, USER, "next")
    assert dialog(llm)[:2] == [("user", "will fail"), ("assistant", "Partial words")]


async def test_a_repeated_question_reaches_the_model(
    tg: FakeTelegram, llm: FakeLLM, bot_app: object
) -> None:
    """g4f drops a user message equal to an earlier one unless told not to: "more" twice."""
    await ask(tg, USER, "more")
    await ask(tg, USER, "more")
    assert dialog(llm) == [("user", "more"), ("assistant", "You said: more"), ("user", "more")]


def _span(text: str, part: str, kind: str, **extra: Any) -> dict[str, Any]:
    """The entity of type `kind` over `part` of `text`, as Telegram sends it (UTF-16)."""
    start = text.index(part)
    utf16 = len(text[:start].encode("utf-16-le")) // 2
    return {"type": kind, "offset": utf16, "length": len(part.encode("utf-16-le")) // 2, **extra}


async def test_a_questions_formatting_reaches_the_model_as_markdown(
    tg: FakeTelegram, llm: FakeLLM, bot_app: object
) -> None:
    """A code block typed in a client arrives as bare lines and a `pre` entity, a link as its
    words and a hidden address: the model gets them as Markdown, and so does memory."""
    code = "def f(x):\n    return x * 2"
    text = f"Why does this fail? 🤔\n{code}\nSee the docs, it is urgent"
    entities = [
        _span(text, code, "pre", language="python"),
        _span(text, "the docs", "text_link", url="https://docs.python.org/3/"),
        _span(text, "urgent", "bold"),
    ]
    question = tg.send_user_message(USER, text, entities=entities)["message"]
    await final_answer(tg, USER, after=question["message_id"])
    asked = (
        "Why does this fail? 🤔\n```python\ndef f(x):\n    return x * 2\n```\n"
        "See [the docs](https://docs.python.org/3/), it is **urgent**"
    )
    assert dialog(llm)[-1] == ("user", asked)

    command = "/ask what does `x * 2` return?"
    ask_text = "/ask what does x * 2 return?"
    entities = [_span(ask_text, "/ask", "bot_command"), _span(ask_text, "x * 2", "code")]
    question = tg.send_user_message(USER, ask_text, entities=entities)["message"]
    await final_answer(tg, USER, after=question["message_id"])
    assert dialog(llm)[-3:] == [
        ("user", asked),
        ("assistant", f"You said: {asked}"),
        ("user", command.removeprefix("/ask ")),
    ]


async def test_group_questions_and_quotes_keep_their_formatting(
    tg: FakeTelegram, llm: FakeLLM, bot_app: object
) -> None:
    group: dict[str, Any] = {"chat_type": "supergroup"}
    said = "my script:\nprint(1)"
    bob = tg.send_user_message(
        GROUP,
        said,
        user_id=BOB,
        first_name="Bob",
        entities=[_span(said, "print(1)", "pre")],
        **group,
    )["message"]
    text = f"@{tg.bot_username} why is\n    x = 1\nwrong?"
    entities = [_span(text, f"@{tg.bot_username}", "mention"), _span(text, "    x = 1", "pre")]
    question = tg.send_user_message(
        GROUP,
        text,
        user_id=ALICE,
        entities=entities,
        reply_to_message_id=bob["message_id"],
        **group,
    )["message"]
    await final_answer(tg, GROUP, after=question["message_id"])
    assert dialog(llm)[-1] == (
        "user",
        "Bob wrote:\n> my script:\n> ```\n> print(1)\n> ```\n\nwhy is\n```\n    x = 1\n```\nwrong?",
    )


async def test_an_edited_question_is_remembered_as_edited(
    tg: FakeTelegram, llm: FakeLLM, bot_app: object
) -> None:
    """Memory keeps what the chat shows: the edited question; the user learns that the answer
    is to the earlier version and how to have the new one answered, until it is."""
    question, [answer] = await ask(tg, USER, "waht is 2+2")
    tg.edit_user_message(USER, question["message_id"], "what is 3+3")
    await tg.wait_for(lambda: bool(_notices(tg, USER, question["message_id"], "/retry")))
    [notice] = _notices(tg, USER, question["message_id"], "/retry")
    assert "earlier version" in notice.text
    assert len(llm.received) == 1  # not answered unasked

    retry = tg.send_user_message(USER, "/retry", reply_to_message_id=answer.message_id)["message"]
    [again] = await final_answer(tg, USER, after=retry["message_id"])
    assert again.text == "You said: what is 3+3"
    assert dialog(llm) == [("user", "what is 3+3")]
    await tg.wait_for(lambda: tg.message(USER, notice.message_id).deleted)  # no longer so
    await ask(tg, USER, "and 4+4?")
    assert dialog(llm) == [
        ("user", "what is 3+3"),
        ("assistant", "You said: what is 3+3"),
        ("user", "and 4+4?"),
    ]
    # An edit that leaves the text as it was (Telegram sends one when a link preview changes)
    # says nothing.
    before = len(tg.bot_messages(USER))
    tg.edit_user_message(USER, question["message_id"], "what is 3+3")
    await tg.wait_for(lambda: not tg.pending_updates)
    await tg.wait_idle(quiet=0.3)
    assert len(tg.bot_messages(USER)) == before


async def test_edits_after_a_retry_and_quick_edits(
    tg: FakeTelegram, llm: FakeLLM, bot_app: object
) -> None:
    """Each /retry stores the question again; an edit reaches every copy that /retry may take
    (the first answer's included). Quick typo fixes get one notice per answer, and /retry in
    reply to that notice answers the question it is about (and the notice goes)."""
    question, [answer] = await ask(tg, USER, "capital of Frnace?")
    tg.edit_user_message(USER, question["message_id"], "capital of Germany?")
    await tg.wait_for(lambda: bool(_notices(tg, USER, question["message_id"], "/retry")))
    [first] = _notices(tg, USER, question["message_id"], "/retry")
    retry = tg.send_user_message(USER, "/retry", reply_to_message_id=answer.message_id)["message"]
    await final_answer(tg, USER, after=retry["message_id"])
    await tg.wait_for(lambda: tg.message(USER, first.message_id).deleted)
    await ask(tg, USER, "and its population?")
    for text in ("capital of Italy", "capital of Italy?", "capital of Spain?"):
        tg.edit_user_message(USER, question["message_id"], text)
    await tg.wait_for(lambda: not tg.pending_updates)
    await tg.wait_idle(quiet=0.3)
    # One notice for the retry's answer, however many edits.
    await tg.wait_for(lambda: len(_notices(tg, USER, question["message_id"], "/retry")) == 1)
    await tg.wait_idle(quiet=1.2)  # a second would wait for the chat's next slot
    [notice] = _notices(tg, USER, question["message_id"], "/retry")
    retry = tg.send_user_message(USER, "/retry", reply_to_message_id=notice.message_id)["message"]
    await final_answer(tg, USER, after=retry["message_id"])
    assert dialog(llm) == [("user", "capital of Spain?")]
    await tg.wait_for(lambda: tg.message(USER, notice.message_id).deleted)
    retry = tg.send_user_message(USER, "/retry", reply_to_message_id=answer.message_id)["message"]
    await final_answer(tg, USER, after=retry["message_id"])
    assert dialog(llm) == [("user", "capital of Spain?")]
    # A follow-up to the first answer continues from the question as it reads now.
    follow = tg.send_user_message(USER, "why?", reply_to_message_id=answer.message_id)["message"]
    await final_answer(tg, USER, after=follow["message_id"])
    assert dialog(llm)[0] == ("user", "capital of Spain?")


async def test_edits_while_a_retry_waits_and_edits_that_cross(
    tg: FakeTelegram, llm: FakeLLM, bot_app: Any
) -> None:
    """A /retry queued behind another answer answers the question as edited meanwhile. Two
    edits in one batch (B, then back to A) leave memory on A, as the chat shows; an edit undone
    before its answer ends is not told of."""
    question, [answer] = await ask(tg, USER, "capital of Frnace")
    llm.script(Reply("long answer " * 80, chunk_size=10, delay=0.02))
    second = tg.send_user_message(USER, "tell me a story")["message"]
    await tg.wait_for(lambda: bool(answer_messages(tg, USER, second["message_id"])))
    retry = tg.send_user_message(USER, "/retry", reply_to_message_id=answer.message_id)["message"]
    await tg.wait_for(lambda: bool(_notices(tg, USER, question["message_id"], "right after")))
    tg.edit_user_message(USER, question["message_id"], "capital of Germany")
    await tg.wait_for(lambda: len(llm.received) == 3, timeout=20)
    await final_answer(tg, USER, after=retry["message_id"])
    assert dialog(llm) == [("user", "capital of Germany")]

    tg.edit_user_message(USER, question["message_id"], "capital of Spain")
    tg.edit_user_message(USER, question["message_id"], "capital of Germany")
    await tg.wait_for(lambda: not tg.pending_updates)
    await tg.wait_idle(quiet=0.3)
    turn = await bot_app.store.turn_by_message(USER, question["message_id"])
    assert turn.question == "capital of Germany"

    llm.script(Reply("word " * 150, chunk_size=10, delay=0.02))
    third = tg.send_user_message(USER, "waht now")["message"]
    await tg.wait_for(lambda: bool(answer_messages(tg, USER, third["message_id"])))
    tg.edit_user_message(USER, third["message_id"], "what now")
    tg.edit_user_message(USER, third["message_id"], "waht now")
    await final_answer(tg, USER, after=third["message_id"])
    await tg.wait_idle(quiet=1.2)  # a notice would wait for the chat's next slot
    assert not _notices(tg, USER, third["message_id"], "/retry")


async def test_edits_of_one_message_are_stored_in_the_order_they_came(
    tg: FakeTelegram, llm: FakeLLM, bot_app: Any, monkeypatch: Any
) -> None:
    """The first of two quick edits is slow to be written: the second still ends up stored, as
    the chat shows it (without one edit at a time, the older one was written last)."""
    question, _ = await ask(tg, USER, "first version")
    store = bot_app.store
    write = store.set_question

    async def slow_write(chat_id: int, message_id: int, text: str) -> None:
        if text == "second version":
            await asyncio.sleep(0.3)
        await write(chat_id, message_id, text)

    monkeypatch.setattr(store, "set_question", slow_write)
    tg.edit_user_message(USER, question["message_id"], "second version")
    tg.edit_user_message(USER, question["message_id"], "third version")
    await tg.wait_for(lambda: not tg.pending_updates)
    await tg.wait_for(lambda: bool(_notices(tg, USER, question["message_id"], "/retry")))
    await tg.wait_idle(quiet=0.5)
    turn = await store.turn_by_message(USER, question["message_id"])
    assert turn.question == "third version"


async def test_an_edit_that_comes_with_its_message_is_not_lost(
    tg: FakeTelegram, llm: FakeLLM, bot_app: Any
) -> None:
    """Both updates can come in one batch (a bot restarting): the edit is answered, or stored
    with the notice; either way memory has it."""
    question = tg.send_user_message(USER, "orig text")["message"]
    tg.edit_user_message(USER, question["message_id"], "edited text")
    await final_answer(tg, USER, after=question["message_id"])
    turn = await bot_app.store.turn_by_message(USER, question["message_id"])
    assert turn.question == "edited text"
    if dialog(llm) != [("user", "edited text")]:  # told once the answer is done
        await tg.wait_for(lambda: bool(_notices(tg, USER, question["message_id"], "/retry")))


async def test_an_edit_while_the_answer_streams_is_told_after_it(
    tg: FakeTelegram, llm: FakeLLM, start_bot: BotRunner
) -> None:
    """In a private chat the answer is a draft until it is done: a notice about "my answer"
    sent at once would come before the answer's message."""
    await start_bot(stream_mode="auto")
    llm.script(Reply("word " * 150, chunk_size=10, delay=0.02))
    question = tg.send_user_message(USER, "waht is this")["message"]
    await tg.wait_for(lambda: any(c.status == 200 for c in tg.drafts))
    tg.edit_user_message(USER, question["message_id"], "what is this")
    await tg.wait_for(lambda: bool(_notices(tg, USER, question["message_id"], "/retry")))
    *answer, notice = answer_messages(tg, USER, question["message_id"])
    assert answer and "/retry" in notice.text and "word" in answer[-1].text
    assert dialog(llm) == [("user", "waht is this")]


async def test_an_edit_of_a_question_that_got_no_answer_says_so(
    tg: FakeTelegram, llm: FakeLLM, bot_app: object
) -> None:
    llm.script(Reply("never shown", fault="drop", fault_after=0))
    question, _ = await ask(tg, USER, "will fail")
    tg.edit_user_message(USER, question["message_id"], "will work")
    await tg.wait_for(lambda: bool(_notices(tg, USER, question["message_id"], "/retry")))
    [notice] = _notices(tg, USER, question["message_id"], "/retry")
    assert "I have not answered it" in notice.text
    retry = tg.send_user_message(USER, "/retry", reply_to_message_id=notice.message_id)["message"]
    [again] = await final_answer(tg, USER, after=retry["message_id"])
    assert again.text == "You said: will work"


async def test_a_queued_question_is_answered_as_edited(
    tg: FakeTelegram, llm: FakeLLM, bot_app: object
) -> None:
    _, second, _ = await _queued(tg, llm, "secnod", words=40)
    tg.edit_user_message(USER, second["message_id"], "second")
    await tg.wait_for(lambda: len(llm.received) == 2, timeout=20)
    await final_answer(tg, USER, after=second["message_id"])
    assert dialog(llm)[-1] == ("user", "second")
    assert not _notices(tg, USER, second["message_id"], "/retry")


async def test_a_group_message_edited_to_mention_the_bot_is_answered(
    tg: FakeTelegram, llm: FakeLLM, bot_app: object
) -> None:
    """The mention was forgotten, then added by an edit: the bot answers once."""
    group: dict[str, Any] = {"chat_type": "supergroup", "user_id": ALICE}
    message = tg.send_user_message(GROUP, "how do magnets work?", **group)["message"]
    await tg.wait_for(lambda: not tg.pending_updates)
    await tg.wait_idle(quiet=0.3)
    assert llm.received == []
    mention = f"@{tg.bot_username}"
    tg.edit_user_message(GROUP, message["message_id"], f"{mention} how do magnets work?")
    [answer] = await final_answer(tg, GROUP, after=message["message_id"])
    assert dialog(llm) == [("user", "how do magnets work?")]
    assert answer.text == "You said: how do magnets work?"
    # Edited again once answered: remembered, not answered again unasked.
    tg.edit_user_message(GROUP, message["message_id"], f"{mention} how do magnets work, briefly?")
    await tg.wait_for(lambda: bool(_notices(tg, GROUP, message["message_id"], "/retry")))
    assert len(llm.received) == 1
    turn = await bot_app.store.turn_by_message(GROUP, message["message_id"])  # type: ignore[attr-defined]
    assert turn.question == "how do magnets work, briefly?"


async def test_an_edit_keeps_the_quote_its_question_was_asked_with(
    tg: FakeTelegram, llm: FakeLLM, bot_app: Any
) -> None:
    """Bob asks about Alice's message while it waits for its answer (so it is no turn yet, and
    is quoted); it is answered later. Bob's edit is framed as his question was: still quoted."""
    group: dict[str, Any] = {"chat_type": "supergroup"}
    mention = f"@{tg.bot_username}"
    llm.script(Reply("first answer " * 80, chunk_size=10, delay=0.02))
    first = tg.send_user_message(GROUP, f"{mention} first", user_id=ALICE, **group)["message"]
    await tg.wait_for(lambda: bool(answer_messages(tg, GROUP, first["message_id"])))
    [streaming] = answer_messages(tg, GROUP, first["message_id"])
    alice = tg.send_user_message(
        GROUP, "and dogs?", user_id=ALICE, reply_to_message_id=streaming.message_id, **group
    )["message"]  # continues the thread: waits behind the answer being written
    bob = tg.send_user_message(
        GROUP,
        f"{mention} what does she mean",
        user_id=BOB,
        first_name="Bob",
        reply_to_message_id=alice["message_id"],
        **group,
    )["message"]
    quoted = "Alice wrote:\n> and dogs?\n\n"
    await tg.wait_for(lambda: len(llm.received) == 2)
    assert dialog(llm) == [("user", quoted + "what does she mean")]
    await tg.wait_for(lambda: len(llm.received) == 3, timeout=20)  # Alice's, answered now
    await tg.wait_idle(quiet=0.5)
    tg.edit_user_message(GROUP, bob["message_id"], f"{mention} what does she mean?")
    await tg.wait_for(lambda: bool(_notices(tg, GROUP, bob["message_id"], "/retry")), timeout=20)
    turn = await bot_app.store.turn_by_message(GROUP, bob["message_id"])
    assert turn.question == quoted + "what does she mean?"
