"""Markdown → Telegram text + entities that Telegram accepts in every state of a growing answer.

telegramify-markdown does the conversion, partial Markdown included (an unclosed fence is code to
the end, an unclosed `**` stays literal). This module makes its output safe to send: only entity
shapes Telegram accepts, no leading/trailing whitespace (Telegram strips it and would then report
"not modified" for edits that only differ there).
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pyromark
from telegramify_markdown.config import RenderConfig
from telegramify_markdown.converter import STANDARD_OPTIONS, EventWalker, _parse
from telegramify_markdown.entity import MessageEntity
from telegramify_markdown.latex_escape.helper import LatexToUnicodeHelper

from bot.streaming.code import code_blocks, code_spans
from bot.texts.answers import ALERTS, language_of_text

Entity = dict[str, Any]

_ALLOWED_TYPES = frozenset(
    {
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
        "url",
        "email",
        "mention",
        "hashtag",
        "cashtag",
        "bot_command",
        "phone_number",
    }
)
_LEAF_TYPES = frozenset({"code", "pre"})
_QUOTE_TYPES = frozenset({"blockquote", "expandable_blockquote"})
_FORMATTING_TYPES = frozenset({"bold", "italic", "underline", "strikethrough", "spoiler"})
# What may hold code (0), a link (1) and code (2): before other entities over the same span (see
# `sanitize`).
_NESTING = {
    **dict.fromkeys(_QUOTE_TYPES, 0),
    **dict.fromkeys(_FORMATTING_TYPES, 0),
    "text_link": 1,
    **dict.fromkeys(_LEAF_TYPES, 2),
}
_LANGUAGE = re.compile(r"\s*\{?\s*\.?([\w+#.-]*\w[+#]*)")
# Pandoc's attributes, `{#id .haskell .numberLines}`: the language is the first class.
_PANDOC_CLASS = re.compile(r"\{[^}]*?(?<![\w.])\.([\w+#-]*\w[+#]*)")
_URL_RE = re.compile(r"^(https?|tg|mailto)://[^\s]+$|^mailto:[^\s]+$", re.IGNORECASE)
_LITERAL = re.compile(r"(?<!\\)(?:<|\|(?=\|))|(?<=[A-Za-z0-9])\*{1,2}(?=[A-Za-z0-9])")
# A quick look for stars between letters or digits, before parsing (starting with the `*` is
# what makes it quick: 2 µs through a 1,000-character answer, not 13).
_ARITHMETIC = re.compile(r"\*(?<=[A-Za-z0-9]\*)\*?(?=[A-Za-z0-9])")
_STARS = re.compile(r"(?<!\\)\*+")
# Punctuation as CommonMark's flanking rules see it: ASCII's, and the CJK marks models write.
_PUNCTUATION = (  # (escaped for a character class; a backslash is punctuation too)
    "!\"#$%&'()+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~，。：；！？、「」『』（）【】《》〈〉“”‘’…—·"
)
# `**` with punctuation on one side and a letter on the other: a bold pair that CommonMark may
# refuse (`**注意：**这是`, `**Note:**This`), to be looked at more closely.
_PUNCT_STARS = re.compile(
    rf"\*\*(?:(?<=[{_PUNCTUATION}]\*\*)(?=[^\s*{_PUNCTUATION}])"
    rf"|(?<=[^\s*{_PUNCTUATION}]\*\*)(?=[{_PUNCTUATION}]))"
)
# Put beside such a pair's stars, on the side CommonMark refuses: whitespace to it (a star run
# after punctuation closes before whitespace), dropped from the rendered text (`_tidy`).
_SPACER = "\u2008"  # PUNCTUATION SPACE, which no model writes
# Underline has no Markdown: `<u>`'s text goes between these marks, which `_tidy` makes an
# underline entity of. (Noncharacters, kept for a program's own use: no model writes them.
# Markdown reads them as letters, as it reads the text they stand beside.)
_UNDERLINE = ("\ufdd0", "\ufdd1")
_UNDERLINES = re.compile("[\ufdd0\ufdd1]")
_HIDDEN = re.compile("[\u2008\ufdd0\ufdd1]")  # the spacers and the underline's marks
_STRONG = re.compile(r"(?<![*\\])\*\*(?!\*)([^\n]+?)(?<![*\\])\*\*(?!\*)")
_NOTE = re.compile(r"^( {0,3})\[\^([^\]\s]+)\]:[ \t]*", re.MULTILINE)  # a footnote's text
_NOTE_REFERENCE = re.compile(r"\[\^([^\]\s]+)\](?!:)")
# A footnote's name as models write them (`[^note]`, `[^source-2]`), not a negated character
# class written outside code (`[^a-z]`, `[^\s]`): letters, digits, `-` and `_`, and no range.
_NOTE_NAME = re.compile(r"[^\W_][\w-]*")
_RANGE = re.compile(r"(?<![^\W_])(?:[a-z]-[a-z]|[A-Z]-[A-Z]|[0-9]-[0-9])")
_SUPERSCRIPT = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")
# HTML that models write for what Markdown has no syntax for (a key, a sub- or superscript,
# underline), or out of habit: closed on the same line.
# (A collapsible section's title, `<summary>`: bold, over its text; highlighted text, `<mark>`,
# bold too: Telegram has no highlight.)
_TAG_MARKERS = {
    **dict.fromkeys(("b", "strong", "summary", "mark"), "**"),
    **dict.fromkeys(("i", "em"), "*"),
    **dict.fromkeys(("s", "del"), "~~"),
}
_UNDERLINE_TAGS = ("u", "ins")
TAG_NAMES = ("kbd", "code", "sub", "sup", *_UNDERLINE_TAGS, *_TAG_MARKERS)
_TAG = re.compile(
    rf"<({'|'.join(TAG_NAMES)})>(?=\S)([^<>\n]+)(?<=\S)</\1>", re.IGNORECASE
)  # (not `<s> at the start and </s>`, a text about tokens: formatting hugs its text)
# An HTML tag's attributes, each followed by a space (`target="_blank" `, `download `).
ATTRIBUTES = r"""(?:[\w:.-]+(?:=(?:"[^"<>\n]*"|'[^'<>\n]*'|[^\s"'<>=`]+))?\s+)*"""
# `<a href="https://…">text</a>`, as some models write a link (also with other attributes before
# its address, `<a target="_blank" href="…">`, or the address unquoted).
ANCHOR = re.compile(
    rf"<a\s+{ATTRIBUTES}href=([\"']?)((?:https?|mailto|tg):[^\"'<>\s]+)\1[^<>\n]*>([^<>\n]+)</a>",
    re.I,
)
# A collapsible section's own tags, alone on their line or before its title: they go (Telegram
# has no such section; its title and text show).
_DETAILS = re.compile(r"[ \t]*(?:</?details(?:\s[^<>\n]*)?>[ \t]*)+(?=<summary>|\r?\n|$)", re.I)
# HTML's blocks, which models write as they would a web page: `<pre>` (or `<pre><code>`) opening
# a line, in a quote or a list item too, to `</pre>` (after `</code>`): a code block; `<p>`
# opening a line's text to `</p>` ending a line's, or a line of nothing but them: a paragraph.
_HTML_BLOCK = re.compile(r"</?p(?:re)?[\s>]", re.IGNORECASE)  # a quick look first
_PRE = re.compile(r"<pre[\s>]", re.IGNORECASE)
_PRE_OPEN = re.compile(r"((?:[ \t]*>)*[ \t]*)<pre(?:\s[^<>\n]*)?>(?:<code(?:\s[^<>\n]*)?>)?", re.I)
_PRE_CLOSE = re.compile(r"(?:</code>)?</pre>", re.IGNORECASE)
_PRE_CLOSERS = ("</code></pre>", "</pre>")  # (being written at the end: left out)
_CODE_TAG_BEING_WRITTEN = re.compile(r"<(?:c(?:o(?:d(?:e(?:\s[^<>\n]*)?)?)?)?)?", re.I)
_PRE_LANGUAGE = re.compile(r"\b(?:language|lang)-([\w+#.-]+)", re.IGNORECASE)
_HTML_ESCAPE = re.compile(r"&(lt|gt|amp|quot|apos|#39|#x27);")
_UNESCAPED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'", "#39": "'", "#x27": "'"}
_ESCAPE_BEING_WRITTEN = re.compile(r"&[a-z#0-9]{0,4}$")
_ITEM_MARKER = r"(?:(?:[-*+]|\d{1,9}[.)])[ \t]+)?"
P_OPEN = re.compile(rf"((?:[ \t]*>)*[ \t]*{_ITEM_MARKER})<p(?:\s[^<>\n]*)?>", re.IGNORECASE)
_P_CLOSE = re.compile(r"(?<=\S)</p>[ \t]*(?=\r?\n?$)", re.IGNORECASE)
_P_BETWEEN = re.compile(r"(?<=\S)</p>[ \t]*<p(?:\s[^<>\n]*)?>(?![ \t])", re.IGNORECASE)
_P_ONLY = re.compile(r"((?:[ \t]*>)*)[ \t]*(?:</?p(?:\s[^<>\n]*)?>[ \t]*)+(?=\r?\n?$)", re.I)
# `<br>` glued to the text before it, outside a table: a line break (`line<br>break`); after a
# space it may be the tag written about.
_GLUED_BREAK = re.compile(r"(?<=\S)<br\s*/?>[ \t]*(?=(\r?\n|$)?)", re.IGNORECASE)
# Python's `*args` and `**kwargs`, which open no emphasis (`**args**` in bold does).
PYTHON_NAMES = ("args", "kwargs")
PYTHON_STARS = re.compile(rf"(?:{'|'.join(PYTHON_NAMES)})\b(?!\*)")
# Python's dunders, `__init__`, in prose: not bold (`__Note__`, capitalized, may be).
_DUNDER = re.compile(r"(?<![\w\\])__([a-z][a-z0-9_]*?)__(?!\w)")
# Math in a table's row with a pipe in it (`$y = |x|$`): GFM cuts cells at every pipe first.
_ROW_MATH_PIPE = re.compile(r"\$(?=\S)[^$\n]*?\|[^$\n]*?(?<=\S)\$(?!\d)")
_BACKTICK_KEY = re.compile(r"<kbd>`</kbd>", re.IGNORECASE)  # VS Code's Ctrl+`
_NUMBERED_ITEM = re.compile(r"^ {0,3}\d{1,9}[.)] {1,4}(?=\S)", re.MULTILINE)
_BULLET = re.compile(r"[-*+][ \t]")
# An item under a numbered item, less deep than its text (see `_nested`): a quick test first.
_SHALLOW_BULLET = re.compile(r"^ {1,3}(?:[-*+]|\d{1,9}[.)])[ \t]", re.MULTILINE)
# A link to a definition (`[FAQ][faq]`, `[FAQ][]`): not an image's, not a footnote's, not an
# index (`dp[i][j]`, `data["a"]["b"]`: after a Latin letter, a digit, a quote or a bracket; a
# link after a Chinese character is one, as Chinese text has no spaces).
_REFERENCE = re.compile(r"(?<![\\!\]A-Za-z0-9_\"')])\[([^\[\]\n^][^\[\]\n]*)\]\[([^\[\]\n]*)\]")
_DEFINITION = re.compile(r"^ {0,3}\[([^\]\n]+)\]:[ \t]*\S", re.MULTILINE)  # with an address
_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_AUTOLINKS = frozenset({"Autolink", "Email"})
_LINE_OPENERS = " \t>-*+.)0123456789"  # what may come before an HTML block's `<` on its line
TABLE_ROW = re.compile(r" {0,3}\|")  # a line that is a table's row (or its header)
_LINE_END_SPACE = re.compile(r"[ \t]+(?=\n)")
# Telegram strips these from both ends of a text, as it does whitespace: a text of nothing else
# is empty to it ("message text is empty").
_INVISIBLE = frozenset("\u200b\u200c\u200d\u200e\u200f\u2060\u2800\u3164\ufeff")
# What shows as nothing but is not a blank line to Markdown: a line of it is a line of text.
_ODD_BLANK = re.compile(
    "[\u00a0\u1680\u2000-\u200f\u2028-\u202f\u205f\u2060\u2800\u3000\u3164\ufeff]"
)
_ALL_BLANK = "".join(sorted(_INVISIBLE)) + "".join(filter(str.isspace, map(chr, range(0x3001))))
_BLANK_OR_QUOTE = _ALL_BLANK + ">"
_QUOTES = re.compile(r"(?:[ \t]*>)*")
_ALERTS = {"NOTE": "ℹ️", "TIP": "💡", "IMPORTANT": "❗", "WARNING": "⚠️", "CAUTION": "🛑"}
_ALERT = re.compile(
    rf"((?:[ \t]*>)+[ \t]*)\[!({'|'.join(_ALERTS)})\][ \t]*(\r?\n?)$", re.IGNORECASE
)


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units: how Telegram measures texts and entity offsets."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


@dataclass(frozen=True, slots=True)
class Part:
    """One Telegram message's worth of formatted text."""

    text: str
    entities: tuple[Entity, ...] = field(default=())

    @property
    def size(self) -> int:
        return utf16_len(self.text)

    def plus(self, suffix: Part, separator: str = "\n\n") -> Part:
        """This part followed by another (shifting the other's entities)."""
        if not self.text:
            return suffix
        shift = utf16_len(self.text + separator)
        moved = tuple({**e, "offset": e["offset"] + shift} for e in suffix.entities)
        return Part(self.text + separator + suffix.text, self.entities + moved)


def render(markdown: str, *, keep_indent: bool = False) -> Part:
    """Render (possibly partial) Markdown into a `Part` that Telegram will accept.

    `keep_indent`: a block to be joined after others keeps its leading spaces (those of a code
    block's first line), which Telegram would strip only at the start of a message."""
    text, raw = _convert(keep_literal(tex_math(as_meant(markdown))))
    text, found = _tidy(text, [e.to_dict() for e in raw])
    entities = sanitize(text, found)
    if keep_indent:
        return strip(text, entities, start=len(text) - len(text.lstrip("\n")))
    return lead_line(text, entities)


def lead_line(text: str, entities: list[Entity]) -> Part:
    """`strip`, but code whose first line is indented gets a line "…" before it."""
    lead = len(text) - len(text.lstrip("\n"))
    first = text[lead:].split("\n", 1)[0]
    if first[:1] in (" ", "\t") and first.strip() and _in_pre(entities, utf16_len(text[:lead])):
        part = strip(text, entities, start=lead)
        shift = utf16_len(CONTINUED) + 1
        moved = tuple({**e, "offset": e["offset"] + shift} for e in part.entities)
        return Part(f"{CONTINUED}\n{part.text}", moved)
    return strip(text, entities)


CONTINUED = "…"  # the line before code that starts a message indented


def _in_pre(entities: list[Entity], offset: int) -> bool:
    return any(
        e["type"] == "pre" and e["offset"] <= offset < e["offset"] + e["length"] for e in entities
    )


class _Walker(EventWalker):
    """telegramify-markdown's converter (1.4.1) with line breaks it leaves out in lists: a block
    right under an item's first line (a code block, a quote, a heading), in a list that opens
    the text, was glued to that line (`1. Install:pip install x`), as no block had ended yet to
    make it write the break between blocks; and an item's paragraph after its code block was
    glued to the code (`makeThen check.`: a list's paragraphs write no break before them)."""

    _after_code = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # For each list item being written: the indentation of its text, whether a line of its
        # text has been written (the next one is a continuation, indented as deep), and how
        # many quotes it is in (a quote in it shows as a quote, not indented).
        self._items: list[list[Any]] = []

    def _ensure_block_spacing(self, next_block_start: int | None = None) -> None:
        if self._list_stack and self._buf.py_offset and not self._buf.trailing_newline_count():
            self._buf.write("\n")
        super()._ensure_block_spacing(next_block_start)

    def _on_start_item(self) -> None:
        # The marker's width, from what the item's start writes (a line break first if needed).
        start = self._buf.py_offset + (
            self._buf.py_offset > 0 and not self._buf.trailing_newline_count()
        )
        super()._on_start_item()
        width = self._buf.py_offset - start
        self._items.append([" " * width, False, len(self._blockquote_scopes)])

    def _on_end_item(self) -> None:
        super()._on_end_item()
        if self._items:
            self._items.pop()

    def _on_end_code_block(self) -> None:
        super()._on_end_code_block()
        self._after_code = bool(self._list_stack)

    def _handle_event(self, event: Any) -> None:
        if self._items and not (self._in_code_block or self._in_table_cell):
            self._in_item(event[0] if isinstance(event, tuple) else event)
        super()._handle_event(event)

    def _in_item(self, event: Any) -> None:
        writes = _writes_text(event)
        if self._after_code:  # the code block's list item goes on: on a line of its own
            self._after_code = False
            if writes and not self._buf.trailing_newline_count():
                self._buf.write("\n")
        item = self._items[-1]
        if writes and item[2] == len(self._blockquote_scopes):
            # An item's text after its first line (`1.  **Step**\n\n    Do it.`, or after its
            # code block) is indented under it, not flush with the next item's number, which
            # ran the items together.
            if item[1] and self._buf.trailing_newline_count():
                self._buf.write(item[0])
            item[1] = True

    # Math is converted to Unicode whatever it holds. telegramify-markdown converts only math of
    # five characters or more with a LaTeX command in it: `$x^2$` showed as "x^2" beside
    # `$x^2 + 1$` as "x² + 1", and `$a_1$` kept its underscore.

    def _on_inline_math(self, math: str) -> None:
        self._math(math, "code")

    def _on_display_math(self, math: str, source_range: dict[str, int] | None = None) -> None:
        self._ensure_block_spacing(self._source_start(source_range))
        self._math(math, "pre")
        self._mark_block_end()

    def _math(self, math: str, kind: str) -> None:
        converted = latex_text(math)
        if self._in_table_cell:  # a table is one code block: its cells hold text only
            self._cell_parts.append(converted)
            return
        self._write_as(converted, kind)

    def _write_as(self, text: str, kind: str, url: str | None = None) -> None:
        """Write `text` as one entity of `kind` (none if it is empty)."""
        start = self._buf.utf16_offset
        self._buf.write(text)
        length = self._buf.utf16_offset - start
        if length > 0:
            self._entities.append(MessageEntity(type=kind, offset=start, length=length, url=url))

    # A table is one code block, where a link cannot be one: telegramify-markdown kept only its
    # words (`[docs](https://…)` in a cell showed as "docs", the address lost). The table's links
    # are listed under it, each on a line of its own with its words as the link. Words that
    # several links share ("docs" in every row) go after a cell of their row: "requests: docs",
    # "httpx: docs", not "docs" twice, which could not be told apart. The cell is the first
    # before the link's that tells those rows apart (not a column of categories, "Python"
    # thrice), else all of them.

    def _on_start_table(self, source_start: int | None = None) -> None:
        self._alignments = _alignments(self._source_bytes, source_start)
        self._table_links: list[tuple[str, str, tuple[str, ...]]] = []  # words, address, row
        self._cell_link: list[tuple[str, int]] = []
        super()._on_start_table(source_start)

    def _on_start_link(self, link_data: dict[str, Any]) -> None:
        super()._on_start_link(link_data)
        url = link_data.get("dest_url", "")
        if self._in_table_cell and _URL_RE.match(url):
            self._cell_link.append((url, len("".join(self._cell_parts))))

    def _pop_entity(self, entity_type: str) -> None:
        if entity_type == "text_link" and self._in_table_cell and self._cell_link:
            url, start = self._cell_link.pop()
            words = "".join(self._cell_parts)[start:].strip()
            row = tuple(cell.strip() for cell in self._current_row)  # the cells before it
            if words and all(link[:2] != (words, url) for link in self._table_links):
                self._table_links.append((words, url, row))
        super()._pop_entity(entity_type)

    def _on_end_table(self) -> None:
        super()._on_end_table()
        for (words, url, _), label in zip(
            self._table_links, _labels(self._table_links), strict=True
        ):
            self._buf.write(f"\n🔗 {label}: " if label and label != words else "\n🔗 ")
            self._write_as(words, "text_link", url)
        self._table_links = []
        self._after_code = bool(self._list_stack)  # a table is a code block too

    def _format_table(self, rows: list[list[str]]) -> str:
        """Columns padded to the width a cell takes on screen, not to its count of characters:
        a Chinese character or an emoji takes two columns of a monospaced font, an accent
        none, and a table with them was out of line. Each column aligned as its delimiter row
        says (`---:` right, `:---:` centred: amounts and prices line up). No spaces at the ends
        of rows. (Bold's spacers and underline's marks, which a table's cells keep as text, go
        first: a table is code, which shows no formatting.)"""
        rows = [[_HIDDEN.sub("", cell) for cell in row] for row in rows]
        columns = max(len(row) for row in rows) if rows else 0
        widths = [0] * columns
        for row in rows:
            for i, cell in enumerate(row):
                widths[i] = max(widths[i], _width(cell))
        lines: list[str] = []
        for index, row in enumerate(rows):
            cells = [*row, *[""] * (columns - len(row))]
            # (The header's first cell flush left: a message's leading spaces are dropped.)
            aligns = ("", *self._alignments[1:]) if index == 0 else self._alignments
            padded = (
                _aligned(c, w - _width(c), aligns[i] if i < len(aligns) else "")
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            )
            lines.append(" | ".join(padded).rstrip())
            if index == 0 and len(rows) > 1:
                lines.append("-+-".join("-" * w for w in widths))
        return "\n".join(lines)


def _alignments(source: bytes, start: int | None) -> tuple[str, ...]:
    """How a table's columns are aligned, from its delimiter row (`|--:|:-:|---|`, in a quote or
    a list item too): "r", "c" or ""."""
    if start is None:
        return ()
    first = source.find(b"\n", start)
    end = source.find(b"\n", first + 1)
    row = source[first + 1 : end if end >= 0 else len(source)].decode("utf-8", "replace")
    row = row.lstrip(" \t>").strip().strip("|")
    out = []
    for cell in row.split("|"):
        cell = cell.strip()
        right, left = cell.endswith(":"), cell.startswith(":")
        out.append("c" if right and left else "r" if right else "")
    return tuple(out)


def _aligned(cell: str, room: int, alignment: str) -> str:
    if alignment == "r":
        return " " * room + cell
    if alignment == "c":
        return " " * (room // 2) + cell + " " * (room - room // 2)
    return cell + " " * room


def _labels(links: list[tuple[str, str, tuple[str, ...]]]) -> list[str]:
    """For each of a table's links (words, address, the cells of its row before it), what tells
    it apart from the others with the same words: the first of those cells that differs among
    them, else all of them; nothing if its words are its own."""
    groups: dict[str, list[tuple[str, ...]]] = {}
    for words, _, row in links:
        groups.setdefault(words, []).append(row)
    out: list[str] = []
    for words, _, row in links:
        rows = groups[words]
        if len(rows) < 2 or not any(row):
            out.append("")
            continue
        columns = range(min(len(other) for other in rows))
        telling = next((c for c in columns if len({other[c] for other in rows}) == len(rows)), None)
        out.append(
            row[telling] if telling is not None else " · ".join(cell for cell in row if cell)
        )
    return out


_INLINE_STARTS = frozenset({"Paragraph", "Strong", "Emphasis", "Strikethrough"})
_INLINE_EVENTS = frozenset({"Text", "Code", "InlineMath", "InlineHtml", "FootnoteReference"})


def _writes_text(event: Any) -> bool:
    """Whether a parser event begins text: a paragraph, or inline content (a tight list's
    items hold it with no paragraph around it)."""
    if isinstance(event, str):
        return event in ("SoftBreak", "HardBreak")
    if not isinstance(event, dict):
        return False
    start = event.get("Start")
    if start is not None:
        return (isinstance(start, str) and start in _INLINE_STARTS) or (
            isinstance(start, dict) and ("Link" in start or "Image" in start)
        )
    return not _INLINE_EVENTS.isdisjoint(event)


def _width(text: str) -> int:
    """Columns `text` takes in a monospaced font: two for a wide character (Chinese, most
    emoji, an emoji made so by U+FE0F: ⚠️, 1️⃣), none for what joins the character before it
    (an accent, a skin tone, the rest of a 👨‍👩‍👧 sequence)."""
    if text.isascii():
        return len(text)
    width = last = 0
    joined = False
    for ch in text:
        if joined or ch == "\u200d":
            joined = ch == "\u200d"
            continue
        if ch == "\ufe0f":
            width += 2 - last  # the character before it is shown as an emoji
            last = 2
            continue
        if (
            unicodedata.combining(ch)
            or unicodedata.category(ch) in ("Mn", "Me", "Cf")
            or "\U0001f3fb" <= ch <= "\U0001f3ff"  # a skin tone
        ):
            continue
        last = 2 if unicodedata.east_asian_width(ch) in "WF" else 1
        width += last
    return width


_FRACTION_STYLES = re.compile(r"\\[dtc]frac(?![A-Za-z])")  # ChatGPT's `\dfrac`: a `\frac` to us
# `\langle` was the CJK bracket 〈, wide, as if it were Chinese punctuation; the rest showed raw.
_SYMBOLS = {
    "\\langle": "⟨",
    "\\rangle": "⟩",
    "\\ne": "≠",
    "\\impliedby": "⟸",
    "\\lcm": "lcm",
    "\\degree": "°",
    "\\checkmark": "✓",
    "\\cdotp": "·",
}
_SPACES = re.compile(r"  +")
_ROOT_SIGNS = {"": "√", "2": "√", "3": "∛", "4": "∜"}
# A differential, `dy/dx`, `∂²f/∂x²`, written so (no parentheses).
_DIFFERENTIAL = re.compile(r"[d∂][⁰¹²³⁴⁵⁶⁷⁸⁹]*[^\W\d_][⁰¹²³⁴⁵⁶⁷⁸⁹]*")
_PARTIAL = re.compile(r"(∂[⁰¹²³⁴⁵⁶⁷⁸⁹]*)\s+")


class _Latex(LatexToUnicodeHelper):
    """telegramify-markdown's LaTeX converter, with roots and fractions that read as meant.

    - A root's radicand was overlined character by character (U+0305), which most fonts draw
      as a broken line of dashes (`√b̅²̅ ̅-̅ ̅4̅a̅c̅`), and a root in a root kept stray overlines.
      It goes in parentheses: `√(b² - 4ac)` (`√x`, `√64` alone).
    - A denominator of more than one symbol went without parentheses: `(-b ± √…)/2a`, which
      reads as "divided by 2, times a". It gets them: `/(2a)`, `1/(2π)` (not `dy/dx`).
    """

    def handle_command(self, command: str, latex: str, index: int) -> tuple[str, int]:
        if command in _SYMBOLS:
            return _SYMBOLS[command], index
        shown: tuple[str, int] = super().handle_command(command, latex, index)  # type: ignore[no-untyped-call]
        return shown

    @staticmethod
    def translate_sqrt(command: str, option: str, param: str) -> str:
        index, radicand = option.strip(), param.strip()
        if not radicand:  # `\sqrt 3`: its radicand follows it, unbraced
            return _ROOT_SIGNS.get(index) or f"{index}√"
        sign = _ROOT_SIGNS.get(index) or (
            (LatexToUnicodeHelper.try_make_superscript(index) or f"({index})")  # type: ignore[no-untyped-call]
            + "√"
        )
        plain = len(radicand) == 1 or radicand.isdigit()
        return f"{sign}{radicand}" if plain else f"{sign}({radicand})"

    @staticmethod
    def make_fraction(numerator: str, denominator: str) -> str:
        # `\partial f` converts to "∂ f": as a fraction's part it read `(∂ f)/(∂ x)`.
        top, below = (_PARTIAL.sub(r"\1", part.strip()) for part in (numerator, denominator))
        shown: str = LatexToUnicodeHelper.make_fraction(top, below)  # type: ignore[no-untyped-call]
        if "/" not in shown:
            return shown  # a fraction character: ½
        if not _DIFFERENTIAL.fullmatch(top):  # (`dy`, `∂²f`: as written)
            top = LatexToUnicodeHelper.maybe_parenthesize(top)  # type: ignore[no-untyped-call]
        if not _DIFFERENTIAL.fullmatch(below):
            parenthesized = LatexToUnicodeHelper.maybe_parenthesize(below)  # type: ignore[no-untyped-call]
            several = not below.isdigit() and _symbols(below) > 1
            below = f"({below})" if parenthesized == below and several else parenthesized
        return f"{top}/{below}"


def _symbols(text: str) -> int:
    """How many symbols `text` has, not counting sub- and superscripts or combining marks:
    `x₁` and `x²` are one, `2a` two."""
    return sum(
        not unicodedata.combining(ch)
        and not unicodedata.decomposition(ch).startswith(("<sub>", "<super>"))
        for ch in text
    )


_LATEX = _Latex()


def latex_text(math: str) -> str:
    """LaTeX math in Unicode: `\\pi r^2` as "π r²", a root as `√(b² - 4ac)`."""
    math = _FRACTION_STYLES.sub(r"\\frac", math)  # `\\dfrac{x}{2}` showed as "\\dfracx2"
    converted: str = _LATEX.convert(math).strip()  # type: ignore[no-untyped-call]
    if "\\begin" in math:
        return converted  # (a matrix's cells are two spaces apart)
    return _SPACES.sub(" ", converted)  # `x \bmod 3` was "x  mod  3"


_CONFIG = RenderConfig.isolated()
# An open task (`- [ ] todo`) showed as ☑, a box with a tick: as if it were done (✅).
_CONFIG.markdown_symbol.task_uncompleted = "\N{BALLOT BOX}"  # ☐
# A quote over 200 characters became an expandable one: collapsed behind "show more" in the
# final answer (a warning, a quoted passage: what the user is to read), and collapsing mid-stream
# once it grew past 200.
_CONFIG.cite_expandable = False
IMAGE = _CONFIG.markdown_symbol.image  # what an image shows before its text (its own: a link)


def _convert(markdown: str) -> tuple[str, list[Any]]:
    """`telegramify_markdown.convert`, walked by `_Walker`, with the bot's own config."""
    source, events = _parse(markdown, STANDARD_OPTIONS, latex_escape=False)  # see `tex_math`
    text, entities, _ = _Walker(_CONFIG, source).walk(events)
    return text, entities


def _tidy(text: str, entities: list[Entity]) -> tuple[str, list[Entity]]:
    """Drop what shows as nothing: spaces at the end of a line (outside code) and line breaks at
    the end of a formatted span.

    telegramify-markdown writes them or not depending on what follows (a blockquote that ends a
    list item covers the next line break only if more text follows; an empty item keeps its
    bullet's space only before another block). Without this, a text rendered in blocks and
    joined, as a streamed answer is, would differ from the same text rendered whole, and each
    such difference would cost an edit that changes nothing a user can see."""
    if " \n" in text or "\t\n" in text:
        text, entities = _drop(text, entities, _LINE_END_SPACE)
    if _UNDERLINE[0] in text:
        entities = entities + _underlines(text)
    if _SPACER in text or _UNDERLINE[0] in text:
        # (In code too: an indented code block is rewritten as text is.)
        text, entities = _drop(text, entities, _HIDDEN, in_code=True)
    if "\n" not in text:
        return text, entities
    units = text if text.isascii() else text.encode("utf-16-le", "surrogatepass")
    newline: Any = "\n" if isinstance(units, str) else b"\n\x00"
    width = 1 if isinstance(units, str) else 2
    out: list[Entity] = []
    for e in entities:
        if e["type"] not in _LEAF_TYPES:
            start, end = e["offset"], e["offset"] + e["length"]
            while end > start and units[(end - 1) * width : end * width] == newline:
                end -= 1
            if end - start != e["length"]:
                if end == start:
                    continue
                e = {**e, "length": end - start}
        out.append(e)
    return text, out


def _underlines(text: str) -> list[Entity]:
    """An underline over each pair of underline marks in `text` (`as_meant`), marks included:
    dropped, they leave it over the text between them."""
    found: list[Entity] = []
    opened: list[int] = []
    units = last = 0
    for mark in _UNDERLINES.finditer(text):
        units += utf16_len(text[last : mark.start()])
        last = mark.start()
        if mark[0] == _UNDERLINE[0]:
            opened.append(units)
        elif opened:
            start = opened.pop()
            found.append({"type": "underline", "offset": start, "length": units + 1 - start})
    return found


def _drop(
    text: str, entities: list[Entity], spaces: re.Pattern[str], *, in_code: bool = False
) -> tuple[str, list[Entity]]:
    """`text` without the runs of spaces (one UTF-16 unit each) that `spaces` finds (outside
    code unless `in_code`), its entities moved to match."""
    code = (
        []
        if in_code
        else [
            (e["offset"], e["offset"] + e["length"]) for e in entities if e["type"] in _LEAF_TYPES
        ]
    )
    ascii_only = text.isascii()
    kept: list[str] = []
    begins: list[int] = []  # the removed runs, in UTF-16 units as entity offsets are
    ends: list[int] = []
    before: list[int] = []  # units removed before each run
    last = counted = units = gone = 0
    for match in spaces.finditer(text):
        if ascii_only:
            begin = match.start()
        else:
            units += utf16_len(text[counted : match.start()])
            counted = match.start()
            begin = units
        end = begin + len(match[0])
        if code and any(start < end and begin < stop for start, stop in code):
            continue
        kept.append(text[last : match.start()])
        last = match.end()
        begins.append(begin)
        ends.append(end)
        before.append(gone)
        gone += end - begin
    if not begins:
        return text, entities
    kept.append(text[last:])

    def moved(position: int) -> int:
        run = bisect.bisect_left(begins, position) - 1  # the last run that starts before it
        if run < 0:
            return position
        return position - before[run] - (min(position, ends[run]) - begins[run])

    out: list[Entity] = []
    for e in entities:
        start, end = moved(e["offset"]), moved(e["offset"] + e["length"])
        if end > start:
            out.append({**e, "offset": start, "length": end - start})
    return "".join(kept), out


# `\[…\]` or `\(…\)` within a paragraph (no blank line inside), of 1,000 characters at most
# (a text of many a `\(` left open is not searched to its end from each of them).
_TEX = re.compile(
    r"\\\[((?:[^\n]|\n(?![ \t]*\n)){1,1000}?)\\\]|\\\(((?:[^\n]|\n(?![ \t]*\n)){1,1000}?)\\\)"
)
# What makes `\(…\)` or `\[…\]` math rather than escaped brackets (`\(maybe\)`, `\[1\]`,
# `arr\[0\]`, as a model escaping for Telegram's MarkdownV2 writes them): a command (`\pi`), a
# sub- or superscript, a relation or an operator; inline, also a lone variable or number
# (`_VARIABLE`).
_MATH_SIGNS = re.compile(r"\\[A-Za-z%]|[\^_=+<>{}]|\d\s*[-*/]\s*\d|[A-Za-z]'+\(")
_BACKTICK_RUN = re.compile(r"`+")


def fence(value: str, least: int) -> str:
    """A run of backticks longer than any inside `value` (and at least `least` long)."""
    longest = max((len(run) for run in _BACKTICK_RUN.findall(value)), default=0)
    return "`" * max(least, longest + 1)


def code_span(value: str) -> str:
    """`value` as a Markdown code span, whatever backticks it holds."""
    ticks = fence(value, 1)
    pad = " " if value.startswith("`") or value.endswith("`") else ""
    return f"{ticks}{pad}{value}{pad}{ticks}"


# Inline, a lone variable (`\(r\)`, `\(x1\)`) or number (`\(1\)`, `\(-3\)`, `\(2; 3\)`): an
# answer in math (`**Ответ:** \(1\).` showed as "(1)").
_MARKDOWN_V2 = re.compile(r"\\[.\-#!>]|\w\\\(")  # its escapes, or `f\(1\)`: a call
_NUMBER = r"-?\d+(?:[.,]\d+)?"
_VARIABLE = re.compile(rf"\s*(?:[A-Za-z][0-9]?!?|{_NUMBER}!?(?:\s*[;,]\s*{_NUMBER})*)\s*")


def tex_math(markdown: str) -> str:
    r"""`\(…\)` and `\[…\]`, as models write LaTeX math, made `$…$` and `$$…$$`: math that
    shows converted to Unicode (`\(x^2\)` as `x²`), outside code.

    telegramify-markdown's own pass for them ran in code too (a regex `r"\((\d+)\)"` in a code
    block showed as `$(+̣)$`), and left math without a LaTeX command as text (`\(r\)` showed as
    "(r)", beside `\(\pi r^2\)` as "π r²").
    """
    if "\\(" not in markdown and "\\[" not in markdown:
        return markdown
    verbatim = _verbatim(markdown)
    starts = [begin for begin, _ in verbatim]
    # A lone number is math (`\(1\)`), but not in a text escaped for MarkdownV2 (`3\.12
    # \(2023\)`), where `\(` is an escaped bracket.
    numbers = not _MARKDOWN_V2.search(markdown)
    out: list[str] = []
    last = pos = 0
    while match := _TEX.search(markdown, pos):
        at = match.start()
        pos = at + 1
        i = bisect.bisect_right(starts, at) - 1  # the last code span before it
        in_code = i >= 0 and verbatim[i][1] > at
        if in_code or (i + 1 < len(verbatim) and verbatim[i + 1][0] < match.end()):
            continue  # in code, or code in it: left as it is
        if escaped(markdown, at):
            continue  # `\\(`: an escaped backslash, then a bracket
        word = markdown[max(markdown.rfind(c, 0, at) for c in " \n(") + 1 : at]
        if "](" in word or "://" in word:
            continue  # in a link's address (`…/Python_\(language\)`)
        display, inline = match.groups()
        content = display if display is not None else inline
        if not _MATH_SIGNS.search(content) and not (
            inline and _VARIABLE.fullmatch(inline) and (inline.strip()[:1].isalpha() or numbers)
        ):
            continue
        # On one line: LaTeX reads a line break as a space, and Markdown could read a line of
        # the math as a block of its own (`+ 2x` a list item). In a quote, its lines start `>`.
        lines = content.split("\n")
        if len(lines) > 1 and all(line.lstrip().startswith(">") for line in lines[1:]):
            lines[1:] = [line.lstrip()[1:] for line in lines[1:]]
        math = " ".join(" ".join(lines).split())
        out.append(markdown[last : match.start()])
        if display is not None:
            out.append(f"$${math}$$")
        elif markdown[match.end() : match.end() + 1].isdigit():
            # `$x$2` would read as two prices: the math goes as the code span it shows as.
            out.append(code_span(latex_text(math)))
        else:
            out.append(f"${math}$")
        last = pos = match.end()
    out.append(markdown[last:])
    return "".join(out)


def as_meant(markdown: str, *, links_to_come: bool = False, notes_to_come: bool = False) -> str:
    """What models write that Markdown reads otherwise than they mean, rewritten outside code
    blocks and inline code:

    - Bold whose text starts or ends with punctuation, in text that runs on without a space.
      CommonMark closes `**` after punctuation only before a space or more punctuation, and
      opens it before punctuation only after one: `**注意：**这是…` (which Chinese text, with no
      spaces, writes all the time), `**Note:**This` and `这是**「重要」**的` stayed raw, stars and
      all. A space that the rendered text drops goes beside the stars: they show bold, with
      their punctuation (`**快速排序（Quick Sort）**的`, bold to its `）`).
    - Footnotes: telegramify-markdown showed `Claim[^1]` as "Claim^1" and dropped the note
      `[^1]: Source.` whole (a note of several words stayed raw, both ends). They show as
      "Claim¹" and "¹ Source.". A named one (`[^note]`) is a mark once its note is in the
      text. With `notes_to_come` (while streaming: notes come at an answer's end), one whose
      note is not written yet and whose name looks like one is left out until it is; it
      showed raw until the answer's end, then turned into "[note]".
    - With `links_to_come` (while streaming, and in a message that a later one follows),
      a link to a definition not written there (`[FAQ][faq]`, `[FAQ][]`): its text, as a link
      being written shows. It showed raw until the answer's end, or for good.
    - `<br>` in a table's cell, where models put it for a line break: a space (a table is one
      code block, its rows one line each). Elsewhere, glued to the text before it
      (`line<br>break`), a line break. It showed as the tag. After a space it stays text: a
      model writing about HTML may mean the tag.
    - HTML tags, which showed as written: a key, `<kbd>Ctrl</kbd>`, and `<code>`, as inline
      code; `H<sub>2</sub>O` and `x<sup>2</sup>` as H₂O and x² (as their text where Unicode
      has no such characters); `<b>`, `<strong>`, `<i>`, `<em>`, `<s>` and `<del>` as bold,
      italic and strikethrough; `<u>` and `<ins>` underlined (marks that `render` makes an
      entity of), `<mark>` bold (Telegram has no highlight); `<a href="…">text</a>` as a
      link. Closed on the same line only: a lone tag may be about HTML. A collapsible section
      (`<details>`, `<summary>Title</summary>`): its title in bold, over its text; Telegram
      has no such section. HTML's blocks: `<p>…</p>` as a paragraph, `<pre>…</pre>` (or
      `<pre><code>`) over lines as a code block (`pre_blocks`, `_paragraphs`).
    - GitHub's alerts, `> [!NOTE]` opening a quote: "ℹ️ Note" in bold. They showed raw.
    - A line of only no-break or zero-width spaces: a blank line, as it shows. A model caught
      in a loop can write thousands; as text they made one message of empty lines each, and
      splitting it rendered all of them again and again (seconds of a blocked event loop).
    """
    bold = "**" in markdown and _PUNCT_STARS.search(markdown) is not None
    notes = "[^" in markdown
    breaks = "<br" in markdown or "<BR" in markdown
    blanks = _ODD_BLANK.search(markdown) is not None
    alerts = "[!" in markdown
    tags = "</" in markdown and _TAG.search(markdown) is not None
    anchors = "href=" in markdown.lower() and ANCHOR.search(markdown) is not None
    details = "details" in markdown and _DETAILS.search(markdown) is not None
    dunders = "__" in markdown and _DUNDER.search(markdown) is not None
    pipes = "$" in markdown and _ROW_MATH_PIPE.search(markdown) is not None
    if _SHALLOW_BULLET.search(markdown) and _NUMBERED_ITEM.search(markdown):
        markdown = _nested(markdown)
    if _HTML_BLOCK.search(markdown):
        markdown = _paragraphs(pre_blocks(markdown)[0])
    references = links_to_come and "][" in markdown
    if not any(
        (bold, notes, breaks, blanks, alerts, tags, anchors, references, details, dunders, pipes)
    ):
        return markdown
    defined = {match[2] for match in _NOTE.finditer(markdown)} if notes else set()
    targets = {_label(m[1]) for m in _DEFINITION.finditer(markdown)} if references else set()

    def link(match: re.Match[str]) -> str:
        if _label(match[2] or match[1]) in targets or match[1].isdigit():
            return match[0]  # (`[1][2]`: citations)
        return match[1]

    def mark(label: str) -> str:
        return label.translate(_SUPERSCRIPT) if label.isdigit() else f"\\[{label}\\]"

    def reference(match: re.Match[str]) -> str:
        label = match[1]
        if label.isdigit() or label in defined:
            return mark(label)
        return "" if notes_to_come and _is_note_name(label) else match[0]

    def rewrite(text: str, first: bool, row: bool, deep: bool) -> str:
        # (Bold first: a named note's mark is escaped, `\\[note\\]`, and a backslash stops it.)
        if bold and "**" in text and not set("$\\") & set(text):
            text = _STRONG.sub(_punctuation_outside, text)
        if notes and "[^" in text:
            if first:  # (a note's text starts its line)
                text = _NOTE.sub(lambda m: f"{m[1]}{mark(m[2])} ", text, count=1)
            text = _NOTE_REFERENCE.sub(reference, text)
        if breaks and row:
            text = _BREAK.sub(" ", text)
        elif breaks and not deep:
            text = _GLUED_BREAK.sub(lambda m: "" if m[1] is not None else "\n", text)
        if references and "][" in text:
            text = _REFERENCE.sub(link, text)
        if anchors and "href=" in text.lower():
            text = ANCHOR.sub(_anchor, text)
        if tags and "</" in text:
            text = _TAG.sub(_tag, _TAG.sub(_tag, text))  # (twice: `<b><i>x</i></b>`)
        if dunders and "__" in text:
            text = _DUNDER.sub(r"\\_\\_\1\\_\\_", text)
        if pipes and row and "$" in text:
            text = _ROW_MATH_PIPE.sub(lambda m: m[0].replace("|", "\\|"), text)
        return text

    lines = markdown.splitlines(keepends=True)
    for i, _, block in _code_of_lines(markdown, lines):
        if block is not None:
            continue  # a code block's line or fence
        line = lines[i]
        if blanks and not line.strip(_BLANK_OR_QUOTE):
            quotes = _QUOTES.match(line)
            lines[i] = (quotes[0] if quotes else "") + line[len(line.rstrip("\r\n")) :]
            continue
        deep = line.startswith(("    ", "\t"))  # maybe an indented code block's: as written
        if details and "details" in line and not deep:
            line = lines[i] = _DETAILS.sub("", line) if _DETAILS.match(line) else line
        alert = _ALERT.match(line) if alerts else None
        if alert:
            kind = alert[2].upper()
            # In the language of what it says: of the start of its first line, which streaming
            # waits for (`tail.py`), so that the label does not change as the words come.
            said = "".join(lines[i + 1 : i + 4])
            sample = alert_sample(said, complete=True) or first_letter(said)
            label = ALERTS[language_of_text(sample or "".join(lines[max(0, i - 3) : i]))][kind]
            lines[i] = f"{alert[1]}**{_ALERTS[kind]} {label}**{alert[3]}"
            continue
        row = bool((breaks or pipes) and TABLE_ROW.match(line.lstrip(" \t>")))  # (quoted too)
        if tags and "`</" in line:
            line = _BACKTICK_KEY.sub(code_span("`"), line)
        # Inline code stays as written; the text around it is rewritten.
        lines[i] = _outside_code(line, partial(rewrite, row=row, deep=deep))
    return "".join(lines)


def _code_of_lines(markdown: str, lines: list[str]) -> Iterator[tuple[int, int, int | None]]:
    """For each of `markdown`'s `lines` (split keeping their ends): its index, where it starts,
    and where the code block it is in (or opens) starts, None outside code."""
    blocks = code_blocks(markdown)
    pos = b = 0
    for i, line in enumerate(lines):
        start, pos = pos, pos + len(line)
        while b < len(blocks) and blocks[b][1] <= start:
            b += 1
        yield i, start, blocks[b][0] if b < len(blocks) and blocks[b][0] < pos else None


def pre_blocks(markdown: str, *, open_to_come: bool = False) -> tuple[str, bool]:
    """`markdown` with HTML's code blocks (`<pre>` opening a line, to `</pre>`) as fenced ones,
    outside code: they showed raw, their code read as Markdown. Their text is HTML's (`&lt;`
    for `<`). One that is not closed stays as written: a lone tag may be about HTML. With
    `open_to_come` (while streaming) it is code being written: an open fence, without a
    closing tag being written at its end. Also: whether `markdown` ends in such a block."""
    if not _PRE.search(markdown):
        return markdown, False
    lines = markdown.splitlines(keepends=True)
    out: list[str] = []
    after = 0  # the first line not written yet
    closed = True
    for i, _, block in _code_of_lines(markdown, lines):
        if i < after:
            continue  # (a `<pre>` block's)
        opener = None if block is not None else _PRE_OPEN.match(lines[i])
        found = _pre_block(lines, i, opener, open_to_come) if opener else None
        if found is None:
            out.append(lines[i])
            after = i + 1
            continue
        fenced, after, closed = found
        out.append(fenced)
    return "".join(out), not closed


def _pre_block(
    lines: list[str], first: int, opener: re.Match[str], open_to_come: bool
) -> tuple[str, int, bool] | None:
    """The `<pre>` block that `opener` opens on line `first`, fenced; the line after it; whether
    it is closed. None if it is not (and `open_to_come` is not set)."""
    prefix = opener[1]
    body = [lines[first][opener.end() :], *lines[first + 1 :]]
    close = next(
        ((k, match) for k, line in enumerate(body) if (match := _PRE_CLOSE.search(line))), None
    )
    if close is not None:
        k, match = close
        after = body[k][match.end() :]
        body[k:] = [body[k][: match.start()]]
    elif not open_to_come:
        return None
    else:
        body[-1] = _without_closer(body[-1])
        if len(body) == 1 and _CODE_TAG_BEING_WRITTEN.fullmatch(body[0]):
            body[0] = ""  # (`<pre><co`: its `<code>` being written)
    body[0] = prefix + body[0] if body[0].strip() else ""
    if not body[-1].strip():
        body[-1] = ""
    elif not body[-1].endswith("\n"):
        body[-1] += "\n"
    text = _HTML_ESCAPE.sub(lambda m: _UNESCAPED[m[1]], "".join(body))
    if close is None and not text:
        return "", len(lines), False  # code to come: nothing of it to show yet
    language = _PRE_LANGUAGE.search(opener[0])
    ticks = fence(text, 3)
    fenced = f"{prefix}{ticks}{language[1] if language else ''}\n{text}"
    if close is None:
        return fenced, len(lines), False
    end = first + close[0] + 1
    rest = after.strip()
    line_end = after[len(after.rstrip("\r\n")) :]
    if rest:  # (text after `</pre>`: on a line of its own, under the code)
        return f"{fenced}{prefix}{ticks}\n{prefix}{rest}{line_end}", end, True
    return f"{fenced}{prefix}{ticks}{line_end}", end, True


def _without_closer(text: str) -> str:
    """`text` without the start of a `</pre>` (or `</code></pre>`) being written at its end, or
    of an escape (`&l`, to be `&lt;`: `<`)."""
    escape = _ESCAPE_BEING_WRITTEN.search(text)
    if escape and any(f"&{name};".startswith(escape[0]) for name in _UNESCAPED):
        return text[: escape.start()]
    lowered = text.lower()
    for closer in _PRE_CLOSERS:
        for size in range(len(closer), 0, -1):
            if lowered.endswith(closer[:size]):
                return text[: len(text) - size]
    return text


def _paragraphs(markdown: str) -> str:
    """`markdown` with HTML's paragraphs as Markdown's, outside code: `<p>` opening a line's
    text (after a quote's or a list item's marker), or on a line of its own, and `</p>` ending
    the same line or a later one of its paragraph, or on a line of its own, go, the paragraph
    set apart by blank lines (not in a list item); `</p><p>` within a line is a paragraph
    break. A lone tag stays (it may be about HTML), and so does one with a space inside it;
    a line of nothing but such tags is blank."""
    lines = markdown.splitlines(keepends=True)
    # Where the open paragraph's text starts, its `<p>` there (None if on a line of its own,
    # which is blank now), and what its lines start with (quotes, a list item's marker).
    opened: tuple[int, re.Match[str] | None, str] | None = None
    for i, _, block in _code_of_lines(markdown, lines):
        line = lines[i]
        if block is not None or not line.strip():
            opened = None
            continue
        only = _P_ONLY.match(line)
        if only:
            lines[i] = only[1] + line[only.end() :]
            if opened is not None and "</" in only[0]:
                _paragraph(lines, opened, i - 1)
            last = only[0].rstrip().rsplit("<", 1)[-1]
            opened = None if last.startswith("/") else (i + 1, None, only[1])
            continue
        start = P_OPEN.match(line)
        if start and not line[start.end() : start.end() + 1].isspace():
            opened = (i, start, start[1])
        close = _P_CLOSE.search(line) if opened else None
        if opened is not None and close is not None:
            lines[i] = line[: close.start()] + line[close.end() :]
            _paragraph(lines, opened, i)
            opened = None
    return "".join(lines)


def _paragraph(lines: list[str], opened: tuple[int, re.Match[str] | None, str], last: int) -> None:
    """An HTML paragraph, opened as `_paragraphs` says and ending on line `last` (its `</p>`
    gone), made Markdown's: its `<p>` goes, and it is set apart."""
    first, start, prefix = opened
    if start is not None:
        lines[first] = lines[first][: start.end(1)] + lines[first][start.end() :]
    _set_apart(lines, first, last, prefix)


def _set_apart(lines: list[str], first: int, last: int, prefix: str) -> None:
    """Lines `first` to `last`, what `<p>` tags held: `</p><p>` in them made a paragraph break,
    and a blank line put before and after them where there is text (in their quotes)."""
    quote = _QUOTES.match(prefix)[0]  # type: ignore[index]
    indent = quote + " " * (len(prefix) - len(quote))  # (a list item's text is indented)

    def apart(text: str, first: bool) -> str:
        return _P_BETWEEN.sub(f"\n{quote}\n{indent}", text)

    for k in range(first, last + 1):
        if "</" in lines[k]:
            lines[k] = _outside_code(lines[k], apart)
    if prefix.strip(" \t>"):
        return  # a list item's paragraphs: not set apart from the item
    if first and lines[first - 1].strip(" \t>\r\n"):
        lines[first] = f"{quote}\n{lines[first]}"
    if last + 1 < len(lines) and lines[last + 1].strip(" \t>\r\n"):
        lines[last] += f"{quote}\n"


def _outside_code(line: str, rewrite: Callable[[str, bool], str]) -> str:
    """`line` with `rewrite` applied to each piece of its text outside inline code (and told
    whether the piece starts the line)."""
    if "`" not in line:
        return rewrite(line, True)
    pieces, at = [], 0
    for begin, end in code_spans(line, unclosed=False):
        pieces += [rewrite(line[at:begin], not at), line[begin:end]]
        at = end
    return "".join([*pieces, rewrite(line[at:], not at)])


def _label(text: str) -> str:
    """A link label as CommonMark matches them: case and runs of spaces do not count."""
    return " ".join(text.split()).casefold()


def _anchor(match: re.Match[str]) -> str:
    words = re.sub(r"([\\\[\]])", r"\\\1", match[3])
    return f"[{words}]({match[2]})"


def alert_sample(said: str, *, complete: bool) -> str | None:
    """What an alert's label takes its language from: the first `ALERT_SAMPLE` characters of
    the first line of what it says, code aside ("" if it has no letter). Not only the first
    letter: a Russian alert may start with a Latin word ("Python 3.12 быстрее"). None while that
    is being written (`complete=False`: streaming), as it may change."""
    line, newline, _ = said.lstrip("\r\n").partition("\n")
    line = _CODE_OR_OPEN_CODE.sub("", line.lstrip(" \t>"))[:ALERT_SAMPLE]
    if not newline and not complete and len(line) < ALERT_SAMPLE:
        return None
    return line if first_letter(line) else ""


ALERT_SAMPLE = 40


def first_letter(text: str) -> str:
    """The first letter of `text` outside inline code ("" if none yet): what language an
    alert's text is in (`rm -rf` tells nothing)."""
    return next((ch for ch in _CODE_OR_OPEN_CODE.sub("", text) if ch.isalpha()), "")


_CODE_OR_OPEN_CODE = re.compile(r"(`+)(?:.*?\1|.*$)", re.DOTALL)


def _tag(match: re.Match[str]) -> str:
    name, inner = match[1].lower(), match[2]
    if name in ("kbd", "code"):
        return code_span(inner)
    if name in ("sub", "sup"):
        convert = _LATEX.try_make_subscript if name == "sub" else _LATEX.try_make_superscript
        return convert(inner) or inner  # type: ignore[no-untyped-call]
    if name in _UNDERLINE_TAGS:
        return f"{_UNDERLINE[0]}{inner}{_UNDERLINE[1]}"
    marker = _TAG_MARKERS[name]
    text, start, end = match.string, match.start(), match.end()
    # Beside a letter, stars may not open or close (`a**(x)**y`): a spacer, as for bold by
    # punctuation. Not beside other markers: `**Important <i>note</i>**` stays bold.
    before = _SPACER if start and _wordlike(text[start - 1]) else ""
    after = _SPACER if end < len(text) and _wordlike(text[end]) else ""
    return f"{before}{marker}{inner}{marker}{after}"


def _wordlike(ch: str) -> bool:
    return not ch.isspace() and ch not in _PUNCTUATION and unicodedata.category(ch)[0] not in "PS"


def _is_note_name(label: str) -> bool:
    """Whether `[^label]` reads as a footnote's mark before its note is written (`[^a-z]`, a
    character class, does not)."""
    return _NOTE_NAME.fullmatch(label) is not None and _RANGE.search(label) is None


def _nested(markdown: str) -> str:
    """`markdown` with a list written under a numbered item, but less deep than the item's
    text (`1. Item` then `  - sub` or `  1. sub`), indented as deep: CommonMark reads it as a
    list of its own after the item (or more items of its list, renumbered), which showed flat
    (`⦁ sub` flush with `1.`), not nested as meant. The lines after it in the item move with
    it."""
    lines = markdown.splitlines(keepends=True)
    item: tuple[int, int] | None = None  # where the numbered item's marker and text begin
    shift = 0
    for i, start, block in _code_of_lines(markdown, lines):
        line = lines[i]
        text = line.lstrip(" ")
        if not text.strip():
            continue
        indent = len(line) - len(text)
        in_code = block is not None
        if item and indent <= item[0] and (block is None or block >= start):
            item = None  # (a code block's opening fence at the item's depth or less ends it)
        if not in_code:  # (a code block's lines move along)
            numbered = _NUMBERED_ITEM.match(line)
            under = item is not None and item[0] < indent < item[1]  # less deep than its text
            if under and not shift and (numbered or _BULLET.match(text)):
                shift = item[1] - indent  # type: ignore[index]
            elif numbered and not under:
                item, shift = (indent, numbered.end()), 0
                continue
        if item and shift and indent > item[0]:
            lines[i] = " " * shift + line
    return "".join(lines)


def _punctuation_outside(pair: re.Match[str]) -> str:
    text, inner = pair.string, pair[1]
    before = text[pair.start() - 1] if pair.start() else " "
    after = text[pair.end()] if pair.end() < len(text) else " "
    opens = inner[0] not in _PUNCTUATION or before.isspace() or before in _PUNCTUATION
    closes = inner[-1] not in _PUNCTUATION or after.isspace() or after in _PUNCTUATION
    if (opens and closes) or inner != inner.strip():
        return pair[0]
    return f"{'' if opens else _SPACER}**{inner}**{'' if closes else _SPACER}"


def escaped(text: str, index: int) -> bool:
    """Whether the character at `index` follows an odd number of backslashes."""
    before = index
    while before > 0 and text[before - 1] == "\\":
        before -= 1
    return (index - before) % 2 == 1


def keep_literal(markdown: str) -> str:
    """Escape what telegramify-markdown would take for markup a model does not mean, outside
    code and math.

    - `<`: telegramify-markdown drops inline and block HTML without a trace: `Vec<T>` would
      become `Vec`, a `<br>` or a whole `<div>` block would vanish. A model's `<` is text.
    - `||`: telegramify-markdown reads `||text||` as a spoiler (Telegram's own syntax, which a
      model does not write): `a || b or c || d` would lose its pipes and hide " b or c ".
    - `*` or `**` between two letters or digits that closes no emphasis opened before it:
      arithmetic. CommonMark pairs such stars up: `a*b + c*d` showed as "ab + cd" with "b + c"
      in italics, `5*4*3 = 60` as "543 = 60", `x**2 + y**2` with "2 + y" in bold. Emphasis that
      closes inside a word (`the *API*s`, `**REST API**s`) stays; emphasis that opens inside one
      (`un*believ*able`) is what this gives up, as the streaming view does (`tail.py`).

    An escaped `<` that opened a line may also have opened an HTML block, which runs to the next
    blank line and can swallow a code fence: without it, that fence opens real code, where no
    `<` may be escaped. So then the code is looked for again in the escaped text, until it holds.
    """
    if "<" not in markdown and "||" not in markdown and not _ARITHMETIC.search(markdown):
        return markdown
    verbatim = _verbatim(markdown)
    for _ in range(3):
        text, inserted, block_html = _escape(markdown, verbatim)
        if not block_html:
            break
        again = [
            (begin - bisect.bisect_left(inserted, begin), end - bisect.bisect_left(inserted, end))
            for begin, end in _verbatim(text)
        ]
        if again == verbatim:
            break
        verbatim = again
    return text


def _verbatim(markdown: str) -> list[tuple[int, int]]:
    """Where code, math and autolinks (`<https://…>`, `<name@example.com>`) are (character
    ranges, in order): nothing in them is markup, and an autolink's `<` is not HTML. (As
    `render` reads them, prices no math: `$5 for 2*3 and 4*5 … **$6**` lost its stars.)"""
    data, events = _parsed(markdown)
    ranges: list[tuple[int, int]] = []
    for payload, span in events:
        if not isinstance(payload, dict):
            continue
        start = payload.get("Start")
        literal = "Code" in payload or "InlineMath" in payload or "DisplayMath" in payload
        if isinstance(start, dict):
            link = start.get("Link")
            literal = "CodeBlock" in start or (
                isinstance(link, dict) and link.get("link_type") in _AUTOLINKS
            )
        begin, end = span["start"], span["end"]
        if not literal and isinstance(start, dict) and ("Link" in start or "Image" in start):
            # `[text](<address>)` (or an image's `![…](<…>)`), the form for an address with
            # spaces or parentheses: the address is not HTML (the text is markup as any other).
            angled = data.rfind(b"](<", begin, end)
            if angled < 0:
                continue
            begin, literal = angled + 2, True
        if literal:
            ranges.append(_characters(data, len(markdown), begin, end))
    ranges.sort()  # (a link's address comes before the code in its text)
    kept: list[tuple[int, int]] = []
    for begin, end in ranges:
        if not kept or begin >= kept[-1][1]:
            kept.append((begin, end))
    return kept


def dollar_math(markdown: str) -> list[tuple[int, int]]:
    """Where `markdown`'s `$…$` and `$$…$$` math is (character ranges, in order), as `render`
    reads it (`_parsed`: `$20/month** … is $40` and `$1,000 and **$2,000` are none)."""
    data, events = _parsed(markdown)
    return [
        _characters(data, len(markdown), span["start"], span["end"])
        for payload, span in events
        if isinstance(payload, dict) and ("InlineMath" in payload or "DisplayMath" in payload)
    ]


def _parsed(markdown: str) -> tuple[bytes, tuple[Any, ...]]:
    """pyromark's events (with their byte ranges) for `markdown` as `render` reads it, and the
    UTF-8 text they are of: pulldown-cmark's math (no closing `$` after a space), then
    telegramify-markdown's rule for prices, a closing `$` before a digit making both `$` text
    (`$1,000 and **$2,000`), the rest paired again without them. (They are `%` in the text, in
    the same places: no delimiter.)"""
    data = markdown.encode("utf-8")
    while True:
        events = tuple(pyromark.events_with_range(data.decode("utf-8"), options=STANDARD_OPTIONS))
        if b"$" not in data:
            return data, events
        prices = [
            span
            for payload, span in events
            if isinstance(payload, dict)
            and "InlineMath" in payload
            and data[span["end"] : span["end"] + 1].isdigit()
        ]
        if not prices:
            return data, events
        text = bytearray(data)
        for span in prices:
            text[span["start"]] = text[span["end"] - 1] = ord("%")
        data = bytes(text)


def _characters(data: bytes, length: int, begin: int, end: int) -> tuple[int, int]:
    """A byte range of UTF-8 `data` (`length` characters long) as a character range."""
    if len(data) == length:
        return begin, end
    return len(data[:begin].decode("utf-8")), len(data[:end].decode("utf-8"))


def _escape(markdown: str, verbatim: list[tuple[int, int]]) -> tuple[str, list[int], bool]:
    """`markdown` with `<`, `||` and arithmetic `*` escaped outside `verbatim`; where characters
    were inserted (in the result); whether a `<` that may open an HTML block was escaped."""
    out: list[str] = []
    size = 0
    inserted: list[int] = []
    block_html = False
    cursor = 0
    arithmetic = _arithmetic(markdown, verbatim) if "*" in markdown else set()
    for begin, end in [*verbatim, (len(markdown), len(markdown))]:
        last = cursor
        for match in _LITERAL.finditer(markdown, cursor, begin):
            at = match.start()
            if match[0][0] == "*" and at not in arithmetic:
                continue  # closes emphasis (`the *API*s`): left as it is
            out.append(markdown[last:at])
            size += at - last
            if match[0] == "<":
                out.append("\\<")
                inserted.append(size)
                line = markdown[markdown.rfind("\n", 0, at) + 1 : at]
                block_html = block_html or not line.strip(_LINE_OPENERS)
            elif match[0][0] == "*":
                for _ in match[0]:
                    out.append("\\*")
                    inserted.append(size)
                    size += 2
                last = match.end()
                continue
            else:  # a table's `||` is an empty cell, as `| |` is
                out.append("| " if _table_line(markdown, at) else "|\\")
                inserted.append(size + 1)
            size += 2
            last = match.end()
        out.append(markdown[last:end])
        size += end - last
        cursor = end
    return "".join(out), inserted, block_html


def _arithmetic(markdown: str, verbatim: list[tuple[int, int]]) -> set[int]:
    """Where a run of one or two stars stands between two letters or digits and closes no
    emphasis opened before it in its paragraph (outside `verbatim`): `a*b`, `5*4`, `x**2`."""
    found: set[int] = set()
    starts = [begin for begin, _ in verbatim]
    opened = 0  # emphasis runs open in this paragraph
    after_last = 0
    for run in _STARS.finditer(markdown):
        at, end = run.span()
        i = bisect.bisect_right(starts, at) - 1
        if i >= 0 and verbatim[i][1] > at:
            continue  # in code or math
        if _BLANK_LINE.search(markdown, after_last, at):
            opened = 0
        after_last = end
        before = markdown[at - 1] if at else " "
        after = markdown[end] if end < len(markdown) else " "
        if is_ascii_alnum(before) and is_ascii_alnum(after):
            if len(run[0]) <= 2:
                if opened:
                    opened -= 1  # `the *API*s`: it closes
                else:
                    found.add(at)
            continue
        opens, closes = not after.isspace(), not before.isspace()
        if opens and PYTHON_STARS.match(markdown, end):
            continue  # `f(*args)`: Python's, no emphasis (`f(*args) and 2*3` lost its stars)
        if opens and (not closes or not opened):
            opened += 1
        elif closes and opened:
            opened -= 1
    return found


def is_ascii_alnum(ch: str) -> bool:
    """A letter or digit of the ones arithmetic is written with (`a*b`, `5*4`)."""
    return ch.isascii() and ch.isalnum()


def _table_line(markdown: str, index: int) -> bool:
    return bool(TABLE_ROW.match(markdown, markdown.rfind("\n", 0, index) + 1))


def plain(text: str) -> Part:
    """Text shown as is, no formatting."""
    return strip(text, [])


def styled(text: str, kind: str = "italic") -> Part:
    """Text under one formatting entity (used for notices)."""
    part = strip(text, [])
    return Part(part.text, ({"type": kind, "offset": 0, "length": part.size},) if part.text else ())


def sanitize(text: str, entities: list[Entity]) -> list[Entity]:
    """Keep only entities Telegram accepts: in bounds, known, properly nested.

    Dropped: unknown types, empty or out-of-range spans, text links with unusable URLs, anything
    inside `code`/`pre`, code inside a link, a quote inside a quote, formatting inside the same
    formatting, and spans that partly overlap an earlier one.
    """
    total = utf16_len(text)
    candidates = []
    for e in entities:
        offset, length = int(e.get("offset", -1)), int(e.get("length", 0))
        if e.get("type") not in _ALLOWED_TYPES or offset < 0 or length <= 0:
            continue
        if offset + length > total:
            continue
        if e["type"] == "pre" and "language" in e:
            # A fence's info string past its language (`python title="x.py"`, `js{1,3}`, R
            # Markdown's `{r}`) is no label.
            language = fence_language(str(e["language"]))
            e = {k: v for k, v in e.items() if k != "language"}
            if language:
                e["language"] = language
        if e["type"] == "text_link":
            url = str(e.get("url") or "")
            if " " in url:  # `[docs](<https://example.com/a b>)`: Telegram takes no space
                e = {**e, "url": url.replace(" ", "%20")}
            if not _URL_RE.match(e["url"]):
                continue
        candidates.append(e)
    # Over the same span, code goes inside a quote or formatting: a quote holding only a code
    # block, or bold code (`**`x`**`), lost the quote or the bold as if it were inside the code.
    # A link can neither hold code nor be in it: Telegram drops the code in a link, and over the
    # same span it dropped the link (`[`foo()`](https://…)` lost its address). The link is kept,
    # its text plain.
    candidates.sort(key=lambda e: (e["offset"], -e["length"], _NESTING.get(e["type"], 3)))

    kept: list[Entity] = []
    stack: list[Entity] = []  # open ancestors of the current position
    for e in candidates:
        start, end = e["offset"], e["offset"] + e["length"]
        while stack and stack[-1]["offset"] + stack[-1]["length"] <= start:
            stack.pop()
        if stack:
            parent_end = stack[-1]["offset"] + stack[-1]["length"]
            if end > parent_end:
                continue  # partial overlap
            if any(p["type"] in _LEAF_TYPES for p in stack):
                continue
            if e["type"] in _LEAF_TYPES and any(p["type"] == "text_link" for p in stack):
                continue
            if e["type"] in _FORMATTING_TYPES and any(p["type"] == e["type"] for p in stack):
                continue  # (adds nothing: `# <u>Title</u>`, a heading underlined already)
            if e["type"] in _QUOTE_TYPES and any(p["type"] in _QUOTE_TYPES for p in stack):
                continue
        kept.append(e)
        stack.append(e)
    return kept


def strip(text: str, entities: list[Entity], *, start: int | None = None) -> Part:
    """Remove leading/trailing whitespace as Telegram does (invisible characters such as a
    zero-width space included), moving and clipping entities. With `start`, what is cut from
    the beginning is only that many characters."""
    end = len(text)
    if start is None:
        start = 0
        while start < end and _blank(text[start]):
            start += 1
    while end > start and _blank(text[end - 1]):
        end -= 1
    if (start, end) == (0, len(text)):
        return Part(text, tuple(entities))
    if start == end:
        return Part("", ())
    stripped = text[start:end]
    head = utf16_len(text[:start])
    size = utf16_len(stripped)
    out: list[Entity] = []
    for e in entities:
        begin = max(e["offset"] - head, 0)
        finish = min(e["offset"] + e["length"] - head, size)
        if finish > begin:
            out.append({**e, "offset": begin, "length": finish - begin})
    return Part(stripped, tuple(out))


def _blank(char: str) -> bool:
    return char.isspace() or char in _INVISIBLE


def fence_language(info: str) -> str | None:
    """The language a code fence's info string names, for the block's label: what comes past it
    (`python title="x.py"`, `js{1,3}`) is no label, nor is a Pandoc `{#id}`."""
    if "{" in info and (pandoc := _PANDOC_CLASS.match(info.strip())):
        return pandoc[1]
    language = _LANGUAGE.match(info)
    return language[1] if language and not language[1].startswith("#") else None
