"""End-to-end: group triggers, forum topics and the Stop button."""

from __future__ import annotations

import itertools
from typing import Any

from tests.fakes.llm import FakeLLM, Reply
from tests.fakes.telegram import FakeTelegram, StoredMessage
from tests.helpers import answer_messages, final_answer, is_final

GROUP = -100500
ALICE, BOB, ADMIN = 11, 12, 13


async def test_plain_group_messages_are_ignored(
    tg: FakeTelegram, llm: FakeLLM, bot_app: object
) -> None:
    tg.send_user_message(GROUP, "hello everyone", user_id=ALICE, chat_type="supergroup")
    tg.send_user_message(
        GROUP, "mail test_g4f_bot_fan@example.com", user_id=ALICE, chat_type="supergroup"
    )
    tg.send_user_message(GROUP, "/ask@other_bot what?", user_id=ALICE, chat_type="supergroup")
    tg.send_user_message(GROUP, "/frobnicate", user_id=ALICE, chat_type="supergroup")
    await tg.wait_for(lambda: not tg.pending_updates)
    await tg.wait_idle(quiet=0.5)
    assert llm.received == []
    assert tg.bot_messages(GROUP) == []


async def test_mention_answers_with_the_mention_stripped(
    tg: FakeTelegram, llm: FakeLLM, bot_app: object
) -> None:
    text = f"@{tg.bot_username} what is 2+2?"
    question = tg.send_user_message(GROUP, text, user_id=ALICE, chat_type="supergroup")["message"]

    [answer] = await final_answer(tg, GROUP, after=question["message_id"])

    assert llm.received[-1].messages[-1]["content"] == "what is 2+2?"
    assert answer.text == "You said: what is 2+2?"
    assert answer.reply_to_message_id == question["message_id"]


async def test_a_mention_goes_and_the_questions_layout_stays(
    tg: FakeTelegram, llm: FakeLLM, bot_app: object
) -> None:
    """Code in a question keeps its lines and indentation; only the mention and the spaces
    around it go."""
    bot = f"@{tg.bot_username}"
    for text, content in [
        (f"{bot} fix this:\n```\ndef f():\n    return 1\n```\nthanks", None),
        (f"what {bot} is this\n\n    indented", "what is this\n\n    indented"),
        (f"Привет, {bot}, как дела?", "Привет, как дела?"),
        (f"first line\n{bot}\nlast", "first line\n\nlast"),
    ]:
        question = tg.send_user_message(GROUP, text, user_id=ALICE, chat_type="supergroup")
        await final_answer(tg, GROUP, after=question["message"]["message_id"])
        expected = content or text.removeprefix(bot + " ")
        assert llm.received[-1].messages[-1]["content"] == expected


async def test_reply_to_the_bot_and_ask_command(
    tg: FakeTelegram, llm: FakeLLM, bot_app: object
) -> None:
    ask = tg.send_user_message(GROUP, "/ask first question", user_id=ALICE, chat_type="supergroup")
    [first] = await final_answer(tg, GROUP, after=ask["message"]["message_id"])
    assert llm.received[-1].messages[-1]["content"] == "first question"

    reply = tg.send_user_message(
        GROUP,
        "and a follow-up",
        user_id=BOB,
        chat_type="supergroup",
        reply_to_message_id=first.message_id,
    )
    await final_answer(tg, GROUP, after=reply["message"]["message_id"])
    assert llm.received[-1].messages[-1]["content"] == "and a follow-up"

    named = tg.send_user_message(
        GROUP, f"/ask@{tg.bot_username} third", user_id=BOB, chat_type="supergroup"
    )
    await final_answer(tg, GROUP, after=named["message"]["message_id"])
    assert llm.received[-1].messages[-1]["content"] == "third"
    assert len(llm.received) == 3


async def _ask_replying(
    tg: FakeTelegram, text: str, reply_to: int, *, user_id: int = ALICE, quote: str | None = None
) -> list[StoredMessage]:
    """A group question in reply to message `reply_to`; its finished answer."""
    question = tg.send_user_message(
        GROUP,
        text,
        user_id=user_id,
        chat_type="supergroup",
        reply_to_message_id=reply_to,
        quote=quote,
    )["message"]
    return await final_answer(tg, GROUP, after=question["message_id"])


