"""Splitting a growing Markdown answer into parts that each fit one Telegram message.

Only the last ("open") part is re-rendered as the answer grows: once a part is cut off it is frozen,
so the cost of a tick grows with the open part, not with the whole answer. While streaming, the
open part's blocks before its last blank line are rendered once too, so a tick renders only the
block being written (a 4,000-character Markdown answer streamed in 24 ticks: 8 ms of rendering,
was 24).

Cuts prefer a paragraph break (or the start of a code block, so a code block that fits a message
is not split), then a line break, then a space. A code block longer than a message is cut at a
line, closed at the end of one part and reopened with its language at the start of the next (one
in a quote, in the quote; one in a list item, at its indentation, or dedented if that is four
columns or more, which at a part's start would make an indented code block); a table is cut
between rows, and the next part repeats its header. Emphasis, strikethrough or inline code open
at a cut inside a paragraph is closed and reopened the same way.
"""

from __future__ import annotations

import bisect
import math
import re
import unicodedata
from dataclasses import dataclass
from typing import Protocol

from bot.streaming.code import CLOSING_FENCE, Fences, container, fence_map, open_fence_at
from bot.streaming.render import TABLE_ROW, Part, as_meant, lead_line, pre_blocks, render
from bot.streaming.tail import open_emphasis, reopening, settle

TELEGRAM_LIMIT = 4096
# Room kept free in every part for the streaming cursor.
PART_LIMIT = TELEGRAM_LIMIT - 6
_MIN_FILL = 0.25  # a preferred cut must fill at least this much of a part, else a finer one is used

_LINK = re.compile(r"!?\[[^\]\n]{1,500}\]\([^)\s]{1,2000}\)")
_PARTIAL_FENCE = re.compile(r"\n(?:[ \t]*>)*[ \t]*(?:`{1,}|~{1,})[ \t]*$")
_OPENER = re.compile(r"((?:[ \t]*>)*[ \t]*)(`{3,}|~{3,})")  # a fence: what is before it, itself
# Chinese and Japanese write no spaces: a cut between words goes after their punctuation.
_CJK_BREAKS = frozenset("。！？；，、：）」』】》")
_DEFINITION = re.compile(r"^ {0,3}\[[^\]\n]+\]:", re.MULTILINE)
_HEADING = re.compile(r" {0,3}#{1,6}(?:[ \t]|$)")
_LIST_ITEM = re.compile(r" {0,3}(?:[-+*]|\d{1,9}[.)])(?:\s|$)")
_DELIMITER_ROW = re.compile(r" {0,3}\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*\r?\n?$")


class Renderer(Protocol):
    def __call__(self, markdown: str, *, keep_indent: bool = False) -> Part: ...


@dataclass(frozen=True, slots=True)
class _Cut:
    at: int  # index into the open source
    close: str  # appended to the part before the cut ("\n```" when inside a code block)
    reopen: str  # put before the rest ("```lang\n" when inside a code block)
    dedent: int = 0  # columns taken off the rest's code lines (a code block reopened less deep)


