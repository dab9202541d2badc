"""Settling a streaming snapshot's unfinished last line: markers show as formatting at once."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.streaming.render import Part, render
from bot.streaming.split import Segmenter
from bot.streaming.tail import settle
from tests.test_render_split import CountingRenderer, assert_valid, inline, squash


@pytest.mark.parametrize(
    ("snapshot", "settled"),
    [
        ("Some **bol", "Some **bol**"),
        ("Some **bold*", "Some **bold**"),  # half of the closing marker
        ("Some **bold ", "Some **bold**"),
        ("an _ita", "an _ita_"),
        ("a ~~stri", "a ~~stri~~"),
        ("run `pip inst", "run `pip inst`"),
        ("**see `code", "**see `code`**"),
        ("in ***both", "in ***both***"),
        ("see [the docs](https://exa", "see the docs"),
        ("see [the do", "see the do"),
        # An image being written: its symbol, then its text, as it will show; no `!` first.
        ("See !", "See"),
        ("See ![", "See 🖼"),
        ("See ![al", "See 🖼al"),
        ("See ![alt](https://e.c", "See 🖼alt"),
        ("![Diag", "🖼Diag"),  # (no link definition being written)
        ("Wow!", "Wow!"),
        ("run `a !", "run `a !`"),
        ("**[docs](https://ex", "**docs**"),
        # An address with parentheses in it is complete when they balance (Wikipedia's are).
        ("[Python](https://w.org/wiki/Python_(language)", "Python"),
        (
            "[Python](https://w.org/wiki/Python_(language)) is",
            "[Python](https://w.org/wiki/Python_(language)) is",
        ),
        ('[x](https://a.io "Tit', "x"),
        ("[a](https://x.io/(a) b", "[a](https://x.io/(a) b"),  # no link: shown as written
        # A footnote's mark or a task's box being written: no `^1` or bullet flashing by first.
        ("Claim[^", "Claim"),
        ("Claim[^1", "Claim"),
        ("Claim[^1]", "Claim¹"),  # as rendered
        ("Claim[^src] here", "Claim here"),  # its note is to come: left out until then
        ("Claim[^a-z] here", "Claim[^a-z] here"),  # a character class: no note's name
        ("Text.\n\n[^1", "Text.\n\n"),
        ("- done\n- [x", "- done\n"),
        ("- [ ]", ""),
        ("1. [X] ", ""),
        ("- [x] do", "- [x] do"),
        ("- [link te", "- link te"),
        # A key being written shows once complete, as code, not with its tags first.
        ("Press <kbd>Ct", "Press"),
        ("Press <kbd>Ctrl</kbd>+<kb", "Press <kbd>Ctrl</kbd>+"),
        ("the `<kbd>` tag is", "the `<kbd>` tag is"),
        ("Read the [FAQ][f", "Read the FAQ"),  # a link to a definition, being written
        ("Read the [FAQ][faq] first", "Read the FAQ first"),  # its definition is to come
        ("Text.\n\n[faq]: ", "Text.\n\n"),  # the definition: it shows nothing
        ("a [1] b", "a [1] b"),
        ("Water, H<sub>2", "Water, H"),
        # `$` before a digit is a price, unless math follows it on its line (DeepSeek's).
        ("当 $0 < x < 2", "当"),
        ("根为 $1 \\pm \\sqrt{3", "根为"),
        ("It costs $5 < $10 so", "It costs $5 < $10 so"),
        # ... only among numbers, one-letter variables and operators: these are prices.
        (
            "it is $1,000 per year. Call `get_user(id)` now",
            "it is $1,000 per year. Call `get_user(id)` now",
        ),
        ("Total: $5 = 3 items, ok", "Total: $5 = 3 items, ok"),
        ("costs $5\nnext line here", "costs $5\nnext line here"),  # (the number is done)
        # Prices are no math to `render`: `$20/month** … is $` is none, its `**` closes.
        (
            "costs **$20/month** while Pro is $40 a",
            "costs **$20/month** while Pro is $40 a",
        ),
        ("Old price ~~$10~~ and now $8 t", "Old price ~~$10~~ and now $8 t"),
        ("Pay *$5* now and $6 l", "Pay *$5* now and $6 l"),
        ("Between $1,000 and **$2,000*", "Between $1,000 and **$2,000**"),  # (`$…$2`: prices)
        # ... so math closed at the very end is not known to be math until what follows it is.
        ("If $5 < b **$", "If"),
        ("the radius $r$", "the radius"),
        ("the radius $r$.", "the radius $r$."),
        ("Budget:\n- $1,000,000", "Budget:\n"),  # held: no bare `-` under `Budget:`
        ("text<br/", "text"),
        # Closed math is no emphasis: its `_` had a stray `_` closing it at the line's end.
        ("velocity $\\vec{v}_d$. Setting", "velocity $\\vec{v}_d$. Setting"),
        ("drift \\(\\bar{x}_n\\) and", "drift \\(\\bar{x}_n\\) and"),
        # A definition whose title is being written is none yet: it would show raw.
        ('See [docs][d].\n\n[d]: https://x.y "Docs ti', "See docs."),
        ("Use the <b> tag", "Use the <b> tag"),  # about HTML: no formatting hugs its text
        # An HTML link being written, its address after other attributes too: a link to come.
        ('See <a target="_bl', "See"),
        ('See <a target="_blank" hr', "See"),
        ("See <a class=x href=https://x.y>the si", "See"),
        # ... whose `_blank` opens no emphasis (it had a stray `_` closing it at the end).
        (
            'See <a target="_blank" href="https://x.y">docs</a> and',
            'See <a target="_blank" href="https://x.y">docs</a> and',
        ),
        ("Make it <strong", "Make it"),
        ("An <u>underl", "An"),  # underline, and a highlight, once closed
        # An HTML paragraph being written: closed, as its tags will go once it is.
        ("<p>Some **bol", "<p>Some **bol**</p>"),
        ("Intro\n<p class=", "Intro\n"),
        ("<p>a</p><p>", "<p>a</p>"),
        ("<p>a</p", "<p>a</p>"),
        ("<p> is a tag", "<p> is a tag"),  # about HTML
        # HTML's code block being written: code, as an open fence is (its `*p` not closed).
        ("<pre><co", ""),
        ("Run:\n<pre>\nint *p = &a", "Run:\n```\nint *p = \n"),
        ("<pre>\nint *p;\n</code></p", "```\nint *p;\n"),
        ("<pre>\nint *p;\n</pre>\nSo *it", "```\nint *p;\n```\nSo *it*"),
        ("An <ins>added</ins> and <mark>hi", "An <ins>added</ins> and"),
        ("x = dp[i][j", "x = dp[i][j"),  # an index, not a link
        ("Water, H<su", "Water, H"),
        ("Water, H<sub>2</sub>O and <b>bo", "Water, H<sub>2</sub>O and"),
        ("if a <", "if a"),  # (a tag, maybe: shown with what comes next)
        ("if a < b", "if a < b"),
        ("[a](https://a.io) and [b", "[a](https://a.io) and b"),
        # A `_` or `*` in a link's address opens no emphasis: none is closed at the end.
        ("see [x](https://a.io/_b) and", "see [x](https://a.io/_b) and"),
        ("see <https://a.io/*/b> and", "see <https://a.io/*/b> and"),
        # An autolink being written shows without its bracket, as it will once complete.
        ("see <https://exa", "see https://exa"),
        ("see <https://a.io> and <mailto:x", "see <https://a.io> and mailto:x"),
        (r"see <https://a.io/_b", r"see https://a.io/\_b"),  # (no emphasis in it)
        ("see <h", "see"),  # ... and before its `:`, no bracket that goes once it comes
        ("see <https", "see"),
        ("mail <mailt", "mail"),
        ("use <htm", "use <htm"),  # no scheme: shown as written
        ("run `<http", "run `<http`"),  # code
        ("`<https://exa", "`<https://exa`"),  # code
        (r"\<https://exa", r"\<https://exa"),  # escaped
        ("Vec<T", "Vec<T"),
        # Nothing to settle, or not ours to settle.
        ("**done** and *done*", "**done** and *done*"),
        ("2 * 3 = 6", "2 * 3 = 6"),
        ("snake_case_na", "snake_case_na"),
        # A Python dunder being written: no `__` made up to close it (`__ini__`).
        ("Define __ini", "Define __ini"),
        ("Define __init_", "Define __init"),
        ("a __init__ and __na", "a __init__ and __na"),
        ("A __Bold", "A __Bold__"),  # capitalized: bold, maybe
        ("**use __i", "**use __i**"),
        ("- **item", "- **item**"),
        # Emphasis and links run on across a paragraph's soft line breaks, not across blocks.
        ("**open on an earlier line\nand more", "**open on an earlier line\nand more**"),
        ("See [the official\ndocs page](https://e", "See the official\ndocs page"),
        ("1. **Step**: do\n   the thing **now", "1. **Step**: do\n   the thing **now**"),
        ("- a **b\n- c", "- a **b\n- c"),
        ("## T **b\npara", "## T **b\npara"),
        ("a **b\n\nc", "a **b\n\nc"),
        ("see [docs]", "see docs"),  # its address may come next
        ("cited [1] here", "cited [1] here"),
        (r"an escaped \*star", r"an escaped \*star"),
        ("`a * b", "`a * b`"),  # no emphasis inside code
        ("Use **`git rebase -", "Use **`git rebase -`**"),
        ("***bold italic** just ital", "***bold italic** just ital*"),
        ("x = a*b + c*d, and 2**10 is", "x = a*b + c*d, and 2**10 is"),  # arithmetic
        # ... also inside an open emphasis, which it does not close (CommonMark's rule of 3).
        ("**Total = 5*3 = 15", "**Total = 5*3 = 15**"),
        ("*Note: 2**10", "*Note: 2**10*"),
        ("f(*args) and 2*3", "f(*args) and 2*3"),  # Python's stars, and a product
        ("Use **kwargs for", "Use **kwargs for"),
        # ... held while they are written: emphasis (`*another*`) or not is known with the word.
        ("Call f(*ar", "Call f("),
        ("Call f(*args, **kwar", "Call f(*args,"),
        ("It is *a", "It is"),
        ("x = a*ar", "x = a*ar"),  # arithmetic
        ("run `f(*a", "run `f(*a`"),  # code
        (r"Escaped: \*not italic\*", r"Escaped: \*not italic\*"),
        ("y = 2*x\n", "y = 2*x"),
        ("a **b\n", "a **b**"),  # the paragraph may go on
        ("a **b\n\n", "a **b"),  # a finished paragraph: what is open there, the model left open
        # LaTeX math appears once it is closed (then as Unicode, not as raw LaTeX).
        (r"the area \(A = \pi r^", "the area"),
        (r"with \(r\) the radius and \(x", r"with \(r\) the radius and"),
        ("Solve:\n\n\\[\nx = \\frac{a}", "Solve:\n\n"),
        ("Solve:\n\n\\[\nx = 1\n\\]", "Solve:\n\n\\[\nx = 1\n\\]"),
        (r"run `re.compile(r'\(\d", r"run `re.compile(r'\(\d`"),  # code
        # The same with dollars; a `$` before a space is a price, and before a digit too once
        # what follows it is not math.
        (r"The area is $\pi r^", "The area is"),
        (r"with $r$ the radius and $x_", "with $r$ the radius and"),
        ("Solve:\n\n$$\nx = \\frac{a}", "Solve:\n\n"),
        ("Solve:\n\n$$x = 1$$ and $", "Solve:\n\n$$x = 1$$ and"),
        ("It costs $5 or $1", "It costs $5 or"),  # a price or math: known with what follows
        ("It costs $5 or $1 a", "It costs $5 or $1 a"),
        ("pay $ 5 and `$x", "pay $ 5 and `$x`"),
        (r"an escaped \$x", r"an escaped \$x"),
        (r"an escaped backslash \\(x", r"an escaped backslash \\(x"),
        ("a lone backslash \\", "a lone backslash"),  # an escape being written
        # A table appears once its header is complete.
        ("Intro\n\n| a | b |", "Intro"),
        ("Intro\n\n| a | b |\n|--", "Intro"),
        ("| a | b |\n|---|---|\n| 1 | 2 |\n| 3 |", "| a | b |\n|---|---|\n| 1 | 2 |\n| 3"),
        # A list item or a rule still to be written: under a line of text, `-` or `=` alone
        # would make it a heading until the item's text came.
        ("Here are options:\n-", "Here are options:"),
        ("Here are options:\n- ", "Here are options:"),
        ("Title\n==", "Title"),
        ("1. Apple\n     -", "1. Apple"),
        ("> Quoted\n> -", "> Quoted"),
        ("a **b\n-", "a **b**"),
        ("Intro\n\n-", "Intro"),
        # Nor with the markers its text opens with: `-` once they go, and `Options:` above it
        # a heading for a moment (Claude's and ChatGPT's `- **Fast:** …` lists).
        ("Here are the options:\n- **", "Here are the options:"),
        ("1. **Install** the tool:\n   - `", "1. **Install** the tool:"),
        ("Options:\n+ ~~", "Options:"),
        ("Steps:\n2.", "Steps:"),
        ("- one\n- two", "- one\n- two"),
        ("Intro\n\n##", "Intro"),  # a heading's text to come: no empty heading meanwhile
        # Bold that opens before punctuation in text without spaces, which `as_meant` shows
        # bold once closed: closed while streaming too, not shown raw until then.
        ("安装依赖**（可选", "安装依赖**（可选**"),
        ("Note**(opt", "Note**(opt"),  # with spaces to write, CommonMark's rule holds
    ],
)
def test_settle(snapshot: str, settled: str) -> None:
    assert settle(snapshot) == settled


def test_settled_snapshots_show_formatting_not_markers() -> None:
    part = render(settle("# Plan\n\n**Step 1.** Do the *thi"))
    assert part.text == "📌 Plan\n\nStep 1. Do the thi"
    assert {"type": "italic", "offset": 24, "length": 3} in part.entities  # 📌 is 2 units
    part = render(settle("安装依赖**（可选"))
    assert part.text == "安装依赖（可选"
    assert part.entities == ({"type": "bold", "offset": 4, "length": 3},)  # with its `（`


# Paragraphs of words with inline formatting: what `settle` is about.
_word = st.text(alphabet="abcxyzАБВ0123😀", min_size=1, max_size=8)
_inline = st.one_of(
    inline(_word),
    _word.map(lambda w: f"*{w}*"),
    _word.map(lambda w: f"~~{w}~~"),
    st.tuples(_word, _word).map(lambda ws: f"**{ws[0]} `{ws[1]}`**"),
    st.tuples(_word, _word).map(lambda ws: f"**[{ws[0]}](https://e.com/{ws[1]})**"),
    # Across a soft line break of the paragraph.
    st.tuples(_word, _word).map(lambda ws: f"**{ws[0]}\n{ws[1]}**"),
    st.tuples(_word, _word).map(lambda ws: f"[{ws[0]}\n{ws[1]}](https://e.com/{ws[1]})"),
)
_paragraph = st.lists(_inline, min_size=1, max_size=12).map(" ".join)
_cell = st.one_of(_word, _word.map(lambda w: f"**{w}**"), _word.map(lambda w: f"`{w}`"))


def _table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join([lines[0], "|" + "---|" * len(rows[0]), *lines[1:]])


_tables = st.integers(min_value=1, max_value=3).flatmap(
    lambda k: st.lists(st.lists(_cell, min_size=k, max_size=k), min_size=2, max_size=4)
)
_text = st.lists(_paragraph, min_size=1, max_size=3).map("\n\n".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_text, st.data())
def test_every_prefix_shows_a_prefix_of_the_final_text(markdown: str, data: st.DataObject) -> None:
    """However the stream is cut, what the user sees is valid and is the start of what they
    will see at the end: no marker shows and then vanishes."""
    final = squash(render(markdown).text)
    cut = data.draw(st.integers(min_value=1, max_value=len(markdown)))
    part = render(settle(markdown[:cut]))
    if part.text:
        assert_valid(part, limit=10**9)
    assert final.startswith(squash(part.text))


def test_bold_closed_after_a_number_is_no_list_marker() -> None:
    """Found by the property test: `0**` closing bold on its line was taken for a list's
    number being written, so the line went and the bold showed open, `**0`."""
    assert render(settle("**0\n0**\n\n*")).text == "0\n0"


def test_latex_never_shows_raw_while_streaming() -> None:
    answer = (
        "The area is \\(A = \\pi r^2\\), where \\(r\\) is the radius.\n\n"
        "\\[\nx = \\frac{-b \\pm \\sqrt{b^2 - 4ac}}{2a}\n\\]\n\n"
        "So \\(x_1 = 2\\) and \\(x_2 = 3\\)."
    )
    segmenter = Segmenter()
    for end in range(1, len(answer) + 1):
        shown = segmenter.parts(answer[:end], streaming=True)
        text = "\n\n".join(part.text for part in shown)
        assert "\\" not in text and "^" not in text and "_" not in text, answer[:end]
    assert render(answer).text == (
        "The area is A = π r², where r is the radius.\n\n"
        "x = (-b ± √(b² - 4ac))/(2a)\n\n"
        "So x₁ = 2 and x₂ = 3."
    )
    # Written with dollars, as Gemini and DeepSeek write it: the same.
    dollars = (
        answer.replace("\\(", "$").replace("\\)", "$").replace("\\[", "$$").replace("\\]", "$$")
    )
    segmenter = Segmenter()
    for end in range(1, len(dollars) + 1):
        shown = segmenter.parts(dollars[:end], streaming=True)
        text = "\n\n".join(part.text for part in shown)
        assert not set("\\^_$") & set(text), dollars[:end]
    assert render(dollars).text == render(answer).text


def assert_streams_as_final(answer: str) -> None:
    """Every state of `answer` streamed shows the start of what its final render shows: no
    character or marker that goes, no formatting that the end does not have there."""
    final = render(answer)
    segmenter = Segmenter()
    for end in range(1, len(answer) + 1):
        for part in segmenter.parts(answer[:end], streaming=True):
            assert final.text.startswith(part.text), answer[:end]
            for e in part.entities:
                assert any(
                    f["type"] == e["type"]
                    and f["offset"] == e["offset"]
                    and f["length"] >= e["length"]
                    for f in final.entities
                ), (answer[:end], e)


@pytest.mark.parametrize(
    "answer",
    [
        "It costs **$20/month** while Pro is $40 a month.",
        "Old price ~~$10~~ and now $8 only today.",
        "Pay *$5* now and $6 later today.",
        "Between $1,000 and **$2,000** per year usually.",
        "The **total** is $5 and **tax** is $1 extra.",
        "If $5 < b **$5** then $x$ and $y$.",
    ],
)
def test_formatted_prices_stream_without_stray_markers(answer: str) -> None:
    assert_streams_as_final(answer)


def test_python_stars_stream_without_emphasis() -> None:
    """`f(*a` showed "a" in italics, `**kwarg` "kwarg" in bold, then the stars came back."""
    assert_streams_as_final("Call f(*args, **kwargs) to pass them, *also* this **key** one.")


def test_dunders_stream_as_written() -> None:
    assert_streams_as_final("Define __init__ and __name__ in the class, and __Note__ here.")


def test_autolinks_stream_without_their_bracket() -> None:
    assert_streams_as_final("See <https://example.com/a> now, or <mailto:a@b.co>; <html> too.")
    assert_streams_as_final("See <https://a.io/_b_/*c*> now.")


def test_images_stream_as_their_symbol_and_text() -> None:
    assert_streams_as_final(
        "See ![alt text](https://e.com/i.png) here! And ![](https://e.com/j.png)."
    )
    assert_streams_as_final("![Diagram](https://e.com/d.png)\n\nWow ! Done.")


def test_the_final_state_is_not_settled() -> None:
    """A marker the model really left open stays as the model wrote it."""
    segmenter = Segmenter()
    assert segmenter.parts("a **b", streaming=True)[0].text == "a b"
    assert segmenter.parts("a **b")[0].text == "a **b"


def test_code_blocks_are_not_settled() -> None:
    segmenter = Segmenter()
    [part] = segmenter.parts("```python\nx = '**", streaming=True)
    assert part.text.endswith("x = '**")


def test_a_snapshot_asked_for_again_is_not_rendered_again() -> None:
    renderer = CountingRenderer()
    segmenter = Segmenter(renderer=renderer)
    first = segmenter.parts("Hello **world", streaming=True)
    first.append(Part("callers may change the list they get"))
    again = segmenter.parts("Hello **world", streaming=True)
    assert len(renderer.sources) == 1
    assert again == [render("Hello **world**")]
    segmenter.parts("Hello **world", streaming=False)
    assert len(renderer.sources) == 2


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(_paragraph, _tables.map(_table)), min_size=1, max_size=3), st.data())
def test_a_table_never_shows_as_raw_pipes(blocks: list[str], data: st.DataObject) -> None:
    """(A table's column widths follow its widest cell, so a growing one is not a prefix of the
    final one: what is checked is that no row shows as Markdown source.)"""
    markdown = "\n\n".join(blocks)
    cut = data.draw(st.integers(min_value=1, max_value=len(markdown)))
    part = render(settle(markdown[:cut]))
    if part.text:
        assert_valid(part, limit=10**9)
    assert not any(line.startswith("|") for line in part.text.splitlines())


def test_only_the_last_bare_line_waits() -> None:
    """A column of numbers shows as it is written (each number but the one being typed); it
    once hid every line and, long enough, recursed until Python gave up."""
    column = "Here:\n\n" + "\n".join(str(i) for i in range(1, 3000))
    assert settle(column).endswith("\n2997\n2998")
