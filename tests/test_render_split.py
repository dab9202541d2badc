"""Rendering and splitting: every part fits a message, entities are valid, nothing is lost."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.streaming.code import fence_map, open_fence_at
from bot.streaming.render import Part, render, sanitize, strip, utf16_len
from bot.streaming.split import (
    _PARTIAL_FENCE,
    PART_LIMIT,
    Segmenter,
)
from bot.streaming.tail import settle

_NESTABLE = {"code", "pre"}
_QUOTES = {"blockquote", "expandable_blockquote"}


def assert_valid(part: Part, limit: int = 4096) -> None:
    """What Telegram checks: size, bounds, nesting, no surrounding whitespace."""
    size = utf16_len(part.text)
    assert 0 < size <= limit
    assert part.text == part.text.strip()
    spans = sorted(part.entities, key=lambda e: (e["offset"], -e["length"]))
    units = part.text.encode("utf-16-le")
    for e in spans:
        assert e["offset"] >= 0 and e["length"] > 0
        assert e["offset"] + e["length"] <= size
        for edge in (e["offset"], e["offset"] + e["length"]):
            if 0 < edge < size:  # never inside a surrogate pair
                unit = int.from_bytes(units[edge * 2 : edge * 2 + 2], "little")
                assert not 0xDC00 <= unit <= 0xDFFF
    for i, a in enumerate(spans):
        for b in spans[i + 1 :]:
            a_end, b_end = a["offset"] + a["length"], b["offset"] + b["length"]
            if b["offset"] >= a_end:
                continue
            assert b_end <= a_end, f"partial overlap {a} {b}"
            assert a["type"] not in _NESTABLE, f"{b} inside {a}"
            assert not (a["type"] == "text_link" and b["type"] in _NESTABLE), f"{b} in {a}"
            assert not (a["type"] in _QUOTES and b["type"] in _QUOTES)


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


# Markdown-ish documents: words, emphasis, inline code, fenced code, lists, quotes, emoji.
class CountingRenderer:
    """`render`, remembering each source it was given: what a tick costs is what it renders."""

    def __init__(self) -> None:
        self.sources: list[str] = []

    def __call__(self, source: str, *, keep_indent: bool = False) -> Part:
        self.sources.append(source)
        return render(source, keep_indent=keep_indent)

    @property
    def sizes(self) -> list[int]:
        return [len(source) for source in self.sources]


_word = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzАБВгдё0123456789😀🚀<>", min_size=1, max_size=12
)


def inline(word: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A word, bold, italic, code or a link."""
    return st.one_of(
        word,
        word.map(lambda w: f"**{w}**"),
        word.map(lambda w: f"_{w}_"),
        word.map(lambda w: f"`{w}`"),
        word.map(lambda w: f"[{w}](https://example.com/{w})"),
    )


_inline = inline(_word)
_line = st.lists(_inline, min_size=1, max_size=25).map(" ".join)
_block = st.one_of(
    st.lists(_line, min_size=1, max_size=6).map("\n".join),
    st.lists(_line, min_size=1, max_size=5).map(lambda ls: "\n".join("- " + x for x in ls)),
    st.lists(_line, min_size=1, max_size=3).map(lambda ls: "\n".join("> " + x for x in ls)),
    st.lists(_word, min_size=1, max_size=80).map(
        lambda ws: "```python\n" + "\n".join(ws) + "\n```"
    ),
    _line.map(lambda x: "## " + x),
)
_document = st.lists(_block, min_size=1, max_size=60).map("\n\n".join)
_plain_text = st.lists(
    st.text(alphabet="abc xyz😀</\n", min_size=1, max_size=400), min_size=1, max_size=40
).map("".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_document)
def test_render_is_always_valid(markdown: str) -> None:
    part = render(markdown)
    if part.text:
        assert_valid(part, limit=10**9)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_document, st.integers(min_value=200, max_value=4090))
def test_split_parts_fit_and_keep_the_text(markdown: str, limit: int) -> None:
    parts = Segmenter(limit=limit).parts(markdown)
    for part in parts:
        assert_valid(part, limit=limit)
    # Splitting at block boundaries keeps every visible character of the whole rendering.
    joined = "".join(p.text for p in parts)
    assert squash(joined) == squash(render(markdown).text)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_plain_text, st.integers(min_value=20, max_value=600))
def test_split_plain_text_loses_nothing(text: str, limit: int) -> None:
    """Word and hard cuts (no Markdown): concatenation equals the text, whitespace aside, and
    the "…" line over a message that starts with indented code (`     <` is a code block)."""
    parts = Segmenter(limit=limit).parts(text)
    for part in parts:
        assert_valid(part, limit=limit)
    joined = "".join(p.text.removeprefix("…\n") for p in parts)  # (no "…" in the alphabet)
    assert squash(joined) == squash(text)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_document, st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=40))
def test_streaming_snapshots_freeze_consistently(markdown: str, steps: list[int]) -> None:
    """Feeding growing prefixes (settled, as while streaming) gives valid parts at every step,
    and frozen parts never change."""
    segmenter = Segmenter(limit=1000)
    frozen: list[Part] = []
    cut = 0
    for step in [*steps, len(markdown)]:
        cut = min(len(markdown), cut + step)
        parts = segmenter.parts(markdown[:cut], streaming=cut < len(markdown))
        for part in parts:
            assert_valid(part, limit=1000)
        assert parts[: len(frozen)] == frozen
        frozen = list(segmenter.frozen)
        if cut == len(markdown):
            break
    # A growing text can cut differently from the whole text; every character must still be there.
    assert squash("".join(p.text for p in segmenter.parts(markdown))) == squash(
        render(markdown).text
    )


def test_code_block_that_fits_is_not_split() -> None:
    prose = "Some words here. " * 150
    code = "```python\n" + "\n".join(f"print({i})" for i in range(200)) + "\n```"
    parts = Segmenter().parts(prose + "\n\n" + code + "\n\nAfter.")
    code_parts = [p for p in parts if any(e["type"] == "pre" for e in p.entities)]
    assert len(code_parts) == 1
    assert "print(0)" in code_parts[0].text and "print(199)" in code_parts[0].text


def test_long_code_block_is_reopened_with_its_language() -> None:
    code = "```rust\n" + "\n".join(f"let x{i} = {i};" for i in range(900)) + "\n```"
    parts = Segmenter().parts(code)
    assert len(parts) >= 3
    for part in parts:
        assert_valid(part)
        pres = [e for e in part.entities if e["type"] == "pre"]
        assert pres and all(e.get("language") == "rust" for e in pres)
    assert squash("".join(p.text for p in parts)) == squash(render(code).text)