class Segmenter:
    """Turns successive snapshots of one answer's Markdown into Telegram-sized parts.

    Snapshots must only grow (each extends the previous one), as a streamed answer does.
    """

    def __init__(self, limit: int = PART_LIMIT, renderer: Renderer = render) -> None:
        self.limit = limit
        self._render = renderer
        self.frozen: list[Part] = []
        self._start = 0  # where the open part begins in the source
        self._prefix = ""  # reopened code fence that the open part starts with
        # Columns taken off the open part's lines, to the end of the list items whose code
        # blocks were reopened less deep (one width per item, the innermost last).
        self._dedent: tuple[int, ...] = ()
        self._last: tuple[str, bool, list[Part]] | None = None
        # While streaming: the open part's blocks before a blank line, rendered once (where
        # they end in the open source, and how they render), and the last blank line looked at.
        self._head: tuple[int, Part] | None = None
        self._tried = 0

    @property
    def open_from(self) -> int:
        """Where the open part begins in the source: what comes before is in frozen parts."""
        return self._start

    def parts(self, source: str, *, streaming: bool = False) -> list[Part]:
        """All parts for this snapshot: the frozen ones, then the open one (if it has text).

        `streaming`: an intermediate state, whose unfinished last paragraph is settled (see
        `bot.streaming.tail`). The same snapshot asked for again is not rendered again.
        """
        if self._last is not None and self._last[:2] == (source, streaming):
            return list(self._last[2])
        while True:
            at_line_start = self._start == 0 or source[self._start - 1] == "\n"
            rest, removed, dedented_to = _dedented(
                source[self._start :], self._dedent, at_line_start, in_code=bool(self._prefix)
            )
            open_source = self._prefix + rest
            part = self._open_part(open_source, streaming)
            if part.size <= self.limit:
                parts = [*self.frozen, part] if part.text else list(self.frozen)
                self._last = (source, streaming, parts)
                return list(parts)
            cut = self._closing_inline(open_source, self._find_cut(open_source))
            self.frozen.append(self._render(_frozen(_before(open_source, cut))))
            at = cut.at - len(self._prefix)
            self._start += at + _removed_before(at, removed)
            self._prefix = cut.reopen
            # Cut again inside a list item reopened less deep: the rest of it still needs it.
            items = self._dedent[: _depth_at(at, removed, len(self._dedent))]
            if at >= dedented_to:
                items = ()
            if cut.dedent:  # (measured on the text as dedented)
                items = (*items, (items[-1] if items else 0) + cut.dedent)
            self._dedent = items
            self._head, self._tried = None, 0

    def _open_part(self, open_source: str, streaming: bool) -> Part:
        """The open part rendered. While streaming, its unfinished last paragraph is settled, and
        what comes before its last blank line is rendered once, not at every tick: a tick costs
        what the last block costs, however long the part has grown."""
        if not streaming:
            return self._render(open_source)
        # (Those of list items and quotes too: a blank line in one is in code as well.)
        fences = fence_map(open_source)
        in_code = bool(open_fence_at(len(open_source), fences))

        def shown(markdown: str) -> str:
            if in_code:  # a closing fence being written would show in the code as a stray `
                return _PARTIAL_FENCE.sub("", markdown)
            return settle(markdown)

        # A link definition (`[1]: https://…`) changes how the blocks before it render.
        defined = "]:" in open_source and _DEFINITION.search(open_source)
        if not self._prefix and not defined:
            self._extend_head(open_source, fences)
        if self._head is None or defined:
            return self._render(shown(open_source))
        at, head = self._head
        # Joined after the head, a block keeps the indentation of a code block's first line.
        tail = self._render(shown(open_source[at:].lstrip("\n")), keep_indent=True)
        part = head.plus(tail) if tail.text else head
        return lead_line(part.text, list(part.entities)) if part.text[:1].isspace() else part

    def _extend_head(self, source: str, fences: Fences) -> None:
        """Add the blocks up to the last blank line to the rendered head, once the block after
        it has begun (its first line tells what it is) and cannot change how they render: not
        inside a code block (HTML's `<pre>` too), not a list item or an indented line (a list's
        items, or an item and its continuation, render differently together than apart), not
        after a table."""
        at = source.rfind("\n\n")
        if at <= self._tried:
            return
        rest = source[at:].lstrip("\n")
        if " " not in rest.split("\n", 1)[0] and "\n" not in rest:
            return  # `1` may become `1.`: not known yet
        self._tried = at
        # (The blank line's own end, `at + 2`: a fence closing on the line before it counts.)
        if rest[0].isspace() or _LIST_ITEM.match(rest) or open_fence_at(at + 2, fences):
            return
        if pre_blocks(source[:at], open_to_come=True)[1]:
            return
        if source[source.rfind("\n", 0, at) + 1 :].lstrip().startswith("|"):
            # A table's last row is padded when text follows it. Any indent, unlike TABLE_ROW:
            # a table in a list item is indented as deep as the item's text.
            return
        start, head = self._head or (0, Part(""))
        done = source[start:at].lstrip("\n")
        if "[^" in done or "][" in done:  # as `settle` shows them (definitions are to come)
            done = as_meant(done, links_to_come=True, notes_to_come=True)
        block = self._render(done, keep_indent=True)
        self._head = (at, head.plus(block) if block.text else head)

    def _closing_inline(self, source: str, cut: _Cut) -> _Cut:
        """A cut between two words must not leave emphasis or strikethrough half open: both
        halves would show raw `**`. The cut moves before where it opened, if the part then
        still fills enough; else (a bold sentence longer than a message) the part closes it
        and the next one opens it again, if the paragraph closes it later, as far as it is
        written (a `*args` that nothing closes stays as it is, and while streaming the end of
        a long sentence is often not written yet). Not in a code block of a list item or a
        quote, and not if the closed part would not fit."""
        if cut.close or cut.reopen or cut.at <= 0 or source[cut.at - 1] == "\n":
            return cut  # in a code block, between a table's rows, or at a line's start
        closers, opened = open_emphasis(source[: cut.at])
        if not closers or open_fence_at(cut.at, fence_map(source[: cut.at])):
            return cut
        if opened > len(self._prefix) and source[opened - 1] in " \t":
            before = _Cut(opened, "", "")
            if self._fits(source, before) >= self.limit * _MIN_FILL:
                return before
        end = source.find("\n\n", cut.at)
        if open_emphasis(source[: len(source) if end < 0 else end])[0]:
            return cut  # not closed by the paragraph's end as far as written: maybe never
        closed = _Cut(cut.at, closers, reopening(closers))
        return closed if self._fits(source, closed) >= 0 else cut

    # -- choosing where to cut -------------------------------------------------------------------

    def _fits(self, source: str, cut: _Cut) -> int:
        """Rendered size of the part this cut would make, or -1 if too big or empty."""
        part = self._render(_before(source, cut))
        return part.size if part.text and part.size <= self.limit else -1

    def _find_cut(self, source: str) -> _Cut:
        floor = len(self._prefix) + 1
        paragraphs, lines, words, in_headings = _candidates(source, floor)
        for level in (paragraphs, lines, words):
            best = self._largest_fitting(source, level)
            if best is not None and self._fits(source, best) >= self.limit * _MIN_FILL:
                return _in_code_between_blocks(source, lines, best, floor) if best.close else best
        for level in (paragraphs, lines, words):  # nothing fills enough: take any that fits
            best = self._largest_fitting(source, level)
            if best is not None:
                return best
        # A heading longer than a part: between its words, rather than in one (or in its code).
        best = self._largest_fitting(source, sorted([*words, *in_headings], key=lambda c: c.at))
        return best if best is not None else self._hard_cut(source, floor)

    def _largest_fitting(self, source: str, cuts: list[_Cut]) -> _Cut | None:
        """Binary search: rendered size grows with the cut position."""
        lo, hi, best = 0, len(cuts) - 1, None
        while lo <= hi:
            mid = (lo + hi) // 2
            if self._fits(source, cuts[mid]) >= 0:
                best, lo = cuts[mid], mid + 1
            else:
                hi = mid - 1
        return best

    def _hard_cut(self, source: str, floor: int) -> _Cut:
        """No boundary fits: cut inside a word, still closing an open code block."""
        fences = fence_map(source)
        lo, hi, best = floor, len(source) - 1, floor
        while lo <= hi:
            mid = (lo + hi) // 2
            cut = _cut_at(mid, fences, mid_line=source[mid - 1] != "\n")
            if self._fits(source, cut) >= 0:
                best, lo = mid, mid + 1
            else:
                hi = mid - 1
        at = _character_start(source, best, floor)
        return _cut_at(at, fences, mid_line=source[at - 1] != "\n")


