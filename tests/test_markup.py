"""A question's formatting reaches the model as Markdown (bot/markup.py)."""

from __future__ import annotations

from typing import Any

import pytest
from aiogram.types import Chat, Message, MessageEntity

from bot.markup import command_args, markdown_of, without_mentions


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
    assert markdown_of(text, entities) == (
        "Look:\n> as the docs say\n> ```\n> run()\n> ```\n\nok"  # a blank line ends the quote
    )


def test_a_quote_ends_before_the_text_after_it() -> None:
    """A line right after a `>` line would continue the quote (CommonMark's lazy lines)."""
    text = "to be or not to be\nwhat does this mean?"
    quote = entity(text, "to be or not to be", "blockquote")
    assert markdown_of(text, [quote]) == "> to be or not to be\n\nwhat does this mean?"


def test_emphasis_is_written_per_paragraph() -> None:
    text = "first part\n\nsecond part"
    assert markdown_of(text, [entity(text, text, "bold")]) == "**first part**\n\n**second part**"
    text = "said\nquoted\nafter"
    entities = [entity(text, text, "italic"), entity(text, "quoted", "blockquote")]
    assert markdown_of(text, entities) == "*said*\n> quoted\n\n*after*"


def test_links_and_odd_entities() -> None:
    text = "see the wiki [1] page"
    url = "https://en.wikipedia.org/wiki/Python_(language)"
    link = entity(text, "wiki [1]", "text_link", url=url)
    assert markdown_of(text, [link]) == f"see the [wiki \\[1\\]](<{url}>) page"
    # An empty entity, and two starting together in the order the shorter first.
    text = "abc def"
    entities = [
        entity(text, "abc", "italic"),
        entity(text, "abc def", "bold"),
        MessageEntity(type="code", offset=4, length=0),
    ]
    assert markdown_of(text, entities) == "***abc* def**"
    # The placeholders the renderer uses cannot come from the text itself.
    text = "a\x00b\x01c"
    assert markdown_of(text, [entity(text, "a", "bold")]) == "**a**\ufffdb\ufffdc"


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


def test_the_comma_or_colon_after_an_opening_mention_goes() -> None:
    """ "@bot: what is X" asks "what is X"; punctuation after a mention inside a sentence, or
    that starts something else (":)"), stays."""
    for text, prompt in [
        ("@MyBot: what is X?", "what is X?"),
        ("@MyBot, what is X?", "what is X?"),
        ("@MyBot :) hi", ":) hi"),
        ("hey @MyBot, what?", "hey, what?"),
        ("is that true @MyBot?", "is that true?"),
        ("ask @MyBot (politely)", "ask (politely)"),
        ("what is X, @MyBot?", "what is X?"),  # was "what is X,?"
        ("Thanks, @MyBot", "Thanks"),
    ]:
        entities = [entity(text, "@MyBot", "mention")]
        assert without_mentions(_group_message(text, entities), "MyBot") == (prompt, True)


def test_a_mention_inside_emphasis_leaves_no_empty_markers() -> None:
    text = "@MyBot explain this"
    entities = [entity(text, text, "bold"), entity(text, "@MyBot", "mention")]
    assert without_mentions(_group_message(text, entities), "MyBot") == ("**explain this**", True)
    text = "@MyBot"
    entities = [entity(text, text, "italic"), entity(text, text, "mention")]
    assert without_mentions(_group_message(text, entities), "MyBot") == ("", True)


def test_command_arguments_are_what_follows_the_command() -> None:
    text = "/ask what is x"
    entities = [entity(text, "/ask", "bot_command"), entity(text, text, "bold")]
    assert command_args(_group_message(text, entities)) == "**what is x**"
    text = "/ask@MyBot\nx = 1"
    entities = [entity(text, "/ask@MyBot", "bot_command"), entity(text, "x = 1", "pre")]
    assert command_args(_group_message(text, entities)) == "```\nx = 1\n```"
    assert command_args(_group_message("/ask", [])) == ""