def _user_turns(llm: FakeLLM) -> list[str]:
    return [m["content"] for m in llm.received[-1].messages if m["role"] == "user"]


async def test_a_question_in_reply_to_someones_message_is_about_that_message(
    tg: FakeTelegram, llm: FakeLLM, bot_app: object
) -> None:
    said = tg.send_user_message(
        GROUP, "Bonjour à tous\nÇa va ?", user_id=BOB, first_name="Bob", chat_type="supergroup"
    )["message"]
    quoted = "Bob wrote:\n> Bonjour à tous\n> Ça va ?"
    for text, content in [
        (f"@{tg.bot_username} translate this", quoted + "\n\ntranslate this"),
        (f"@{tg.bot_username}", quoted),  # a bare mention under a message: about it
        ("/ask what language is it?", quoted + "\n\nwhat language is it?"),
    ]:
        [answer] = await _ask_replying(tg, text, said["message_id"])
        assert llm.received[-1].messages[-1]["content"] == content
    # A question asked earlier is in the conversation already: not quoted again.
    asked = answer.reply_to_message_id
    assert asked is not None
    await _ask_replying(tg, f"@{tg.bot_username} and in Spanish?", asked, user_id=BOB)
    assert _user_turns(llm) == [quoted + "\n\nwhat language is it?", "and in Spanish?"]


async def test_a_question_about_a_photo_tells_the_model_it_cannot_see_it(
    tg: FakeTelegram, llm: FakeLLM, bot_app: object
) -> None:
    """Asked only "what is in this picture?", the model would make something up."""
    for kind, sent in (("photo", "a photo"), ("sticker", "a sticker")):
        said = tg.send_user_message(
            GROUP, None, user_id=BOB, first_name="Bob", chat_type="supergroup", **{kind: True}
        )["message"]
        await _ask_replying(tg, f"@{tg.bot_username} what is in it?", said["message_id"])
        assert llm.received[-1].messages[-1]["content"] == (
            f"Bob sent {sent}, which you cannot see.\n\nwhat is in it?"
        )


async def test_what_the_model_is_told_around_a_quote_is_in_the_askers_language(
    tg: FakeTelegram, llm: FakeLLM, bot_app: object
) -> None:
    """A Russian question framed in English ("Bob wrote:") tilts some models to answer in
    English: the framing is the asker's language."""

    async def asked_in_russian(said: dict[str, Any], text: str) -> str:
        question = tg.send_user_message(
            GROUP,
            f"@{tg.bot_username} {text}",
            user_id=ALICE + 100,
            chat_type="supergroup",
            reply_to_message_id=said["message_id"],
            language_code="ru",
        )["message"]
        await final_answer(tg, GROUP, after=question["message_id"])
        content: str = llm.received[-1].messages[-1]["content"]
        return content

    bob = {"user_id": BOB, "first_name": "Bob", "chat_type": "supergroup"}
    photo = tg.send_user_message(GROUP, None, photo=True, **bob)["message"]
    assert await asked_in_russian(photo, "что на нём?") == (
        "Bob прислал(а) фото; тебе не видно, что там.\n\nчто на нём?"
    )
    text = tg.send_user_message(GROUP, "Guten Morgen", **bob)["message"]
    assert await asked_in_russian(text, "переведи") == "Bob пишет:\n> Guten Morgen\n\nпереведи"


async def test_a_selected_part_is_what_the_question_is_about(
    tg: FakeTelegram, llm: FakeLLM, bot_app: object
) -> None:
    """Telegram sends the part of the replied-to message a user selected: only that is quoted,
    and in the bot's own answer (in the conversation already) it tells the model which part."""
    german = "Der Hund ist sehr müde heute."
    said = tg.send_user_message(
        GROUP, german, user_id=BOB, first_name="Bob", chat_type="supergroup"
    )["message"]
    question = f"@{tg.bot_username} what does this word mean?"
    [answer] = await _ask_replying(tg, question, said["message_id"], quote="müde")
    content = "Bob wrote:\n> müde\n\nwhat does this word mean?"
    assert _user_turns(llm) == [content]
    await _ask_replying(tg, "why this?", answer.message_id, quote="You said")
    assert _user_turns(llm) == [content, "About this part of your answer:\n> You said\n\nwhy this?"]