def _in_code_between_blocks(source: str, lines: list[_Cut], best: _Cut, floor: int) -> _Cut:
    """A cut in a code block moved back, within the last eighth of the part, to before its least
    indented line (after a blank line, if one is as little indented): between two functions or
    statements rather than inside one. The next part starts less deep, too: Telegram drops the
    spaces a message starts with, and its first line of code lost its indentation."""
    reach = best.at - (best.at - floor) // 8
    i = bisect.bisect_left([cut.at for cut in lines], reach)
    chosen, key = best, _depth_key(source, best.at)
    for cut in lines[i:]:
        if cut.at > best.at:
            break
        if (cut.close, cut.reopen, cut.dedent) == (best.close, best.reopen, best.dedent):
            candidate = _depth_key(source, cut.at)
            if candidate <= key:  # (the later of equals: the part fills more)
                chosen, key = cut, candidate
    return chosen


def _depth_key(source: str, at: int) -> tuple[int, int, int]:
    """How deep the line at `at` is indented (after any quote markers), whether it closes a
    bracket (a part would start with a lone `}`), and whether no blank line is above it: the
    smaller, the better a place to cut before it."""
    end = source.find("\n", at)
    line = source[at:] if end < 0 else source[at:end]
    text = line.lstrip(" \t>")
    if not text.strip():
        return (1 << 30, 1, 1)
    above = source[source.rfind("\n", 0, at - 1) + 1 : at - 1]
    depth = container(line[: len(line) - len(text)])[1]
    return (depth, text[0] in ")]}", 1 if above.strip(" \t>") else 0)


def _frozen(markdown: str) -> str:
    """A part's Markdown as it is sent for good: a link to a definition that a later part holds
    (`[FAQ][faq]`, definitions come at the end) shows as its text, as it did while streaming,
    not raw."""
    return as_meant(markdown, links_to_come=True) if "][" in markdown else markdown


