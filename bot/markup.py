"""A message's text as Markdown, formatted the way its author formatted it, for the model.

Telegram delivers formatting as entities beside plain text: a code block typed in a client
arrives as bare lines with a `pre` entity, a link as its words with the address in the entity.
From the text alone the model cannot tell where code starts and ends, and never sees the
address. aiogram's `TextDecoration` walks the entities (nesting, UTF-16 offsets); this one writes
CommonMark, and escapes nothing: what is not an entity is passed on as the author typed it.
"""

from __future__ import annotations

import re
from datetime import datetime

from aiogram.types import Message, MessageEntity
from aiogram.utils.text_decorations import TextDecoration

_MENTION = "\x00"  # stands for a removed mention of the bot; Telegram never delivers U+0000
_BREAK = "\x01"  # a block's edge: one line break, however many the text has there
_BREAKS = re.compile("\n*\x01+\n*")
_BACKTICKS = re.compile(r"`+")


def markdown_of(text: str | None, entities: list[MessageEntity] | None) -> str:
    """`text` with its formatting `entities` written as Markdown."""
    if not text:
        return ""
    if not entities:
        return text.strip()
    return _unparse(_Markdown(), text, entities)


def message_markdown(message: Message) -> str:
    """A message's text (or caption) as Markdown."""
    if message.text is not None:
        return markdown_of(message.text, message.entities)
    return markdown_of(message.caption, message.caption_entities)


def command_args(message: Message) -> str:
    """What follows a command (`/ask …`), as Markdown; split as aiogram splits `args`."""
    parts = message_markdown(message).split(maxsplit=1)
    return parts[1] if len(parts) > 1 else ""


def without_mentions(message: Message, username: str) -> tuple[str, bool]:
    """A message's text (or caption) as Markdown, without its mentions of the bot `username`;
    and whether there was one. Only the spaces around a mention go: the question's lines and
    indentation (code) stay."""
    text, entities = message.text, message.entities
    if text is None:
        text, entities = message.caption, message.caption_entities
    if not text:
        return "", False
    pieces = _unparse(_Markdown(mention=username), text, entities or []).split(_MENTION)
    joined = pieces[0]
    for piece in pieces[1:]:
        left, right = joined.rstrip(" \t"), piece.lstrip(" \t")
        gap = " " if left[-1:] not in ("", "\n") and right[:1] not in ("", "\n") else ""
        joined = left + gap + right
    return joined.strip(), len(pieces) > 1


def _unparse(markdown: _Markdown, text: str, entities: list[MessageEntity]) -> str:
    return _BREAKS.sub("\n", markdown.unparse(text, entities)).strip()


def _wrap(value: str, marker: str) -> str:
    """`value` between `marker`s, its outer whitespace outside them (`** x**` is not bold)."""
    core = value.strip()
    if not core:
        return value
    start = value.index(core)
    return f"{value[:start]}{marker}{core}{marker}{value[start + len(core) :]}"


def _fence(value: str, least: int) -> str:
    """A run of backticks longer than any inside `value`."""
    longest = max((len(run) for run in _BACKTICKS.findall(value)), default=0)
    return "`" * max(least, longest + 1)


class _Markdown(TextDecoration):
    """Entities as CommonMark; a mention of the bot (when given) as `_MENTION`."""

    def __init__(self, mention: str | None = None) -> None:
        self._mention = mention.lower() if mention else None

    def apply_entity(self, entity: MessageEntity, text: str) -> str:
        if entity.type == "mention" and text.lstrip("@").lower() == self._mention:
            return _MENTION
        if entity.type == "text_mention":
            return text  # a person's name; a tg:// link would tell the model nothing
        return super().apply_entity(entity, text)

    def link(self, value: str, link: str) -> str:
        if not value.strip() or value.strip() == link:
            return value
        return f"[{value}]({link})"

    def bold(self, value: str) -> str:
        return _wrap(value, "**")

    def italic(self, value: str) -> str:
        return _wrap(value, "*")

    def strikethrough(self, value: str) -> str:
        return _wrap(value, "~~")

    def code(self, value: str) -> str:
        if not value.strip():
            return value
        fence = _fence(value, 1)
        pad = " " if value.startswith("`") or value.endswith("`") else ""
        return f"{fence}{pad}{value}{pad}{fence}"

    def pre(self, value: str) -> str:
        return self.pre_language(value, "")

    def pre_language(self, value: str, language: str) -> str:
        # On lines of its own: a client may put a code block in the middle of a line.
        fence = _fence(value, 3)
        return f"{_BREAK}{fence}{language}\n{value.strip(chr(10))}\n{fence}{_BREAK}"

    def blockquote(self, value: str) -> str:
        lines = _BREAKS.sub("\n", value).strip("\n").split("\n")  # a code block inside too
        return _BREAK + "\n".join(f"> {line}" if line else ">" for line in lines) + _BREAK

    def expandable_blockquote(self, value: str) -> str:
        return self.blockquote(value)

    # Nothing in Markdown for these: their text is what the model needs.
    def underline(self, value: str) -> str:
        return value

    def spoiler(self, value: str) -> str:
        return value

    def custom_emoji(self, value: str, custom_emoji_id: str) -> str:
        return value

    def date_time(
        self, value: str, unix_time: int | datetime, date_time_format: str | None = None
    ) -> str:
        return value

    def quote(self, value: str) -> str:
        return value  # no escaping: plain text reaches the model as it was typed