def test_a_cut_inside_a_word_never_halves_a_character_as_shown() -> None:
    """A run with no space to cut at: emoji joined with zero-width joiners, flags (two
    regional indicators each), a skin tone, accents written as combining marks."""
    family, flags = "👨\u200d👩\u200d👧\u200d👦", "🇪🇺🇺🇦🇯🇵"
    # (text, the length of one character as shown: a flag is two code points)
    for unit, character in ((family, len(family)), (flags, 2), ("👍🏽", 2), ("e\u0301", 2)):
        text = unit * (9000 // utf16_len(unit))
        parts = Segmenter().parts(text)
        assert len(parts) >= 2
        assert "".join(p.text for p in parts) == text  # nothing lost, not even a joiner
        for part in parts:
            assert utf16_len(part.text) <= PART_LIMIT
            assert len(part.text) % character == 0, f"{unit!r} cut at {len(part.text)}"


def test_partial_markdown_renders_safely() -> None:
    for text in ["**bold", "```py\nprint(", "a `code", "[link](http://exa", "> quote\n>> nested"]:
        part = render(text)
        assert_valid(part)


def test_angle_brackets_are_text_not_html() -> None:
    """telegramify-markdown drops HTML; a model's `<` must survive, inside code and out."""
    cases = {
        "Vec<T> and Option<i32>": "Vec<T> and Option<i32>",
        "Use the <br> tag": "Use the <br> tag",
        "Page:\n\n<div>\nhello\n</div>\n\nDone.": "Page:\n\n<div>\nhello\n</div>\n\nDone.",
        "<think>\nplan one\n\nplan two\n</think>\n\nThe answer": (
            "<think>\nplan one\n\nplan two\n</think>\n\nThe answer"
        ),
        "a `Vec<T>` b": "a Vec<T> b",
        "```rust\nlet v: Vec<T>;\n```": "let v: Vec<T>;",
        "if $0 < x < 1$ then": "if 0 < x < 1 then",  # math is not HTML either
        # Escaped, an HTML-looking line no longer swallows the fence below it: that is code.
        "<think>\nplan\n</think>\n```python\nprint(1 < 2)\n```": (
            "<think>\nplan\n</think>\nprint(1 < 2)"
        ),
        "<br>\n```\na\n\n```\nUse Vec<T> here": "<br>\na\nUse Vec<T> here",
    }
    for markdown, shown in cases.items():
        assert render(markdown).text == shown


@pytest.mark.parametrize(
    "code",
    [
        r'x = re.compile(r"\((\d+)\)")',
        r'phone = r"\(\d{3}\) \d{3}-\d{4}"',
        r"echo \(ls\) \(pwd -P\) \[a\]",
        r"\(\alpha\) \[\frac{1}{2}\]",
    ],
)
def test_latex_delimiters_in_code_stay_as_written(code: str) -> None:
    block = render(f"```python\n{code}\n```")
    assert block.text == code
    inline = render(f"Use `{code}` here, or \\(x^2\\).")
    assert inline.text == f"Use {code} here, or x²."


@pytest.mark.parametrize(
    ("markdown", "shown"),
    [
        (r"where \(r\) is", "where r is"),
        (r"where \( x^2 \) is", "where x² is"),
        (r"where \(a_1\) is", "where a₁ is"),
        ("where $a_1$ is", "where a₁ is"),
        ("where $x^2$ is", "where x² is"),
        (r"where \(\pi r^2\) is", "where π r² is"),
        ("costs $5 and $10", "costs $5 and $10"),  # prices, not math
        ("| a | b |\n|---|---|\n| \\(x^2\\) | y |", "a  | b\n---+--\nx² | y"),  # in a table
        ("\\[\nf = \\alpha\n+ 2x\n\\]", "f = α + 2x"),  # `+ 2x` no list item, no line break
        ("\\(x^2\\)2", "x²2"),  # not `$x^2$2`, which reads as prices
        ("\\[\n\\frac{1}{2}\n\\]", "½"),
        (r"\(\begin{pmatrix} x & -y \end{pmatrix}\)", "(x  -y)"),  # cells two spaces apart
        # Showed raw (`\\ne`), or as escaped brackets: "(50%)", "(n!)", "(f'(x))".
        (r"где \(a \ne 0\)", "где a ≠ 0"),
        (r"\(90\degree\)", "90°"),
        (r"рост \(50\%\)", "рост 50%"),
        (r"\(n!\) ways", "n! ways"),
        (r"then \(f'(x)\)", "then f'(x)"),
        (r"\(x \bmod 3\)", "x mod 3"),  # one space each side, not two
    ],
)
def test_latex_math_shows_as_unicode_whatever_it_holds(markdown: str, shown: str) -> None:
    part = render(markdown)
    assert part.text == shown
    if "$5" not in markdown:
        assert [e["type"] for e in part.entities] in (["code"], ["pre"])


@pytest.mark.parametrize(
    ("markdown", "shown"),
    [
        ("Call me \\(maybe\\).", "Call me (maybe)."),  # escaped as for MarkdownV2
        ("See \\[1\\] and \\[2\\].", "See [1] and [2]."),
        ("arr\\[0\\] = 5", "arr[0] = 5"),
        ("x \\\\(a\\\\) y", "x \\(a\\) y"),  # escaped backslashes, then brackets
        ("\\( \\)", "( )"),
        ("Python 3\\.12 \\(note\\!\\)", "Python 3.12 (note!)"),
        (r"The price \(was \$5\) only", "The price (was $5) only"),
    ],
)
def test_escaped_brackets_that_are_not_math_stay_brackets(markdown: str, shown: str) -> None:
    part = render(markdown)
    assert (part.text, part.entities) == (shown, ())


def test_brackets_in_a_link_address_are_not_math() -> None:
    url = "https://en.wikipedia.org/wiki/Python_\\(programming_language\\)"
    part = render(f"[Python]({url})")
    assert part.entities[0]["url"] == url.replace("\\", "")


@pytest.mark.parametrize(
    ("markdown", "shown", "styles"),
    [
        ("5*4*3 = 60", "5*4*3 = 60", []),
        ("a*b + c*d", "a*b + c*d", []),
        ("2**10 and 3**2", "2**10 and 3**2", []),
        ("Total: **5*3 = 15**", "Total: 5*3 = 15", ["bold"]),
        ("**REST API**s are *great*", "REST APIs are great", ["bold", "italic"]),
        ("the *API*s", "the APIs", ["italic"]),  # emphasis closing inside a word stays
        ("x**2 + y**2 = z**2", "x**2 + y**2 = z**2", []),
        ("`a*b*c` or a*b*c", "a*b*c or a*b*c", ["code"]),
        # A product between digits closes nothing: `*args` opened no emphasis (it was "f(args)
        # and 23 = 6", in italics between).
        ("f(*args) and 2*3 = 6", "f(*args) and 2*3 = 6", []),
        ("Use *args; 2*3*4 = 24", "Use *args; 2*3*4 = 24", []),
        ("*Note 1*2 and **args** too", "Note 12 and args too", ["italic", "bold"]),
        # Between prices, which are no math (`$…**$6`: a `$` before a digit), it is arithmetic
        # too (it was "23 and 45", in italics between).
        (
            "Costs $5 for 2*3 and 4*5 then **$6** ok",
            "Costs $5 for 2*3 and 4*5 then $6 ok",
            ["bold"],
        ),
        ("In $x*y$ math, 2*3", "In x*y math, 2*3", ["code"]),
    ],
)
def test_arithmetic_stars_are_not_emphasis(markdown: str, shown: str, styles: list[str]) -> None:
    part = render(markdown)
    assert part.text == shown
    assert [e["type"] for e in part.entities] == styles


def test_autolinks_are_links_not_html() -> None:
    """`<https://…>` is a CommonMark autolink: escaping its `<` as HTML showed the brackets and
    no link."""
    link = {"type": "text_link", "offset": 4, "length": 20, "url": "https://a.io/x?y=1||"}
    assert render("See <https://a.io/x?y=1||> now") == Part("See https://a.io/x?y=1|| now", (link,))
    assert render("Mail <a.b@example.com>.").text == "Mail a.b@example.com."
    assert render("`<https://a.io>` and Vec<T>").text == "<https://a.io> and Vec<T>"
    # Between prices, which are no math (`$…**$6`: a `$` before a digit), too.
    assert render("From $5 <https://a.io> to **$6**").text == "From $5 https://a.io to $6"


def test_a_link_address_in_angle_brackets_is_a_link() -> None:
    """`[text](<address>)` is CommonMark's form for an address with spaces or parentheses.
    Its `<` was escaped as HTML: the first link below lost its address, the second showed raw."""
    part = render(
        "См. [Foo](<https://en.wikipedia.org/wiki/Foo_(bar)>) и [docs](<https://a.io/a b>)."
    )
    assert part.text == "См. Foo и docs."
    assert [(e["offset"], e["url"]) for e in part.entities] == [
        (4, "https://en.wikipedia.org/wiki/Foo_(bar)"),
        (10, "https://a.io/a%20b"),  # Telegram takes no space in an address
    ]
    assert render("[`Vec<T>`](<https://a.io/(x)>) and Vec<T>").text == "Vec<T> and Vec<T>"
    image = render("![chart](<https://a.io/my chart.png>)")
    assert image.entities[0]["url"] == "https://a.io/my%20chart.png"  # (it showed raw)
    for text, raw in [
        ('See [docs](<https://a.io/a b> "Title") now.', False),
        ("a [1](<- l\nr", True),
    ]:
        while_written = [
            "".join(p.text for p in Segmenter().parts(text[:end], streaming=True))
            for end in range(1, len(text) + 1)
        ]
        if raw:  # no line break in `<…>`: no link, shown as written (it stopped at "a 1")
            assert while_written[-1] == text
        else:
            assert not [shown for shown in while_written if "](" in shown or "<" in shown]


def test_a_link_whose_text_is_code_keeps_its_address() -> None:
    """Telegram puts no code in a link: over the same span it kept the code and dropped the
    link, so `[`foo()`](…)`, as models link an API's docs, lost its address. The link stays,
    its text plain, as Telegram shows a link with code in part of its text."""
    link = {"type": "text_link", "offset": 4, "length": 5, "url": "https://x.y/foo"}
    assert render("See [`foo()`](https://x.y/foo) now.") == Part("See foo() now.", (link,))
    part = render("**[`foo()`](https://x.y/foo)** and [the `bar` call](https://x.y/bar)")
    assert [(e["type"], e["offset"], e["length"]) for e in part.entities] == [
        ("bold", 0, 5),
        ("text_link", 0, 5),
        ("text_link", 10, 12),
    ]
    assert_valid(part)


def test_an_html_link_is_a_link() -> None:
    """`<a href="…">text</a>`, as some models write a link, showed raw."""
    doc = 'See <a href="https://x.y/a">the site</a> now.'
    link = {"type": "text_link", "offset": 4, "length": 8, "url": "https://x.y/a"}
    assert render(doc) == Part("See the site now.", (link,))
    while_written = [
        "".join(p.text for p in Segmenter().parts(doc[:end], streaming=True))
        for end in range(1, len(doc) + 1)
    ]
    assert not [shown for shown in while_written if "<" in shown or "href" in shown]
    about_html = 'Use the <a> tag, and `<a href="x">y</a>` in code.'
    assert render(about_html).text == 'Use the <a> tag, and <a href="x">y</a> in code.'
    assert Segmenter().parts(about_html[:20], streaming=True)[0].text == "Use the <a> tag, and"


def test_an_html_link_in_capitals_or_with_brackets_in_its_text_is_a_link() -> None:
    assert render('See <A HREF="https://x.y/a">site</A>.').text == "See site."
    assert render('<a href="https://x.y/a">a [b] c</a>').text == "a [b] c"
    assert render('<a href="https://x.y/a">C:\\</a>').text == "C:\\"


@pytest.mark.parametrize(
    "doc",
    [
        'See <a target="_blank" href="https://x.y/a">the site</a> now.',
        "See <a class='x' rel=\"noopener\" href=https://x.y/a title=t>the site</a> now.",
    ],
)
def test_an_html_link_with_attributes_before_its_address_is_a_link(doc: str) -> None:
    """Only `<a` right before `href` was taken for a link: with `target="_blank"` or a class
    first, the tags showed raw."""
    link = {"type": "text_link", "offset": 4, "length": 8, "url": "https://x.y/a"}
    assert render(doc) == Part("See the site now.", (link,))
    segmenter = Segmenter()
    while_written = [
        "".join(p.text for p in segmenter.parts(doc[:end], streaming=True))
        for end in range(1, len(doc) + 1)
    ]
    assert [shown for shown in while_written if not "See the site now.".startswith(shown)] == []


def test_an_a_tag_that_opens_no_link_does_not_stop_streaming() -> None:
    """Held back till the paragraph's end, only "the" or "if b" showed."""
    for doc in ("the <a href> attribute names the target", "if b<a holds then x and y"):
        segmenter = Segmenter()
        for end in range(1, len(doc)):
            shown = segmenter.parts(doc[:end], streaming=True)
        assert shown[0].text == doc[:-1].rstrip()


def test_a_block_under_a_list_item_starts_on_its_own_line() -> None:
    """In a list that opens the text, telegramify-markdown glued a code block, a quote or a
    heading under an item's first line to that line."""
    code = "1. Install:\n   ```bash\n   pip install x\n   ```\n2. Run it"
    assert render(code).text == "1. Install:\npip install x\n2. Run it"
    assert render("- item one\n  > quoted\n- two").text == "⦁ item one\nquoted\n⦁ two"
    assert render("- a\n  # Heading").text == "⦁ a\n📌 Heading"
    assert render("Intro\n\n" + code).text == "Intro\n\n1. Install:\npip install x\n2. Run it"


def test_github_alerts_show_as_a_bold_label() -> None:
    """`> [!NOTE]` opening a quote showed raw, and `!NOTE` flashed by while it was written."""
    part = render("> [!WARNING]\n> Back it up first.")
    assert part.text == "⚠️ Warning\nBack it up first."
    assert {"type": "bold", "offset": 0, "length": 10} in part.entities
    assert render("> [!tip]\n> x").text == "💡 Tip\nx"
    assert render("Not one: [!NOTE]").text == "Not one: [!NOTE]"
    doc = "Intro.\n\n> [!NOTE]\n> Use **venv** always."
    segmenter = Segmenter()
    for end in range(1, len(doc) + 1):
        shown = "".join(p.text for p in segmenter.parts(doc[:end], streaming=True))
        assert "!" not in shown and "[" not in shown, doc[:end]


@pytest.mark.parametrize(
    ("info", "label"),
    [
        ('python title="x.py"', "python"),
        ("js{1,3}", "js"),  # lines to highlight
        ("{r}", "r"),  # R Markdown
        ("{.python}", "python"),
        ("{#setup .haskell .numberLines}", "haskell"),  # Pandoc: an id, then classes
        ("{#setup}", None),
        ("c++", "c++"),
        ("c#", "c#"),
        ("objective-c", "objective-c"),
        ("{}", None),
    ],
)
def test_a_code_blocks_label_is_its_language_only(info: str, label: str | None) -> None:
    """The whole info string was the label: `python title="x.py"`, or `js{1` (cut at `,`)."""
    [pre] = render(f"```{info}\nx = 1\n```").entities
    assert pre.get("language") == label


def test_an_alerts_label_is_in_the_language_of_the_answer() -> None:
    """A Russian answer's alert was labelled in English ("ℹ️ Note"). The label follows the start
    of what the alert says (its first line, or 40 characters of it: "Python 3.12 быстрее" is
    Russian), which streaming waits for: it never changes as words come."""
    assert render("> [!NOTE]\n> Проверьте версию.").text == "ℹ️ Примечание\nПроверьте версию."
    assert render("Важно:\n\n> [!WARNING]").text == "Важно:\n\n⚠️ Внимание"  # by what came before
    assert render("> [!CAUTION]\n> `rm -rf` удаляет всё").text == "🛑 Осторожно\nrm -rf удаляет всё"
    assert render("> [!TIP]\n> Use it.").text == "💡 Tip\nUse it."
    assert "💡 Совет\nPython" in render("Итак:\n\n> [!TIP]\n> Python 3.12 быстрее.").text
    for doc in [
        "Ответ:\n\n> [!NOTE]\n> Read the docs: это важно.",
        "> [!TIP]\n> Совет: use `venv`.",
        "> [!TIP]\n> Python 3.12 быстрее.\n> More.",
        "> [!TIP]\n> Python 3.12 `python -X importtime` shows where imports go, то есть.",
    ]:
        final = render(doc).text.split("\n")
        label = next(line for line in final if line.startswith(("ℹ️", "💡")))
        for end in range(1, len(doc) + 1):
            shown = "".join(p.text for p in Segmenter().parts(doc[:end], streaming=True))
            assert "[" not in shown and ("️ " not in shown or label in shown), shown


@pytest.mark.parametrize(
    ("markdown", "shown"),
    [
        ("$\\sqrt{b^2 - 4ac}$", "√(b² - 4ac)"),
        ("$\\sqrt{x}$ and $\\sqrt{64}$", "√x and √64"),
        ("$$x = \\frac{-b \\pm \\sqrt{b^2-4ac}}{2a}$$", "x = (-b ± √(b²-4ac))/(2a)"),
        ("\\(\\sqrt[3]{x}\\)", "∛x"),
        ("$\\sqrt{\\sqrt{x+1}}$", "√(√(x+1))"),  # kept stray overlines
        ("$\\dfrac{x}{2} + \\tfrac{1}{2}$", "x/2 + ½"),  # showed as `\dfracx2 + \tfrac12`
        ("$\\frac{1}{\\sigma\\sqrt{2\\pi}}$", "1/(σ√(2π))"),
        ("$\\frac{1}{2\\pi} = \\frac{x}{y_1}$", "1/(2π) = x/y₁"),
        ("$\\frac{dy}{dx} = \\frac{a+b}{c}$", "dy/dx = (a+b)/c"),
        ("$\\frac{\\partial f}{\\partial x}, \\frac{d^2y}{dx^2}$", "∂f/∂x, d²y/dx²"),  # (∂ f)/(∂ x)
        ("$\\sqrt 3 + \\sqrt[3] 8$", "√3 + ∛8"),  # unbraced: showed as `√()3`
        ("**Ответ:** \\(1\\), \\(-3\\) or \\(2; 3\\)", "Ответ: 1, -3 or 2; 3"),  # were `(1)`…
    ],
)
def test_roots_and_fractions_read_as_meant(markdown: str, shown: str) -> None:
    """telegramify-markdown overlined a root's radicand character by character (U+0305), which
    most fonts draw as a broken line of dashes (`√b̅²̅ ̅-̅ ̅4̅a̅c̅`), and wrote a denominator of
    several symbols bare: `(-b ± √…)/2a` reads as "divided by 2, times a"."""
    assert render(markdown).text == shown


def test_bullets_under_a_numbered_item_less_deep_than_its_text_are_nested() -> None:
    """`1. Item` then `  - sub`: CommonMark makes the bullets a list of their own, which showed
    flush with the numbers, as if they were items of the numbered list."""
    assert render("1. Item\n  - sub\n  - sub2\n2. Next").text == (
        "1. Item\n  ⦁ sub\n  ⦁ sub2\n2. Next"
    )
    ten = "10. Ten\n   - sub\n     more\n11. Eleven"
    assert render(ten).text == "10. Ten\n  ⦁ sub\n    more\n11. Eleven"
    assert render("1. Item\n    - sub\n2. Next").text == "1. Item\n  ⦁ sub\n2. Next"  # as was
    numbered = "1. Prepare\n  1. Collect\n  2. Check\n2. Submit"  # were renumbered 1–4
    assert render(numbered).text == "1. Prepare\n  1. Collect\n  2. Check\n2. Submit"
    assert render("- Item\n - sub\n- Next").text == "⦁ Item\n⦁ sub\n⦁ Next"  # as written
    assert render("Text\n  - a\n\n1. x").text == "Text\n⦁ a\n\n1. x"
    assert render("```\n1. x\n  - y\n```").text == "1. x\n  - y"  # code stays as written
    after = "1. Install\n  - run:\n\n```python\nif x:\n    y()\n```"  # the list has ended
    assert render(after).text == "1. Install\n  ⦁ run:\n\nif x:\n    y()"


def test_a_list_items_later_paragraphs_are_indented_under_its_text() -> None:
    """Flush with the next item's number, they ran the items together (Gemini's lists)."""
    gemini = "1.  **First Step**\n\n    Do something.\n\n2.  **Second Step**\n\n    More here."
    assert render(gemini).text == "1. First Step\n   Do something.\n2. Second Step\n   More here."
    nested = "- A\n\n  para\n\n  - B\n\n    bpara\n\n  back in A"
    assert render(nested).text == "⦁ A\n  para\n  ⦁ B\n    bpara\n  back in A"
    table = "- a\n\n  | x | y |\n  |---|---|\n  | 1 | 2 |\n\n  after"
    assert render(table).text == "⦁ a\nx | y\n--+--\n1 | 2\n  after"  # was `1 | 2after`
    assert render("1. Tight\n2. A line\n   goes on").text == "1. Tight\n2. A line\n   goes on"


@pytest.mark.parametrize(
    ("markdown", "shown"),
    [
        (
            "1. Run:\n   ```bash\n   make\n   ```\n   Then check.\n2. Next",
            "1. Run:\nmake\n   Then check.\n2. Next",
        ),
        ("1. Run:\n   ```\n   make\n   ```\n\n   Then check.", "1. Run:\nmake\n   Then check."),
        (
            "*   Run:\n    ```sh\n    make\n    ```\n    **Then** `check`.",
            "⦁ Run:\nmake\n  Then check.",
        ),
        ("1. a\n   ```\n   x\n   ```\n2. b\n\n   more", "1. a\nx\n2. b\n   more"),  # no more
        ("- A\n  ```\n  a\n  ```\n  - B\n  > q\n  # H", "⦁ A\na\n  ⦁ B\nq\n📌 H"),  # blocks: theirs
    ],
)
def test_text_after_a_code_block_in_a_list_item_is_on_its_own_line(
    markdown: str, shown: str
) -> None:
    """telegramify-markdown glued it to the code (`makeThen check.`), in what a message shows,
    is copied and forwarded."""
    assert render(markdown).text == shown


def test_an_open_task_does_not_look_done() -> None:
    assert render("- [ ] todo\n- [x] done").text == "☐ todo\n✅ done"


def test_double_pipes_are_text_not_spoilers() -> None:
    """telegramify-markdown takes `||…||` for Telegram's spoiler syntax, which models do not
    write: `a || b` is a logical or. In a table's row `||` is an empty cell, and stays one."""
    assert render("Use a || b or c || d.") == Part("Use a || b or c || d.")
    assert render("`x || y` or x ||| y").text == "x || y or x ||| y"
    table = render("| a | b | c |\n|---|---|---|\n| 1 || 3 |\n| 4 || 6 |")
    assert not any(e["type"] == "spoiler" for e in table.entities)
    assert table.text.splitlines()[2:] == ["1 |   | 3", "4 |   | 6"]


def test_sanitize_drops_what_telegram_refuses() -> None:
    text = "abcdefghij"
    entities = [
        {"type": "pre", "offset": 0, "length": 5},
        {"type": "bold", "offset": 1, "length": 2},  # inside pre
        {"type": "italic", "offset": 4, "length": 4},  # partial overlap
        {"type": "text_link", "offset": 6, "length": 2, "url": "javascript:alert(1)"},
        {"type": "blockquote", "offset": 5, "length": 5},
        {"type": "blockquote", "offset": 6, "length": 1},  # quote in a quote
        {"type": "bold", "offset": 9, "length": 5},  # out of range
    ]
    kept = sanitize(text, entities)
    assert [e["type"] for e in kept] == ["pre", "blockquote"]


@pytest.mark.parametrize(
    "prose",
    [
        "The tokenizer adds <s> at the start and </s> at the end.",
        "Special tokens: <s>, </s>",
        "The tag <b> makes text bold. Close it with </b>.",
    ],
)
def test_html_about_html_stays_as_written(prose: str) -> None:
    """Formatting hugs its text: tags with a space inside them are written about, not used."""
    assert render(prose).text == prose
    segmenter = Segmenter()
    for end in range(1, len(prose) + 1):
        shown = "".join(p.text for p in segmenter.parts(prose[:end], streaming=True))
        assert prose.startswith(shown[: len(shown) - 7]), prose[:end]  # (less a half tag)


def test_html_formatting_tags_show_as_formatting() -> None:
    part = render("a<b>x</b>y, <strong>Note:</strong>This, <i>it</i>, <s>old</s>, <code>ls</code>")
    shown = [(part.text[e["offset"] : e["offset"] + e["length"]], e["type"]) for e in part.entities]
    assert shown == [
        ("x", "bold"),
        ("Note:", "bold"),
        ("it", "italic"),
        ("old", "strikethrough"),
        ("ls", "code"),
    ]
    part = render("**Important <i>note</i>** and *see <b>this</b>*")  # in Markdown's own
    assert part.text == "Important note and see this"
    assert [e["type"] for e in part.entities] == ["bold", "italic", "italic", "bold"]
    assert render("<b><i>both</i></b>").entities == (
        {"type": "bold", "offset": 0, "length": 4},
        {"type": "italic", "offset": 0, "length": 4},
    )


def test_html_underline_and_highlight_show_as_formatting() -> None:
    """`<u>`, `<ins>` and `<mark>` showed as written. Underline is an entity of Telegram's own
    (Markdown has no syntax for it); a highlight shows bold, as Telegram has none."""
    part = render("An <u>underlined</u> word, <ins>added</ins>, <MARK>this</MARK> and a<u>b</u>c.")
    assert part.text == "An underlined word, added, this and abc."
    shown = [(part.text[e["offset"] : e["offset"] + e["length"]], e["type"]) for e in part.entities]
    assert shown == [
        ("underlined", "underline"),
        ("added", "underline"),
        ("this", "bold"),
        ("b", "underline"),
    ]
    assert render("😀 <u>😀 x</u>").entities == ({"type": "underline", "offset": 3, "length": 4},)
    assert render("**<u>both</u>**").entities == (
        {"type": "bold", "offset": 0, "length": 4},
        {"type": "underline", "offset": 0, "length": 4},
    )
    # A heading is underlined already; in code, and in a table (code too), nothing is.
    assert render("# <u>Title</u>").entities == (
        {"type": "underline", "offset": 3, "length": 5},
        {"type": "bold", "offset": 3, "length": 5},
    )
    assert render("`<u>x</u>`") == Part("<u>x</u>", ({"type": "code", "offset": 0, "length": 8},))
    assert render("| <u>a</u> | b |\n|---|---|\n| 1 | 2 |").text == "a | b\n--+--\n1 | 2"
    for about_html in ("Use the <u> tag", "<mark> and </mark>", "a <ins> b </ins> c"):
        assert render(about_html).text == about_html


def test_a_long_quote_stays_open() -> None:
    """Over 200 characters, a quote (an alert's too) became an expandable one: collapsed in the
    final answer, and collapsing while it was read."""
    doc = "> [!WARNING]\n> " + "Back up your data before you upgrade. " * 8
    assert [e["type"] for e in render(doc).entities] == ["blockquote", "bold"]


def test_a_collapsible_section_shows_its_title_and_text() -> None:
    """Telegram has no `<details>`: its tags showed raw. Its title shows bold over its text,
    also while streaming, with no tag flashing by."""
    doc = (
        "Intro.\n\n<details>\n<summary>Click to expand</summary>\n\nHidden **text**.\n\n"
        "</details>\n\nAfter, use the <details> element."
    )
    part = render(doc)
    assert (
        part.text
        == "Intro.\n\nClick to expand\n\nHidden text.\n\nAfter, use the <details> element."
    )
    assert part.entities[0] == {"type": "bold", "offset": 8, "length": 15}
    segmenter = Segmenter()
    for end in range(1, doc.index("After")):
        shown = "".join(p.text for p in segmenter.parts(doc[:end], streaming=True))
        assert "<" not in shown, doc[:end]


def _while_written(doc: str) -> list[str]:
    """What a stream of `doc`, one character at a time, shows at each step."""
    segmenter = Segmenter()
    return [
        "\n\n".join(p.text for p in segmenter.parts(doc[:end], streaming=end < len(doc)))
        for end in range(1, len(doc) + 1)
    ]


@pytest.mark.parametrize(
    ("markdown", "shown", "code", "language"),
    [
        ("<pre>\nx = a**b  # *no* bold\n</pre>", None, "x = a**b  # *no* bold", None),
        ('<pre><code class="language-python">a &lt; b</code></pre>', None, "a < b", "python"),
        ("Run:\n<PRE>ls -la</PRE>\nDone.", "Run:\nls -la\nDone.", "ls -la", None),
        ("1. Install:\n   <pre>\n   pip install x\n   </pre>\n2. Run", None, "pip install x", None),
        ("> <pre>\n> quoted\n> </pre>", None, "quoted", None),
        ("<pre>\nfirst\n\nsecond\n</pre>", None, "first\n\nsecond", None),
        ("<pre>\n```\nfenced\n```\n</pre>", None, "```\nfenced\n```", None),
    ],
)
def test_an_html_code_block_is_a_code_block(
    markdown: str, shown: str | None, code: str, language: str | None
) -> None:
    """`<pre>` (or `<pre><code>`) opening a line, to `</pre>`: its tags showed raw and its code
    as Markdown (stars as bold, `#` as a heading). Its text is HTML's: `&lt;` is `<`."""
    part = render(markdown)
    [block] = [e for e in part.entities if e["type"] == "pre"]
    assert part.text[block["offset"] : block["offset"] + block["length"]] == code
    assert block.get("language") == language
    if shown is not None:
        assert part.text == shown
    assert _while_written(markdown)[-1] == part.text


def test_an_html_code_block_is_code_while_it_is_written() -> None:
    doc = (
        'Intro.\n\n<pre><code class="language-c">int *p = &amp;x;\n\nreturn *p;\n'
        "</code></pre>\n\nAfter."
    )
    final = render(doc)
    assert final.text == "Intro.\n\nint *p = &x;\n\nreturn *p;\n\nAfter."
    assert [e["type"] for e in final.entities] == ["pre"]
    for end, shown in enumerate(_while_written(doc), 1):
        assert final.text.startswith(shown), doc[:end]
        assert "<" not in shown and "&a" not in shown, doc[:end]


@pytest.mark.parametrize(
    "prose",
    ["The <pre> tag keeps spaces.", "<pre>\nnever closed\n\nmore", "`<pre>x</pre>` in code"],
)
def test_html_code_tags_about_html_stay_as_written(prose: str) -> None:
    assert render(prose).text == prose.replace("`", "")
    assert not render(prose).entities or prose.startswith("`")


@pytest.mark.parametrize(
    ("markdown", "shown"),
    [
        ("<p>First.</p>\n<p>Second, <b>bold</b> and `<p>`.</p>", "First.\n\nSecond, bold and <p>."),
        ("Intro\n<p>Para</p>\nOutro", "Intro\n\nPara\n\nOutro"),
        ("<p>a</p><p>b</p>", "a\n\nb"),
        ("<p>Run:</p><p>`ls`</p>", "Run:\n\nls"),
        ('<p align="center">\n  Centered\n</p>', "Centered"),
        ("<p>line one\nline two</p>", "line one\nline two"),
        ("<p>text\nmore\n</p>", "text\nmore"),
        ("Intro\n<p>\ntext\n</p>\nOutro", "Intro\n\ntext\n\nOutro"),
        ("> <p>q1</p><p>q2</p>", "q1\n\nq2"),
        ("- <p>item</p><p>more</p>\n- next", "⦁ item\n  more\n⦁ next"),
        # A lone tag, or one with a space inside it, may be about HTML: as written.
        ("The <p> tag starts a paragraph; </p> ends it.", None),
        ("<p>never closed", None),
        ("<p> spaced </p>", None),
        ("```html\n<p>x</p>\n```", "<p>x</p>"),
    ],
)
def test_html_paragraphs_are_paragraphs(markdown: str, shown: str | None) -> None:
    """`<p>…</p>`, as models write a web page, showed its tags: the text shows, set apart as
    a paragraph is, also while it is written."""
    assert render(markdown).text == (markdown if shown is None else shown)
    if shown is not None and "```" not in markdown:
        while_written = _while_written(markdown)
        assert [text for text in while_written if not shown.startswith(text)] == []


def test_formatting_over_code_alone_is_kept() -> None:
    """Over the same span as code, a quote or bold was taken for being inside the code and
    dropped: a quote holding only a code block lost its quote, `**`x`**` its bold."""
    part = render("> ```python\n> x = 1\n> ```\n\nAfter.")
    assert part.text == "x = 1\n\nAfter."
    assert [e["type"] for e in part.entities] == ["blockquote", "pre"]
    part = render("**`x`** and ~~`y`~~")
    assert [e["type"] for e in part.entities] == ["bold", "code", "strikethrough", "code"]


def test_strip_moves_entities() -> None:
    part = strip("  \n😀 bold  ", [{"type": "bold", "offset": 3, "length": 7}])
    assert part.text == "😀 bold"
    assert part.entities == ({"type": "bold", "offset": 0, "length": 7},)


def test_invisible_characters_at_the_ends_are_stripped_as_telegram_does() -> None:
    """A text of nothing but invisible characters is empty to Telegram ("message text is
    empty"): it must be nothing to show here too, not a part Telegram refuses."""
    assert render("\u2800") == Part("")
    assert render("\u200b \ufeff\n\u3164") == Part("")
    part = strip("\u200bHi **x**\u2060", [{"type": "bold", "offset": 4, "length": 1}])
    assert part == Part("Hi **x**", ({"type": "bold", "offset": 3, "length": 1},))
    assert render("a\u200bb").text == "a\u200bb"  # inside a text it stays


def test_what_shows_as_nothing_is_dropped_the_same_way_whatever_follows() -> None:
    """telegramify-markdown ends a quote in a list item with or without the next line break,
    and keeps an empty item's space or not, depending on what follows: rendered in blocks
    (streaming) and whole, the same answer differed only there, at the cost of an edit."""
    quote = Part("⦁ a\n⦁\n0 b", ({"type": "blockquote", "offset": 6, "length": 3},))
    assert render("- a\n- >0 b") == quote
    assert render("- a\n- >0 b\n\nabc") == quote.plus(Part("abc"))
    assert render("- >0\n- >\n\n> x").text == "⦁\n0\n⦁\n\nx"
    assert render("😀 >\n- >0\n- >\n\nz").text == render("😀 >\n- >0\n- >").plus(Part("z")).text
    # Code keeps its spaces: they are part of what is copied.
    assert render("```\na  \nb\n```").text == "a  \nb"
    assert render("x `a  ` \ny") == Part("x a  \ny", ({"type": "code", "offset": 2, "length": 3},))


def test_split_cost_grows_with_the_open_part() -> None:
    """A long answer re-renders only its last part: count characters handed to the renderer."""
    renderer = CountingRenderer()
    segmenter = Segmenter(renderer=renderer)
    text = "".join(f"Paragraph {i}. " + "word " * 80 + "\n\n" for i in range(80))  # ~33k chars
    for end in range(0, len(text), 500):
        renderer.sources.clear()
        segmenter.parts(text[: end + 500])
        if len(segmenter.frozen) >= 2:
            assert max(renderer.sizes) <= PART_LIMIT * 2


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_document, st.lists(st.integers(min_value=1, max_value=300), min_size=1, max_size=60))
def test_streaming_shows_what_rendering_the_whole_snapshot_shows(
    markdown: str, steps: list[int]
) -> None:
    """The blocks before the last blank line are rendered once and kept: every snapshot must
    still show exactly what rendering all of it (settled) shows."""
    segmenter = Segmenter(limit=10**6)
    cut = 0
    for step in steps:
        cut = min(len(markdown), cut + step)
        prefix = markdown[:cut]
        in_code = open_fence_at(len(prefix), fence_map(prefix))
        expected = render(_PARTIAL_FENCE.sub("", prefix) if in_code else settle(prefix))
        assert segmenter.parts(prefix, streaming=True) == ([expected] if expected.text else [])
        if cut == len(markdown):
            break


