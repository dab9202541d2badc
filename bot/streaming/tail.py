"""The unfinished end of a streaming snapshot, shown as the formatting it is going to be.

A model writes `**bold**` one piece at a time, so a snapshot often ends in `**bol` or in
`[docs](https://exa`. Rendered as it is, that shows raw markers, which turn into formatting a
second later: the text the user is reading jumps. `settle` closes what the last line has opened
(emphasis, strikethrough, inline code) and shows a link being written as its text, so an
intermediate state looks like a prefix of the final one. Only intermediate states are settled:
the final answer is rendered exactly as the model wrote it.

Only the last line is touched: emphasis cannot cross a block (a list item, a heading), and a
marker left open on an earlier line is the model's, not the stream's. Code blocks are left
alone (the caller checks): an unclosed fence already renders as code to the end.
"""

from __future__ import annotations

import re

_TRAILING = "*_~` \t"
_LINK_START = re.compile(r"!?\[")
_PUNCTUATION = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def settle(markdown: str) -> str:
    """`markdown` (a snapshot outside any code block) with its last line's open markers closed
    and a link still being written reduced to its text."""
    start = markdown.rfind("\n") + 1
    # Half a marker (`**bold*`) goes, also when it is left at the end by a link's `[` going.
    line = _link_text(markdown[start:].rstrip(_TRAILING)).rstrip(_TRAILING)
    return markdown[:start] + line + _closers(line)


def _code_spans(line: str) -> list[tuple[int, int]]:
    """Inline code spans as (start, end) ranges; an unclosed one runs to the end of the line."""
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(line):
        if line[i] == "\\":
            i += 2
            continue
        if line[i] != "`":
            i += 1
            continue
        run = _run_length(line, i)
        close = line.find("`" * run, i + run)
        while close != -1 and _run_length(line, close) != run:  # a longer run does not close
            close = line.find("`" * run, close + _run_length(line, close))
        end = len(line) if close == -1 else close + run
        spans.append((i, end))
        i = end
    return spans


def _run_length(text: str, i: int) -> int:
    end = i
    while end < len(text) and text[end] == text[i]:
        end += 1
    return end - i


def _inside(i: int, spans: list[tuple[int, int]]) -> bool:
    return any(start <= i < end for start, end in spans)


def _link_text(line: str) -> str:
    """`[text](https://exa` and `[text` at the end of a line become `text`: the link's text is
    shown as it grows, and the link appears when it is complete."""
    spans = _code_spans(line)
    for match in reversed(list(_LINK_START.finditer(line))):
        at = match.start()
        if _inside(at, spans) or (at > 0 and line[at - 1] == "\\"):
            continue
        rest = line[match.end() :]
        close = rest.find("]")
        if close == -1:
            return line[:at] + rest  # `[text`
        after = rest[close + 1 :]
        if not after or (after.startswith("(") and ")" not in after):
            # `[text](https://exa`, or `[text]` that may be about to get its address (if not,
            # as in a citation `[1]`, the brackets come back with the next piece of text).
            return line[:at] + rest[:close]
        return line  # a complete link, or brackets followed by text
    return line


def _closers(line: str) -> str:
    """What closes the emphasis, strikethrough and inline code left open at the end of `line`
    (which does not end in a backtick: an inline code span running to its end is unclosed)."""
    spans = _code_spans(line)
    if spans and spans[-1][1] == len(line):
        opener = spans[-1][0]
        return "`" * _run_length(line, opener) + _emphasis_closers(line[:opener])
    return _emphasis_closers(line)


def _emphasis_closers(text: str) -> str:
    """Delimiter runs (`*`, `_`, `~~`) opened and not closed in `text`, closed innermost first.

    CommonMark's flanking rules, simplified: a run opens if the next character is not a space
    (for `_`, only at the start of a word), and closes the innermost open run of its character
    if the previous one is not a space."""
    stack: list[str] = []
    spans = _code_spans(text)
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch not in "*_~" or _inside(i, spans):
            i += 1
            continue
        run = _run_length(text, i)
        before = text[i - 1] if i > 0 else " "
        after = text[i + run] if i + run < len(text) else " "
        i += run
        if ch == "~" and run != 2:
            continue
        marker = ch * min(run, 3)
        can_close = not before.isspace()
        can_open = not after.isspace()
        if ch == "_":
            can_open = can_open and (before.isspace() or before in _PUNCTUATION)
            can_close = can_close and (after.isspace() or after in _PUNCTUATION)
        if can_close and any(open_[0] == ch for open_ in stack):
            while stack and stack[-1][0] != ch:
                stack.pop()  # crossed markers: CommonMark leaves the inner one literal
            if stack:
                stack.pop()
            continue
        if can_open:
            stack.append(marker)
    return "".join(reversed(stack))
