"""End-to-end: what a user sends as one thing is one question (`bot/rejoin.py`): a text over 4096
characters, which Telegram's apps send as several messages, and messages forwarded at once."""

from __future__ import annotations

from tests.conftest import BotRunner
from tests.fakes.llm import FakeLLM, Reply
from tests.fakes.telegram import FakeTelegram, Json, StoredMessage
from tests.helpers import answer_messages, final_answer, full_text

USER = 4004


def article(paragraphs: int) -> str:
    """Prose of about 600 characters a paragraph, each paragraph numbered."""
    return "\n\n".join(
        f"Paragraph {i}. " + " ".join(f"word{i}x{j}" for j in range(60)) for i in range(paragraphs)
    )


def last_question(llm: FakeLLM, index: int = -1) -> str:
    content = llm.received[index].messages[-1]["content"]
    assert isinstance(content, str)
    return content


async def test_a_pasted_text_split_by_the_app_is_one_question(
    tg: FakeTelegram, llm: FakeLLM, start_bot: BotRunner
) -> None:
    await start_bot()
    llm.script(Reply("A summary."))
    text = "Summarise this:\n\n" + article(16)  # about 9,700 characters: three pieces
    pieces = tg.send_user_paste(USER, text)
    assert len(pieces) == 3
    first, last = pieces[0]["message"]["message_id"], pieces[-1]["message"]["message_id"]
    [answer] = await final_answer(tg, USER, after=last)
    assert answer.text == "A summary."
    assert answer.reply_to_message_id == first  # under the paste's beginning, not its last piece
    assert len(llm.received) == 1
    asked = last_question(llm)
    assert asked == "\n".join(p["message"]["text"] for p in pieces)
    assert asked.startswith("Summarise this:") and "Paragraph 15." in asked
    # Memory holds the whole paste: a follow-up sees it.
    llm.script(Reply("The last one is 15."))
    follow = tg.send_user_message(USER, "Which paragraph is last?")["message"]
    await final_answer(tg, USER, after=follow["message_id"])
    assert [m["role"] for m in llm.received[-1].messages] == ["user", "assistant", "user"]
    assert llm.received[-1].messages[0]["content"] == asked


async def test_pieces_cut_every_4096_characters_are_joined_too(
    tg: FakeTelegram, llm: FakeLLM, start_bot: BotRunner
) -> None:
    await start_bot()
    llm.script(Reply("Got it."))
    text = "x" * 4096 + "y" * 4096 + "z" * 100  # the mobile apps cut inside words
    pieces = tg.send_user_paste(USER, text, app="mobile")
    assert [len(p["message"]["text"]) for p in pieces] == [4096, 4096, 100]
    await final_answer(tg, USER, after=pieces[-1]["message"]["message_id"])
    assert len(llm.received) == 1
    assert last_question(llm) == text  # joined where they were cut, inside a word


async def test_a_long_message_alone_is_answered_after_the_wait(
    tg: FakeTelegram, llm: FakeLLM, start_bot: BotRunner
) -> None:
    await start_bot(join_wait=0.3)
    llm.script(Reply("One."), Reply("Two."))
    long = tg.send_user_message(USER, article(5))["message"]  # about 3,000 characters
    [answer] = await final_answer(tg, USER, after=long["message_id"])
    assert answer.text == "One."
    # "typing…" shows while it waits (the model answers at once: nothing else would show it).
    calls = [c.method for c in tg.calls if c.chat_id == USER]
    assert calls[:2] == ["sendChatAction", "sendMessage"]
    assert last_question(llm) == long["text"]
    # A short message after it is a question of its own.
    short = tg.send_user_message(USER, "And another thing")["message"]
    await final_answer(tg, USER, after=short["message_id"])
    assert last_question(llm) == "And another thing"
    assert len(llm.received) == 2


async def test_joining_can_be_switched_off(
    tg: FakeTelegram, llm: FakeLLM, start_bot: BotRunner
) -> None:
    await start_bot(join_wait=0)
    pieces = tg.send_user_paste(USER, article(8))
    assert len(pieces) == 2
    await tg.wait_for(lambda: len(llm.received) == 2, timeout=20)
    assert [last_question(llm, i) for i in (0, 1)] == [p["message"]["text"] for p in pieces]