def test_streaming_renders_the_last_block_not_the_whole_part() -> None:
    renderer = CountingRenderer()
    segmenter = Segmenter(limit=10**6, renderer=renderer)
    text = "".join(f"Paragraph **{i}**: " + "some words " * 20 + "\n\n" for i in range(40))
    for end in range(20, len(text), 20):
        renderer.sources.clear()
        segmenter.parts(text[:end], streaming=True)
        assert sum(renderer.sizes) <= 2 * 260, (end, renderer.sizes)  # the last two blocks


def test_a_finished_code_block_is_rendered_once_too() -> None:
    """Once the paragraph after a code block has begun, each tick renders that paragraph
    alone: the code block (and all before it) is not rendered again."""
    renderer = CountingRenderer()
    segmenter = Segmenter(limit=10**6, renderer=renderer)
    block = "```python\nx = {i}\nprint(x * 2)\n```\n\nStep **{i}**: " + "some words " * 30
    text = "\n\n".join(block.format(i=i) for i in range(10))
    for end in range(20, len(text), 20):
        renderer.sources.clear()
        snapshot = text[:end]
        segmenter.parts(snapshot, streaming=True)
        paragraph = snapshot[snapshot.rfind("\n\n") :]
        if paragraph.startswith("\n\nStep") and " " in paragraph:
            rendered = renderer.sizes
            *head, tail = rendered  # the block just finished (once), then the one being written
            assert sum(head) <= len("```python\nx = 0\nprint(x * 2)\n```"), (end, rendered)
            assert tail <= len(paragraph), (end, rendered)


