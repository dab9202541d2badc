"""A fake Telegram Bot API server that enforces the rules a streaming bot trips over.

The bot under test talks to it over real HTTP through aiogram's ordinary session, so requests go
through the same serialisation, error mapping and retry code as in production. The fake is strict
on purpose: text length in UTF-16 code units, whitespace stripping, entity nesting, parse modes,
replies, inline keyboards, "message is not modified", private-only drafts and the documented flood
limits, including retry_after windows whose violations are counted.

Only aiohttp and the standard library are used, so the fake never depends on the code it checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import math
import re
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from aiohttp import web

__all__ = ["Call", "FakeTelegram", "StoredMessage"]

Json = dict[str, Any]

MAX_TEXT_LENGTH = 4096
"""Longest text (UTF-16 code units, after entity parsing and stripping) Telegram accepts."""

FLOOD_METHODS = frozenset(
    {"sendMessage", "editMessageText", "editMessageReplyMarkup", "sendMessageDraft"}
)
"""Methods that count against the flood limits (chat actions and callback answers do not)."""

ACTIVITY_METHODS = FLOOD_METHODS | {"deleteMessage", "deleteMessages"}
"""Methods that change what a user sees; `wait_idle` waits until they stop."""

ENTITY_TYPES = frozenset(
    {
        "mention",
        "hashtag",
        "cashtag",
        "bot_command",
        "url",
        "email",
        "phone_number",
        "bold",
        "italic",
        "underline",
        "strikethrough",
        "spoiler",
        "blockquote",
        "expandable_blockquote",
        "code",
        "pre",
        "text_link",
        "text_mention",
        "custom_emoji",
        "date_time",
    }
)
_CODE_LIKE = frozenset({"code", "pre"})
_QUOTE_LIKE = frozenset({"blockquote", "expandable_blockquote"})

NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)

CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)

_BUTTON_ACTIONS = (
    "callback_data",
    "url",
    "login_url",
    "web_app",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)

# Form values are strings; everything else is JSON-decoded, except these free-text parameters
# (a text of "123" or "null" must stay a string).
_STRING_PARAMS = frozenset(
    {
        "text",
        "parse_mode",
        "language_code",
        "callback_query_id",
        "inline_message_id",
        "url",
        "secret_token",
        "ip_address",
        "action",
        "business_connection_id",
        "message_effect_id",
        "caption",
        "custom_title",
    }
)

DEFAULT_GROUP_USER_ID = 424242
"""The author of injected group messages when a test does not name one."""

_SPACE_LIKE = frozenset("\u200b\u200c\u200d\u200e\u200f\u2060\u2800\u3164\ufeff")


class ApiError(Exception):
    """An error answer in Telegram's shape; raised anywhere inside a method handler."""

    def __init__(self, code: int, description: str, parameters: Json | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters

    def payload(self) -> Json:
        """The JSON body Telegram sends for this error."""
        body: Json = {"ok": False, "error_code": self.code, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad_request(reason: str) -> ApiError:
    """A 400 answer with Telegram's "Bad Request: " prefix."""
    return ApiError(400, f"Bad Request: {reason}")


def entity_error(reason: str) -> ApiError:
    """A 400 answer for text that cannot be turned into text + entities."""
    return bad_request(f"can't parse entities: {reason}")


# --------------------------------------------------------------------------------------------
# UTF-16 helpers: Telegram counts lengths and entity offsets in UTF-16 code units.
# --------------------------------------------------------------------------------------------


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units (characters outside the BMP count twice)."""
    return len(text.encode("utf-16-le")) // 2


def _surrogate_middles(text: str) -> set[int]:
    """UTF-16 positions that fall between the two halves of a surrogate pair."""
    middles: set[int] = set()
    position = 0
    for char in text:
        if ord(char) > 0xFFFF:
            middles.add(position + 1)
            position += 2
        else:
            position += 1
    return middles


def _byte_offset(source: str, index: int) -> int:
    """Telegram reports parse errors at UTF-8 byte offsets."""
    return len(source[:index].encode("utf-8"))


def _is_space(char: str) -> bool:
    return char.isspace() or char in _SPACE_LIKE


def strip_text(text: str, entities: list[Json]) -> tuple[str, list[Json]]:
    """Strip surrounding whitespace like Telegram does, shifting and clipping entities."""
    start, end = 0, len(text)
    while start < end and _is_space(text[start]):
        start += 1
    while end > start and _is_space(text[end - 1]):
        end -= 1
    if start == 0 and end == len(text):
        return text, entities
    lead = utf16_len(text[:start])
    body = text[start:end]
    body_len = utf16_len(body)
    kept: list[Json] = []
    for entity in entities:
        first = max(entity["offset"], lead) - lead
        last = min(entity["offset"] + entity["length"], lead + body_len) - lead
        if last > first:
            kept.append({**entity, "offset": first, "length": last - first})
    return body, kept


def sort_entities(entities: list[Json]) -> list[Json]:
    """Telegram returns entities ordered by offset, outer ones first."""
    return sorted(
        entities, key=lambda e: (e["offset"], -e["length"], e["type"] in _CODE_LIKE, e["type"])
    )


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def check_entities(raw: Any, text: str) -> list[Json]:
    """Validate entities against `text` with Telegram's rules and return clean copies."""
    if not isinstance(raw, list):
        raise bad_request("can't parse entities JSON object")
    text_len = utf16_len(text)
    middles = _surrogate_middles(text) if text_len != len(text) else set()
    entities: list[Json] = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise bad_request("can't parse entities JSON object")
        kind, offset, length = item.get("type"), item.get("offset"), item.get("length")
        label = f"entity {index} ({kind})"
        if kind not in ENTITY_TYPES:
            raise entity_error(f'unsupported entity type "{kind}" (entity {index})')
        if not _is_int(offset) or not _is_int(length):
            raise entity_error(f"{label} needs integer offset and length")
        if offset < 0:
            raise entity_error(f"{label} has a negative offset")
        if length < 1:
            raise entity_error(f"{label} has length {length}; it must be at least 1")
        if offset + length > text_len:
            raise entity_error(
                f"{label} ends at {offset + length}, beyond the end of the text "
                f"({text_len} UTF-16 code units)"
            )
        if offset in middles or offset + length in middles:
            raise entity_error(f"{label} splits a surrogate pair")
        if kind == "text_link" and not (isinstance(item.get("url"), str) and item["url"]):
            raise entity_error(f"{label} needs a url")
        if kind == "pre" and not isinstance(item.get("language", ""), str):
            raise entity_error(f"{label} has a language that is not a string")
        if kind == "text_mention":
            user = item.get("user")
            if not (isinstance(user, dict) and _is_int(user.get("id"))):
                raise entity_error(f"{label} needs a user with an id")
        if kind == "custom_emoji" and not isinstance(item.get("custom_emoji_id"), str):
            raise entity_error(f"{label} needs a custom_emoji_id")
        if kind == "date_time" and not _is_int(item.get("unix_time")):
            raise entity_error(f"{label} needs a unix_time")
        entities.append(dict(item))
    _check_nesting(entities)
    return entities


def _check_nesting(entities: list[Json]) -> None:
    """Entities must be disjoint or nested; nothing inside code/pre; no quote inside a quote."""

    def end(k: int) -> int:
        return int(entities[k]["offset"] + entities[k]["length"])

    order = sorted(
        range(len(entities)),
        key=lambda k: (
            entities[k]["offset"],
            -entities[k]["length"],
            entities[k]["type"] in _CODE_LIKE,
        ),
    )
    stack: list[int] = []
    for k in order:
        entity = entities[k]
        while stack and end(stack[-1]) <= entity["offset"]:
            stack.pop()
        if stack and end(stack[-1]) < end(k):
            outer = stack[-1]
            raise entity_error(
                f"entities {outer} ({entities[outer]['type']}) and {k} ({entity['type']}) "
                "partially overlap"
            )
        for parent in stack:
            parent_type = entities[parent]["type"]
            if parent_type in _CODE_LIKE:
                raise entity_error(
                    f"entity {k} ({entity['type']}) can't be nested inside entity "
                    f"{parent} ({parent_type})"
                )
            if parent_type in _QUOTE_LIKE and entity["type"] in _QUOTE_LIKE:
                raise entity_error(
                    f"entity {k} ({entity['type']}) can't be nested inside entity "
                    f"{parent} ({parent_type})"
                )
        stack.append(k)


# --------------------------------------------------------------------------------------------
# parse_mode parsers. The bot is expected to send text + entities; these exist so that a bot
# which does use a parse mode gets Telegram's strictness instead of silent acceptance.
# --------------------------------------------------------------------------------------------


class _TextBuilder:
    """Collects parsed text while tracking the UTF-16 position entities need."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pos = 0
        self.entities: list[Json] = []

    def add(self, chunk: str) -> None:
        if chunk:
            self.parts.append(chunk)
            self.pos += utf16_len(chunk)

    def entity(self, kind: str, start: int, end: int | None = None, **extra: Any) -> None:
        stop = self.pos if end is None else end
        if stop > start:
            self.entities.append({"type": kind, "offset": start, "length": stop - start, **extra})

    def result(self) -> tuple[str, list[Json]]:
        return "".join(self.parts), self.entities


_HTML_SPECIAL = re.compile(r"[<>&]")
_HTML_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)([^<>]*)>")
_HTML_ATTR = re.compile(r"""([A-Za-z-]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?""")
_HTML_ENTITY = re.compile(r"&(?:(lt|gt|amp|quot)|#(\d{1,7})|#[xX]([0-9A-Fa-f]{1,6}));")
_HTML_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_HTML_KINDS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "span": "spoiler",
    "tg-spoiler": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}


@dataclass
class _OpenTag:
    name: str
    start: int
    attrs: dict[str, str]
    language: str | None = None
    merged_into_pre: bool = False


def _html_attrs(raw: str) -> dict[str, str]:
    attrs: dict[str, str] = {}
    for match in _HTML_ATTR.finditer(raw):
        name, double, single, bare = match.groups()
        attrs[name.lower()] = double if double is not None else single or bare or ""
    return attrs


def parse_html(source: str) -> tuple[str, list[Json]]:
    """Telegram's HTML parse mode: known tags only, balanced, & < > escaped in text."""
    out = _TextBuilder()
    stack: list[_OpenTag] = []
    index = 0
    while index < len(source):
        special = _HTML_SPECIAL.search(source, index)
        if special is None:
            out.add(source[index:])
            break
        at = special.start()
        out.add(source[index:at])
        char = source[at]
        if char == "&":
            escape = _HTML_ENTITY.match(source, at)
            if escape is None:
                raise entity_error(
                    f'unescaped "&" at byte offset {_byte_offset(source, at)}; write &amp;'
                )
            named, decimal, hexadecimal = escape.groups()
            if named:
                out.add(_HTML_NAMED[named])
            else:
                out.add(chr(int(decimal) if decimal else int(hexadecimal, 16)))
            index = escape.end()
            continue
        if char == ">":
            raise entity_error(
                f'unescaped ">" at byte offset {_byte_offset(source, at)}; write &gt;'
            )
        tag = _HTML_TAG.match(source, at)
        if tag is None:
            raise entity_error(
                f'unexpected "<" at byte offset {_byte_offset(source, at)}; write &lt;'
            )
        closing, name, raw_attrs = tag.group(1) == "/", tag.group(2).lower(), tag.group(3)
        if raw_attrs and not raw_attrs[0].isspace():
            raise entity_error(f"malformed tag at byte offset {_byte_offset(source, at)}")
        if closing:
            if raw_attrs.strip():
                raise entity_error(
                    f"end tag with attributes at byte offset {_byte_offset(source, at)}"
                )
            if not stack:
                raise entity_error(f"Unexpected end tag at byte offset {_byte_offset(source, at)}")
            top = stack.pop()
            if top.name != name:
                raise entity_error(
                    f"Unmatched end tag at byte offset {_byte_offset(source, at)}, "
                    f'expected "</{top.name}>", found "</{name}>"'
                )
            _close_html_tag(top, out, stack)
        else:
            if name not in _HTML_KINDS:
                raise entity_error(
                    f'Unsupported start tag "{name}" at byte offset {_byte_offset(source, at)}'
                )
            attrs = _html_attrs(raw_attrs)
            if name == "span" and attrs.get("class") != "tg-spoiler":
                raise entity_error('Tag "span" must have class "tg-spoiler"')
            opened = _OpenTag(name, out.pos, attrs)
            if name == "code" and stack and stack[-1].name == "pre" and stack[-1].start == out.pos:
                opened.merged_into_pre = True
                language = attrs.get("class", "")
                if language.startswith("language-") and len(language) > len("language-"):
                    stack[-1].language = language[len("language-") :]
            stack.append(opened)
        index = tag.end()
    if stack:
        raise entity_error(f'Can\'t find end tag corresponding to start tag "{stack[-1].name}"')
    return out.result()


def _close_html_tag(tag: _OpenTag, out: _TextBuilder, stack: list[_OpenTag]) -> None:
    kind = _HTML_KINDS[tag.name]
    if tag.merged_into_pre:
        return
    if kind == "text_link":
        href = tag.attrs.get("href")
        if href:
            out.entity("text_link", tag.start, url=href)
    elif kind == "custom_emoji":
        emoji_id = tag.attrs.get("emoji-id")
        if not emoji_id:
            raise entity_error('Tag "tg-emoji" must have attribute "emoji-id"')
        out.entity("custom_emoji", tag.start, custom_emoji_id=emoji_id)
    elif kind == "pre" and tag.language:
        out.entity("pre", tag.start, language=tag.language)
    elif kind == "blockquote" and "expandable" in tag.attrs:
        out.entity("expandable_blockquote", tag.start)
    else:
        out.entity(kind, tag.start)


_MDV2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")
_MDV2_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "text_link": "TextUrl",
    "custom_emoji": "CustomEmoji",
}


def _reserved(char: str) -> ApiError:
    return entity_error(
        f"Character '{char}' is reserved and must be escaped with the preceding '\\'"
    )


def parse_markdown_v2(source: str) -> tuple[str, list[Json]]:
    """A MarkdownV2 checker: reserved characters must be escaped, markers must be balanced."""
    out = _TextBuilder()
    stack: list[tuple[str, int, int]] = []  # (kind, start position, source index)
    quote: tuple[str, int] | None = None
    index, size = 0, len(source)
    line_start = True

    def toggle(kind: str, at: int) -> None:
        for k in range(len(stack) - 1, -1, -1):
            if stack[k][0] == kind:
                _, start, _ = stack.pop(k)
                out.entity(kind, start)
                return
        stack.append((kind, out.pos, at))

    while index < size:
        char = source[index]
        if line_start:
            line_start = False
            if source.startswith("**>", index):
                if quote is not None:
                    out.entity(quote[0], quote[1], out.pos - 1)
                quote = ("expandable_blockquote", out.pos)
                index += 3
                continue
            if char == ">":
                if quote is None:
                    quote = ("blockquote", out.pos)
                index += 1
                continue
            if quote is not None:
                out.entity(quote[0], quote[1], out.pos - 1)
                quote = None
        if char == "\\":
            escaped = source[index + 1] if index + 1 < size else "\\"
            out.add(escaped)
            line_start = escaped == "\n"
            index += 2
        elif char == "`":
            index = _mdv2_code(source, index, out)
        elif char == "*":
            toggle("bold", index)
            index += 1
        elif char == "_":
            if source.startswith("__", index):
                toggle("underline", index)
                index += 2
            else:
                toggle("italic", index)
                index += 1
        elif char == "~":
            toggle("strikethrough", index)
            index += 1
        elif char == "|":
            if not source.startswith("||", index):
                raise _reserved(char)
            line_end = index + 2 == size or source[index + 2] == "\n"
            if quote is not None and quote[0] == "expandable_blockquote" and line_end:
                out.entity(quote[0], quote[1])
                quote = None
            else:
                toggle("spoiler", index)
            index += 2
        elif char == "[":
            stack.append(("text_link", out.pos, index))
            index += 1
        elif char == "!" and source.startswith("![", index):
            stack.append(("custom_emoji", out.pos, index))
            index += 2
        elif char == "]":
            index = _mdv2_link_end(source, index, out, stack)
        elif char == "\n":
            out.add(char)
            line_start = True
            index += 1
        elif char in _MDV2_RESERVED:
            raise _reserved(char)
        else:
            out.add(char)
            index += 1
    if quote is not None:
        out.entity(quote[0], quote[1])
    if stack:
        kind, _, at = stack[-1]
        raise entity_error(
            f"Can't find end of {_MDV2_NAMES[kind]} entity at byte offset "
            f"{_byte_offset(source, at)}"
        )
    return out.result()


def _mdv2_code(source: str, index: int, out: _TextBuilder) -> int:
    """Parse `code` or ```pre``` starting at `index`; return the index after it."""
    fence = "```" if source.startswith("```", index) else "`"
    cursor = index + len(fence)
    language: str | None = None
    if fence == "```":
        newline = source.find("\n", cursor)
        if newline != -1 and "`" not in source[cursor:newline]:
            language = source[cursor:newline].strip() or None
            cursor = newline + 1
    chunk: list[str] = []
    while cursor < len(source):
        if source[cursor] == "\\" and cursor + 1 < len(source):
            chunk.append(source[cursor + 1])
            cursor += 2
        elif source.startswith(fence, cursor):
            break
        else:
            chunk.append(source[cursor])
            cursor += 1
    else:
        name = "Pre" if fence == "```" else "Code"
        raise entity_error(
            f"Can't find end of {name} entity at byte offset {_byte_offset(source, index)}"
        )
    start = out.pos
    out.add("".join(chunk))
    if fence == "```":
        if language:
            out.entity("pre", start, language=language)
        else:
            out.entity("pre", start)
    else:
        out.entity("code", start)
    return cursor + len(fence)


def _mdv2_link_end(
    source: str, index: int, out: _TextBuilder, stack: list[tuple[str, int, int]]
) -> int:
    """Close [text](url) or ![emoji](tg://emoji?id=...) at the "]" found at `index`."""
    if not stack or stack[-1][0] not in ("text_link", "custom_emoji"):
        if any(kind in ("text_link", "custom_emoji") for kind, _, _ in stack):
            kind, _, at = stack[-1]
            raise entity_error(
                f"Can't find end of {_MDV2_NAMES[kind]} entity at byte offset "
                f"{_byte_offset(source, at)}"
            )
        raise _reserved("]")
    kind, start, at = stack.pop()
    if not source.startswith("(", index + 1):
        raise entity_error(
            f"Can't find end of {_MDV2_NAMES[kind]} entity at byte offset "
            f"{_byte_offset(source, at)}"
        )
    cursor = index + 2
    url: list[str] = []
    while cursor < len(source) and source[cursor] != ")":
        if source[cursor] == "\\" and cursor + 1 < len(source):
            cursor += 1
        url.append(source[cursor])
        cursor += 1
    if cursor >= len(source):
        raise entity_error(f"Can't find end of a URL at byte offset {_byte_offset(source, index)}")
    target = "".join(url).strip()
    if kind == "custom_emoji":
        match = re.fullmatch(r"tg://emoji\?id=(\d+)", target)
        if match is None:
            raise entity_error("Custom emoji URL must have scheme tg://emoji?id=")
        out.entity("custom_emoji", start, custom_emoji_id=match.group(1))
    elif target:
        out.entity("text_link", start, url=target)
    return cursor + 1


def parse_markdown(source: str) -> tuple[str, list[Json]]:
    """Legacy Markdown: *bold*, _italic_, `code`, ```pre```, [text](url); fails when unclosed."""
    out = _TextBuilder()
    index, size = 0, len(source)

    def unclosed(at: int) -> ApiError:
        return entity_error(
            f"Can't find end of the entity starting at byte offset {_byte_offset(source, at)}"
        )

    while index < size:
        char = source[index]
        if char == "\\" and index + 1 < size and source[index + 1] in "_*`[":
            out.add(source[index + 1])
            index += 2
        elif char in "*_":
            close = source.find(char, index + 1)
            if close == -1:
                raise unclosed(index)
            start = out.pos
            out.add(source[index + 1 : close])
            out.entity("bold" if char == "*" else "italic", start)
            index = close + 1
        elif char == "`":
            fence = "```" if source.startswith("```", index) else "`"
            close = source.find(fence, index + len(fence))
            if close == -1:
                raise unclosed(index)
            start = out.pos
            out.add(source[index + len(fence) : close])
            out.entity("pre" if fence == "```" else "code", start)
            index = close + len(fence)
        elif char == "[":
            link = re.compile(r"\[([^\]]*)\]\(([^)]*)\)").match(source, index)
            if link is None:
                raise unclosed(index)
            start = out.pos
            out.add(link.group(1))
            if link.group(2).strip():
                out.entity("text_link", start, url=link.group(2).strip())
            index = link.end()
        else:
            out.add(char)
            index += 1
    return out.result()


_PARSERS: dict[str, Callable[[str], tuple[str, list[Json]]]] = {
    "html": parse_html,
    "markdownv2": parse_markdown_v2,
    "markdown": parse_markdown,
}


def prepare_text(params: Json, *, allow_empty: bool) -> tuple[str, list[Json]]:
    """Turn text/entities/parse_mode into what Telegram would store, or raise its 400."""
    raw = params.get("text")
    text = "" if raw is None else raw if isinstance(raw, str) else str(raw)
    raw_entities = params.get("entities")
    mode = params.get("parse_mode")
    if raw_entities is not None and raw_entities != []:
        entities = check_entities(raw_entities, text)
    elif isinstance(mode, str) and mode:
        parser = _PARSERS.get(mode.lower())
        if parser is None:
            raise bad_request("unsupported parse_mode")
        text, parsed = parser(text)
        entities = check_entities(parsed, text)
    else:
        entities = []
    text, entities = strip_text(text, entities)
    if not text and not allow_empty:
        raise bad_request("message text is empty")
    if utf16_len(text) > MAX_TEXT_LENGTH:
        raise bad_request("message is too long")
    return text, sort_entities(entities)


def parse_reply_markup(value: Any, *, inline_only: bool) -> Json | None:
    """Validate reply_markup; return the inline keyboard a message keeps (None if there is none)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" not in value:
        if inline_only:
            raise bad_request("inline keyboard expected")
        if not any(key in value for key in ("keyboard", "remove_keyboard", "force_reply")):
            raise bad_request("can't parse reply keyboard markup JSON object")
        return None
    rows = value["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request('can\'t parse inline keyboard: field "inline_keyboard" must be an Array')
    for row in rows:
        for button in row:
            _check_button(button)
    if not any(rows):
        return None
    return {"inline_keyboard": rows}


def _check_button(button: Any) -> None:
    if not isinstance(button, dict):
        raise bad_request(
            "can't parse inline keyboard button: InlineKeyboardButton must be an Object"
        )
    if not isinstance(button.get("text"), str) or not button["text"].strip():
        raise bad_request("BUTTON_TEXT_INVALID")
    actions = [key for key in _BUTTON_ACTIONS if key in button]
    if not actions:
        raise bad_request(
            "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
        )
    if "callback_data" in button:
        data = button["callback_data"]
        if not isinstance(data, str) or not 1 <= len(data.encode("utf-8")) <= 64:
            raise bad_request("BUTTON_DATA_INVALID")
    if "url" in button:
        url = button["url"]
        if not isinstance(url, str) or not re.match(r"(?i)(https?|tg|ton)://\S+$", url):
            raise bad_request(f"inline keyboard button URL '{url}' is invalid: Wrong HTTP URL")


def _callback_datas(markup: Json | None) -> list[str]:
    if markup is None:
        return []
    return [
        button["callback_data"]
        for row in markup["inline_keyboard"]
        for button in row
        if "callback_data" in button
    ]


def _decode_param(name: str, value: Any) -> Any:
    """aiogram sends scalars as strings and complex fields as JSON strings; undo that."""
    if isinstance(value, str) and name not in _STRING_PARAMS:
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


# --------------------------------------------------------------------------------------------
# Records the tests inspect.
# --------------------------------------------------------------------------------------------


@dataclass
class Call:
    """One request as the server saw it; status is 0 while a long poll is still open."""

    method: str
    params: Json
    status: int
    at: float
    chat_id: int | None
    result: Any = None  # what a successful call returned
    content_type: str = ""  # how the parameters came: a form, JSON or the query string


def _placeholder_sender(message: StoredMessage) -> Json:
    """The `from` of a message sent as a chat: one placeholder account for all such messages."""
    assert message.sender_chat is not None
    if message.automatic_forward:
        return {"id": 777000, "is_bot": False, "first_name": "Telegram"}
    if message.sender_chat["id"] == message.chat_id:
        return {
            "id": 1087968824,
            "is_bot": True,
            "first_name": "Group",
            "username": "GroupAnonymousBot",
        }
    return {"id": 136817688, "is_bot": True, "first_name": "Channel", "username": "Channel_Bot"}


@dataclass
class StoredMessage:
    """A message in a chat, in its current state (edits applied)."""

    chat_id: int
    message_id: int
    text: str
    entities: list[Json] = field(default_factory=list)
    reply_markup: Json | None = None
    reply_to_message_id: int | None = None
    message_thread_id: int | None = None
    from_bot: bool = True
    user_id: int | None = None
    history: list[str] = field(default_factory=list)
    deleted: bool = False
    date: int = 0
    sticker: bool = False
    photo: bool = False  # a photo, whose text is its caption
    edit_date: int | None = None
    edits: int = 0
    quote: Json | None = None  # the part of the replied-to message a user selected
    sender_chat: Json | None = None  # sent as a chat: an anonymous admin, a channel
    automatic_forward: bool = False  # a channel's post copied into its discussion group
    forward_origin: Json | None = None  # forwarded: who wrote it (a MessageOrigin)


@dataclass
class _Window:
    """A retry_after period a bot has been told about."""

    until: float
    seconds: int


@dataclass
class _Injection:
    chat_id: int | None
    methods: tuple[str, ...]
    retry_after: int
    remaining: int


_Handler = Callable[[Json], Awaitable[Any]]
_BAD_GATEWAY = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n"
    "<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


class FakeTelegram:
    """An in-process Telegram Bot API server with Telegram's validation and flood limits."""

    def __init__(
        self,
        token: str = "123456:TEST-token",
        bot_id: int = 123456,
        bot_username: str = "test_g4f_bot",
        private_burst: int = 3,
        private_per_second: float = 1.0,
        group_per_minute: int = 20,
        global_per_second: int = 30,
    ) -> None:
        self.token = token
        self.bot_id = bot_id
        self.bot_username = bot_username
        self.private_burst = private_burst
        self.private_per_second = private_per_second
        self.group_per_minute = group_per_minute
        self.global_per_second = global_per_second

        self.calls: list[Call] = []
        self.drafts: list[Call] = []
        self.drafts_enabled = True  # False: answer sendMessageDraft like a server without it
        self.draft_texts: dict[int, str] = {}  # the last draft shown in each private chat
        self.commands: dict[tuple[str, str], list[Json]] = {}
        self.count_429 = 0
        self.violations = 0
        self.webhook_url: str | None = None

        self._messages: dict[int, dict[int, StoredMessage]] = {}
        self._message_ids: dict[int, itertools.count[int]] = {}
        self._chats: dict[int, Json] = {}
        self._users: dict[int, Json] = {}
        self._admins: dict[int, set[int]] = {}
        self._blocked: set[int] = set()
        self._muted: set[int] = set()  # groups where the bot may not send (restricted)
        self._migrated: dict[int, int] = {}  # a group upgraded to a supergroup → its new id
        self._open_callbacks: set[str] = set()
        self._callback_ids = itertools.count(4_000_000_000_000_000_001)
        self._updates: list[Json] = []
        self._update_ids = itertools.count(1)
        self._allowed_updates: list[str] | None = None
        self._update_event = asyncio.Event()
        self._poll_generation = 0
        self._closing = False
        self._injections: list[_Injection] = []
        self._gateway_errors: list[_Injection] = []
        self._buckets: dict[int, tuple[float, float]] = {}
        self._group_hits: dict[int, deque[float]] = {}
        self._global_hits: deque[float] = deque()
        self._windows: dict[int | None, _Window] = {}
        self._last_activity = 0.0
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None

        self._handlers: dict[str, _Handler] = {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "logOut": self._ok,
            "close": self._ok,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "getChatMember": self._get_chat_member,
            "answerCallbackQuery": self._answer_callback_query,
            "sendChatAction": self._send_chat_action,
            "deleteMessage": self._delete_message,
            "deleteMessages": self._delete_messages,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "sendMessageDraft": self._send_message_draft,
        }
        self._method_names = {name.lower(): name for name in self._handlers}

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> str:
        """Listen on a free port of 127.0.0.1 and return the base url for aiogram."""
        if self._runner is not None:
            raise RuntimeError("FakeTelegram is already running")
        self._closing = False
        self._update_event = asyncio.Event()
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        # Cancellation frees long polls of clients that went away (e.g. a stopped dispatcher).
        runner = web.AppRunner(
            app, access_log=None, shutdown_timeout=1.0, handler_cancellation=True
        )
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        await web.SockSite(runner, sock).start()
        self._runner = runner
        self._base_url = f"http://127.0.0.1:{port}"
        return self._base_url

    async def stop(self) -> None:
        """Release open long polls and shut the server down."""
        if self._runner is None:
            return
        self._closing = True
        self._notify()
        runner, self._runner = self._runner, None
        await runner.cleanup()

    @property
    def base_url(self) -> str:
        """The url `start` returned."""
        if self._base_url is None:
            raise RuntimeError("FakeTelegram has not been started")
        return self._base_url

    def reset(self) -> None:
        """Forget everything a test did; the server, commands and id sequences stay.

        Update and message ids keep counting so a bot that keeps polling across tests never
        confuses a new update with one it has already confirmed.
        """
        self.calls.clear()
        self.drafts.clear()
        self.drafts_enabled = True
        self.draft_texts.clear()
        self.count_429 = 0
        self.violations = 0
        self.webhook_url = None
        self._messages.clear()
        self._chats.clear()
        self._users.clear()
        self._admins.clear()
        self._blocked.clear()
        self._muted.clear()
        self._migrated.clear()
        self._open_callbacks.clear()
        self._updates.clear()
        self._injections.clear()
        self._gateway_errors.clear()
        self._buckets.clear()
        self._group_hits.clear()
        self._global_hits.clear()
        self._windows.clear()
        self._allowed_updates = None
        self._last_activity = 0.0

    # ---------------------------------------------------------------- what users do

    def send_user_message(
        self,
        chat_id: int,
        text: str | None = None,
        *,
        user_id: int | None = None,
        chat_type: str = "private",
        first_name: str = "Alice",
        language_code: str | None = "en",
        entities: list[Json] | None = None,
        reply_to_message_id: int | None = None,
        message_thread_id: int | None = None,
        sticker: bool = False,
        photo: bool = False,
        quote: str | None = None,
        chat_title: str = "Test group",
        sender_chat: Json | None = None,
        automatic_forward: bool = False,
        forward_origin: Json | None = None,
        date: int | None = None,
    ) -> Json:
        """Queue a user's message for getUpdates and store it so the bot can reply to it.

        `sender_chat`: sent as that chat (the group itself: an anonymous admin; a channel); with
        `automatic_forward`, the channel's post as its discussion group gets it. `from` is then
        the placeholder Telegram puts there. `forward_origin`: a message forwarded by the user,
        who wrote it (a MessageOrigin: `{"type": "user", "date": …, "sender_user": {…}}`, …).
        `date`: when it was sent, in Unix seconds (now, by default).

        With entities=None, bot commands and @mentions are detected like Telegram's server does;
        pass entities=[] for a message without any.
        """
        if chat_type == "private":
            if chat_id <= 0:
                raise ValueError("private chats have positive ids")
            author = chat_id if user_id is None else user_id
        elif chat_type in ("group", "supergroup"):
            if chat_id >= 0:
                raise ValueError("group chats have negative ids")
            author = DEFAULT_GROUP_USER_ID if user_id is None else user_id
        else:
            raise ValueError(f"unsupported chat type {chat_type!r}")
        self._remember_user(author, first_name, language_code)
        chat: Json = {"id": chat_id, "type": chat_type}
        if chat_type == "private":
            chat["first_name"] = first_name
        else:
            chat["title"] = chat_title
            if chat_type == "supergroup" and (
                message_thread_id is not None or self._chats.get(chat_id, {}).get("is_forum")
            ):
                chat["is_forum"] = True
        self._chats[chat_id] = chat
        target = None
        if reply_to_message_id is not None:
            target = self._messages.get(chat_id, {}).get(reply_to_message_id)
            if target is None or target.deleted:
                raise ValueError(f"no message {reply_to_message_id} in chat {chat_id} to reply to")
            if message_thread_id is None:
                message_thread_id = target.message_thread_id
        if text is not None and utf16_len(text) > MAX_TEXT_LENGTH:
            raise ValueError("a message holds 4096 characters at most: see send_user_paste")
        if entities is None:
            entities = self._detect_entities(text or "")
        message = StoredMessage(
            chat_id=chat_id,
            message_id=self._next_message_id(chat_id),
            text=text or "",
            entities=[dict(e) for e in entities],
            reply_to_message_id=reply_to_message_id,
            message_thread_id=message_thread_id,
            from_bot=False,
            user_id=author,
            history=[text or ""],
            date=int(time.time()) if date is None else date,
            sticker=sticker,
            photo=photo,
            sender_chat=sender_chat,
            automatic_forward=automatic_forward,
            forward_origin=forward_origin,
        )
        self._store(message)
        data = self._message_json(message)
        if quote is not None:  # the part of the replied-to message the user selected
            if target is None or quote not in target.text:
                raise ValueError(f"{quote!r} is not in the message replied to")
            position = utf16_len(target.text[: target.text.index(quote)])
            message.quote = data["quote"] = {"text": quote, "position": position, "is_manual": True}
        return self._push_update({"message": data})

    def send_user_paste(
        self, chat_id: int, text: str, *, app: str = "desktop", **kw: Any
    ) -> list[Json]:
        """A text over 4096 characters, sent as Telegram's apps send it: as several messages.
        Telegram Desktop cuts each piece at the best break in the second half of the limit (a
        blank line, else a line break, else a space; the whitespace there is dropped); the
        mobile apps cut every 4096 characters (`app="mobile"`). Texts outside the BMP are not
        supported here (the cuts count code points)."""
        if not text.isascii() and utf16_len(text) != len(text):
            raise ValueError("send_user_paste counts code points: keep to the BMP")
        pieces: list[str] = []
        rest = text
        while len(rest) > MAX_TEXT_LENGTH:
            cut = MAX_TEXT_LENGTH
            if app == "desktop":
                half = MAX_TEXT_LENGTH // 2
                for brk in ("\n\n", "\n", " "):
                    at = rest.rfind(brk, half, MAX_TEXT_LENGTH)
                    if at >= 0:
                        cut = at
                        break
                pieces.append(rest[:cut].rstrip())
                rest = rest[cut:].lstrip()
            else:
                pieces.append(rest[:cut])
                rest = rest[cut:]
        pieces.append(rest)
        return [self.send_user_message(chat_id, piece, **kw) for piece in pieces if piece]

    def upgrade_group(
        self, old_id: int, new_id: int, *, user_id: int = DEFAULT_GROUP_USER_ID
    ) -> None:
        """A group becomes a supergroup with a new id: Telegram posts a service message in each
        (`migrate_to_chat_id` in the old one, `migrate_from_chat_id` in the new one). From then
        on every call naming the old group is refused with the new id in `parameters`."""
        old = self._chats.get(old_id) or {"id": old_id, "type": "group", "title": "Test group"}
        self._chats.setdefault(old_id, old)
        self._chats[new_id] = {"id": new_id, "type": "supergroup", "title": old.get("title")}
        self.send_service_message(old_id, {"migrate_to_chat_id": new_id}, user_id=user_id)
        self.send_service_message(new_id, {"migrate_from_chat_id": old_id}, user_id=user_id)
        self._migrated[old_id] = new_id

    def send_service_message(
        self, chat_id: int, fields: Json, *, user_id: int | None = None
    ) -> Json:
        """Queue a service message: an event in a known chat (`pinned_message`,
        `message_auto_delete_timer_changed`, `write_access_allowed` …), not something said."""
        if chat_id not in self._chats:
            raise ValueError(f"chat {chat_id} is not known yet: send a user message there first")
        message = StoredMessage(
            chat_id=chat_id,
            message_id=self._next_message_id(chat_id),
            text="",
            from_bot=False,
            user_id=user_id if user_id is not None else (chat_id if chat_id > 0 else None),
            date=int(time.time()),
        )
        self._store(message)
        data = self._message_json(message)
        data.update(fields)
        return self._push_update({"message": data})

    def edit_user_message(
        self, chat_id: int, message_id: int, text: str, *, entities: list[Json] | None = None
    ) -> Json:
        """Queue an `edited_message`: the user edited a message of theirs (a text message keeps
        its reply and topic; entities=None detects commands and @mentions as for a new one)."""
        message = self.message(chat_id, message_id)
        if message.from_bot or message.deleted:
            raise ValueError(f"message {message_id} in chat {chat_id} is not a user's message")
        if not text:
            raise ValueError("a text message cannot be edited to no text")
        message.text = text
        message.entities = [
            dict(e) for e in (self._detect_entities(text) if entities is None else entities)
        ]
        message.history.append(text)
        message.edit_date = int(time.time())
        message.edits += 1
        data = self._message_json(message)
        if message.quote is not None:  # an edit keeps the reply, and the part it quotes
            data["quote"] = message.quote
        return self._push_update({"edited_message": data})

    def press_button(
        self,
        chat_id: int,
        message_id: int,
        data: str,
        *,
        user_id: int,
        language_code: str | None = "en",
        check_keyboard: bool = True,
    ) -> Json:
        """Queue a callback_query as if the user pressed a button of a bot message.

        By default the button must exist in the message's current keyboard, because a user
        cannot press a button the bot has removed.
        """
        message = self.message(chat_id, message_id)
        if message.deleted:
            raise AssertionError(f"message {message_id} in chat {chat_id} was deleted")
        if check_keyboard and data not in _callback_datas(message.reply_markup):
            raise AssertionError(
                f"message {message_id} in chat {chat_id} has no button with callback_data "
                f"{data!r}; its buttons: {_callback_datas(message.reply_markup)}"
            )
        known = self._users.get(user_id, {})
        user = self._remember_user(user_id, known.get("first_name", "Alice"), language_code)
        query_id = str(next(self._callback_ids))
        self._open_callbacks.add(query_id)
        return self._push_update(
            {
                "callback_query": {
                    "id": query_id,
                    "from": user,
                    "message": self._message_json(message),
                    "chat_instance": str(abs(chat_id) * 7919 + 17),
                    "data": data,
                }
            }
        )

    def stop_generation(self, chat_id: int, draft_id: int) -> Json:
        """Queue `stopped_message_generation`: the user pressed the client's stop control."""
        chat = self._chats[chat_id]
        return self._push_update(
            {
                "stopped_message_generation": {
                    "chat": {k: v for k, v in chat.items() if k in ("id", "type", "first_name")},
                    "draft_id": draft_id,
                }
            }
        )

    def mention_entity(self, text: str) -> list[Json]:
        """`mention` entities for every "@bot_username" in text (UTF-16 offsets)."""
        pattern = re.compile(rf"@{re.escape(self.bot_username)}(?![A-Za-z0-9_])", re.IGNORECASE)
        return [
            {
                "type": "mention",
                "offset": utf16_len(text[: match.start()]),
                "length": utf16_len(match.group()),
            }
            for match in pattern.finditer(text)
        ]

    def block(self, chat_id: int, *, tell: bool = True) -> None:
        """The user blocks the bot (or the group kicks it): every call for that chat gets 403,
        and the bot gets `my_chat_member` with its new status, "kicked" (unless `tell` is False:
        a bot that missed that update learns it from a refused call)."""
        self._blocked.add(chat_id)
        if tell:
            self._bot_status(chat_id, "member", "kicked")

    def unblock(self, chat_id: int) -> None:
        """Undo `block`: the bot is a "member" again (the user unblocked it, or an admin added it
        back), and gets `my_chat_member` saying so."""
        self._blocked.discard(chat_id)
        self._bot_status(chat_id, "kicked", "member")

    def mute(self, chat_id: int, *, tell: bool = True) -> None:
        """An admin restricts the bot in a group, taking away its right to send messages: what
        it sends there gets 400 "not enough rights to send text messages to the chat" (edits
        and deletes of its own messages still work), and it gets `my_chat_member` with its new
        status, "restricted" (unless `tell` is False: the group made every member read-only,
        which changes nobody's status)."""
        self._muted.add(chat_id)
        if tell:
            self._bot_status(chat_id, "member", "restricted")

    def unmute(self, chat_id: int, *, tell: bool = True) -> None:
        """Undo `mute`: the bot is a "member" again, and gets `my_chat_member` saying so (unless
        `tell` is False: the group is no longer read-only)."""
        self._muted.discard(chat_id)
        if tell:
            self._bot_status(chat_id, "restricted", "member")

    def _bot_member(self, status: str) -> Json:
        member: Json = {"status": status, "user": self._bot_user()}
        if status == "kicked":
            return member | {"until_date": 0}
        if status == "restricted":  # every right Telegram lists, messages taken away
            rights = [
                "can_send_messages",
                "can_send_audios",
                "can_send_documents",
                "can_send_photos",
                "can_send_videos",
                "can_send_video_notes",
                "can_send_voice_notes",
                "can_send_polls",
                "can_send_other_messages",
                "can_add_web_page_previews",
                "can_react_to_messages",
                "can_edit_tag",
                "can_change_info",
                "can_invite_users",
                "can_pin_messages",
                "can_manage_topics",
            ]
            return member | {"is_member": True, "until_date": 0} | dict.fromkeys(rights, False)
        return member

    def _bot_status(self, chat_id: int, old: str, new: str) -> None:
        chat = self._chats[chat_id]
        who = chat_id if chat_id > 0 else DEFAULT_GROUP_USER_ID
        self._push_update(
            {
                "my_chat_member": {
                    "chat": dict(chat),
                    "from": self._user_json(who),
                    "date": int(time.time()),
                    "old_chat_member": self._bot_member(old),
                    "new_chat_member": self._bot_member(new),
                }
            }
        )

    def delete_by_user(self, chat_id: int, message_id: int) -> None:
        """The user deletes a message, so later edits get "message to edit not found"."""
        self.message(chat_id, message_id).deleted = True

    def set_admin(self, chat_id: int, user_id: int) -> None:
        """Make getChatMember report this user as an administrator of the chat."""
        self._admins.setdefault(chat_id, set()).add(user_id)

    def inject_429(
        self,
        *,
        chat_id: int | None = None,
        methods: tuple[str, ...] = ("sendMessage", "editMessageText"),
        retry_after: int = 2,
        times: int = 1,
    ) -> None:
        """Answer the next `times` matching calls with 429 and open a retry_after window."""
        self._injections.append(_Injection(chat_id, tuple(methods), retry_after, times))

    def inject_gateway_error(
        self, *, chat_id: int | None = None, methods: tuple[str, ...], times: int = 1
    ) -> None:
        """Answer the next `times` matching calls with the HTML "502 Bad Gateway" page that
        Telegram's front end returns now and then, without carrying the call out."""
        self._gateway_errors.append(_Injection(chat_id, tuple(methods), 0, times))

    # ---------------------------------------------------------------- inspection

    def bot_messages(
        self, chat_id: int, message_thread_id: int | None = None, *, include_deleted: bool = False
    ) -> list[StoredMessage]:
        """The bot's messages in a chat (or one topic of it) in send order, as they are now."""
        return [
            message
            for message in self._messages.get(chat_id, {}).values()
            if message.from_bot
            and (include_deleted or not message.deleted)
            and (message_thread_id is None or message.message_thread_id == message_thread_id)
        ]

    def messages_in(self, chat_id: int) -> list[StoredMessage]:
        """Every message in a chat, users' and the bot's, in the order they came."""
        return sorted(
            (m for m in self._messages.get(chat_id, {}).values() if not m.deleted),
            key=lambda m: m.message_id,
        )

    def message(self, chat_id: int, message_id: int) -> StoredMessage:
        """One stored message (the bot's or a user's), deleted ones included."""
        try:
            return self._messages[chat_id][message_id]
        except KeyError:
            raise AssertionError(f"no message {message_id} in chat {chat_id}") from None

    def edit_count(self, chat_id: int, message_id: int) -> int:
        """Successful edits (text or keyboard) of one message."""
        return self.message(chat_id, message_id).edits

    @property
    def pending_updates(self) -> list[Json]:
        """Updates not yet confirmed by a getUpdates offset."""
        return list(self._updates)

    def describe_calls(self, last: int = 25) -> str:
        """A readable tail of the call log, for assertion messages."""
        if not self.calls:
            return "  (no calls)"
        origin = self.calls[0].at
        lines = []
        for call in self.calls[-last:]:
            text = call.params.get("text")
            preview = f" text={str(text)[:60]!r}" if text is not None else ""
            message_id = call.params.get("message_id")
            target = f" message_id={message_id}" if message_id is not None else ""
            lines.append(
                f"  +{call.at - origin:7.3f}s {call.method} chat={call.chat_id}{target} "
                f"-> {call.status}{preview}"
            )
        return "\n".join(lines)

    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = 10.0,  # noqa: ASYNC109 - the tests' API takes a plain timeout
    ) -> None:
        """Poll `predicate` every 20 ms; fail with the call log if it never becomes true."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"condition not met within {timeout:.1f}s: {_describe(predicate)}\n"
                    f"last calls:\n{self.describe_calls()}"
                )
            await asyncio.sleep(0.02)

    async def wait_idle(
        self,
        quiet: float = 0.5,
        timeout: float = 20.0,  # noqa: ASYNC109 - the tests' API takes a plain timeout
    ) -> None:
        """Wait until nothing visible (send, edit, draft, delete) happened for `quiet` seconds.

        An open retry_after window counts as activity: a well-behaved bot sends again when it
        closes, so returning during the wait would look at an unfinished chat.
        """
        started = time.monotonic()
        deadline = started + timeout
        while True:
            now = time.monotonic()
            busy_until = max(
                [self._last_activity, started]
                + [w.until for w in self._windows.values() if w.until > now]
            )
            if now - busy_until >= quiet:
                return
            if now >= deadline:
                raise AssertionError(
                    f"the bot was still active after {timeout:.1f}s\n"
                    f"last calls:\n{self.describe_calls()}"
                )
            await asyncio.sleep(0.02)

    # ---------------------------------------------------------------- internals: state

    def _bot_user(self) -> Json:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "Test G4F Bot",
            "username": self.bot_username,
        }

    def _remember_user(self, user_id: int, first_name: str, language_code: str | None) -> Json:
        user: Json = {"id": user_id, "is_bot": False, "first_name": first_name}
        if language_code is not None:
            user["language_code"] = language_code
        self._users[user_id] = user
        return dict(user)

    def _user_json(self, user_id: int) -> Json:
        if user_id == self.bot_id:
            return self._bot_user()
        known = self._users.get(user_id)
        if known is not None:
            return dict(known)
        return {"id": user_id, "is_bot": False, "first_name": f"User {user_id}"}

    def _detect_entities(self, text: str) -> list[Json]:
        found: list[Json] = []
        command = re.match(r"/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?", text)
        if command is not None:
            found.append({"type": "bot_command", "offset": 0, "length": utf16_len(command.group())})
        for match in re.finditer(r"(?<![\w@/])@[A-Za-z0-9_]{4,32}(?![A-Za-z0-9_])", text):
            found.append(
                {
                    "type": "mention",
                    "offset": utf16_len(text[: match.start()]),
                    "length": utf16_len(match.group()),
                }
            )
        return found

    def _next_message_id(self, chat_id: int) -> int:
        return next(self._message_ids.setdefault(chat_id, itertools.count(1)))

    def _store(self, message: StoredMessage) -> None:
        self._messages.setdefault(message.chat_id, {})[message.message_id] = message

    def _push_update(self, payload: Json) -> Json:
        update: Json = {"update_id": next(self._update_ids), **payload}
        self._updates.append(update)
        self._notify()
        return update

    def _notify(self) -> None:
        """Wake every open long poll (each waits on the event that was current when it slept)."""
        self._update_event.set()
        self._update_event = asyncio.Event()

    def _message_json(self, message: StoredMessage, *, with_reply: bool = True) -> Json:
        data: Json = {
            "message_id": message.message_id,
            "date": message.date,
            "chat": dict(self._chats.get(message.chat_id, {"id": message.chat_id})),
            "from": (
                self._bot_user()
                if message.from_bot
                else self._user_json(message.user_id or message.chat_id)
            ),
        }
        if message.sender_chat is not None:
            data["sender_chat"] = dict(message.sender_chat)
            data["from"] = _placeholder_sender(message)
            if message.automatic_forward:
                data["is_automatic_forward"] = True
        if message.message_thread_id is not None:
            data["message_thread_id"] = message.message_thread_id
            data["is_topic_message"] = True
        if message.forward_origin is not None:
            data["forward_origin"] = dict(message.forward_origin)
        if with_reply and message.reply_to_message_id is not None:
            target = self._messages.get(message.chat_id, {}).get(message.reply_to_message_id)
            if target is not None and not target.deleted:
                data["reply_to_message"] = self._message_json(target, with_reply=False)
        if message.edit_date is not None:
            data["edit_date"] = message.edit_date
        if message.sticker:
            data["sticker"] = {
                "file_id": f"CAACAgIAAxkBAAI{message.chat_id}_{message.message_id}",
                "file_unique_id": f"AgAD{message.message_id}",
                "type": "regular",
                "width": 512,
                "height": 512,
                "is_animated": False,
                "is_video": False,
                "emoji": "👍",
            }
        if message.photo:
            data["photo"] = [
                {
                    "file_id": f"AgACAgIAAxkBAAI{message.chat_id}_{message.message_id}",
                    "file_unique_id": f"AQAD{message.message_id}",
                    "width": 1280,
                    "height": 960,
                }
            ]
            if message.text:
                data["caption"] = message.text
            if message.entities:
                data["caption_entities"] = [dict(e) for e in message.entities]
            return data | ({"reply_markup": message.reply_markup} if message.reply_markup else {})
        if message.text:
            data["text"] = message.text
        if message.entities:
            data["entities"] = [dict(e) for e in message.entities]
        if message.reply_markup is not None:
            data["reply_markup"] = message.reply_markup
        return data

    # ---------------------------------------------------------------- internals: HTTP

    async def _not_found(self, request: web.Request) -> web.Response:
        return web.json_response(ApiError(404, "Not Found").payload(), status=404)

    async def _handle(self, request: web.Request) -> web.Response:
        arrived = time.monotonic()
        name = request.match_info["method"]
        params: Json = {}
        parse_error: ApiError | None = None
        try:
            params = await self._read_params(request)
        except ApiError as error:
            parse_error = error
        method = self._method_names.get(name.lower(), name)
        chat_id = params.get("chat_id")
        call = Call(method, params, 0, arrived, chat_id if _is_int(chat_id) else None)
        call.content_type = request.content_type if request.body_exists else ""
        self.calls.append(call)
        if method == "sendMessageDraft":
            self.drafts.append(call)
        if method in ACTIVITY_METHODS:
            self._last_activity = arrived
        for injection in self._gateway_errors:
            if method in injection.methods and injection.chat_id in (None, call.chat_id):
                injection.remaining -= 1
                if injection.remaining <= 0:
                    self._gateway_errors.remove(injection)
                call.status = 502
                return web.Response(status=502, text=_BAD_GATEWAY, content_type="text/html")
        try:
            if request.match_info["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            handler = self._handlers.get(method)
            if handler is None:
                raise ApiError(404, "Not Found: method not found")
            if parse_error is not None:
                raise parse_error
            result = await handler(params)
        except ApiError as error:
            call.status = error.code
            return web.json_response(error.payload(), status=error.code, dumps=_dumps)
        except asyncio.CancelledError:
            call.status = 499
            raise
        call.status = 200
        call.result = result
        return web.json_response({"ok": True, "result": result}, dumps=_dumps)

    async def _read_params(self, request: web.Request) -> Json:
        raw: Json = dict(request.query)
        if request.body_exists:
            if request.content_type == "application/json":
                try:
                    body = await request.json()
                except ValueError:
                    raise bad_request("can't parse JSON body") from None
                if not isinstance(body, dict):
                    raise bad_request("JSON body must be an object")
                raw.update(body)
            elif request.content_type in (
                "application/x-www-form-urlencoded",
                "multipart/form-data",
            ):
                form = await request.post()
                for key, value in form.items():
                    if isinstance(value, str):
                        raw[key] = value
        return {key: _decode_param(key, value) for key, value in raw.items()}

    # ---------------------------------------------------------------- internals: checks

    def _chat(self, params: Json) -> int:
        """The target chat: present, known to the bot and not blocking it."""
        value = params.get("chat_id")
        if value is None or value == "":
            raise bad_request("chat_id is empty")
        if not _is_int(value) or value not in self._chats:
            raise bad_request("chat not found")
        chat_id: int = value
        if chat_id in self._migrated:
            raise ApiError(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                {"migrate_to_chat_id": self._migrated[chat_id]},
            )
        if chat_id in self._blocked:
            if chat_id > 0:
                raise ApiError(403, "Forbidden: bot was blocked by the user")
            raise ApiError(403, "Forbidden: bot was kicked from the group chat")
        return chat_id

    def _gate(self, method: str, chat_id: int) -> None:
        """Flood control: retry_after windows, injected 429s, then the three limits."""
        now = time.monotonic()
        counted = method in FLOOD_METHODS
        if counted:
            for key in (chat_id, None):
                window = self._windows.get(key)
                if window is not None and now < window.until:
                    self.violations += 1
                    window.until = now + window.seconds
                    raise self._too_many(window.seconds)
        for injection in self._injections:
            if method in injection.methods and injection.chat_id in (None, chat_id):
                injection.remaining -= 1
                if injection.remaining <= 0:
                    self._injections.remove(injection)
                self._windows[chat_id] = _Window(now + injection.retry_after, injection.retry_after)
                raise self._too_many(injection.retry_after)
        if not counted:
            return
        chat_wait = self._chat_wait(chat_id, now)
        if chat_wait > 0:
            seconds = _retry_seconds(chat_wait)
            self._windows[chat_id] = _Window(now + seconds, seconds)
            raise self._too_many(seconds)
        hits = self._global_hits
        while hits and hits[0] <= now - 1.0:
            hits.popleft()
        if len(hits) >= self.global_per_second:
            seconds = _retry_seconds(hits[0] + 1.0 - now)
            self._windows[None] = _Window(now + seconds, seconds)
            raise self._too_many(seconds)
        hits.append(now)
        if chat_id > 0:
            tokens, _ = self._buckets[chat_id]
            self._buckets[chat_id] = (tokens - 1.0, now)
        else:
            self._group_hits[chat_id].append(now)

    def _chat_wait(self, chat_id: int, now: float) -> float:
        """Seconds until this chat may send again (0 if it may send now)."""
        if chat_id > 0:
            tokens, last = self._buckets.get(chat_id, (float(self.private_burst), now))
            tokens = min(float(self.private_burst), tokens + (now - last) * self.private_per_second)
            self._buckets[chat_id] = (tokens, now)
            if tokens >= 1.0 - 1e-9:
                return 0.0
            return (1.0 - tokens) / self.private_per_second
        hits = self._group_hits.setdefault(chat_id, deque())
        while hits and hits[0] <= now - 60.0:
            hits.popleft()
        if len(hits) < self.group_per_minute:
            return 0.0
        return hits[0] + 60.0 - now

    def _too_many(self, seconds: int) -> ApiError:
        self.count_429 += 1
        return ApiError(429, f"Too Many Requests: retry after {seconds}", {"retry_after": seconds})

    def _editable(self, chat_id: int, params: Json) -> StoredMessage:
        message_id = _opt_int(params, "message_id")
        if message_id is None:
            if params.get("inline_message_id"):
                raise bad_request("message to edit not found")
            raise bad_request("message identifier is not specified")
        message = self._messages.get(chat_id, {}).get(message_id)
        if message is None or message.deleted or not message.from_bot:
            raise bad_request("message to edit not found")
        return message

    def _reply_target(self, params: Json, chat_id: int) -> StoredMessage | None:
        reply = params.get("reply_parameters")
        if reply is not None:
            if not isinstance(reply, dict):
                raise bad_request("can't parse reply parameters JSON object")
            message_id = _opt_int(reply, "message_id")
            target_chat = _opt_int(reply, "chat_id")
            target_chat = chat_id if target_chat is None else target_chat
            allow = _opt_bool(reply, "allow_sending_without_reply")
        elif params.get("reply_to_message_id") is not None:
            message_id = _opt_int(params, "reply_to_message_id")
            target_chat = chat_id
            allow = _opt_bool(params, "allow_sending_without_reply")
        else:
            return None
        target = None
        if message_id is not None:
            target = self._messages.get(target_chat, {}).get(message_id)
        if target is None or target.deleted:
            if allow:
                return None
            raise bad_request("message to be replied not found")
        return target if target_chat == chat_id else None

    # ---------------------------------------------------------------- method handlers

    async def _ok(self, params: Json) -> bool:
        return True

    async def _get_me(self, params: Json) -> Json:
        return {
            **self._bot_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    async def _get_updates(self, params: Json) -> list[Json]:
        if self.webhook_url:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = _opt_int(params, "offset") or 0
        limit = min(max(_opt_int(params, "limit") or 100, 1), 100)
        timeout = max(_opt_int(params, "timeout") or 0, 0)
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = [str(kind) for kind in allowed] or None
        # A newer getUpdates ends an older one with 409, like two bot instances polling.
        self._poll_generation += 1
        generation = self._poll_generation
        self._notify()
        deadline = time.monotonic() + timeout
        while True:
            self._confirm(offset)
            batch = self._updates[:limit]
            remaining = deadline - time.monotonic()
            if batch or remaining <= 0 or self._closing:
                return batch
            event = self._update_event
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)
            if self._poll_generation != generation:
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; "
                    "make sure that only one bot instance is running",
                )

    def _confirm(self, offset: int) -> None:
        """Drop confirmed updates and those the bot did not ask for."""
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]
        if self._allowed_updates is not None:
            wanted = set(self._allowed_updates)
            self._updates = [u for u in self._updates if _update_type(u) in wanted]

    async def _set_webhook(self, params: Json) -> bool:
        url = params.get("url")
        self.webhook_url = url if isinstance(url, str) and url else None
        if _opt_bool(params, "drop_pending_updates"):
            self._updates.clear()
        return True

    async def _delete_webhook(self, params: Json) -> bool:
        self.webhook_url = None
        if _opt_bool(params, "drop_pending_updates"):
            self._updates.clear()
        return True

    async def _get_webhook_info(self, params: Json) -> Json:
        return {
            "url": self.webhook_url or "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }

    def _commands_key(self, params: Json) -> tuple[str, str]:
        scope = params.get("scope")
        scope_type = "default"
        if scope is not None:
            if not isinstance(scope, dict) or not isinstance(scope.get("type"), str):
                raise bad_request("can't parse BotCommandScope JSON object")
            scope_type = scope["type"]
        language = params.get("language_code") or ""
        if language and not re.fullmatch(r"[a-z]{2}", language):
            raise bad_request("invalid language code specified")
        return scope_type, language

    async def _set_my_commands(self, params: Json) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise bad_request("can't parse commands JSON object")
        for command in commands:
            if not isinstance(command, dict):
                raise bad_request("can't parse BotCommand JSON object")
            name, description = command.get("command"), command.get("description")
            if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9_]{1,32}", name):
                raise bad_request("BOT_COMMAND_INVALID")
            if not isinstance(description, str) or not 1 <= len(description.strip()) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        self.commands[self._commands_key(params)] = [dict(c) for c in commands]
        return True

    async def _get_my_commands(self, params: Json) -> list[Json]:
        return list(self.commands.get(self._commands_key(params), []))

    async def _delete_my_commands(self, params: Json) -> bool:
        self.commands.pop(self._commands_key(params), None)
        return True

    async def _get_chat_member(self, params: Json) -> Json:
        chat_id = self._chat(params)
        user_id = _opt_int(params, "user_id")
        if user_id is None:
            raise bad_request("user_id is empty")
        user = self._user_json(user_id)
        if user_id not in self._admins.get(chat_id, set()):
            return {"status": "member", "user": user}
        return {
            "status": "administrator",
            "user": user,
            "can_be_edited": False,
            "is_anonymous": False,
            "can_manage_chat": True,
            "can_delete_messages": True,
            "can_manage_video_chats": True,
            "can_restrict_members": True,
            "can_promote_members": True,
            "can_change_info": True,
            "can_invite_users": True,
            "can_post_stories": False,
            "can_edit_stories": False,
            "can_delete_stories": False,
            "can_send_welcome_messages": False,
            "can_pin_messages": True,
            "can_manage_topics": True,
        }

    async def _answer_callback_query(self, params: Json) -> bool:
        query_id = params.get("callback_query_id")
        if not isinstance(query_id, str) or query_id not in self._open_callbacks:
            raise bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        text = params.get("text")
        if isinstance(text, str) and len(text) > 200:
            raise bad_request("MESSAGE_TOO_LONG")
        self._open_callbacks.discard(query_id)
        return True

    def _may_send(self, chat_id: int) -> None:
        if chat_id in self._muted:
            raise bad_request("not enough rights to send text messages to the chat")

    async def _send_chat_action(self, params: Json) -> bool:
        chat_id = self._chat(params)
        self._may_send(chat_id)
        if params.get("action") not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        self._gate("sendChatAction", chat_id)
        return True

    def _deletable(self, chat_id: int, message_id: int | None) -> StoredMessage:
        message = None if message_id is None else self._messages.get(chat_id, {}).get(message_id)
        if message is None or message.deleted:
            raise bad_request("message to delete not found")
        bot_is_admin = self.bot_id in self._admins.get(chat_id, set())
        if not message.from_bot and chat_id < 0 and not bot_is_admin:
            raise bad_request("message can't be deleted")
        return message

    async def _delete_message(self, params: Json) -> bool:
        chat_id = self._chat(params)
        self._gate("deleteMessage", chat_id)
        self._deletable(chat_id, _opt_int(params, "message_id")).deleted = True
        return True

    async def _delete_messages(self, params: Json) -> bool:
        chat_id = self._chat(params)
        ids = params.get("message_ids")
        if not isinstance(ids, list) or not 1 <= len(ids) <= 100 or not all(map(_is_int, ids)):
            raise bad_request("message_ids must be a list of 1-100 message identifiers")
        self._gate("deleteMessages", chat_id)
        for message_id in ids:
            try:
                self._deletable(chat_id, message_id).deleted = True
            except ApiError:
                continue
        return True

    async def _send_message(self, params: Json) -> Json:
        chat_id = self._chat(params)
        self._may_send(chat_id)
        self._gate("sendMessage", chat_id)
        text, entities = prepare_text(params, allow_empty=False)
        markup = parse_reply_markup(params.get("reply_markup"), inline_only=False)
        thread_id = _opt_int(params, "message_thread_id")
        target = self._reply_target(params, chat_id)
        if target is not None and thread_id is None:
            # Telegram keeps a reply in the topic of the message it answers.
            thread_id = target.message_thread_id
        message = StoredMessage(
            chat_id=chat_id,
            message_id=self._next_message_id(chat_id),
            text=text,
            entities=entities,
            reply_markup=markup,
            reply_to_message_id=None if target is None else target.message_id,
            message_thread_id=thread_id,
            from_bot=True,
            user_id=self.bot_id,
            history=[text],
            date=int(time.time()),
        )
        self._store(message)
        return self._message_json(message)

    async def _edit_message_text(self, params: Json) -> Json:
        chat_id = self._chat(params)
        self._gate("editMessageText", chat_id)
        message = self._editable(chat_id, params)
        text, entities = prepare_text(params, allow_empty=False)
        # Omitting reply_markup removes the keyboard, exactly as Telegram does.
        markup = parse_reply_markup(params.get("reply_markup"), inline_only=True)
        if (text, entities, markup) == (message.text, message.entities, message.reply_markup):
            raise ApiError(400, NOT_MODIFIED)
        message.text, message.entities, message.reply_markup = text, entities, markup
        message.history.append(text)
        message.edits += 1
        message.edit_date = int(time.time())
        return self._message_json(message)

    async def _edit_message_reply_markup(self, params: Json) -> Json:
        chat_id = self._chat(params)
        self._gate("editMessageReplyMarkup", chat_id)
        message = self._editable(chat_id, params)
        markup = parse_reply_markup(params.get("reply_markup"), inline_only=True)
        if markup == message.reply_markup:
            raise ApiError(400, NOT_MODIFIED)
        message.reply_markup = markup
        message.edits += 1
        message.edit_date = int(time.time())
        return self._message_json(message)

    async def _send_message_draft(self, params: Json) -> bool:
        if not self.drafts_enabled:
            raise ApiError(404, "Not Found: method not found")
        chat_id = self._chat(params)
        if chat_id <= 0 or self._chats[chat_id].get("type") != "private":
            raise bad_request("TEXTDRAFT_PEER_INVALID")
        if not _opt_int(params, "draft_id"):
            raise bad_request("draft_id must be non-zero")
        self._gate("sendMessageDraft", chat_id)
        text, _ = prepare_text(params, allow_empty=True)
        _opt_int(params, "message_thread_id")
        self.draft_texts[chat_id] = text
        return True


def _retry_seconds(wait: float) -> int:
    """Telegram's retry_after: whole seconds, rounded up, at least one."""
    return max(1, math.ceil(wait - 1e-9))


def _update_type(update: Json) -> str:
    return next((key for key in update if key != "update_id"), "")


def _opt_int(params: Json, name: str) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if _is_int(value):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise bad_request(f'field "{name}" must be of type Integer')


def _opt_bool(params: Json, name: str) -> bool:
    value = params.get(name)
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1")
    return bool(value)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _describe(predicate: Callable[[], bool]) -> str:
    """The predicate's source line when available, so a timeout says what was awaited."""
    try:
        source = inspect.getsource(predicate).strip()
    except (OSError, TypeError):
        return repr(predicate)
    return source if len(source) <= 300 else source[:300] + "..."
