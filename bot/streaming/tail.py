r"""The unfinished end of a streaming snapshot, shown as the formatting it is going to be.

A model writes `**bold**` one piece at a time, so a snapshot often ends in `**bol` or in
`[docs](https://exa`. Rendered as it is, that shows raw markers, which turn into formatting a
second later: the text the user is reading jumps. `settle` closes what the last line has opened
(emphasis, strikethrough, inline code) and shows a link being written as its text, so an
intermediate state looks like a prefix of the final one. Only intermediate states are settled:
the final answer is rendered exactly as the model wrote it.

A table is shown once its header is complete, not as raw pipes before; LaTeX math (`\(x^2\)`)
once it is closed, converted, not as raw LaTeX before. HTML's paragraph (`<p>`) is closed as
emphasis is, and HTML's code block (`<pre>`) is code as it is written, as an unclosed fence is.

Only the last paragraph is touched (its lines up to the end): emphasis and links run on across a
paragraph's soft line breaks but cannot cross a block (a list item, a heading), so a marker left
open in an earlier block is the model's, not the stream's. Code blocks are left alone (the
caller checks): an unclosed fence already renders as code to the end.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from bot.streaming.code import code_spans
from bot.streaming.render import (
    ANCHOR,
    ATTRIBUTES,
    IMAGE,
    P_OPEN,
    PYTHON_NAMES,
    PYTHON_STARS,
    TABLE_ROW,
    TAG_NAMES,
    alert_sample,
    as_meant,
    dollar_math,
    escaped,
    first_letter,
    is_ascii_alnum,
    pre_blocks,
)

_TRAILING = "*_~` \t"
_DELIMITER_ROW = re.compile(r" {0,3}\|?[\s:|-]*$")
_LINK_START = re.compile(r"!?\[")
_QUOTE_START = re.compile(r"(?:[ \t]*>)+[ \t]*")
_OPEN_TAG = re.compile(rf"<({'|'.join(TAG_NAMES)})>", re.IGNORECASE)  # as `as_meant` rewrites
# An HTML link's opening tag, whole or being written (not `the <a> tag`, not `b<a holds then`),
# its address after other attributes too (`<a target="_blank" href="…">`): those before it have
# values, or a sentence after `<a` would be taken for them.
_VALUED = r"""(?:[\w:.-]+=(?:"[^"<>\n]*"|'[^'<>\n]*'|[^\s"'<>=`]+)\s+)*"""
_OPEN_ANCHOR = re.compile(
    r"<a(?:"
    rf"\s+{ATTRIBUTES}href=[^<>\n]*>"  # whole
    rf"|\s+{_VALUED}href=[^<>\n]*$"  # being written: its address, or what follows it
    rf"""|\s+{_VALUED}(?:[\w:.-]+(?:=(?:"[^"<>\n]*"?|'[^'<>\n]*'?|[^\s"'<>=`]*))?)?$"""
    r"|\s*$)",
    re.IGNORECASE,
)
_HALF_TAG = re.compile(r"</?([A-Za-z]{0,7})(?:(?<=[A-Za-z])(?:/|\s[^<>\n]*))?$")  # `<br/`
# What `as_meant` rewrites, being written: its tags, a collapsible section's own, a line break,
# and HTML's blocks (a paragraph, a code block).
_HALF_TAG_NAMES = (*TAG_NAMES, "details", "br", "p", "pre")
_PARAGRAPH_OPEN = re.compile(f"^{P_OPEN.pattern}", re.IGNORECASE | re.MULTILINE)
_PARAGRAPH_CLOSE = re.compile(r"\S</p>[ \t]*$", re.IGNORECASE | re.MULTILINE)
_NEXT_PARAGRAPH = re.compile(r"(?<=</p>)[ \t]*<p(?:\s[^<>\n]*)?>[ \t]*$", re.IGNORECASE)
_ITEM_START = re.compile(r"(?:[ \t]*>)*[ \t]*(?:[-+*]|\d{1,9}[.)])[ \t]+")
# A line that is a block of its own: a heading, a fence, a table row, a rule or an underline.
_OWN_BLOCK = r"#{1,6}(?:[ \t]|$)|`{3,}|~{3,}|\||(?:[-*_][ \t]*){3,}$|=+[ \t]*$"
_OWN_BLOCK_LINE = re.compile(rf" {{0,3}}(?:{_OWN_BLOCK})")
# A line that opens a block: a list item, a quote, or one of those.
_BLOCK_LINE = re.compile(rf" {{0,3}}(?:[-+*](?:[ \t]|$)|\d{{1,9}}[.)](?:[ \t]|$)|>|{_OWN_BLOCK})")
# A last line of only a list marker, dashes or equals signs: a list item or a rule still to be
# written, which under a line of text reads as a heading's underline (`Options:\n-` would flash
# as a heading "Options:" until the item's text came); or a heading's `#` before its text.
_BARE_MARKER = re.compile(r"(?:[ \t]*>)*[ \t]*(?:-+|=+|[*+]|\d{1,9}[.)]?|#{1,6})[ \t]*")
# Python's `*args` or `**kwargs` being written (`f(*ar`), not after a letter or digit (`a*ar`:
# arithmetic) or another star.
_PYTHON_NAME_STARTS = "|".join(name[:k] for name in PYTHON_NAMES for k in range(1, len(name)))
_PYTHON_NAME_BEING_WRITTEN = re.compile(rf"(?<![*A-Za-z0-9])\*{{1,2}}(?:{_PYTHON_NAME_STARTS})$")
# A Python dunder's name being written after its `__` (`__ini`), to the end: `render` shows a
# dunder as written, not bold (its `_DUNDER`).
_DUNDER_NAME = re.compile(r"[a-z][a-z0-9_]*")
_SCHEMES = ("https", "mailto")
_SCHEME_STARTS = "|".join(scheme[:k] for scheme in _SCHEMES for k in range(1, len(scheme) + 1))
_SCHEME_BEING_WRITTEN = re.compile(rf"<(?:{_SCHEME_STARTS})$")
_BEFORE_IMAGE = frozenset(("", " ", "\t", "\n", "(", "[", "*", "_", "~", ">"))  # (`!` after it)
_MARKUP = re.compile(r"[\\`*_~\[\]$]")  # what Markdown may read as markup, escaped in an address
_OPEN_AUTOLINK = re.compile(r"<[A-Za-z][A-Za-z0-9+.-]{1,31}:[^\s<>]*$")
_ESCAPE_OR_MARKERS = re.compile(r"\\.|\*+|_+|~+")
_ESCAPE = re.compile(r"\\.", re.DOTALL)
_MATH_MARK = re.compile(r"\\.|\$\$?", re.DOTALL)  # an escape (`\(`, `\$`) or a math delimiter
_MATH_AHEAD = re.compile(r"\\[A-Za-z]|[\^_{}=<>]")
_MATH_ONLY = re.compile(
    r"(?:\\[A-Za-z]+|[\d.,]+|[A-Za-z](?![A-Za-z])|[\s+\-*/=<>^_{}()\[\]|!:;'])*"
)
_NUMBER = re.compile(r"[\d.,]*[ \t]*")
_OPEN_TITLE = re.compile(r" {0,3}\[[^\]\n]+\]:[ \t]*\S+[ \t]+(?:\"[^\"\n]*|'[^'\n]*|\([^)\n]*)$")
# A link's address (`](https://…/_b)`, to one level of parentheses, or `](<…>)`) and an
# autolink (`<https://…>`): no emphasis in either.
_ADDRESS = re.compile(
    r"\]\((?:<[^<>\n]*>|[^\s()<]*(?:\([^\s()]*\)[^\s()]*)*)|<[A-Za-z][A-Za-z0-9+.-]{1,31}:[^\s<>]*>"
)
# LaTeX math closed (dollars' as `render` reads them: `dollar_math`).
_CLOSED_TEX = re.compile(r"\\\(.+?\\\)|\\\[.+?\\\]", re.DOTALL)
_MATH_CLOSER = {"\\(": "\\)", "\\[": "\\]", "$$": "$$", "$": "$"}
_PUNCTUATION = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def settle(markdown: str) -> str:
    """`markdown` (a snapshot outside any code block) with the markers its last paragraph opened
    closed and a link still being written reduced to its text."""
    if "]:" in markdown:
        markdown = _without_open_definition(markdown)
    # HTML's code blocks as the code blocks they show as (what is in them is not to settle);
    # one being written as an open fence is.
    markdown, in_code = pre_blocks(markdown, open_to_come=True)
    if in_code:
        return as_meant(markdown, links_to_come=True, notes_to_come=True)
    if "**" in markdown or "[^" in markdown or "][" in markdown:
        # Bold as it will show (`**注意：**这`), not a new opener; a named footnote's mark, and
        # a link to a definition, as they will show once their definitions come at the end.
        markdown = as_meant(markdown, links_to_come=True, notes_to_come=True)
    if "[!" in markdown:
        markdown = _without_open_alert(markdown)
    ended = _ends_paragraph(markdown)  # a blank line: the paragraph is over
    if ended:
        return _settle(markdown, ended)
    markdown, ended = _without_bare_marker(markdown)
    settled = _settle(markdown, ended)
    if settled == markdown.rstrip():
        return settled
    # What `_settle` holds back may leave a marker bare too (`- $1,000` being written).
    return _without_bare_marker(settled)[0]


_ALERT_LINE = re.compile(r"(?:^|\n)((?:[ \t]*>)+[ \t]*\[![A-Za-z]*\]?[ \t]*)(?=\n|$)")


def _without_open_alert(markdown: str) -> str:
    """`markdown` without GitHub's alert at its end (`> [!NOTE]`) while what its label's
    language is taken from, the start of what it says, is still being written
    (`render.alert_sample`)."""
    alert = next(reversed(list(_ALERT_LINE.finditer(markdown))), None)
    said = markdown[alert.end() :] if alert else ""
    if alert is None or (first_letter(said) and alert_sample(said, complete=False) is not None):
        return markdown
    return markdown[: alert.start(1)]


def _without_open_definition(markdown: str) -> str:
    """`markdown` without a last line that is a link definition whose title is still being
    written (`[d]: https://x.y "Docs ti`): not a definition yet, it would show raw, and so would
    the links to it."""
    start = markdown.rfind("\n", 0, len(markdown.rstrip())) + 1
    return markdown[:start] if _OPEN_TITLE.match(markdown, start) else markdown


def _without_bare_marker(markdown: str) -> tuple[str, bool]:
    """`markdown` without a last line of only a list item's marker (also with the markers its
    text opens with: `- **` would be `-` once they go), and whether it then ends a paragraph.
    Under a line of text, such a line reads as a heading's underline. Only the last line: a
    column of numbers shows."""
    last = markdown.rstrip()
    start = last.rfind("\n") + 1
    bare = last.rstrip(_TRAILING + "$")
    # (Markers its text opens with come after a space: in `0**` the stars close bold.)
    opened = last[len(bare) : len(bare) + 1] in ("", " ", "\t")
    if len(bare) > start and opened and _BARE_MARKER.fullmatch(bare, start):
        return last[:start], _ends_paragraph(last[:start])
    return markdown, False


def _ends_paragraph(markdown: str) -> bool:
    """Whether `markdown` ends in a blank line (and spaces): its last paragraph is over. (Not a
    regular expression anchored at the end: over a long run of blank lines that took a time
    growing with the square of its length.)"""
    end = len(markdown.rstrip())
    return markdown.count("\n", end) >= 2


def _settle(markdown: str, ended: bool) -> str:
    markdown = markdown.rstrip()  # shown without it anyway
    start = markdown.rfind("\n") + 1
    trailing = _TRAILING
    if TABLE_ROW.match(markdown, start):
        header = _table_header(markdown, start)
        if header is not None:
            return markdown[:header].rstrip()
        trailing += "|"  # a row's last pipe, before its next cell is written
    if ended:
        return markdown  # what is open in a finished paragraph, the model left open
    # Emphasis and links run on across the soft line breaks of a paragraph (so a line's end
    # closes nothing: the paragraph may go on).
    start = _paragraph_start(markdown, start)
    # Half a marker (`**bold*`) goes, also when it is left at the end by a link's `[` going.
    line = _held_back(markdown[start:])
    if escaped(line, len(line)):
        line = line[:-1]  # an escape being written (`\(` to come): a lone `\` would flash by
    line = _strip_tail(_link_text(_strip_tail(line, trailing)), trailing)
    return _close_paragraph(markdown[:start] + line + _closers(line))


def _held_back(line: str) -> str:
    """`line` without what is still being written at its end and will show otherwise once it
    is complete (math, a tag, a scheme, an image's `!`, Python's stars)."""
    holds: tuple[Callable[[str], str], ...] = (
        _before_open_math,
        _before_open_tag,
        _before_scheme,
        _before_image,
        _before_python_stars,
    )
    for hold in holds:
        line = hold(line)
    return line


def open_emphasis(markdown: str) -> tuple[str, int]:
    """The emphasis and strikethrough that the paragraph at the end of `markdown` (outside
    code) leaves open, as what closes them, and where the outermost of them opened (-1 if none
    is open, or code is): a message cut there closes them, and the next one opens them again
    (`reopening`), or the cut moves before them."""
    if _ends_paragraph(markdown):
        return "", -1
    end = len(markdown.rstrip())
    line = markdown.rfind("\n", 0, end) + 1
    if TABLE_ROW.match(markdown, line):
        return "", -1
    start = _paragraph_start(markdown[:end], line)
    text = markdown[start:end]
    spans = code_spans(text)
    if spans and spans[-1][1] == len(text) and not _closed(text, spans[-1]):
        return "", -1
    runs = _open_runs(text, _opaque(text, spans))
    return _closing(runs), (start + runs[0][4] if runs else -1)


def reopening(closers: str) -> str:
    """The openers that `closers` (from `open_emphasis`, innermost first) close, outermost
    first: its runs of one character in reverse order."""
    runs = [run[0] for run in re.finditer(r"(.)\1*", closers)]
    return "".join(reversed(runs))


def _paragraph_start(markdown: str, start: int) -> int:
    """Where the paragraph (or list item, or quote) that the line at `start` continues begins:
    back over the lines above it, up to a blank line, a line that opens a block (a list item or
    a quote, taken in), or one that is a block of its own (a heading, a fence, a table row, a
    rule: left out)."""
    while start > 0 and not _BLOCK_LINE.match(markdown, start):
        above = markdown.rfind("\n", 0, start - 1) + 1
        line = markdown[above : start - 1]
        if not line.strip() or _OWN_BLOCK_LINE.match(line):
            break
        start = above
        if _BLOCK_LINE.match(line):
            break
    return start


def _table_header(markdown: str, start: int) -> int | None:
    """Where a table starts whose header is still being written (its header row or delimiter
    row is the last line): shown now, its rows would be raw pipes that rearrange a second later.
    None when the last line is a row of a table that is already shown as one."""
    if start == 0:
        return 0
    above = markdown.rfind("\n", 0, start - 1) + 1
    if not TABLE_ROW.match(markdown, above):
        return start  # the last line is the header row
    if _DELIMITER_ROW.match(markdown[start:]) and (
        above == 0 or not TABLE_ROW.match(markdown, markdown.rfind("\n", 0, above - 1) + 1)
    ):
        return above  # the header row, then the delimiter row being written
    return None


def _strip_tail(line: str, trailing: str) -> str:
    """`line` without the markers (and spaces) it ends with, but an escaped one (`\\*`) or the
    end of a closed code span stays."""
    while line and line[-1] in trailing:
        if escaped(line, len(line) - 1):
            break
        if line[-1] == "`":
            spans = code_spans(line)
            if spans and spans[-1][1] == len(line) and _closed(line, spans[-1]):
                break
        line = line[:-1]
    return line


def _closed(line: str, span: tuple[int, int]) -> bool:
    """Whether the code span ends with its closing backticks (else it runs to the end)."""
    start, end = span
    run = _run_length(line, start)
    return end - start > run and line[end - run : end] == "`" * run


def _run_length(text: str, i: int) -> int:
    end = i
    while end < len(text) and text[end] == text[i]:
        end += 1
    return end - i


def _outside_code(
    matches: Iterable[re.Match[str]], spans: list[tuple[int, int]]
) -> Iterator[re.Match[str]]:
    """The matches (in order) that do not start inside a code span."""
    k = 0
    for match in matches:
        while k < len(spans) and spans[k][1] <= match.start():
            k += 1
        if k == len(spans) or match.start() < spans[k][0]:
            yield match


def _link_text(line: str) -> str:
    """`[text](https://exa` and `[text` at the end of a line become `text`: the link's text is
    shown as it grows, and the link appears when it is complete. So does `<https://exa`, an
    autolink being written (complete, it shows without its brackets), and an image's
    `![text`, after the symbol that it shows before its text."""
    if "<" in line:
        autolink = _OPEN_AUTOLINK.search(line)
        kept = list(_outside_code([autolink], code_spans(line))) if autolink else []
        at = kept[0].start() if kept else -1
        if at >= 0 and line[at - 1 : at] != "\\":  # not escaped, not in code
            # (Its `_` and `*` are no markers: `<https://a.io/_b` opens no emphasis.)
            line = line[:at] + _MARKUP.sub(r"\\\g<0>", line[at + 1 :])
    if "[" not in line:
        return line
    for match in reversed(list(_outside_code(_LINK_START.finditer(line), code_spans(line)))):
        at = match.start()
        before = line[at - 1] if at else ""
        if before == "\\":
            continue
        rest = line[match.end() :]
        close = rest.find("]")
        symbol = IMAGE if match[0][0] == "!" else ""
        if rest.startswith("^"):  # a footnote: `¹` once its `]` comes, nothing before
            return line if close != -1 else line[:at]
        if close == -1 and before == "]":  # `[FAQ][fa`: a link to a definition being written
            first = line.rfind("[", 0, at - 1)
            if (
                first >= 0
                and "]" not in line[first + 1 : at - 1]
                and not (first and _indexed(line[first - 1]))
            ):
                return line[:first] + line[first + 1 : at - 1]
        if before and _indexed(before):
            if not rest:
                return line[:at]  # `Claim[`: a footnote's mark, maybe
            continue  # an index (`dp[i][j`, `data["a"]`): not a link
        start = line.rfind("\n", 0, at) + 1
        if (
            rest.startswith("!")
            and _QUOTE_START.fullmatch(line, start, at)
            and (close == -1 or not any(ch.isalpha() for ch in rest[close + 1 :]))
        ):
            # GitHub's alert being written, `> [!NOTE]`: "ℹ️ Note" to come, once a letter of
            # what it says shows the answer's language (its label is in it).
            return line[:at]
        box, after = (rest, "") if close == -1 else (rest[:close], rest[close + 1 :])
        task = box in ("", " ", "x", "X") and not after.strip()
        if not symbol and task and _ITEM_START.fullmatch(line, start, at):
            return line[:start]  # a task's `- [x]`: ☐ or ✅ to come with its text, not a bullet
        if not symbol and _definition_like(line[start:at], box, after):
            # At a line's start, maybe a link definition being written (`[faq]: `), which
            # shows nothing: nothing until it is known. (An image is neither.)
            return line[:start]
        if close == -1:
            return line[:at] + symbol + rest  # `[text`
        if not after or (after.startswith("(") and _address_open(after)):
            # `[text](https://exa`, or `[text]` that may be about to get its address (if not,
            # as in a citation `[1]`, the brackets come back with the next piece of text).
            return line[:at] + symbol + rest[:close]
        return line  # a complete link, or brackets followed by text
    return line


def _indexed(before: str) -> bool:
    """Whether a `[` after `before` opens no link but an index (`dp[i]`, `data["a"]["b"]`,
    `f(x)[0]`). After a Chinese character it is a link: Chinese text has no spaces."""
    return is_ascii_alnum(before) or before in "])\"'_"


def _definition_like(before: str, label: str, after: str) -> bool:
    """Whether brackets around `label`, after `before` on their line and before `after`, may
    be a link definition being written."""
    return not before.strip(" ") and not after.strip(": \t") and _label_like(label)


def _label_like(text: str) -> bool:
    """Whether `text` (in brackets at a line's start) may be a link definition's label: short,
    of a few words (`[1]`, `[python docs]`), not a remark in brackets being written."""
    return len(text) <= 40 and text.count(" ") <= 2


def _before_open_tag(line: str) -> str:
    """`line` up to an HTML tag still being written, or one whose closing tag is still to come
    (`Press <kbd>Ct`, `H<sub>2`): it shows as what it means once closed (`as_meant`), not with
    its tags first."""
    if "<" not in line:
        return line
    spans = code_spans(line)
    for tag in _OPEN_TAG.finditer(line):
        opened = tag.start()
        if line[tag.end() : tag.end() + 1].isspace():
            continue  # `the <b> tag`: formatting hugs its text (`as_meant`), this is about HTML
        if f"</{tag[1].lower()}>" not in line[opened:].lower() and not any(
            start <= opened < end for start, end in spans
        ):
            return line[:opened]
    for anchor in _OPEN_ANCHOR.finditer(line):  # `<a href="…">text`: a link to come
        opened = anchor.start()
        if "</a>" not in line[opened:].lower() and not any(s <= opened < e for s, e in spans):
            return line[:opened]
    half = _HALF_TAG.search(line)
    if half and any(name.startswith(half[1].lower()) for name in _HALF_TAG_NAMES):
        return line[: half.start()]
    return line


def _before_scheme(line: str) -> str:
    """`line` up to an autolink's `<` and scheme being written (`<http`, outside code): with its
    `:` it shows without its bracket (`_link_text`), as it will once complete; before, the
    bracket would flash by. Only schemes models write in one: a `<` in prose shows at once."""
    return _before_written(line, "<", _SCHEME_BEING_WRITTEN)


def _before_image(line: str) -> str:
    """`line` without a `!` at its end that may open an image (after a space, at a line's
    start, outside code): with its `[` it shows as the image's symbol (`_link_text`). An
    exclamation ending a word shows at once."""
    if not line.endswith("!") or line[-2:-1] not in _BEFORE_IMAGE or escaped(line, len(line) - 1):
        return line
    if any(end == len(line) for _, end in code_spans(line)):
        return line
    return line[:-1]


def _before_python_stars(line: str) -> str:
    """`line` up to Python's `*args` or `**kwargs` being written (`f(*ar`, outside code): until
    its word is complete it may as well open emphasis (`*another*`), and `render` keeps the
    stars of `*args` (`PYTHON_STARS`): neither the stars nor an italic "ar" is to show yet."""
    return _before_written(line, "*", _PYTHON_NAME_BEING_WRITTEN)


def _before_written(line: str, marker: str, being_written: re.Pattern[str]) -> str:
    """`line` up to what `being_written` finds in its last 8 characters (where `marker` is),
    unless escaped or in code. (The last characters only: a tick would search the whole
    paragraph.)"""
    if marker not in line[-8:]:
        return line
    found = being_written.search(line, len(line) - 8)
    if found is None or escaped(line, found.start()):
        return line
    if any(start <= found.start() < end for start, end in code_spans(line)):
        return line
    return line[: found.start()]


def _close_paragraph(markdown: str) -> str:
    """`markdown` (settled) with an HTML paragraph that its last paragraph leaves open closed:
    `<p>` opening a line's text with no `</p>` ending a line after it, which `as_meant` shows
    as its text once closed. Without the `<p>` if no text follows it yet."""
    if "<" not in markdown:
        return markdown
    markdown = _NEXT_PARAGRAPH.sub("", markdown)  # (`<p>a</p><p>`: the next one's text to come)
    opened = next(
        reversed(list(_PARAGRAPH_OPEN.finditer(markdown, markdown.rfind("\n\n") + 1))), None
    )
    if opened is None or _PARAGRAPH_CLOSE.search(markdown, opened.end() - 1):
        return markdown
    after = markdown[opened.end() :]
    if not after.strip():
        return markdown[: opened.end(1)].rstrip()
    if after[0].isspace():
        return markdown  # `<p> tag`, about HTML; or a `<p>` line, which `as_meant` blanks
    return markdown.rstrip() + "</p>"


def _address_open(after: str) -> bool:
    """Whether a link's `(address` is still being written: its parentheses are not balanced
    yet (`(https://en.wikipedia.org/wiki/Python_(language)` is one `)` short), or its title
    is (`(https://a.io "Title`), or its `<` (`(<https://example.com/a b`, the form for an
    address with spaces). Words after a space: no link, as written."""
    if after.startswith("(<"):
        end = after.find(">", 2)
        line_end = after.find("\n", 2)
        if line_end >= 0 and (end < 0 or line_end < end):
            return False  # no line break in `<…>`: no link, as written
        if end < 0:
            return True
        rest = after[end + 1 :].lstrip()
        return not rest or (rest[0] in "\"'" and ")" not in rest[1:])
    depth = 0
    escape = False
    for i, ch in enumerate(after):
        if escape:
            escape = False
        elif ch == "\\":
            escape = True
        elif ch.isspace():  # an address ends here: a title may follow, or it is no link
            title = after[i:].lstrip()
            return not title or (title[0] in "\"'" and ")" not in title[1:])
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if not depth:
                return False
    return True


def _before_open_math(line: str) -> str:
    r"""`line` up to LaTeX math it leaves open (`\(x^2` before its `\)`, a `\[` block before its
    `\]`, `$\pi r^2` before its `$`, a `$$` block before its `$$`), outside inline code. Shown,
    it would be raw LaTeX that turns into its Unicode form once closed
    (`bot.streaming.render.tex_math`); left out, it appears converted. A `$` before a digit or
    a space is not held back: `$5` is a price far more often than math, unless what follows it
    on its line is math (`$0 < x < 2`, `$1 \pm \sqrt{3}`, as DeepSeek writes), before another
    price (`$5 < $10`). A `$` closing it at the very end does not yet: before a digit, both
    `$` are prices (`$5 < b **$5**`)."""
    if "\\(" not in line and "\\[" not in line and "$" not in line:
        return line
    opened: re.Match[str] | None = None
    for mark in _outside_code(_MATH_MARK.finditer(line), code_spans(line)):
        token, after = mark[0], line[mark.end() : mark.end() + 1]
        if opened is None:
            if token in ("\\(", "\\[", "$$") or (
                token == "$"
                and not after.isspace()
                and (not after.isdigit() or _math_ahead(line, mark.end()))
            ):
                opened = mark
        elif token == _MATH_CLOSER.get(opened[0]) and (
            token != "$" or (not line[mark.start() - 1].isspace() and mark.end() < len(line))
        ):
            opened = None
    return line if opened is None else line[: opened.start()]


def _math_ahead(line: str, at: int) -> bool:
    r"""Whether the text from `at` to its line's end, or to the next `$`, is math: a LaTeX
    command, a sub- or superscript, braces or a relation among numbers, one-letter variables
    and operators only (`0 < x < 2`, `1 \pm \sqrt{3}`; not `1,000 per year`, `5 = 3 items`),
    and that `$` no price's (`$5 < $10`). Or a number still being written at the very end,
    which may turn out to be either."""
    end = line.find("\n", at)
    if end < 0 and _NUMBER.fullmatch(line, at):
        return True
    rest = line[at:] if end < 0 else line[at:end]
    inside, dollar, after = rest.partition("$")
    price = dollar and inside[-1:].isspace() and after[:1].isdigit()
    return bool(_MATH_AHEAD.search(inside) and _MATH_ONLY.fullmatch(inside)) and not price


def _closers(line: str) -> str:
    """What closes the emphasis, strikethrough and inline code left open at the end of `line`."""
    spans = code_spans(line)
    closers = _emphasis_closers(line, _opaque(line, spans))
    if spans and spans[-1][1] == len(line) and not _closed(line, spans[-1]):
        return "`" * _run_length(line, spans[-1][0]) + closers
    return closers


def _opaque(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """`spans` (code) with what else in `text` holds no markers, outside them, in order: closed
    math (`$\\vec{v}_d$` opens no emphasis: its `_` had a stray `_` closing it at the end), as
    `render` reads it (`**$20/month** … is $40` is none: its `**` closes), links' addresses
    (nor does `https://a.io/_b`) and an HTML link's tags (`target="_blank"`)."""
    found: list[tuple[int, int]] = []
    if "$" in text:
        found += dollar_math(text)
    if "\\(" in text or "\\[" in text:
        found += [match.span() for match in _CLOSED_TEX.finditer(text)]
    if "](" in text or "<" in text:
        found += [match.span() for match in _ADDRESS.finditer(text)]
    if "<" in text:
        for match in ANCHOR.finditer(text):
            found += [(match.start(), match.start(3)), (match.end(3), match.end())]
    if not found:
        return spans
    kept = list(spans)
    for begin, stop in sorted(found):
        if not any(start < stop and begin < end for start, end in kept):
            kept.append((begin, stop))
    return sorted(kept)


def _emphasis_closers(text: str, spans: list[tuple[int, int]]) -> str:
    """Delimiter runs (`*`, `_`, `~~`) opened and not closed in `text`, closed innermost first."""
    return _closing(_open_runs(text, spans))


def _closing(runs: list[list[Any]]) -> str:
    """What closes the open runs (`_open_runs`), innermost first."""
    return "".join(entry[0] * entry[1] for entry in reversed(runs))


def _open_runs(text: str, spans: list[tuple[int, int]]) -> list[list[Any]]:
    """Delimiter runs (`*`, `_`, `~~`) opened and not closed in `text`, outermost first:
    [character, how many of it are still open, its run's length, whether it could close too,
    where it is].

    CommonMark's flanking rules and its "rule of 3" (`**a*b` leaves the `*` literal), with two
    liberties: a run closes whenever the character before it is not a space, and `*` between
    two letters or digits (`a*b`, `2**10`) does not open: it is arithmetic far more often than
    emphasis; nor does Python's `*args` or `**kwargs`, or a dunder being written (`__ini`)."""
    stack: list[list[Any]] = []
    if "*" not in text and "_" not in text and "~" not in text:
        return stack
    if spans:  # code is all backticks to the scan below: no markers, same neighbours
        pieces, pos = [], 0
        for start, end in spans:
            pieces += [text[pos:start], "`" * (end - start)]
            pos = end
        text = "".join([*pieces, text[pos:]])
    for marker in _ESCAPE_OR_MARKERS.finditer(text):
        ch, i, run = marker[0][0], marker.start(), len(marker[0])
        if ch == "\\":
            continue
        before = text[i - 1] if i > 0 else " "
        after = text[i + run] if i + run < len(text) else " "
        if ch == "~" and run != 2:
            continue
        left = not after.isspace() and (
            not _is_punctuation(after) or before.isspace() or _is_punctuation(before)
        )
        right = not before.isspace() and (
            not _is_punctuation(before) or after.isspace() or _is_punctuation(after)
        )
        can_open, can_close = left, not before.isspace()
        both = left and right
        if ch == "_":
            can_open = left and (not right or _is_punctuation(before))
            can_open = can_open and not _dunder_being_written(text, i, run)
            can_close = can_close and (after.isspace() or _is_punctuation(after))
            both = can_open and can_close
        elif ch == "*" and is_ascii_alnum(before) and is_ascii_alnum(after):
            can_open = False
        elif ch == "*" and run <= 2 and PYTHON_STARS.match(text, i + run):
            can_open = False  # `f(*args, **kwargs)`: Python's, not emphasis to close for it
        elif ch == "*" and run == 2 and _is_punctuation(after) and _is_cjk_letter(before):
            can_open = True  # `依赖**（可选）**`: `as_meant` shows it bold once it is closed
        opener = _opener(stack, ch, run, both) if can_close else None
        if opener is not None:
            del stack[opener + 1 :]  # crossed markers: CommonMark leaves the inner ones literal
            left_over = run
            while left_over and stack and stack[-1][0] == ch:  # `***a** b*`: `**` closes two
                used = min(left_over, stack[-1][1])
                stack[-1][1] -= used
                left_over -= used
                if not stack[-1][1]:
                    stack.pop()
            continue
        if can_open:
            stack.append([ch, min(run, 3), run, both, i])
    return stack


def _dunder_being_written(text: str, i: int, run: int) -> bool:
    """Whether the `__` at `i` opens a Python dunder whose name runs to the end of `text`
    (`__ini`, to be `__init__`): no emphasis to close for it, its closing `__` is to come."""
    before = text[i - 1] if i else " "
    return (
        run == 2
        and not (before.isalnum() or before == "\\")
        and bool(_DUNDER_NAME.fullmatch(text, i + run))
    )


def _opener(stack: list[list[Any]], ch: str, run: int, both: bool) -> int | None:
    """The open run (its index in `stack`) that a run of `run` × `ch` closes, if any: the
    nearest one of the same character, skipping those the rule of 3 forbids (when either run
    could open and close, their lengths may not add up to a multiple of 3 unless both are)."""
    for index in range(len(stack) - 1, -1, -1):
        entry = stack[index]
        if entry[0] != ch:
            continue
        multiple = (entry[2] + run) % 3 == 0 and (entry[2] % 3 or run % 3)
        if ch != "~" and (both or entry[3]) and multiple:
            continue
        return index
    return None


def _is_cjk_letter(ch: str) -> bool:
    """A letter of a script written without spaces (Chinese, Japanese)."""
    return not ch.isascii() and unicodedata.category(ch) == "Lo"


def _is_punctuation(ch: str) -> bool:
    if ch.isascii():
        return ch in _PUNCTUATION
    return unicodedata.category(ch)[0] in "PS"