def test_no_part_ends_with_a_heading() -> None:
    """A heading cut off from its text would end one message, its text opening the next."""
    for words in range(100, 200, 7):
        doc = "\n\n".join(f"## Section {i}\n\n" + "word " * words for i in range(30))
        parts = Segmenter().parts(doc)
        assert len(parts) > 2
        for part in parts:
            assert part.text.startswith("✏ Section")
            assert not part.text.splitlines()[-1].startswith("✏")
    # Nor when the heading's text is a code block, or its lines run on without a blank line.
    code = "```python\n" + "\n".join(f"print({i})" for i in range(150)) + "\n```"
    for doc in (
        "\n\n".join(f"Paragraph {i} " + "word " * 60 for i in range(12)) + "\n\n## Code\n\n" + code,
        "\n".join(f"Line {i} " + "word " * 60 for i in range(12)) + "\n## Code\n" + code,
    ):
        parts = Segmenter().parts(doc)
        assert len(parts) == 2
        assert parts[1].text.startswith("✏ Code")


def test_a_table_longer_than_a_message_is_reopened_with_its_header() -> None:
    """Cut between two rows, the next part starts with the rows below: without the header
    they are not a table and show as text, pipes and all."""
    rows = [f"| {i} | name{i} | {i * 183} |" for i in range(300)]
    doc = "Table:\n\n| id | name | value |\n|---|:---:|---|\n" + "\n".join(rows) + "\n\nAfter it."
    streamed = Segmenter()
    for end in range(50, len(doc), 97):
        for part in streamed.parts(doc[:end], streaming=True):
            assert_valid(part)
    parts = Segmenter().parts(doc)
    assert streamed.parts(doc) == parts
    assert len(parts) == 2
    for part in parts:
        assert_valid(part)
        assert "|" not in part.text.replace(" | ", "")  # every row is a table's, none raw
        assert [e["type"] for e in part.entities] == ["pre"]
    assert parts[1].text.startswith("id  |  name   | value\n----+")  # (`:---:`: centred)
    shown = [line.split(" | ")[0].strip() for p in parts for line in p.text.splitlines()]
    assert [n for n in shown if n.isdigit()] == [str(i) for i in range(300)]  # each row once
    assert parts[1].text.endswith("After it.")


