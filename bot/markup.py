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

from bot.streaming.render import code_span, fence, utf16_len

# Placeholders in the unparsed text (a user's own control characters become U+FFFD first).
_MENTION = "\x00"  # a removed mention of the bot
_BREAK = "\x01"  # a block's edge: one line break, however many the text has there
_GAP = "\x02"  # a quote's end: a blank line, or the next line would continue the quote
_EDGES = re.compile("\n*[\x01\x02]+\n*")
_PLACEHOLDERS = dict.fromkeys(range(3), "\ufffd")  # one UTF-16 unit each: offsets hold
_PARAGRAPHS = re.compile("(\n[ \t]*\n\\s*|[\x01][^\x01\x02]*[\x01\x02])")


def markdown_of(text: str | None, entities: list[MessageEntity] | None) -> str:
    """`text` with its formatting `entities` written as Markdown."""
    return _unparse(_Markdown(), text or "", entities or [])


def message_markdown(message: Message) -> str:
    """A message's text (or caption) as Markdown."""
    return markdown_of(*_text_of(message))


def blockquote(text: str) -> str:
    """`text` as a Markdown quote: how the model is shown what somebody else wrote."""
    return "\n".join("> " + line for line in text.strip().splitlines())


def command_args(message: Message) -> str:
    """What follows a command (`/ask …`) as Markdown; split where aiogram splits `args`."""
    text = message.text or ""
    parts = text.split(maxsplit=1)
    if len(parts) < 2:
        return ""
    start = text.index(parts[1], len(parts[0]))
    shift = utf16_len(text[:start])
    entities = [
        entity.model_copy(
            update={
                "offset": max(entity.offset - shift, 0),
                "length": end - max(entity.offset, shift),
            }
        )
        for entity in message.entities or []
        if (end := entity.offset + entity.length) > shift
    ]
    return markdown_of(text[start:], entities)


def without_mentions(message: Message, username: str) -> tuple[str, bool]:
    """A message's text (or caption) as Markdown, without its mentions of the bot `username`;
    and whether there was one. Only the spaces around a mention go (and the comma or colon of
    one that opens the message, as in `@bot, …`): the question's lines and indentation (code)
    stay."""
    text, entities = _text_of(message)
    markdown = _Markdown(mention=username)
    pieces = _unparse(markdown, text or "", entities or []).split(_MENTION)
    joined = pieces[0]
    for piece in pieces[1:]:
        if not joined.strip():  # the message opens with the mention: "@bot: …", "@bot, …"
            piece = _ADDRESS_PUNCTUATION.sub("", piece, count=1)
        left, right = joined.rstrip(" \t"), piece.lstrip(" \t")
        if left[-1:] in (",", ";", ":") and right[:1] == ",":  # "Hi, @bot, how…": one comma
            right = right[1:].lstrip(" \t")
        elif left[-1:] == "," and right[:1] in _NO_GAP_BEFORE:  # "what is it, @bot?": no comma
            left = left[:-1]
        # No gap before punctuation: "is that true @bot?" asks "is that true?".
        gap = " " if left[-1:] not in ("", "\n") and right[:1] not in _NO_GAP_BEFORE else ""
        joined = left + gap + right
    return joined.strip(), markdown.mentions > 0


_ADDRESS_PUNCTUATION = re.compile(r"^[ \t]*[,:](?=[ \t]|$)")
_NO_GAP_BEFORE = frozenset(
    ("", "\n", "?", "!", ".", ",", ":", ";", ")", "…", "？", "！", "。", "，")
)


def _text_of(message: Message) -> tuple[str | None, list[MessageEntity] | None]:
    """A message's text and its entities, or its caption and those."""
    if message.text is not None:
        return message.text, message.entities
    return message.caption, message.caption_entities


def _unparse(markdown: _Markdown, text: str, entities: list[MessageEntity]) -> str:
    # Longer entities first where two start together: aiogram nests by that order (it sorts by
    # offset only, and keeps ties as given). An empty entity would repeat its neighbour's text.
    entities = sorted((e for e in entities if e.length > 0), key=lambda e: (e.offset, -e.length))
    text = text.translate(_PLACEHOLDERS)
    return _EDGES.sub(_edge, markdown.unparse(text, entities) if entities else text).strip()


def _edge(match: re.Match[str]) -> str:
    return "\n\n" if _GAP in match.group() else "\n"


def _wrap(value: str, marker: str) -> str:
    """`value` between `marker`s, each paragraph on its own (emphasis cannot span a blank line or
    a block), its outer whitespace (and a removed mention) outside them: `** x**` is not bold."""
    pieces = _PARAGRAPHS.split(value)
    if len(pieces) > 1:
        return "".join(p if i % 2 else _wrap(p, marker) for i, p in enumerate(pieces))
    lead, core, trail = _split_outer(value)
    return f"{lead}{marker}{core}{marker}{trail}" if core else value


def _split_outer(value: str) -> tuple[str, str, str]:
    """`value`'s outer whitespace (and removed mentions) before, its core, and those after."""
    core = value.strip(" \t\n" + _MENTION)
    start = value.index(core) if core else len(value)
    return value[:start], core, value[start + len(core) :]


class _Markdown(TextDecoration):
    """Entities as CommonMark; a mention of the bot (when given) as `_MENTION`."""

    def __init__(self, mention: str | None = None) -> None:
        self._mention = mention.lower() if mention else None
        self.mentions = 0

    def apply_entity(self, entity: MessageEntity, text: str) -> str:
        if entity.type == "mention" and text.lstrip("@").lower() == self._mention:
            self.mentions += 1
            return _MENTION
        if entity.type == "text_mention":
            return text  # a person's name; a tg:// link would tell the model nothing
        return super().apply_entity(entity, text)

    def link(self, value: str, link: str) -> str:
        lead, core, trail = _split_outer(value)
        if not core or core == link:
            return value
        words = core.replace("[", "\\[").replace("]", "\\]")
        target = f"<{link}>" if re.search(r"[\s()<>]", link) else link
        return f"{lead}[{words}]({target}){trail}"

    def bold(self, value: str) -> str:
        return _wrap(value, "**")

    def italic(self, value: str) -> str:
        return _wrap(value, "*")

    def strikethrough(self, value: str) -> str:
        return _wrap(value, "~~")

    def code(self, value: str) -> str:
        if not value.strip():
            return value
        return code_span(value)

    def pre(self, value: str) -> str:
        return self.pre_language(value, "")

    def pre_language(self, value: str, language: str) -> str:
        # On lines of its own: a client may put a code block in the middle of a line.
        ticks = fence(value, 3)
        return f"{_BREAK}{ticks}{language}\n{value.strip(chr(10))}\n{ticks}{_BREAK}"

    def blockquote(self, value: str) -> str:
        lines = _EDGES.sub(_edge, value).strip("\n").split("\n")  # a code block inside too
        return _BREAK + "\n".join(f"> {line}" if line else ">" for line in lines) + _GAP

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