async def test_an_edited_piece_edits_the_joined_question(
    tg: FakeTelegram, llm: FakeLLM, start_bot: BotRunner
) -> None:
    await start_bot()
    llm.script(Reply("Read."))
    pieces = tg.send_user_paste(USER, "Count the paragraphs.\n\n" + article(8))
    first, second = (p["message"] for p in pieces)
    await final_answer(tg, USER, after=second["message_id"])
    edited = second["text"].replace("Paragraph 7.", "Paragraph seven.")
    tg.edit_user_message(USER, second["message_id"], edited)
    await tg.wait_for(
        lambda: any("edited" in m.text for m in answer_messages(tg, USER, second["message_id"])),
        timeout=10,
    )
    llm.script(Reply("Eight."))
    follow = tg.send_user_message(USER, "How many?")["message"]
    await final_answer(tg, USER, after=follow["message_id"])
    assert llm.received[-1].messages[0]["content"] == first["text"] + "\n" + edited


async def test_a_piece_edited_before_the_question_is_asked(
    tg: FakeTelegram, llm: FakeLLM, start_bot: BotRunner
) -> None:
    await start_bot(join_wait=2.0)
    llm.script(Reply("Fine."))
    first = tg.send_user_message(USER, article(5))["message"]
    await tg.wait_for(lambda: not tg.pending_updates)  # the bot has it: held, waiting for more
    assert not llm.received
    tg.edit_user_message(USER, first["message_id"], "Shorter now.")
    await final_answer(tg, USER, after=first["message_id"])
    assert last_question(llm) == "Shorter now."


def origin(kind: str, name: str) -> Json:
    """A forwarded message's `forward_origin`, as Telegram describes its author."""
    date = 1_700_000_000
    if kind == "user":
        return {
            "type": "user",
            "date": date,
            "sender_user": {"id": 77, "is_bot": False, "first_name": name},
        }
    if kind == "hidden_user":
        return {"type": "hidden_user", "date": date, "sender_user_name": name}
    return {
        "type": "channel",
        "date": date,
        "message_id": 5,
        "chat": {"id": -1001234, "type": "channel", "title": name},
    }


def send_forwarded(tg: FakeTelegram, text: str, date: int, author: str = "Ann") -> Json:
    """A message `author` wrote, forwarded by the user, sent at `date` (Unix seconds)."""
    sent = tg.send_user_message(USER, text, forward_origin=origin("user", author), date=date)
    message: Json = sent["message"]
    return message


async def test_messages_forwarded_at_once_are_one_question(
    tg: FakeTelegram, llm: FakeLLM, start_bot: BotRunner
) -> None:
    await start_bot()
    llm.script(Reply("They agree to meet."))
    sent = [
        tg.send_user_message(USER, text, forward_origin=origin(kind, name))["message"]
        for kind, name, text in [
            ("user", "Ann", "Lunch tomorrow?"),
            ("hidden_user", "Bob B.", "Sure, at noon\nby the river"),
            ("channel", "City News", "Rain expected at noon."),
        ]
    ]
    [answer] = await final_answer(tg, USER, after=sent[-1]["message_id"])
    assert answer.reply_to_message_id == sent[0]["message_id"]
    assert len(llm.received) == 1
    assert last_question(llm) == (
        "Ann wrote:\n> Lunch tomorrow?\n\n"
        "Bob B. wrote:\n> Sure, at noon\n> by the river\n\n"
        "City News wrote:\n> Rain expected at noon."
    )


async def test_forwards_are_framed_in_the_senders_language(
    tg: FakeTelegram, llm: FakeLLM, start_bot: BotRunner
) -> None:
    await start_bot()
    russian = USER + 1
    sent = [
        tg.send_user_message(russian, text, forward_origin=origin(kind, name), language_code="ru")[
            "message"
        ]
        for kind, name, text in [("user", "Аня", "Обедаем завтра?"), ("hidden_user", "Боб", "Да")]
    ]
    await final_answer(tg, russian, after=sent[-1]["message_id"])
    assert last_question(llm) == "Аня пишет:\n> Обедаем завтра?\n\nБоб пишет:\n> Да"


async def test_a_message_forwarded_alone_is_asked_as_it_reads(
    tg: FakeTelegram, llm: FakeLLM, start_bot: BotRunner
) -> None:
    await start_bot()
    sent = tg.send_user_message(USER, "What is 2 + 2?", forward_origin=origin("user", "Ann"))
    await final_answer(tg, USER, after=sent["message"]["message_id"])
    assert last_question(llm) == "What is 2 + 2?"