def test_only_real_fences_open_and_close_code_blocks() -> None:
    """CommonMark: ```ls -la``` is inline code, not a fence; ```python inside a code block is
    a line of code, not its end. Taken for fences they turned prose into code at a cut."""
    body = "\n\n".join(f"Para {i}: some **bold** words " + "more words " * 30 for i in range(14))
    for opening in ("To list files:\n\n```ls -la``` shows them.\n\n", "```md\n```python\n```\n\n"):
        parts = Segmenter().parts(opening + body)
        assert len(parts) == 2
        assert parts[1].text.startswith("Para")
        assert parts[1].entities[0]["type"] == "bold"
    assert fence_map("```md\n# T\n```python\nx = 1\n```\n") == [(0, "```md"), (30, "")]
    assert fence_map("```\r\ncode\r\n```\r\n") == [(0, "```"), (16, "")]


def test_a_code_blocks_first_line_keeps_its_indentation_while_streaming() -> None:
    doc = "Add this method:\n\n```python\n    def area(self):\n        return 1\n```\n\nThen use it"
    segmenter = Segmenter(limit=10**6)
    for cut in range(1, len(doc) + 1):
        prefix = doc[:cut]
        in_code = open_fence_at(cut, fence_map(prefix))
        expected = render(_PARTIAL_FENCE.sub("", prefix) if in_code else settle(prefix))
        assert segmenter.parts(prefix, streaming=True) == [expected], prefix


def test_no_part_starts_with_a_nested_list_item() -> None:
    """A cut right before a line indented by four spaces (a nested list's item) would start
    the next part with an indented code block."""
    doc = "\n".join(
        f"{i}. **Step {i}**: do the thing number {i} carefully\n"
        f"    - detail one for step {i}\n    - detail **two** for step {i}"
        for i in range(1, 9)
    )
    parts = Segmenter(limit=235).parts(doc)
    assert len(parts) > 2
    for part in parts:
        assert not any(e["type"] == "pre" for e in part.entities), part


def test_a_link_definition_shows_its_links_while_streaming() -> None:
    """`[docs][1]` becomes a link once `[1]: https://…` is written, also in the blocks before
    it that were rendered (and kept) without it."""
    doc = "See [the docs][d] and a note[^1].\n\nMore text.\n\n[d]: https://docs.python.org\n\n"
    doc += "[^1]: The note.\n\nEnd"
    segmenter = Segmenter(limit=10**6)
    for cut in range(1, len(doc) + 1):
        prefix = doc[:cut]
        assert segmenter.parts(prefix, streaming=True) == [render(settle(prefix))], prefix


