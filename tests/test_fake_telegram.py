"""The fake Telegram server must hold aiogram to Telegram's real rules, over real HTTP.

If the fake were lenient, the bot's own tests would pass against it and fail in production, so
each rule the bot depends on is checked here through aiogram's ordinary client.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramRetryAfter,
)
from aiogram.types import (
    BotCommand,
    BotCommandScopeAllPrivateChats,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    MessageEntity,
    ReplyParameters,
)

from tests.fakes.telegram import FakeTelegram, utf16_len

PRIVATE = 1001
GROUP = -100500


@pytest_asyncio.fixture(scope="module")
async def tg() -> AsyncIterator[FakeTelegram]:
    fake = FakeTelegram()
    await fake.start()
    yield fake
    await fake.stop()


@pytest_asyncio.fixture(scope="module")
async def tg_bot(tg: FakeTelegram) -> AsyncIterator[Bot]:
    bot = Bot(tg.token, session=AiohttpSession(api=TelegramAPIServer.from_base(tg.base_url)))
    yield bot
    await bot.session.close()


@pytest.fixture(autouse=True)
def _fresh(tg: FakeTelegram) -> None:
    """A clean fake; rule tests get a roomy private burst, flood tests set the real one."""
    tg.reset()
    tg.private_burst = 1000
    tg.send_user_message(PRIVATE, "hello")
    tg.send_user_message(GROUP, "hi all", chat_type="supergroup", user_id=77)


def keyboard(*datas: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=d, callback_data=d) for d in datas]]
    )


async def test_get_me(tg_bot: Bot, tg: FakeTelegram) -> None:
    me = await tg_bot.get_me()
    assert (me.id, me.is_bot, me.username) == (tg.bot_id, True, "test_g4f_bot")
    assert me.can_join_groups and not me.can_read_all_group_messages
    assert tg.calls[-1].method == "getMe" and tg.calls[-1].status == 200


async def test_raw_http_errors_and_json_bodies(tg: FakeTelegram) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{tg.base_url}/bot1:wrong/getMe") as resp:
            assert resp.status == 401
            assert await resp.json() == {
                "ok": False,
                "error_code": 401,
                "description": "Unauthorized",
            }
        async with http.post(f"{tg.base_url}/bot{tg.token}/sendTelepathy") as resp:
            assert resp.status == 404
            assert (await resp.json())["description"] == "Not Found: method not found"
        url = f"{tg.base_url}/bot{tg.token}/sendMessage"
        async with http.post(url, json={"chat_id": PRIVATE, "text": "json body"}) as resp:
            body = await resp.json()
        assert body["ok"] and body["result"]["text"] == "json body"
        assert body["result"]["from"]["is_bot"] is True
        async with http.post(url, json={"chat_id": 42, "text": "x"}) as resp:
            assert (resp.status, (await resp.json())["description"]) == (
                400,
                "Bad Request: chat not found",
            )


async def test_send_edit_and_not_modified(tg_bot: Bot, tg: FakeTelegram) -> None:
    sent = await tg_bot.send_message(PRIVATE, "hello")
    assert sent.text == "hello" and sent.from_user and sent.from_user.is_bot
    assert sent.chat.type == "private"
    edited = await tg_bot.edit_message_text(
        "hello world", chat_id=PRIVATE, message_id=sent.message_id
    )
    assert not isinstance(edited, bool) and edited.text == "hello world"
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await tg_bot.edit_message_text("hello world", chat_id=PRIVATE, message_id=sent.message_id)
    # Surrounding whitespace is stripped before the comparison, as Telegram does.
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await tg_bot.edit_message_text(
            "hello world \n", chat_id=PRIVATE, message_id=sent.message_id
        )
    # Adding an entity is a change.
    await tg_bot.edit_message_text(
        "hello world",
        chat_id=PRIVATE,
        message_id=sent.message_id,
        entities=[MessageEntity(type="bold", offset=0, length=5)],
    )
    stored = tg.message(PRIVATE, sent.message_id)
    assert stored.history == ["hello", "hello world", "hello world"]
    assert stored.entities == [{"type": "bold", "offset": 0, "length": 5}]
    assert tg.edit_count(PRIVATE, sent.message_id) == 2
    assert [m.message_id for m in tg.bot_messages(PRIVATE)] == [sent.message_id]


async def test_edit_without_markup_removes_keyboard(tg_bot: Bot, tg: FakeTelegram) -> None:
    sent = await tg_bot.send_message(PRIVATE, "pick", reply_markup=keyboard("a", "b"))
    assert sent.reply_markup is not None
    assert tg.message(PRIVATE, sent.message_id).reply_markup is not None
    # Same text, same keyboard: not modified.
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await tg_bot.edit_message_text(
            "pick",
            chat_id=PRIVATE,
            message_id=sent.message_id,
            reply_markup=keyboard("a", "b"),
        )
    # Same text without reply_markup is a change: the keyboard goes away.
    edited = await tg_bot.edit_message_text("pick", chat_id=PRIVATE, message_id=sent.message_id)
    assert not isinstance(edited, bool) and edited.reply_markup is None
    assert tg.message(PRIVATE, sent.message_id).reply_markup is None
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await tg_bot.edit_message_reply_markup(chat_id=PRIVATE, message_id=sent.message_id)
    await tg_bot.edit_message_reply_markup(
        chat_id=PRIVATE, message_id=sent.message_id, reply_markup=keyboard("c")
    )
    assert tg.message(PRIVATE, sent.message_id).reply_markup == keyboard("c").model_dump(
        exclude_none=True
    )


async def test_message_length_counts_utf16(tg_bot: Bot) -> None:
    await tg_bot.send_message(PRIVATE, "a" * 4096)
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await tg_bot.send_message(PRIVATE, "a" * 4097)
    emoji = "😀" * 2048
    assert utf16_len(emoji) == 4096
    await tg_bot.send_message(PRIVATE, emoji)
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await tg_bot.send_message(PRIVATE, emoji + "a")
    # Length is measured after stripping.
    await tg_bot.send_message(PRIVATE, "  " + "a" * 4096 + "\n\n")


async def test_empty_text(tg_bot: Bot, tg: FakeTelegram) -> None:
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await tg_bot.send_message(PRIVATE, " \n\t ")
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await tg_bot.send_message(PRIVATE, "")  # aiogram omits the field entirely
    sent = await tg_bot.send_message(PRIVATE, "x")
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await tg_bot.edit_message_text("\n", chat_id=PRIVATE, message_id=sent.message_id)


async def test_whitespace_strip_shifts_entities(tg_bot: Bot, tg: FakeTelegram) -> None:
    text = "\n  🙂 bold tail  \n"
    sent = await tg_bot.send_message(
        PRIVATE,
        text,
        entities=[
            MessageEntity(type="italic", offset=0, length=5),  # "\n  🙂": clipped to the emoji
            MessageEntity(type="bold", offset=6, length=4),  # "bold"
            MessageEntity(type="code", offset=11, length=7),  # "tail  \n": clipped to "tail"
        ],
    )
    assert sent.text == "🙂 bold tail"
    assert tg.message(PRIVATE, sent.message_id).entities == [
        {"type": "italic", "offset": 0, "length": 2},
        {"type": "bold", "offset": 3, "length": 4},
        {"type": "code", "offset": 8, "length": 4},
    ]
    assert sent.entities is not None and sent.entities[1].extract_from(sent.text) == "bold"


@pytest.mark.parametrize(
    ("entities", "reason"),
    [
        ([MessageEntity(type="bold", offset=3, length=5)], "beyond the end"),
        ([MessageEntity(type="bold", offset=0, length=0)], "at least 1"),
        (
            [
                MessageEntity(type="bold", offset=0, length=4),
                MessageEntity(type="italic", offset=2, length=4),
            ],
            "partially overlap",
        ),
        (
            [
                MessageEntity(type="pre", offset=0, length=6, language="py"),
                MessageEntity(type="bold", offset=1, length=2),
            ],
            "nested inside entity 0 \\(pre\\)",
        ),
        (
            [
                MessageEntity(type="code", offset=0, length=3),
                MessageEntity(type="italic", offset=1, length=1),
            ],
            "nested inside entity 0 \\(code\\)",
        ),
        (
            [
                MessageEntity(type="blockquote", offset=0, length=6),
                MessageEntity(type="expandable_blockquote", offset=2, length=2),
            ],
            "nested inside entity 0 \\(blockquote\\)",
        ),
        ([MessageEntity(type="text_link", offset=0, length=2)], "needs a url"),
        ([MessageEntity(type="shouting", offset=0, length=2)], "unsupported entity type"),
    ],
)
async def test_bad_entities(tg_bot: Bot, entities: list[MessageEntity], reason: str) -> None:
    with pytest.raises(TelegramBadRequest, match=f"can't parse entities: .*{reason}"):
        await tg_bot.send_message(PRIVATE, "abcdef", entities=entities)


async def test_good_nesting_and_surrogates(tg_bot: Bot) -> None:
    await tg_bot.send_message(
        PRIVATE,
        "quote with code",
        entities=[
            MessageEntity(type="blockquote", offset=0, length=15),
            MessageEntity(type="bold", offset=0, length=15),
            MessageEntity(type="code", offset=11, length=4),
            MessageEntity(type="text_link", offset=0, length=5, url="https://example.org"),
        ],
    )
    with pytest.raises(TelegramBadRequest, match="surrogate pair"):
        await tg_bot.send_message(
            PRIVATE, "a😀b", entities=[MessageEntity(type="bold", offset=0, length=2)]
        )


async def test_replies(tg_bot: Bot, tg: FakeTelegram) -> None:
    update = tg.send_user_message(PRIVATE, "question")
    user_message_id = update["message"]["message_id"]
    with pytest.raises(TelegramBadRequest, match="message to be replied not found"):
        await tg_bot.send_message(
            PRIVATE, "answer", reply_parameters=ReplyParameters(message_id=999)
        )
    sent = await tg_bot.send_message(
        PRIVATE,
        "answer",
        reply_parameters=ReplyParameters(message_id=999, allow_sending_without_reply=True),
    )
    assert sent.reply_to_message is None
    reply = await tg_bot.send_message(
        PRIVATE, "answer", reply_parameters=ReplyParameters(message_id=user_message_id)
    )
    assert reply.reply_to_message is not None
    assert reply.reply_to_message.text == "question"
    assert reply.reply_to_message.from_user is not None
    assert reply.reply_to_message.from_user.id == PRIVATE
    assert tg.message(PRIVATE, reply.message_id).reply_to_message_id == user_message_id
    # A user reply to the bot carries the bot's message as reply_to_message.
    update = tg.send_user_message(PRIVATE, "more", reply_to_message_id=reply.message_id)
    assert update["message"]["reply_to_message"]["from"]["id"] == tg.bot_id


async def test_edit_targets(tg_bot: Bot, tg: FakeTelegram) -> None:
    user_message_id = tg.send_user_message(PRIVATE, "mine")["message"]["message_id"]
    for message_id in (user_message_id, 12345):
        with pytest.raises(TelegramBadRequest, match="message to edit not found"):
            await tg_bot.edit_message_text("x", chat_id=PRIVATE, message_id=message_id)
    sent = await tg_bot.send_message(PRIVATE, "soon gone")
    tg.delete_by_user(PRIVATE, sent.message_id)
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await tg_bot.edit_message_text("x", chat_id=PRIVATE, message_id=sent.message_id)
    assert tg.bot_messages(PRIVATE) == []
    other = await tg_bot.send_message(PRIVATE, "delete me")
    assert await tg_bot.delete_message(PRIVATE, other.message_id)
    assert tg.message(PRIVATE, other.message_id).deleted


async def test_private_burst_then_retry_after_and_violations(tg_bot: Bot, tg: FakeTelegram) -> None:
    tg.private_burst = 3
    for n in range(3):
        await tg_bot.send_message(PRIVATE, f"burst {n}")
    with pytest.raises(TelegramRetryAfter) as first:
        await tg_bot.send_message(PRIVATE, "too soon")
    assert first.value.retry_after == 1
    assert (tg.count_429, tg.violations) == (1, 0)
    # Chat actions are not flood-counted, but edits are, and ignoring retry_after is a violation.
    await tg_bot.send_chat_action(PRIVATE, "typing")
    with pytest.raises(TelegramRetryAfter):
        await tg_bot.edit_message_text(
            "edited", chat_id=PRIVATE, message_id=tg.bot_messages(PRIVATE)[0].message_id
        )
    assert (tg.count_429, tg.violations) == (2, 1)
    # Another chat is unaffected.
    tg.send_user_message(PRIVATE + 1, "hi")
    await tg_bot.send_message(PRIVATE + 1, "fine")
    await asyncio.sleep(first.value.retry_after)
    await tg_bot.send_message(PRIVATE, "after waiting")
    assert (tg.count_429, tg.violations) == (2, 1)
    assert [c.status for c in tg.calls if c.chat_id == PRIVATE and c.method != "sendChatAction"][
        -3:
    ] == [429, 429, 200]


async def test_group_twenty_per_minute(tg_bot: Bot, tg: FakeTelegram) -> None:
    for n in range(20):
        await tg_bot.send_message(GROUP, f"group {n}")
    with pytest.raises(TelegramRetryAfter) as caught:
        await tg_bot.send_message(GROUP, "one too many")
    assert 58 <= caught.value.retry_after <= 60
    with pytest.raises(TelegramBadRequest, match="TEXTDRAFT_PEER_INVALID"):
        await tg_bot.send_message_draft(GROUP, draft_id=1, text="x")
    assert tg.violations == 0


async def test_global_thirty_per_second(tg_bot: Bot, tg: FakeTelegram) -> None:
    tg.private_burst = 3
    chats = list(range(5001, 5032))
    for chat in chats:
        tg.send_user_message(chat, "hi")
    results = await asyncio.gather(
        *(tg_bot.send_message(chat, "broadcast") for chat in chats), return_exceptions=True
    )
    limited = [r for r in results if isinstance(r, TelegramRetryAfter)]
    assert len(limited) == 1 and limited[0].retry_after == 1
    assert sum(1 for r in results if not isinstance(r, BaseException)) == 30
    # The whole bot was told to wait: any chat calling now violates that window.
    with pytest.raises(TelegramRetryAfter):
        await tg_bot.send_message(PRIVATE, "still inside the window")
    assert tg.violations == 1


async def test_inject_429(tg_bot: Bot, tg: FakeTelegram) -> None:
    sent = await tg_bot.send_message(PRIVATE, "start")
    tg.inject_429(chat_id=PRIVATE, methods=("editMessageText",), retry_after=7)
    tg.send_user_message(PRIVATE + 2, "hi")
    other = await tg_bot.send_message(PRIVATE + 2, "other chat")
    await tg_bot.edit_message_text(
        "other chat, edited", chat_id=PRIVATE + 2, message_id=other.message_id
    )
    await tg_bot.send_message(PRIVATE, "sendMessage is not among the methods")
    with pytest.raises(TelegramRetryAfter) as caught:
        await tg_bot.edit_message_text("go on", chat_id=PRIVATE, message_id=sent.message_id)
    assert caught.value.retry_after == 7
    assert (tg.count_429, tg.violations) == (1, 0)
    # The injected 429 opened a real window: calling inside it is a violation.
    with pytest.raises(TelegramRetryAfter) as again:
        await tg_bot.send_message(PRIVATE, "ignoring the wait")
    assert again.value.retry_after == 7
    assert (tg.count_429, tg.violations) == (2, 1)
    await tg_bot.send_message(PRIVATE + 2, "unaffected")


async def test_drafts(tg_bot: Bot, tg: FakeTelegram) -> None:
    assert await tg_bot.send_message_draft(PRIVATE, draft_id=7, text="partial answer…")
    assert await tg_bot.send_message_draft(PRIVATE, draft_id=7)  # empty: "Thinking…"
    with pytest.raises(TelegramBadRequest, match="draft_id must be non-zero"):
        await tg_bot.send_message_draft(PRIVATE, draft_id=0, text="x")
    with pytest.raises(TelegramBadRequest, match="TEXTDRAFT_PEER_INVALID"):
        await tg_bot.send_message_draft(GROUP, draft_id=7, text="x")
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await tg_bot.send_message_draft(PRIVATE, draft_id=7, text="a" * 4097)
    assert [c.status for c in tg.drafts] == [200, 200, 400, 400, 400]
    assert tg.drafts[0].params == {"chat_id": PRIVATE, "draft_id": 7, "text": "partial answer…"}
    assert tg.bot_messages(PRIVATE) == []


async def test_get_updates_long_poll(tg_bot: Bot, tg: FakeTelegram) -> None:
    first = await tg_bot.get_updates(timeout=0)
    assert [u.message.text for u in first if u.message] == ["hello", "hi all"]
    offset = first[-1].update_id + 1
    started = time.monotonic()
    poll = asyncio.create_task(tg_bot.get_updates(offset=offset, timeout=2))
    await asyncio.sleep(0.2)
    assert not poll.done()
    injected = tg.send_user_message(PRIVATE, "are you there?", language_code="de")
    updates = await poll
    assert time.monotonic() - started < 1.5
    assert [u.update_id for u in updates] == [injected["update_id"]]
    message = updates[0].message
    assert message is not None and message.text == "are you there?"
    assert message.from_user is not None and message.from_user.language_code == "de"
    # Confirming by offset drops older updates; an empty poll waits for its timeout.
    started = time.monotonic()
    assert await tg_bot.get_updates(offset=injected["update_id"] + 1, timeout=1) == []
    assert time.monotonic() - started >= 0.9
    assert tg.pending_updates == []


async def test_group_updates_topics_and_stickers(tg_bot: Bot, tg: FakeTelegram) -> None:
    text = "hey @test_g4f_bot, explain"
    update = tg.send_user_message(
        GROUP,
        text,
        chat_type="supergroup",
        user_id=55,
        entities=tg.mention_entity(text),
        message_thread_id=9,
    )
    tg.send_user_message(PRIVATE, sticker=True)
    updates = await tg_bot.get_updates(offset=update["update_id"], timeout=0)
    group_message, sticker_message = (u.message for u in updates)
    assert group_message is not None and group_message.is_topic_message
    assert group_message.chat.is_forum and group_message.message_thread_id == 9
    assert group_message.entities is not None
    assert group_message.entities[0].extract_from(text) == "@test_g4f_bot"
    assert sticker_message is not None and sticker_message.sticker is not None
    assert sticker_message.text is None
    answer = await tg_bot.send_message(
        GROUP,
        "in the topic",
        reply_parameters=ReplyParameters(message_id=update["message"]["message_id"]),
    )
    assert answer.message_thread_id == 9 and answer.is_topic_message
    assert [m.text for m in tg.bot_messages(GROUP, message_thread_id=9)] == ["in the topic"]
    assert tg.bot_messages(GROUP, message_thread_id=10) == []


async def test_callback_query(tg_bot: Bot, tg: FakeTelegram) -> None:
    sent = await tg_bot.send_message(PRIVATE, "choose", reply_markup=keyboard("regen", "stop"))
    with pytest.raises(AssertionError, match="no button"):
        tg.press_button(PRIVATE, sent.message_id, "missing", user_id=PRIVATE)
    update = tg.press_button(PRIVATE, sent.message_id, "regen", user_id=PRIVATE)
    [parsed] = await tg_bot.get_updates(offset=update["update_id"], timeout=0)
    query = parsed.callback_query
    assert query is not None and query.data == "regen" and query.from_user.id == PRIVATE
    assert query.message is not None and query.message.message_id == sent.message_id
    assert await tg_bot.answer_callback_query(query.id, text="ok")
    with pytest.raises(TelegramBadRequest, match="query ID is invalid"):
        await tg_bot.answer_callback_query(query.id)
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await tg_bot.send_message(PRIVATE, "x", reply_markup=keyboard("x" * 65))


async def test_parse_modes(tg_bot: Bot, tg: FakeTelegram) -> None:
    sent = await tg_bot.send_message(
        PRIVATE,
        '<b>bold</b> &lt;tag&gt; <a href="https://example.org">link</a> '
        '<pre><code class="language-python">x = 1</code></pre>',
        parse_mode="HTML",
    )
    assert sent.text == "bold <tag> link x = 1"
    assert tg.message(PRIVATE, sent.message_id).entities == [
        {"type": "bold", "offset": 0, "length": 4},
        {"type": "text_link", "offset": 11, "length": 4, "url": "https://example.org"},
        {"type": "pre", "offset": 16, "length": 5, "language": "python"},
    ]
    for html, reason in [
        ("<b>unclosed", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b><i>x</b></i>", "Unmatched end tag"),
        ("<blink>x</blink>", 'Unsupported start tag "blink"'),
        ("1 < 2", 'unexpected "<"'),
        ("fish & chips", 'unescaped "&"'),
    ]:
        with pytest.raises(TelegramBadRequest, match=f"can't parse entities: {reason}"):
            await tg_bot.send_message(PRIVATE, html, parse_mode="HTML")
    sent = await tg_bot.send_message(PRIVATE, "*bold* and 1\\.5", parse_mode="MarkdownV2")
    assert sent.text == "bold and 1.5"
    with pytest.raises(TelegramBadRequest, match=r"Character '\.' is reserved"):
        await tg_bot.send_message(PRIVATE, "Version 1.5", parse_mode="MarkdownV2")
    with pytest.raises(TelegramBadRequest, match="Can't find end of Bold entity"):
        await tg_bot.send_message(PRIVATE, "*streaming", parse_mode="MarkdownV2")
    with pytest.raises(TelegramBadRequest, match="Can't find end of Pre entity"):
        await tg_bot.send_message(PRIVATE, "```python\nprint(1)", parse_mode="MarkdownV2")
    # Explicit entities win over parse_mode, exactly like Telegram.
    sent = await tg_bot.send_message(
        PRIVATE,
        "<b>raw",
        parse_mode="HTML",
        entities=[MessageEntity(type="italic", offset=0, length=3)],
    )
    assert sent.text == "<b>raw"


async def test_blocked_chat(tg_bot: Bot, tg: FakeTelegram) -> None:
    tg.block(PRIVATE)
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await tg_bot.send_message(PRIVATE, "anyone?")
    with pytest.raises(TelegramForbiddenError):
        await tg_bot.send_chat_action(PRIVATE, "typing")


async def test_commands_and_chat_members(tg_bot: Bot, tg: FakeTelegram) -> None:
    commands = [
        BotCommand(command="start", description="Start"),
        BotCommand(command="new", description="New chat"),
    ]
    await tg_bot.set_my_commands(commands)
    await tg_bot.set_my_commands(
        commands[:1], scope=BotCommandScopeAllPrivateChats(), language_code="de"
    )
    assert tg.commands[("default", "")] == [c.model_dump(exclude_none=True) for c in commands]
    assert tg.commands[("all_private_chats", "de")] == [
        {"command": "start", "description": "Start"}
    ]
    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        await tg_bot.set_my_commands([BotCommand(command="Bad-Name", description="x")])
    tg.set_admin(GROUP, 77)
    admin = await tg_bot.get_chat_member(GROUP, 77)
    member = await tg_bot.get_chat_member(GROUP, 78)
    assert (admin.status, member.status) == ("administrator", "member")


async def test_wait_helpers(tg_bot: Bot, tg: FakeTelegram) -> None:
    async def stream() -> None:
        sent = await tg_bot.send_message(PRIVATE, "a")
        await asyncio.sleep(0.1)
        await tg_bot.edit_message_text("a b", chat_id=PRIVATE, message_id=sent.message_id)

    task = asyncio.create_task(stream())
    await tg.wait_for(lambda: any(m.text == "a b" for m in tg.bot_messages(PRIVATE)), timeout=3)
    await tg.wait_idle(quiet=0.2, timeout=3)
    await task

    def never_true() -> bool:
        return False

    with pytest.raises(AssertionError, match="never_true"):
        await tg.wait_for(never_true, timeout=0.1)


async def test_dispatcher_polling_round_trip(tg_bot: Bot, tg: FakeTelegram) -> None:
    dispatcher = Dispatcher()

    @dispatcher.message()
    async def echo(message: Message) -> None:
        await message.answer(f"echo: {message.text}")

    @dispatcher.callback_query()
    async def pressed(query: CallbackQuery) -> None:
        await query.answer("noted")

    polling = asyncio.create_task(
        dispatcher.start_polling(
            tg_bot, polling_timeout=1, handle_signals=False, close_bot_session=False
        )
    )
    try:
        tg.send_user_message(PRIVATE + 3, "ping")
        await tg.wait_for(lambda: [m.text for m in tg.bot_messages(PRIVATE + 3)] == ["echo: ping"])
        # The fixture's two messages were delivered too.
        await tg.wait_for(lambda: len(tg.bot_messages(PRIVATE)) == 1)
        assert any(c.params.get("allowed_updates") for c in tg.calls if c.method == "getUpdates")
    finally:
        await dispatcher.stop_polling()
        await polling
    assert not [c for c in tg.calls if c.status >= 400 and c.status != 499]