async def test_forwards_join_the_comment_typed_with_them(
    tg: FakeTelegram, llm: FakeLLM, start_bot: BotRunner
) -> None:
    """A comment typed with a forward comes first and is asked at once. The forwarded messages,
    sent with it, join it: its answer is withdrawn before it shows anything, and the whole is
    answered once."""
    await start_bot()
    llm.script(Reply("Send it over.", first_delay=3.0), Reply("Ann asks about lunch; Bob agrees."))
    comment = tg.send_user_message(USER, "Summarise this:")["message"]
    await tg.wait_for(lambda: len(llm.received) == 1)  # the comment's answer has started
    forwards = [
        send_forwarded(tg, text, comment["date"], name)
        for name, text in [("Ann", "Lunch?"), ("Bob", "Yes")]
    ]
    [answer] = await final_answer(tg, USER, after=forwards[-1]["message_id"])
    assert answer.text == "Ann asks about lunch; Bob agrees."
    assert answer.reply_to_message_id == comment["message_id"]
    await tg.wait_for(lambda: llm.received[0].client_closed, timeout=5)
    assert len(llm.received) == 2
    assert last_question(llm) == "Summarise this:\n\nAnn wrote:\n> Lunch?\n\nBob wrote:\n> Yes"
    assert len(llm.received[1].messages) == 1  # nothing of the withdrawn answer
    # One answer in the chat: no notice of a stop, no "⏳", nothing deleted.
    assert tg.bot_messages(USER, include_deleted=True) == [answer]
    # Memory holds the joined question: a follow-up continues from it.
    llm.script(Reply("Noon."))
    follow = tg.send_user_message(USER, "When?")["message"]
    await final_answer(tg, USER, after=follow["message_id"])
    assert [m["content"] for m in llm.received[-1].messages] == [
        last_question(llm, 1),
        "Ann asks about lunch; Bob agrees.",
        "When?",
    ]


async def test_an_answer_shown_to_the_comment_gives_way_to_the_joined_one(
    tg: FakeTelegram, llm: FakeLLM, start_bot: BotRunner
) -> None:
    """The forwards came once the comment's answer showed text (a fast model, a slow phone):
    that message is deleted, and the answer to all of it comes in its place. The answer given
    way is remembered as withdrawn, not as one the user stopped."""
    from bot.conversations.models import TurnStatus

    app = await start_bot()
    llm.script(Reply("word " * 300, delay=0.05), Reply("All of it."))
    comment = tg.send_user_message(USER, "Translate:")["message"]
    await tg.wait_for(lambda: bool(answer_messages(tg, USER, comment["message_id"])))
    [shown] = answer_messages(tg, USER, comment["message_id"])
    forward = send_forwarded(tg, "Bonjour", comment["date"])
    [answer] = await final_answer(tg, USER, after=forward["message_id"])
    assert answer.text == "All of it."
    assert tg.message(USER, shown.message_id).deleted
    assert answer_messages(tg, USER, comment["message_id"]) == [answer]
    assert last_question(llm) == "Translate:\n\nAnn wrote:\n> Bonjour"
    assert len(llm.received[-1].messages) == 1
    given_way = await app.store.get_turn(1)  # the comment's turn, the first stored
    assert given_way is not None and given_way.question == "Translate:"
    assert given_way.status is TurnStatus.WITHDRAWN
    assert 'bot_answers_total{outcome="withdrawn"} 1.0' in app.metrics.render().decode()
    assert 'bot_answers_total{outcome="stopped"} 0.0' in app.metrics.render().decode()


async def test_a_waiting_comment_is_answered_with_its_forwards(
    tg: FakeTelegram, llm: FakeLLM, start_bot: BotRunner
) -> None:
    """A comment that waits behind another answer ("⏳") takes its forwards in before its turn."""
    await start_bot()
    llm.script(Reply("First answer.", first_delay=2.0), Reply("Both."))
    first = tg.send_user_message(USER, "Hi")["message"]
    await tg.wait_for(lambda: len(llm.received) == 1)
    comment = tg.send_user_message(USER, "And this?")["message"]
    await tg.wait_for(lambda: "⏳" in full_text(answer_messages(tg, USER, first["message_id"])))
    send_forwarded(tg, "A forwarded note", comment["date"])

    def answer_to_comment() -> list[StoredMessage]:
        return [m for m in tg.bot_messages(USER) if m.reply_to_message_id == comment["message_id"]]

    await tg.wait_for(lambda: [m.text for m in answer_to_comment()] == ["Both."], timeout=20)
    await tg.wait_idle(quiet=0.3)
    assert [m.text for m in answer_to_comment()] == ["Both."]  # the "⏳" is gone
    assert len(llm.received) == 2
    assert last_question(llm) == "And this?\n\nAnn wrote:\n> A forwarded note"