@pytest.mark.parametrize(
    ("opened", "closed", "styles"),
    [
        ("**", "**", ["bold"]),
        ("*", "*", ["italic"]),
        ("~~", "~~", ["strikethrough"]),
        ("**bold _it ", "_ end**", ["bold", "italic"]),
    ],
)
def test_formatting_longer_than_a_message_is_closed_and_reopened(
    opened: str, closed: str, styles: list[str]
) -> None:
    """A bold sentence longer than a message is bold in both parts: cut without closing it,
    the first part showed a raw `**` where it began and the second one where it ended. (While
    streaming, its end is often not written yet when the cut is made: then it stays raw.)"""
    words = " ".join(f"word{i}" for i in range(900))
    doc = f"Intro.\n\nSome text {opened}{words}{closed} and after.\n\nEnd."
    parts = Segmenter().parts(doc)
    assert len(parts) == 2
    for part in parts:
        assert_valid(part)
        assert not set("*_~") & set(part.text)
        assert sorted({e["type"] for e in part.entities}) == styles
    first, second = parts
    assert first.text.startswith("Intro.\n\nSome text ")
    assert all(e["offset"] + e["length"] == len(first.text) for e in first.entities)
    assert all(e["offset"] == 0 for e in second.entities)
    assert second.text.endswith(" and after.\n\nEnd.")
    assert squash("".join(p.text for p in parts)) == squash(render(doc).text)


@pytest.mark.parametrize(
    "doc",
    [
        "* **Step 1:** install it:\n    ```bash\n    pip install requests  # *not* **all**\n"
        "    ```\n* **Step 2:** run it.",
        "> Like this:\n> ```python\n> def f(*args, **kwargs):\n>     return a*b\n> ```\n\nDone.",
    ],
)
def test_a_code_block_in_a_list_item_or_a_quote_is_code_while_streaming(doc: str) -> None:
    """Settled as a paragraph, its lines showed a raw ``` at the end and `**kwargs` closed."""
    for end in range(1, len(doc)):
        part = Segmenter().parts(doc[:end], streaming=True)
        for p in part:
            pre = [e for e in p.entities if e["type"] == "pre"]
            if pre:
                code = p.text[pre[0]["offset"] :]
                assert "```" not in code and "***" not in code and "**)" not in code


def _code_lines(prefix: str) -> str:
    return "\n".join(
        f"{prefix}print('line {i} of the program')  # *not* **bold**" for i in range(160)
    )


@pytest.mark.parametrize(
    ("doc", "after"),
    [
        (
            "1. Create `main.py`:\n\n   ```python\n"
            + _code_lines("   ")
            + "\n   ```\n\n2. Run it.",
            "2. Run it.",
        ),
        ("> Like this:\n> ```python\n" + _code_lines("> ") + "\n> ```\n\nAfter.", "After."),
        (
            "> 1. In a list in a quote:\n>    ```python\n"
            + _code_lines(">    ")
            + "\n>    ```\n\nEnd.",
            "End.",
        ),
        (  # Gemini's list items: the code indented four columns, reopened at none
            "*   **Step 1:** create it:\n    ```python\n"
            + _code_lines("    ")
            + "\n    ```\n*   **Step 2:** run it.",
            "⦁ Step 2: run it.",
        ),
    ],
)
@pytest.mark.parametrize("streaming", [False, True])
def test_a_long_code_block_in_a_list_item_or_a_quote_stays_code_after_a_cut(
    doc: str, after: str, streaming: bool
) -> None:
    """Cut like a code block at the top level: closed in one part, reopened in the next, in
    the same quote and at the same indentation. The next part showed its lines as plain text
    (the quote's) or with a raw ``` at the end."""
    segmenter = Segmenter()
    if streaming:
        for end in range(0, len(doc), 97):
            for part in segmenter.parts(doc[:end], streaming=True):
                assert_valid(part)
    parts = segmenter.parts(doc)
    assert len(parts) == 2
    shown = []
    for part in parts:
        assert_valid(part)
        assert "```" not in part.text
        pres = [e for e in part.entities if e["type"] == "pre"]
        assert len(pres) == 1 and pres[0].get("language") == "python"
        code = part.text[pres[0]["offset"] : pres[0]["offset"] + pres[0]["length"]]
        assert "**bold**" in code
        shown += [line.strip() for line in code.splitlines()]
    assert shown == [f"print('line {i} of the program')  # *not* **bold**" for i in range(160)]
    assert parts[1].text.endswith("\n" + after)


@pytest.mark.parametrize(
    "sentence", ["这是一个很长的段落，用来测试分割。", "这是一个很长的段落用来测试分割"]
)
def test_a_heading_stays_with_a_long_chinese_paragraph(sentence: str) -> None:
    """With no space to cut at, the cut went between a heading's `##` and its text (a message
    of "✏", one of "总结"); Chinese is cut after its punctuation, as others are at a space."""
    doc = "## 总结\n\n" + sentence * 300
    parts = Segmenter().parts(doc)
    assert len(parts) == 2
    assert parts[0].text.startswith("✏ 总结\n\n这是")
    assert squash("".join(p.text for p in parts)) == squash(render(doc).text)
    if "。" in sentence:
        assert parts[0].text.endswith(("。", "，"))
        assert parts[1].text.startswith(("这是", "用来"))


def test_a_heading_longer_than_a_part_is_cut_between_its_words() -> None:
    """Found by the property test: a heading is never cut while anything else can be, and one
    longer than a part was cut inside a word, here inside its code (`00000000 and 00` raw)."""
    doc = "0\n\n## " + "word " * 40 + "`0000000000`"
    parts = Segmenter(limit=200).parts(doc)
    assert [p.text for p in parts][1:] == ["✏ " + ("word " * 39).strip(), "word 0000000000"]
    assert parts[2].entities == ({"type": "code", "offset": 5, "length": 10},)
    assert squash("".join(p.text for p in parts)) == squash(render(doc).text)


def test_code_that_starts_a_message_indented_keeps_its_indentation() -> None:
    """A function's body longer than a message: the next message started with an indented
    line, whose spaces Telegram drops (`x122 = …` flush left, which does not run when copied).
    A line "…" goes before it, outside the code."""
    body = [f"    x{i} = compute({i})  # step {i}" for i in range(300)]
    doc = "Here:\n\n```python\ndef f():\n" + "\n".join(body) + "\n```"
    parts = Segmenter().parts(doc)
    assert len(parts) == 3
    code: list[str] = []
    for part in parts:
        assert_valid(part)
        [pre] = [e for e in part.entities if e["type"] == "pre"]
        if part is not parts[0]:
            assert part.text.startswith("…\n    x") and pre["offset"] == 2
        code += part.text[pre["offset"] :].split("\n")
    assert code == ["def f():", *body]
    assert render("```\nx = 1\n```").text == "x = 1"  # not indented: as it was


def test_indented_code_after_blank_lines_or_under_text_keeps_its_line_before_it() -> None:
    """The code's entity covered the "…" (or started at -1) after blank lines; while streaming,
    the line went once text followed the code, and the code lost its indentation."""
    for blank in range(2, 5):
        part = render("```\n" + "\n" * blank + "    x\n```")
        assert part == Part("…\n    x", ({"type": "pre", "offset": 2, "length": 5},))
    doc = "```python\n    x = 1\n```\n\nText after it."
    segmenter = Segmenter()
    for end in range(1, len(doc) + 1):
        shown = "".join(p.text for p in segmenter.parts(doc[:end], streaming=True))
        assert not shown.startswith("x") and ("x" not in shown or shown.startswith("…\n    x"))


def test_a_code_block_reopened_less_deep_stays_so_over_several_parts() -> None:
    code = "\n".join(f"        x{i} = compute({i})  # step {i}" for i in range(400))
    doc = f"1.  Run:\n    ```python\n{code}\n    ```\n\n    Then:\n\n    ```sh\n    ls\n    ```"
    parts = Segmenter().parts(doc)
    assert len(parts) == 4
    lines = []
    for part in parts:
        assert_valid(part)
        assert "```" not in part.text
        pre = next(e for e in part.entities if e["type"] == "pre")
        lines += part.text[pre["offset"] : pre["offset"] + pre["length"]].splitlines()
    # Each line once, in order, with its own indentation past the fence's (Telegram strips a
    # message's first line).
    assert [line.strip() for line in lines[:400]] == [
        f"x{i} = compute({i})  # step {i}" for i in range(400)
    ]
    assert sum(line.startswith("    x") for line in lines) >= 400 - len(parts)
    assert parts[-1].text.endswith("Then:\n\nls")
    assert parts[-1].entities[-1]["language"] == "sh"


def _pres(parts: list[Part]) -> list[str]:
    """The lines of the parts' code blocks, as shown."""
    return [
        line
        for p in parts
        for e in p.entities
        if e["type"] == "pre"
        for line in p.text[e["offset"] : e["offset"] + e["length"]].splitlines()
    ]


def test_a_list_item_reopened_less_deep_ends_where_the_item_does() -> None:
    """Cut after the item's code block, the next part went on taking four columns off every
    line up to the next closing fence: a later top-level script lost its indentation."""
    code = "\n".join(f"    x{i} = compute({i})" for i in range(20))
    doc = (
        f"*   Install:\n    ```python\n{code}\n    ```\n\n    Then run it. "
        + "More words here. " * 20
        + "\n\nFull script:\n\n```python\ndef main():\n    if ready:\n        run()\n```\n"
    )
    parts = Segmenter(limit=300).parts(doc)
    assert parts[-1].text.endswith("def main():\n    if ready:\n        run()")
    assert squash("".join(p.text for p in parts)) == squash(render(doc).text)


def test_a_list_item_in_a_list_item_reopened_less_deep_takes_off_both_widths() -> None:
    def code(indent: str, tag: str) -> str:
        return "\n".join(f"{indent}{tag}{i} = compute({i})" for i in range(30))

    doc = (
        f"*   A:\n    ```python\n{code('    ', 'a')}\n    ```\n"
        f"    *   B:\n        ```python\n{code('        ', 'b')}\n        ```\n\nEnd."
    )
    parts = Segmenter(limit=300).parts(doc)
    assert [line.strip() for line in _pres(parts)] == [
        f"a{i} = compute({i})" for i in range(30)
    ] + [f"b{i} = compute({i})" for i in range(30)]
    assert parts[-1].text.endswith("\n\nEnd.") and "```" not in "".join(p.text for p in parts)


