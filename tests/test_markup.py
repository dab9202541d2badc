"""A question's formatting reaches the model as Markdown (bot/markup.py)."""

from __future__ import annotations

from typing import Any

import pytest
from aiogram.types import Chat, Message, MessageEntity

from bot.markup import markdown_of, without_mentions


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def entity(text: str, part: str, kind: str, nth: int = 0, **extra: Any) -> MessageEntity:
    """The entity of type `kind` over the `nth` occurrence of `part` in `text`."""
    start = -1
    for _ in range(nth + 1):
        start = text.index(part, start + 1)
    return MessageEntity(type=kind, offset=_utf16(text[:start]), length=_utf16(part), **extra)


@pytest.mark.parametrize(
    ("text", "spans", "expected"),
    [
        ("no formatting at all", [], "no formatting at all"),
        ("a *star* stays as typed", [], "a *star* stays as typed"),
        ("make this bold", [("bold", "bold", {})], "make this **bold**"),
        ("ends with space ", [("italic", "space ", {})], "ends with *space*"),
        ("run ls -la now", [("code", "ls -la", {})], "run `ls -la` now"),
        ("tick ` in code", [("code", "` in", {})], "tick `` ` in `` code"),
        (
            "see the docs",
            [("text_link", "docs", {"url": "https://ex.org"})],
            "see the [docs](https://ex.org)",
        ),
        ("gone", [("strikethrough", "gone", {})], "~~gone~~"),
        (
            "under and hidden",
            [("underline", "under", {}), ("spoiler", "hidden", {})],
            "under and hidden",
        ),
    ],
)
def test_inline_entities(text: str, spans: list[Any], expected: str) -> None:
    entities = [entity(text, part, kind, **extra) for kind, part, extra in spans]
    assert markdown_of(text, entities) == expected


def test_a_code_block_is_fenced_on_lines_of_its_own() -> None:
    code = "def f(x):\n    return x * 2\n"
    text = f"Why does this fail?\n{code}Thanks"
    got = markdown_of(text, [entity(text, code, "pre", language="python")])
    assert got == ("Why does this fail?\n```python\ndef f(x):\n    return x * 2\n```\nThanks")
    inline = "fix x = 1 please"
    assert markdown_of(inline, [entity(inline, "x = 1", "pre")]) == "fix \n```\nx = 1\n```\n please"


def test_a_fence_is_longer_than_the_backticks_inside() -> None:
    code = "print('```')"
    assert markdown_of(code, [entity(code, code, "pre")]) == "````\nprint('```')\n````"


def test_quotes_nesting_and_utf16_offsets() -> None:
    text = "🙂 He said:\nfirst line\nsecond **not bold**"
    quoted = "first line\nsecond **not bold**"
    entities = [
        entity(text, quoted, "blockquote"),
        entity(text, "first", "bold"),
        entity(text, "He", "italic"),
    ]
    assert markdown_of(text, entities) == ("🙂 *He* said:\n> **first** line\n> second **not bold**")


def test_a_code_block_inside_a_quote_is_quoted_too() -> None:
    text = "Look:\nas the docs say\nrun()\nok"
    quoted = "as the docs say\nrun()"
    entities = [entity(text, quoted, "blockquote"), entity(text, "run()", "pre")]
    assert markdown_of(text, entities) == "Look:\n> as the docs say\n> ```\n> run()\n> ```\nok"


def _group_message(text: str, entities: list[MessageEntity]) -> Message:
    return Message(
        message_id=1,
        date=0,
        chat=Chat(id=-1, type="group", title="g"),
        text=text,
        entities=entities,
    )


def test_mentions_of_the_bot_go_and_the_code_stays() -> None:
    text = "@MyBot what does\nthis print?\n    print(1)\n@someone_else"
    entities = [
        entity(text, "@MyBot", "mention"),
        entity(text, "    print(1)", "pre"),
        entity(text, "@someone_else", "mention"),
    ]
    prompt, mentioned = without_mentions(_group_message(text, entities), "mybot")
    assert mentioned
    assert prompt == "what does\nthis print?\n```\n    print(1)\n```\n@someone_else"
    prompt, mentioned = without_mentions(_group_message(text, entities), "OtherBot")
    assert not mentioned
    assert prompt.startswith("@MyBot what does")
