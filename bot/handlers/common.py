"""Helpers the routers share."""

from __future__ import annotations

from aiogram import Bot
from aiogram.types import Message

from bot.answering import Question, Quote
from bot.markup import blockquote, markdown_of, message_markdown, without_mentions
from bot.texts import is_own_text
from bot.texts.framing import framing


def sender_id(message: Message) -> int:
    """Who sent a message: its user, or the chat it was sent as. An anonymous admin speaks as the
    group and a user may speak as their channel; Telegram then names, as `from`, a placeholder
    bot that every group shares (it would be one user for the rate limit, everywhere)."""
    if message.sender_chat is not None:
        return message.sender_chat.id
    return message.from_user.id if message.from_user else message.chat.id


def question_from(message: Message, text: str) -> Question:
    """The `Question` a message asks, keeping its forum topic."""
    return Question(
        chat_id=message.chat.id,
        message_id=message.message_id,
        user_id=sender_id(message),
        text=text,
        lang=lang_of(message),
        thread_id=topic_of(message),
        is_private=message.chat.type == "private",
    )


def asked(message: Message, bot_id: int, text: str) -> tuple[Question, int | None, Quote | None]:
    """What a message asks: the question, the message it replies to, and that one as a quote."""
    return question_from(message, text), replied_id(message), quote_of(message, bot_id)


def topic_of(message: Message) -> int | None:
    """The forum topic a message is in (None outside forums)."""
    return message.message_thread_id if message.is_topic_message else None


def replied_id(message: Message) -> int | None:
    """The id of the message this one replies to (not counting a topic's service root)."""
    replied = message.reply_to_message
    if replied is None or (message.is_topic_message and replied.forum_topic_created):
        return None
    return replied.message_id


def quote_of(message: Message, bot_id: int) -> Quote | None:
    """The message this one replies to, framed for the model: "@bot translate this", sent as a
    reply to a message, is about that message (only the part the user selected, if any). An
    answer of the bot's is normally in the conversation already: a part selected in it is quoted
    so that the model knows what the question is about, and the whole message only in case
    memory has lost it (`own`)."""
    replied = message.reply_to_message
    if replied is None or replied_id(message) is None:
        return None
    selected = markdown_of(message.quote.text, message.quote.entities) if message.quote else ""
    lang = lang_of(message)
    if replied.from_user is not None and replied.from_user.id == bot_id:
        if selected:
            return Quote(framing(lang, "about_part") + "\n" + blockquote(selected), selected=True)
        earlier = message_markdown(replied)
        if not earlier or is_own_text(replied.text or ""):  # help, a notice: not a lost answer
            return None
        return Quote(framing(lang, "you_wrote") + "\n" + blockquote(earlier), own=True)
    quoted = selected or message_markdown(replied)
    if replied.sender_chat is not None:  # `from` is then a placeholder ("Group", "Channel")
        author = replied.sender_chat.title or framing(lang, "a_channel")
    elif replied.from_user is not None:
        author = replied.from_user.full_name
    else:
        author = framing(lang, "someone")
    if not quoted:
        # "What is in this picture?": the model is told there is one it cannot see, or it would
        # answer as if it knew.
        kind = next((field for field in _UNSEEN if getattr(replied, field, None)), None)
        if kind is None:
            return None
        return Quote(framing(lang, "sent_unseen", author=author, kind=framing(lang, kind)))
    wrote = framing(lang, "wrote", author=author)
    return Quote(f"{wrote}\n{blockquote(quoted)}", selected=bool(selected))


# What a message without text may hold, as the model is told of it (`bot.texts.framing`).
_UNSEEN = (
    "photo",
    "sticker",
    "animation",
    "video",
    "video_note",
    "voice",
    "audio",
    "document",
    "poll",
    "location",
    "contact",
)


def lang_of(message: Message) -> str | None:
    return message.from_user.language_code if message.from_user else None


async def private_text(message: Message, bot: Bot) -> str:
    """A private message's text as Markdown, without the bot's `@name` typed to address it
    (as in a group, where it is needed), opening or closing the message: the model is not
    asked about a name it does not know. In a sentence ("is @bot free?") the name stays."""
    text = message_markdown(message)
    if "@" in text:
        name = "@" + ((await bot.me()).username or "")
        words = (message.text or message.caption or "").lower().split()
        if words and name.lower() in (words[0].rstrip(",:"), words[-1].rstrip("?!.")):
            prompt, mentioned = without_mentions(message, name[1:])
            if mentioned and prompt:
                return prompt
    return text