def _before(source: str, cut: _Cut) -> str:
    """The source of the part that ends at `cut`, closed."""
    if cut.close and not cut.close.startswith("\n"):  # inline markers: right after the text
        return source[: cut.at].rstrip() + cut.close
    return source[: cut.at] + cut.close


_ZWJ = "\u200d"


def _joins_the_one_before(char: str) -> bool:
    """Part of the character before it as shown: a combining mark, a variation selector, a
    skin tone, a keycap, an emoji tag, or the zero-width joiner of 👨‍👩‍👧."""
    code = ord(char)
    return (
        char == _ZWJ
        or unicodedata.combining(char) != 0
        or 0xFE00 <= code <= 0xFE0F
        or 0x1F3FB <= code <= 0x1F3FF
        or code == 0x20E3
        or 0xE0020 <= code <= 0xE007F
    )


def _is_flag_half(char: str) -> bool:
    return 0x1F1E6 <= ord(char) <= 0x1F1FF  # regional indicators: two make a flag


def _character_start(source: str, index: int, floor: int) -> int:
    """`index`, or the nearest place before it that does not cut a character as it is shown
    (a family emoji, a flag, a letter with its accents), so no part ends or starts with half
    of one. Never below `floor`."""
    while index > floor and (_joins_the_one_before(source[index]) or source[index - 1] == _ZWJ):
        index -= 1
    halves = 0  # flag halves right before the cut: pairs count from the first of them
    while index - halves > 0 and _is_flag_half(source[index - halves - 1]):
        halves += 1
    if halves % 2 and index - 1 >= floor and _is_flag_half(source[index]):
        index -= 1  # between the two halves of a flag
    return index


def _reopenable(opener: str) -> bool:
    """Whether a code block can be reopened with its opener at the start of a part: not if
    its fence is indented four columns or more (past its quotes' `>`), as in some list items,
    which at a part's start would make it an indented code block with the fence in it."""
    match = _OPENER.match(opener)
    return match is not None and container(match.group(1))[1] < 4


def _cut_at(index: int, fences: Fences, *, mid_line: bool = False) -> _Cut:
    """A cut at `index`; inside a code block, the part closes it and the next one reopens it
    with its language, in the same quotes and at the same indentation, or (a list item's code
    indented four columns or more, as Gemini writes them) at none, the code lines dedented
    up to its closing fence. `mid_line`: the rest of the line goes on in the quotes too."""
    opener = open_fence_at(index, fences)
    match = _OPENER.match(opener)
    if match is None:
        return _Cut(index, "", "")
    before, marker = match.group(1), match.group(2)
    close = "\n" + before + marker
    if container(before)[1] < 4:  # reopenable
        quotes = before if mid_line and ">" in before else ""
        return _Cut(index, close, opener + "\n" + quotes)
    if ">" in before or "\t" in before:
        return _Cut(index, "", "")  # not reopened: shown as the quote's text
    return _Cut(index, close, opener[len(before) :] + "\n", dedent=len(before))


def _dedented(
    text: str, widths: tuple[int, ...], at_line_start: bool, *, in_code: bool
) -> tuple[str, list[tuple[int, int, int]], int]:
    """`text` with leading spaces taken off each line, as many as its list item's width (the
    innermost in `widths`), to the end of the items: a line with text indented less ends the
    innermost (at the top level, `    Then:` would be an indented code block), except in the
    code block reopened at the start (`in_code`), which its closing fence, so dedented,
    closes. Also, for each line dedented: where it starts, the spaces taken off so far, and
    how many items it is in; and where the dedented text ends."""
    if not widths:
        return text, [], len(text)
    items = list(widths)
    out: list[str] = []
    removed: list[tuple[int, int, int]] = []
    taken = pos = 0
    for i, line in enumerate(text.splitlines(keepends=True)):
        if i or at_line_start:
            spaces = len(line) - len(line.lstrip(" "))
            if not in_code and line.strip():
                while items and spaces < items[-1]:
                    items.pop()
                if not items:
                    return "".join(out) + text[pos + taken :], removed, pos
            spaces = min(spaces, items[-1])
            line = line[spaces:]
            taken += spaces
            removed.append((pos, taken, len(items)))
            in_code = in_code and not CLOSING_FENCE.match(line)
        out.append(line)
        pos += len(line)
    return "".join(out), removed, pos


def _removed_before(index: int, removed: list[tuple[int, int, int]]) -> int:
    """How many spaces `_dedented` took off before `index` (a cut at a line's start keeps
    that line's spaces with it)."""
    i = bisect.bisect_left(removed, (index, -1, -1)) - 1
    return removed[i][1] if i >= 0 else 0