async def test_a_photo_addressed_to_the_bot_gets_the_text_only_hint(
    tg: FakeTelegram, llm: FakeLLM, bot_app: object
) -> None:
    """Its caption alone would reach the model, which cannot see the photo: as in a private
    chat, the asker learns that only text is read."""
    caption = f"@{tg.bot_username} what is this?"
    photo = tg.send_user_message(GROUP, caption, user_id=ALICE, chat_type="supergroup", photo=True)[
        "message"
    ]
    assert "caption" in photo and "text" not in photo
    await tg.wait_for(lambda: bool(answer_messages(tg, GROUP, photo["message_id"])))
    [hint] = answer_messages(tg, GROUP, photo["message_id"])
    assert "only read text" in hint.text
    assert llm.received == []


async def test_messages_sent_as_a_chat(tg: FakeTelegram, llm: FakeLLM, bot_app: object) -> None:
    """An anonymous admin speaks as the group, and `from` is a placeholder bot: still asked, and
    an admin. A channel's post copied into its discussion group asks nothing, even if it names
    the bot; a question under it quotes the channel, not the placeholder "Telegram"."""
    group = {"id": GROUP, "type": "supergroup", "title": "Test group"}
    channel = {"id": -100900, "type": "channel", "title": "Our Channel"}
    mention = f"@{tg.bot_username}"
    question = tg.send_user_message(
        GROUP, f"{mention} hello", chat_type="supergroup", sender_chat=group
    )["message"]
    assert question["from"]["is_bot"]
    await final_answer(tg, GROUP, after=question["message_id"])
    assert _user_turns(llm) == ["hello"]
    command = tg.send_user_message(
        GROUP, "/system Be brief.", chat_type="supergroup", sender_chat=group
    )["message"]
    await tg.wait_for(lambda: bool(answer_messages(tg, GROUP, command["message_id"])))
    assert answer_messages(tg, GROUP, command["message_id"])[0].text.startswith("✅")

    before = len(llm.received)
    post = tg.send_user_message(
        GROUP,
        f"New post! Ask {mention} anything.",
        chat_type="supergroup",
        sender_chat=channel,
        automatic_forward=True,
    )["message"]
    below = f"{mention} summarize"
    await _ask_replying(tg, below, post["message_id"])
    assert len(llm.received) == before + 1  # the question under the post, not the post
    assert _user_turns(llm) == [
        f"Our Channel wrote:\n> New post! Ask {mention} anything.\n\nsummarize"
    ]
    asked = len(llm.received)
    photo = tg.send_user_message(
        GROUP, "/ask what is this?", user_id=ALICE, chat_type="supergroup", photo=True
    )["message"]
    await tg.wait_for(lambda: bool(answer_messages(tg, GROUP, photo["message_id"])))
    assert "only read text" in answer_messages(tg, GROUP, photo["message_id"])[0].text
    assert len(llm.received) == asked


async def test_empty_mention_gets_a_hint(tg: FakeTelegram, llm: FakeLLM, bot_app: object) -> None:
    question = tg.send_user_message(
        GROUP, f"@{tg.bot_username}", user_id=ALICE, chat_type="supergroup"
    )["message"]
    await tg.wait_for(lambda: bool(answer_messages(tg, GROUP, question["message_id"])))
    assert "What is the question" in answer_messages(tg, GROUP, question["message_id"])[0].text
    assert llm.received == []


async def test_forum_topic_answer_stays_in_the_topic(
    tg: FakeTelegram, llm: FakeLLM, bot_app: object
) -> None:
    question = tg.send_user_message(
        GROUP,
        f"@{tg.bot_username} in a topic",
        user_id=ALICE,
        chat_type="supergroup",
        message_thread_id=77,
    )["message"]
    [answer] = await final_answer(tg, GROUP, after=question["message_id"], thread_id=77)
    assert answer.message_thread_id == 77
    assert all(
        c.params.get("message_thread_id") in (77, "77")
        for c in tg.calls
        if c.method in ("sendMessage", "sendChatAction")
    )