def test_a_quoted_code_line_cut_in_the_middle_goes_on_in_the_quote() -> None:
    line = " ".join(f"item_{i}*2" for i in range(60))
    doc = f"> Output:\n> ```text\n> {line}\n> ```\n\nAfter."
    parts = Segmenter(limit=300).parts(doc)
    assert " ".join(_pres(parts)).split() == line.split()
    assert parts[-1].text.endswith("After.")


def test_an_indented_fence_in_a_code_block_is_a_line_of_it() -> None:
    """A README's list item with its own code block, shown as Markdown in a code block: its
    indented ``` closed the outer block, whose real end then opened one to the end."""
    readme = "```markdown\n- Install:\n    ```bash\n    pip install foo\n    ```\n> ```\n```\n"
    assert fence_map(readme) == [(0, "```markdown"), (len(readme), "")]
    doc = readme + "\n**注意：**这是重要的。See[^1].\n\n[^1]: Note."
    assert render(doc).text.endswith("\n\n注意：这是重要的。See¹.\n\n¹ Note.")


def test_a_code_block_in_a_quote_ends_with_the_quote() -> None:
    """CommonMark: a code block in a quote ends where the quote does, closing fence or not;
    the prose after it is not code (while streaming, it was shown unsettled: a raw `**`)."""
    doc = "> ```python\n> x = 1\n\nNow **this"
    assert fence_map(doc) == [(0, "> ```python"), (20, "")]
    assert Segmenter().parts(doc, streaming=True) == [
        render("> ```python\n> x = 1\n\nNow **this**")
    ]
    assert fence_map("  ```sh\nls\n  ```\n") == [(0, "  ```sh"), (17, "")]


@pytest.mark.parametrize(
    ("markdown", "shown", "bold"),
    [
        ("**注意：**这是重要的内容。", "注意：这是重要的内容。", ["注意："]),
        ("**Note:**This matters.", "Note:This matters.", ["Note:"]),
        ("**Важно:**текст", "Важно:текст", ["Важно:"]),
        ("这是**「重要」**的", "这是「重要」的", ["「重要」"]),
        ("**注意：**这 and **提示：**那", "注意：这 and 提示：那", ["注意：", "提示："]),
        # Bold to its closing bracket, not `快速排序（Quick Sort` and a plain `）`.
        (
            "**快速排序（Quick Sort）**的核心",
            "快速排序（Quick Sort）的核心",
            ["快速排序（Quick Sort）"],
        ),
        ("依赖**（可选）**", "依赖（可选）", ["（可选）"]),
        ("**Note**: fine, (**bold**)", "Note: fine, (bold)", ["Note", "bold"]),
        ("`**x:**y` stays code", "**x:**y stays code", []),
        ("x**2, y**2", "x**2, y**2", []),
        ("Run `make`: **注意：**这是", "Run make: 注意：这是", ["注意："]),
        ("**注意：**见[^a]。\n\n[^a]: 文档。", "注意：见[a]。\n\n[a] 文档。", ["注意："]),
        ("~~~\n```\n~~~\n\n**注意：**这是", "```\n\n注意：这是", ["注意："]),
    ],
)
def test_bold_ending_in_punctuation_before_a_letter_is_bold(
    markdown: str, shown: str, bold: list[str]
) -> None:
    """CommonMark leaves `**注意：**这是` raw: a closing `**` after punctuation must be followed
    by a space or punctuation, and Chinese text has no spaces."""
    part = render(markdown)
    assert part.text == shown
    spans = [e for e in part.entities if e["type"] == "bold"]
    assert [part.text[e["offset"] : e["offset"] + e["length"]] for e in spans] == bold


@pytest.mark.parametrize(
    ("markdown", "shown"),
    [
        ("Claim[^1] here.\n\n[^1]: Source.", "Claim¹ here.\n\n¹ Source."),
        (
            "One[^1], two[^note].\n\n[^1]: Smith, 2020.\n[^note]: A note.",
            "One¹, two[note].\n\n¹ Smith, 2020.\n[note] A note.",
        ),
        ("regex [^abc] in prose", "regex [^abc] in prose"),  # no such note
        ("`[^1]` is code", "[^1] is code"),
        ("Use the <br> tag", "Use the <br> tag"),  # after a space: about HTML, maybe
        ("line one<br>line two<br/>three", "line one\nline two\nthree"),  # glued: a break
        ("First line<br>\nSecond<br>", "First line\nSecond"),  # at a line's end: the break
        ("    x = a<br>b", "x = a<br>b"),  # an indented code block's line
        ("> | x<br>y | z |\n> |---|---|\n> | 1 | 2 |", "x y | z\n----+--\n1   | 2"),
        ("Python 3\\.12 \\(2023\\)", "Python 3.12 (2023)"),  # escaped for MarkdownV2
        (
            "| f | g |\n|---|---|\n| $y = |x|$ | V |\n| $5 | $10 |",
            "f       | g\n--------+----\ny = |x| | V\n$5      | $10",
        ),
        ("<kbd>Ctrl</kbd>+<kbd>`</kbd> or <kbd>⌃</kbd>+<kbd>`</kbd>", "Ctrl+` or ⌃+`"),  # ` key
        ("Define __init__ here, not __Bold__.", "Define __init__ here, not Bold."),
        ("$\\langle x \\rangle$", "⟨ x ⟩"),  # not the CJK 〈〉
        ("| a | b |\n|---|---|\n| x<br>y<br/>z | w |", "a     | b\n------+--\nx y z | w"),
        ("```html\nline<br>\n```", "line<br>"),
        ("Press <kbd>Ctrl</kbd>+<kbd>C</kbd>.", "Press Ctrl+C."),  # showed its tags
        ("`<kbd>x</kbd>` in code", "<kbd>x</kbd> in code"),
        # Other HTML that models write: shown as meant, not with its tags.
        ("H<sub>2</sub>O, mc<sup>2</sup>, x<sup>n+1</sup>", "H₂O, mc², xⁿ⁺¹"),
        ("ref<sup>[1]</sup>, log<sub>10</sub>", "ref[1], log₁₀"),  # no `[` superscript
        ("Run <code>ls -la</code>, a<b>x</b>y", "Run ls -la, axy"),
        ("<b>Note:</b>This, <i>it</i>, <del>gone</del>", "Note:This, it, gone"),
        ("Use the <b> tag", "Use the <b> tag"),  # not closed: about HTML, maybe
        # Beside inline code too: a line with code in it was left as it was.
        (
            "Keep `requirements.txt` current[^1].\n\n[^1]: See `pip`.",
            "Keep requirements.txt current¹.\n\n¹ See pip.",
        ),
        ("`[^1]` is code[^1]\n\n[^1]: Note.", "[^1] is code¹\n\n¹ Note."),
        ("| a | b |\n|---|---|\n| `x` | y<br>z `<br>` |", "a | b\n--+---------\nx | y z <br>"),
        # Only real code blocks: a ``` line in a ~~~ block neither opens nor closes one.
        ("~~~\n```\n~~~\n\nNote[^1]\n\n[^1]: A.", "```\n\nNote¹\n\n¹ A."),
        ("~~~md\nNote[^1]\n```\n[^1]: A.\n~~~", "Note[^1]\n```\n[^1]: A."),
    ],
)
def test_footnotes_and_line_breaks_show_as_meant(markdown: str, shown: str) -> None:
    """telegramify-markdown showed `[^1]` as "^1" and dropped its note; `<br>` showed as the tag."""
    assert render(markdown).text == shown


def test_a_named_footnote_is_left_out_while_its_note_is_to_come() -> None:
    """Notes come at an answer's end: a named mark (`[^pop]`) showed raw all through the
    stream, then turned into "[pop]". It is left out until its note comes. A character class
    in prose (`[^a-z]`) is no note's name: it shows as it is."""
    doc = (
        "Python is popular[^pop] and fast[^speed-2].\n\nIt has libraries[^libs], and [^a-z] "
        "matches no letter.\n\nMore.\n\n[^pop]: TIOBE.\n[^speed-2]: Mostly.\n[^libs]: PyPI."
    )
    final = render(doc).text
    assert final.startswith("Python is popular[pop] and fast[speed-2].\n\nIt has libraries[libs]")
    assert "[^a-z] matches" in final
    segmenter = Segmenter()
    for end in range(1, len(doc) + 1):
        shown = "".join(p.text for p in segmenter.parts(doc[:end], streaming=True))
        assert "^" not in shown.replace("[^a-z]", ""), doc[:end]
        if "\n[^" not in doc[:end]:
            assert "[pop]" not in shown and "[libs]" not in shown, doc[:end]
            assert "Python is popular and fast.".startswith(shown[:27]), doc[:end]


def test_a_link_to_a_definition_shows_as_its_text_while_the_definition_is_to_come() -> None:
    """`[FAQ][faq]` showed raw all through the stream (its definition comes last), and the
    definition's `[faq]:` flashed by while it was written."""
    doc = (
        "Read the [FAQ][faq] first, then [the Docs][].\n\nAnd **more** here.\n\n"
        "[faq]: https://a.io/faq\n[the docs]: https://d.io"
    )
    final = render(doc)
    assert final.text == "Read the FAQ first, then the Docs.\n\nAnd more here."
    assert [e.get("url") for e in final.entities[:2]] == ["https://a.io/faq", "https://d.io"]
    segmenter = Segmenter()
    for end in range(1, len(doc) + 1):
        shown = "".join(p.text for p in segmenter.parts(doc[:end], streaming=True))
        assert "[" not in shown and "]" not in shown, doc[:end]
        assert final.text.startswith(shown[: len(shown) - 3]), doc[:end]
    assert render("See [FAQ][faq] here.").text == "See [FAQ][faq] here."  # never defined