def _depth_at(index: int, removed: list[tuple[int, int, int]], depth: int) -> int:
    """How many of the dedented list items the line at `index` is in (`depth` before any)."""
    i = bisect.bisect_right(removed, (index, math.inf, math.inf)) - 1
    return removed[i][2] if i >= 0 else depth


def _tables(source: str, fences: Fences) -> dict[int, str | None]:
    """Line starts inside tables (outside code): the header and delimiter rows that reopen the
    table in the next part if it is cut there (a part starting with bare rows would show them as
    text, pipes and all), or None where no cut may go: between the header and the first row."""
    found: dict[int, str | None] = {}
    lines = source.splitlines(keepends=True)
    pos = i = 0
    while i < len(lines):
        line = lines[i]
        if (
            TABLE_ROW.match(line)
            and i + 1 < len(lines)
            and _DELIMITER_ROW.match(lines[i + 1])
            and not open_fence_at(pos, fences)
        ):
            header = line + lines[i + 1]
            found[pos + len(line)] = None
            pos += len(header)
            found[pos] = None
            i += 2
            first = True
            while i < len(lines) and TABLE_ROW.match(lines[i]):
                if not first:
                    found[pos] = header
                first = False
                pos += len(lines[i])
                i += 1
            continue
        pos += len(line)
        i += 1
    return found


def _candidates(source: str, floor: int) -> tuple[list[_Cut], list[_Cut], list[_Cut], list[_Cut]]:
    """Cut points by preference: paragraph breaks and code-block starts; line breaks; spaces;
    last, spaces in headings. A table longer than a part is cut between rows and reopened with
    its header."""
    fences = fence_map(source)
    openers = {p for p, f in fences if f and _reopenable(f)}
    tables = _tables(source, fences) if "|" in source else {}
    links = _links(source)
    paragraphs: list[_Cut] = []
    lines: list[_Cut] = []
    words: list[_Cut] = []
    in_headings: list[_Cut] = []
    line = 0  # where the current line starts
    heading: int | None = None  # where the last line with text starts, if it is a heading
    in_heading = bool(_HEADING.match(source))  # the current line is one: never cut in it
    text_at = (-1, False)  # the next line with text after a run of blank lines, and if indented
    for i, ch in enumerate(source):
        if ch == "\n":
            if source[line:i].strip():
                heading = line if in_heading else None
            line = i + 1
            in_heading = bool(_HEADING.match(source, line))
        if i < floor:
            continue
        if i in openers:  # a code block starts: before it, or before the heading above it
            at = heading
            if at is None or (at > floor and (not paragraphs or paragraphs[-1].at < at)):
                paragraphs.append(_Cut(i if at is None else at, "", ""))
        if ch == "\n" and i + 1 < len(source):
            if i + 1 in tables:
                header = tables[i + 1]
                if header is not None:
                    lines.append(_Cut(i + 1, "", header))
                continue
            cut = _cut_at(i + 1, fences)
            if text_at[0] < i + 1:
                text_at = _indented_after(source, i + 1)
            if not cut.close and text_at[1]:
                continue  # the next part would start with it: an indented code block
            # Not right under a heading, which would then end one message, its text opening
            # the next.
            if not cut.close and heading is not None:
                continue
            if not cut.close and source[i + 1] == "\n":
                paragraphs.append(_Cut(i + 2, "", "") if i + 2 < len(source) else cut)
            lines.append(cut)
        elif (ch == " " or ch in _CJK_BREAKS) and not _in_link(links, i):
            if not in_heading:
                words.append(_cut_at(i + 1, fences, mid_line=True))
            elif source[line:i].strip(" \t#"):  # (not between its `##` and its text)
                in_headings.append(_cut_at(i + 1, fences, mid_line=True))
    return paragraphs, lines, words, in_headings


def _links(source: str) -> list[tuple[int, int]]:
    """Where links are (`[words](address)`): a cut between a link's words would leave both
    halves raw, `[the` in one message and `docs](https://…)` in the next."""
    return [m.span() for m in _LINK.finditer(source)] if "](" in source else []


def _in_link(links: list[tuple[int, int]], index: int) -> bool:
    i = bisect.bisect_right(links, (index, math.inf)) - 1
    return i >= 0 and links[i][0] < index < links[i][1]


def _indented_after(source: str, index: int) -> tuple[int, bool]:
    """Where the first line with text from `index` on starts, and whether it is indented by
    four columns or more (a nested list's items): at the start of a part it would be an
    indented code block."""
    while index < len(source) and source[index] == "\n":
        index += 1
    return index, source.startswith(("    ", "\t", " \t", "  \t", "   \t"), index)