async def test_stop_button_in_private_chat(tg: FakeTelegram, llm: FakeLLM, bot_app: object) -> None:
    llm.script(Reply("word " * 3000, chunk_size=5, delay=0.01))
    question = tg.send_user_message(ALICE, "go on and on")["message"]
    await tg.wait_for(
        lambda: any(m.edits >= 1 for m in answer_messages(tg, ALICE, question["message_id"]))
    )
    shown = answer_messages(tg, ALICE, question["message_id"])[0]
    data = shown.reply_markup["inline_keyboard"][0][0]["callback_data"]  # type: ignore[index]
    tg.press_button(ALICE, shown.message_id, data, user_id=ALICE)

    messages = await final_answer(tg, ALICE, after=question["message_id"])

    await tg.wait_for(lambda: llm.received[-1].client_closed, timeout=5)  # upstream closed
    text = messages[-1].text
    assert text.startswith("word word")
    assert text.endswith("Stopped.")
    assert messages[-1].entities[-1]["type"] == "italic"
    assert text.count("word") < 3000
    assert all(m.reply_markup is None for m in messages)
    answered = [c for c in tg.calls if c.method == "answerCallbackQuery"]
    assert answered and answered[-1].params.get("text") == "Stopped."


async def test_only_asker_or_admin_may_stop_in_a_group(
    tg: FakeTelegram, llm: FakeLLM, bot_app: object
) -> None:
    llm.script(Reply("word " * 3000, chunk_size=5, delay=0.02))
    tg.set_admin(GROUP, ADMIN)
    question = tg.send_user_message(
        GROUP, f"@{tg.bot_username} long please", user_id=ALICE, chat_type="supergroup"
    )["message"]
    await tg.wait_for(
        lambda: any(m.reply_markup for m in answer_messages(tg, GROUP, question["message_id"]))
    )
    shown = answer_messages(tg, GROUP, question["message_id"])[-1]
    data = shown.reply_markup["inline_keyboard"][0][0]["callback_data"]  # type: ignore[index]

    tg.press_button(GROUP, shown.message_id, data, user_id=BOB)
    await tg.wait_for(lambda: any(c.method == "answerCallbackQuery" for c in tg.calls))
    refusal = next(c for c in tg.calls if c.method == "answerCallbackQuery")
    assert "Only the person who asked" in str(refusal.params.get("text"))
    assert not is_final(answer_messages(tg, GROUP, question["message_id"]))
    # /stop from Bob: the same refusal, not "nothing is being answered".
    command = tg.send_user_message(GROUP, "/stop", user_id=BOB, chat_type="supergroup")["message"]
    await tg.wait_for(lambda: bool(answer_messages(tg, GROUP, command["message_id"])))
    [told] = answer_messages(tg, GROUP, command["message_id"])
    assert told.text.startswith("Only the person who asked")
    assert not is_final(answer_messages(tg, GROUP, question["message_id"]))

    # The answer may have moved on to a new message meanwhile: the one with the button now.
    shown = next(m for m in answer_messages(tg, GROUP, question["message_id"]) if m.reply_markup)
    tg.press_button(GROUP, shown.message_id, data, user_id=ADMIN)
    messages = await final_answer(tg, GROUP, after=question["message_id"], timeout=30)
    answer = [m for m in messages if m.message_id != told.message_id]
    assert answer[-1].text.endswith("Stopped.")
    assert tg.count_429 == 0 and tg.violations == 0


async def test_an_answer_follows_its_group_into_the_supergroup(
    tg: FakeTelegram, llm: FakeLLM, bot_app: object
) -> None:
    """A group upgraded mid-answer gets a new id, and Telegram takes no more calls in the old
    one: the answer is shown whole in the supergroup, and replying to it there goes on with the
    conversation."""
    old, new = -4444, -1004444
    text = " ".join(["First paragraph of a long answer."] * 20) + "\n\nThe end of it."
    llm.script(Reply(text, chunk_size=20, delay=0.05))
    question = tg.send_user_message(
        old, f"@{tg.bot_username} tell me a lot", user_id=ALICE, chat_type="group"
    )["message"]
    await tg.wait_for(lambda: bool(answer_messages(tg, old, question["message_id"])))
    tg.upgrade_group(old, new)

    [answer] = await final_answer(tg, new, timeout=30)
    assert answer.text == text
    assert answer.reply_to_message_id is None  # the question stayed in the old group's history
    [left] = answer_messages(tg, old, question["message_id"])
    assert not is_final([left])  # no call can settle it there
    refused = [c for c in tg.calls if c.status == 400]
    assert len(refused) == 1 and refused[0].params["chat_id"] == old

    follow_up = tg.send_user_message(
        new, "and then?", user_id=BOB, chat_type="supergroup", reply_to_message_id=answer.message_id
    )["message"]
    await final_answer(tg, new, after=follow_up["message_id"])
    assert llm.received[-1].messages[-3:] == [
        {"role": "user", "content": "tell me a lot"},
        {"role": "assistant", "content": text},
        {"role": "user", "content": "and then?"},
    ]
    assert tg.count_429 == 0 and tg.violations == 0