def test_brackets_that_are_no_links_show_as_written_while_streaming() -> None:
    """Indexes (`dp[i][j]`, `data["a"]["b"]`) and stacked citations (`[1][2]`) are no links to
    definitions: they showed as `dpi`, `data"a"` and `1` while streaming. A remark in brackets
    at a line's start grows as it is written, not hidden as if it were a definition."""
    doc = (
        'dp[i][j] = min(dp[i-1][j], dp[i][j-1]), data["a"]["b"], see [1][2].\n\n'
        "[Note: a long remark in brackets] ends here."
    )
    final = render(doc).text
    assert final == doc.replace("\n\n", "\n\n")
    segmenter = Segmenter()
    for end in range(1, doc.index("\n\n")):
        shown = "".join(p.text for p in segmenter.parts(doc[:end], streaming=True))
        assert final.startswith(shown[: len(shown) - 1]), doc[:end]
    shown = Segmenter().parts(doc[: doc.index("in brackets")], streaming=True)
    assert shown[-1].text.endswith("Note: a long remark")  # (its `[` comes back with its `]`)


def test_a_frozen_part_shows_a_link_to_a_later_definition_as_its_text() -> None:
    """A message cut before the definitions (which come at the end) showed `[FAQ][faq]` raw for
    good, after showing "FAQ" while streaming."""
    doc = "Read the [FAQ][faq]. " + "word " * 900 + "\n\n[faq]: https://a.io/faq"
    parts = Segmenter().parts(doc)
    assert len(parts) == 2 and parts[0].text.startswith("Read the FAQ. word")


def test_lines_of_no_break_or_zero_width_spaces_are_blank_lines() -> None:
    """A model in a loop wrote thousands of such lines: each was a line of text (an empty line
    in the message, a part of its own at the edges), and splitting them blocked the event
    loop for seconds, rendering all of them at each step of the cut search."""
    rendered: list[int] = []

    def counting(markdown: str, *, keep_indent: bool = False) -> Part:
        rendered.append(len(markdown))
        return render(markdown, keep_indent=keep_indent)

    for blank in ("\u00a0", "\u200b", "\u2800 \u3000", "> \u00a0"):
        rendered.clear()
        doc = "Start\n" + f"{blank}\n" * 12000 + "end."
        parts = Segmenter(renderer=counting).parts(doc)
        assert [p.text for p in parts] == ["Start\n\nend."]
        assert len(rendered) == 1  # no cut to look for
    assert render("10\u00a0km,\n\u00a0\nnext").text == "10\u00a0km,\n\nnext"
    assert render("```\nx\n\u00a0\ny\n```").text == "x\n\u00a0\ny"  # code as written


def test_a_table_with_wide_characters_stays_in_line() -> None:
    """A Chinese character or an emoji takes two columns of a monospaced font: padded by the
    count of characters, the columns after it were out of line."""
    from bot.streaming.render import _width

    part = render(
        "| 名前 | score |\n|---|---|\n| 太郎 | 10 |\n| Bob | 7 |\n| 🚀 x | 1 |\n| ⚠️ | 2 |\n"
        "| 👍🏽 | 3 |\n| 名^ | 4 |"
    )
    lines = part.text.splitlines()
    assert lines[0].startswith("名前 | ")
    bars = {_width(line.split("|")[0]) for line in lines if "|" in line}
    assert bars == {_width("名前 ")}
    assert lines[1] == "-----+------"
    bold = render("| **注意：**这 | <b>x</b>y |\n|---|---|\n| a | b |").text  # (with spacers)
    assert bold == "注意：这 | xy\n---------+---\na        | b"
    assert "⚠️   | 2" in lines and "👍🏽   | 3" in lines and "名^  | 4" in lines


def _shown_with_urls(part: Part) -> list[tuple[str, str | None]]:
    """Each entity's text (offsets are in UTF-16 units) and its address."""
    units = part.text.encode("utf-16-le")
    return [
        (units[2 * e["offset"] : 2 * (e["offset"] + e["length"])].decode("utf-16-le"), e.get("url"))
        for e in part.entities
    ]


def test_a_tables_columns_are_aligned_as_its_delimiter_row_says() -> None:
    """`---:` and `:---:` were ignored: prices and amounts stood flush left."""
    doc = "| Item | Price | Qty |\n|:---|---:|:-:|\n| Apple | $1.50 | 3 |\n| Melon | $12.00 | 10 |"
    assert render(doc).text == (
        "Item  |  Price | Qty\n------+--------+----\nApple |  $1.50 |  3\nMelon | $12.00 | 10"
    )
    quoted = "> | n | x |\n> |--:|---|\n> | 1 | a |\n> | 100 | b |"  # its first header cell: left
    assert render(quoted).text == "n   | x\n----+--\n  1 | a\n100 | b"


def test_a_tables_links_are_listed_under_it() -> None:
    """A table is one code block, which holds no links: the address of `[docs](…)` in a cell
    was lost. Its words stay in the cell, and the link is listed under the table."""
    doc = (
        "| Site | Link |\n|---|---|\n| Google | [google](https://google.com) |\n"
        "| Py | [docs](https://docs.python.org) and [bad](javascript:x) |\n\nAfter."
    )
    part = render(doc)
    assert part.text == (
        "Site   | Link\n-------+-------------\nGoogle | google\nPy     | docs and bad\n"
        "🔗 google\n🔗 docs\n\nAfter."
    )
    links = _shown_with_urls(part)
    assert links[1:] == [("google", "https://google.com"), ("docs", "https://docs.python.org")]
    assert part.entities[0]["type"] == "pre"


def test_a_tables_links_with_the_same_words_are_told_apart_by_their_row() -> None:
    """A "docs" link in every row was listed as "🔗 docs" again and again."""
    doc = (
        "| Library | Docs |\n|---|---|\n| requests | [docs](https://a.io) |\n"
        "| httpx | [docs](https://b.io) |\n| [aiohttp](https://c.io) | [docs](https://d.io) |"
    )
    part = render(doc)
    assert part.text.split("\n")[5:] == [
        "🔗 requests: docs",
        "🔗 httpx: docs",
        "🔗 aiohttp",
        "🔗 aiohttp: docs",
    ]
    links = _shown_with_urls(part)
    assert links[1:] == [
        ("docs", "https://a.io"),
        ("docs", "https://b.io"),
        ("aiohttp", "https://c.io"),
        ("docs", "https://d.io"),
    ]
    # A first column of categories does not tell them apart: the first one that does.
    doc = (
        "| Lang | Tool | Docs |\n|---|---|---|\n| Python | uv | [docs](https://a.io) |\n"
        "| Python | Poetry | [docs](https://b.io) |\n| Rust | cargo | [docs](https://c.io) |"
    )
    assert render(doc).text.split("\n")[5:] == ["🔗 uv: docs", "🔗 Poetry: docs", "🔗 cargo: docs"]


def test_a_long_code_block_is_cut_between_its_functions() -> None:
    """The cut in a code block was at the last line that fitted, inside a function, and the
    next message began with a deeply indented line that lost its indentation (Telegram drops
    the spaces a message starts with). It moves back to the least indented line near the end."""
    body = "".join(
        f"def func_{n}(x):\n    # Doc {n}.\n    if x > {n}:\n        for i in range(x):\n"
        f"            print(i, x, {n})\n        return x * {n}\n    return None\n\n"
        for n in range(40)
    )
    parts = Segmenter().parts(f"```python\n{body}```\n\nDone.")
    assert len(parts) == 2
    assert parts[0].text.endswith("    return None") and parts[1].text.startswith("def func_")
    assert parts[0].size > 0.75 * PART_LIMIT
    assert parts[0].text + "\n\n" + parts[1].text == body.rstrip("\n") + "\n\nDone."
    c = "".join(
        f"int f{n}(int x) {{\n    if (x) {{\n        return {n};\n    }}\n}}\n" for n in range(150)
    )
    parts = Segmenter().parts(f"```c\n{c}```")
    assert len(parts) > 1 and all(part.text.startswith("int f") for part in parts)  # not `}`


def test_a_link_is_never_cut_between_its_words() -> None:
    """Cut there, both halves showed raw: `[the official` in one message, `docs](https://…)` in
    the next."""
    link = "[the official documentation page](https://docs.python.org/3/library/asyncio.html)"
    for n in range(795, 820):  # the link ends near a message's end
        doc = "word " * n + f"see {link} and " + "more " * 300
        parts = Segmenter().parts(doc)
        assert len(parts) == 2
        assert not any("](" in p.text or "[the" in p.text for p in parts)
        linked = [e for p in parts for e in p.entities if e["type"] == "text_link"]
        assert [e["length"] for e in linked] == [len("the official documentation page")]


def test_a_message_is_cut_before_formatting_rather_than_inside_it() -> None:
    """A short bold phrase at a message's end goes to the next message whole; a marker that
    nothing closes (`*args`) is not taken for the start of one."""
    for n in range(795, 815):
        doc = "word " * n + "**an important note** and " + "more " * 300
        streamed = Segmenter()
        for end in range(40, len(doc), 97):
            streamed.parts(doc[:end], streaming=True)
        for parts in (Segmenter().parts(doc), streamed.parts(doc)):
            assert len(parts) == 2
            assert "*" not in parts[0].text + parts[1].text
            bold = [e for p in parts for e in p.entities if e["type"] == "bold"]
            assert [e["length"] for e in bold] == [len("an important note")]
    for limit in (30, 40, 50):
        parts = Segmenter(limit=limit).parts("Call it with *args and then pass the values on.")
        assert not any(e["type"] == "italic" for p in parts for e in p.entities)
    parts = Segmenter(limit=40).parts("Intro line here.\n- Pass *args to it\n- Then call the next")
    assert [p.text for p in parts][-1].startswith("⦁ Then")


def test_prose_right_after_a_code_block_is_not_code() -> None:
    """A cut right after a closing fence counted as inside the block: the next part reopened
    it, and the prose after it showed as code."""
    code = "```bash\n" + "\n".join(f"echo line {i}" for i in range(120)) + "\n```\n"
    doc = "Run this:\n\n" + code + "After it, " + "some words " * 300
    for limit in (1600, 2000, 4090):
        parts = Segmenter(limit=limit).parts(doc)
        last = parts[-1]
        assert not any(e["type"] == "pre" for e in last.entities), limit
        assert "```" not in "".join(p.text for p in parts)