async def test_a_comment_answered_before_its_forwards_came_is_two_questions(
    tg: FakeTelegram, llm: FakeLLM, start_bot: BotRunner
) -> None:
    await start_bot()
    llm.script(Reply("Send it over."), Reply("Ann asks about lunch; Bob agrees."))
    comment = tg.send_user_message(USER, "Summarise this:")["message"]
    await final_answer(tg, USER, after=comment["message_id"])
    forwards = [
        send_forwarded(tg, text, comment["date"], name)
        for name, text in [("Ann", "Lunch?"), ("Bob", "Yes")]
    ]
    await tg.wait_for(lambda: len(llm.received) == 2, timeout=20)
    await final_answer(tg, USER, after=forwards[-1]["message_id"])
    assert last_question(llm, 0) == "Summarise this:"
    assert last_question(llm, 1) == "Ann wrote:\n> Lunch?\n\nBob wrote:\n> Yes"
    # The comment's exchange comes before the forwarded messages in their context.
    assert [m["content"] for m in llm.received[1].messages[:2]] == [
        "Summarise this:",
        "Send it over.",
    ]


async def test_forwards_sent_later_than_a_message_do_not_join_it(
    tg: FakeTelegram, llm: FakeLLM, start_bot: BotRunner
) -> None:
    await start_bot()
    llm.script(Reply("Hello.", first_delay=1.0), Reply("A note from Ann."))
    hello = tg.send_user_message(USER, "Hello")["message"]
    await tg.wait_for(lambda: len(llm.received) == 1)
    forward = send_forwarded(tg, "Note", hello["date"] + 2)
    await tg.wait_for(lambda: len(llm.received) == 2, timeout=20)
    await final_answer(tg, USER, after=forward["message_id"])
    assert not llm.received[0].client_closed
    assert [last_question(llm, 0), last_question(llm, 1)] == ["Hello", "Note"]


async def test_in_a_draft_chat_the_joined_answer_streams_into_the_same_draft(
    tg: FakeTelegram, llm: FakeLLM, start_bot: BotRunner
) -> None:
    await start_bot(stream_mode="auto")
    llm.script(Reply("word " * 300, delay=0.05), Reply("All of it."))
    comment = tg.send_user_message(USER, "Translate:")["message"]
    await tg.wait_for(lambda: bool(tg.drafts))
    forward = send_forwarded(tg, "Bonjour", comment["date"])
    [answer] = await final_answer(tg, USER, after=forward["message_id"])
    assert answer.text == "All of it."
    assert tg.bot_messages(USER, include_deleted=True) == [answer]
    assert len({str(c.params["draft_id"]) for c in tg.drafts}) == 1


async def test_a_forward_held_as_the_bot_stops_leaves_its_comment_answered(
    tg: FakeTelegram, llm: FakeLLM, start_bot: BotRunner
) -> None:
    """The bot stops while a forward waits for more: the comment's answer, being written, is not
    withdrawn (no answer starts once the bot is stopping); the forward is told it was not
    answered."""
    app = await start_bot(shutdown_grace=5)
    llm.script(Reply("word " * 100, delay=0.03), Reply("All of it."))
    comment = tg.send_user_message(USER, "Translate:")["message"]
    await tg.wait_for(lambda: bool(answer_messages(tg, USER, comment["message_id"])))
    [shown] = answer_messages(tg, USER, comment["message_id"])
    forward = send_forwarded(tg, "Bonjour", comment["date"])
    await tg.wait_for(lambda: not tg.pending_updates)  # the bot holds it (0.5 s)
    await start_bot.stop(app)
    assert not tg.message(USER, shown.message_id).deleted
    assert tg.message(USER, shown.message_id).text.startswith("word word")
    assert len(llm.received) == 1
    [notice] = [m for m in tg.bot_messages(USER) if m.reply_to_message_id == forward["message_id"]]
    assert notice.text.startswith("⚠️ The bot stopped before it could answer this.")


async def test_forwarded_messages_after_a_long_one_are_all_joined(
    tg: FakeTelegram, llm: FakeLLM, start_bot: BotRunner
) -> None:
    await start_bot()
    llm.script(Reply("Three messages."))
    texts = [article(4), "b", "c"]  # a long forwarded message is no piece of a longer text
    sent = [
        tg.send_user_message(USER, text, forward_origin=origin("user", "Ann"))["message"]
        for text in texts
    ]
    await final_answer(tg, USER, after=sent[-1]["message_id"])
    assert len(llm.received) == 1
    assert last_question(llm).endswith("Ann wrote:\n> b\n\nAnn wrote:\n> c")


async def test_at_shutdown_a_waiting_message_is_told_it_was_not_answered(
    tg: FakeTelegram, llm: FakeLLM, start_bot: BotRunner
) -> None:
    app = await start_bot(join_wait=30)
    long = tg.send_user_message(USER, article(5))["message"]
    await tg.wait_for(lambda: not tg.pending_updates)  # the bot has it: held, waiting for more
    await start_bot.stop(app)
    [notice] = answer_messages(tg, USER, long["message_id"] - 1)
    assert notice.reply_to_message_id == long["message_id"]
    assert notice.text.startswith("⚠️ The bot stopped before it could answer this.")
    assert not llm.received
