"""Where the code is in Markdown source: fenced code blocks and inline code spans.

Everything that rewrites or cuts Markdown must leave code alone (`**kwargs` is not bold, a cut
inside a code block must close and reopen it), so they all ask here.
"""

from __future__ import annotations

import bisect
import re

# CommonMark: a backtick fence's info string has no backtick (```ls -la``` is inline code), and
# a closing fence has nothing after it but spaces (```python inside a code block is code). Both
# may stand in a list item or a quote (indented, or after `>`), where models put them too.
_FENCE = re.compile(r"^(?:[ \t]*>)*[ \t]*(`{3,}(?=[^`]*$)|~{3,})[ \t]*([^\s`]*)")
_CLOSING = re.compile(r"^(?:[ \t]*>)*[ \t]*(`{3,}|~{3,})\s*$")
CLOSING_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*$")  # one that closes a top-level block
_QUOTE_MARKERS = re.compile(r"(?:[ \t]{0,3}>)+")
_BACKTICKS = re.compile(r"`+")
_ESCAPE_OR_BACKTICKS = re.compile(r"\\.|`+")

Fences = list[tuple[int, str]]


def fence_map(source: str) -> Fences:
    """Positions where a code block opens or closes: [(index, opener or "")], the opener being
    its fence line up to the language (`  ```python`, `> ```sh`). A block is closed by a fence
    in as many quotes and indented at most three columns more than its own (an indented
    ``` in a code block is a line of it: a README's list item's code); one in a quote ends
    where the quote does, closed or not."""
    events: Fences = []
    if "`" not in source and "~" not in source:
        return events
    marker: str | None = None  # the open block's fence
    depth = indent = 0  # how many quotes the open block is in, and its fence's indentation
    pos = 0
    for line in source.splitlines(keepends=True):
        if marker is not None:
            match = _CLOSING.match(line)
            quotes, columns = container(line[: match.start(1)]) if match else (-1, 0)
            if (
                match
                and match.group(1)[0] == marker[0]
                and len(match.group(1)) >= len(marker)
                and quotes == depth
                and columns <= indent + 3
            ):
                marker = None
                events.append((pos + len(line), ""))
                pos += len(line)
                continue
            if depth and _quote_depth(line) < depth:
                marker = None
                events.append((pos, ""))
        if marker is None:
            match = _FENCE.match(line)
            if match:
                marker = match.group(1)
                depth, indent = container(line[: match.start(1)])
                events.append((pos, line[: match.start(1)] + marker + match.group(2)))
        pos += len(line)
    return events


def _quote_depth(line: str) -> int:
    match = _QUOTE_MARKERS.match(line)
    return match.group().count(">") if match else 0


def container(before: str) -> tuple[int, int]:
    """What a fence line has before its fence: how many quotes, and how many columns of
    indentation after them (the space after a `>` is the quote's)."""
    _, marker, indent = before.rpartition(">")
    if marker and indent.startswith(" "):
        indent = indent[1:]
    return before.count(">"), len(indent.expandtabs(4))


def code_blocks(source: str) -> list[tuple[int, int]]:
    """Where the code blocks are, fences included: [(start, end)], in order."""
    fences = fence_map(source)
    opens = [at for at, opener in fences if opener]
    closes = [at for at, opener in fences if not opener] + [len(source)]
    return list(zip(opens, closes[: len(opens)], strict=True))


def open_fence_at(index: int, fences: Fences) -> str:
    """The fence opener that is open at `index` ("" when outside code): a block opening at
    `index` is not open yet there, one closing at `index` (its fence line ends there) is over."""
    i = bisect.bisect_right([p for p, _ in fences], index) - 1
    if i >= 0 and fences[i][0] == index and fences[i][1]:
        i -= 1
    return fences[i][1] if i >= 0 else ""


def code_spans(line: str, *, unclosed: bool = True) -> list[tuple[int, int]]:
    """Inline code spans as (start, end) ranges. `unclosed`: a run of backticks that nothing
    closes is code to the end of the line (while streaming, its end is still to come); else
    it is text, as CommonMark reads it in a finished answer."""
    spans: list[tuple[int, int]] = []
    if "`" not in line:
        return spans
    pos = 0
    while opener := _ESCAPE_OR_BACKTICKS.search(line, pos):
        pos = opener.end()
        if opener[0][0] == "\\":
            continue
        # Closed by the next run of as many backticks (backslashes do not escape inside).
        closer = next((c for c in _BACKTICKS.finditer(line, pos) if c[0] == opener[0]), None)
        if closer is None and not unclosed:
            continue
        pos = len(line) if closer is None else closer.end()
        spans.append((opener.start(), pos))
    return spans