async def test_an_answer_that_moved_to_the_supergroup_can_be_stopped_there(
    tg: FakeTelegram, llm: FakeLLM, bot_app: object
) -> None:
    """After an upgrade the answer goes on in the supergroup: its admin's Stop button and
    the asker's /stop work there (the admin check once asked the old group, which Telegram no
    longer answers for, and /stop looked for answers in the new one only)."""
    old, new = -5555, -1005555
    for asker in (ALICE, BOB):
        llm.script(Reply("word " * 3000, chunk_size=5, delay=0.02))
        chat = old if asker == ALICE else -5556
        moved = new if asker == ALICE else -1005556
        tg.set_admin(moved, ADMIN)
        question = tg.send_user_message(
            chat, f"@{tg.bot_username} long please", user_id=asker, chat_type="group"
        )["message"]
        await tg.wait_for(lambda c=chat, q=question: bool(answer_messages(tg, c, q["message_id"])))
        tg.upgrade_group(chat, moved)
        await tg.wait_for(lambda m=moved: any(msg.reply_markup for msg in tg.bot_messages(m)))
        if asker == ALICE:  # the admin presses Stop
            shown = next(m for m in tg.bot_messages(moved) if m.reply_markup)
            data = shown.reply_markup["inline_keyboard"][0][0]["callback_data"]  # type: ignore[index]
            tg.press_button(moved, shown.message_id, data, user_id=ADMIN)
        else:  # the asker sends /stop in the supergroup
            tg.send_user_message(moved, "/stop", user_id=BOB, chat_type="supergroup")
        await tg.wait_for(
            lambda m=moved: any(msg.text.endswith("Stopped.") for msg in tg.bot_messages(m)),
            timeout=20,
        )
    refusals = [c for c in tg.calls if c.method == "answerCallbackQuery"]
    assert [c.params.get("text") for c in refusals] == ["Stopped."]
    assert tg.count_429 == 0 and tg.violations == 0


async def test_parts_of_answers_sent_at_the_same_moment_each_follow_their_own(
    tg: FakeTelegram, llm: FakeLLM, bot_app: Any
) -> None:
    """Three long answers in one group send their second parts together (finals go first). A
    part not right under the part before it replies to its question, or it reads as another
    answer's. Before, only messages whose ids had come back counted: a part sent at the same
    moment as another answer's landed under it without a reply."""
    texts = [
        "\n\n".join(f"Answer {k} paragraph {i}: " + f"a{k}w{i} " * 80 for i in range(12))
        for k in range(3)
    ]
    for text in texts:
        llm.script(Reply(text, chunk_size=40, delay=0.02))
    for k in range(3):
        tg.send_user_message(
            GROUP, f"@{tg.bot_username} q{k}", user_id=80 + k, chat_type="supergroup"
        )
    await tg.wait_for(lambda: bot_app.answerer.finished == 3, timeout=60)
    await tg.wait_idle(quiet=0.5)
    chat = tg.messages_in(GROUP)
    parts = [m for m in chat if m.from_bot]
    owner = {m.message_id: next(k for k in range(3) if f"a{k}w" in m.text) for m in parts}
    assert sorted(owner.values()) == [0, 0, 1, 1, 2, 2]
    for before, part in itertools.pairwise(chat):
        if part.from_bot and part.reply_to_message_id is None:
            assert before.from_bot and owner[before.message_id] == owner[part.message_id]
    assert tg.count_429 == 0 and tg.violations == 0
