"""Settling a streaming snapshot's unfinished last line: markers show as formatting at once."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.streaming.render import Part, render
from bot.streaming.split import Segmenter
from bot.streaming.tail import settle
from tests.test_render_split import assert_valid


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
        ("**[docs](https://ex", "**docs**"),
        ("[a](https://a.io) and [b", "[a](https://a.io) and b"),
        # Nothing to settle, or not ours to settle.
        ("**done** and *done*", "**done** and *done*"),
        ("2 * 3 = 6", "2 * 3 = 6"),
        ("snake_case_na", "snake_case_na"),
        ("- **item", "- **item**"),
        ("**open on an earlier line\nand more", "**open on an earlier line\nand more"),
        ("see [docs]", "see docs"),  # its address may come next
        ("cited [1] here", "cited [1] here"),
        (r"an escaped \*star", r"an escaped \*star"),
        ("`a * b", "`a * b`"),  # no emphasis inside code
    ],
)
def test_settle(snapshot: str, settled: str) -> None:
    assert settle(snapshot) == settled


def test_settled_snapshots_show_formatting_not_markers() -> None:
    part = render(settle("# Plan\n\n**Step 1.** Do the *thi"))
    assert part.text == "📌 Plan\n\nStep 1. Do the thi"
    assert {"type": "italic", "offset": 24, "length": 3} in part.entities  # 📌 is 2 units


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


# Paragraphs of words with inline formatting: what `settle` is about.
_word = st.text(alphabet="abcxyzАБВ0123😀", min_size=1, max_size=8)
_inline = st.one_of(
    _word,
    _word.map(lambda w: f"**{w}**"),
    _word.map(lambda w: f"*{w}*"),
    _word.map(lambda w: f"_{w}_"),
    _word.map(lambda w: f"~~{w}~~"),
    _word.map(lambda w: f"`{w}`"),
    _word.map(lambda w: f"[{w}](https://example.com/{w})"),
    st.tuples(_word, _word).map(lambda ws: f"**{ws[0]} `{ws[1]}`**"),
    st.tuples(_word, _word).map(lambda ws: f"**[{ws[0]}](https://e.com/{ws[1]})**"),
)
_paragraph = st.lists(_inline, min_size=1, max_size=12).map(" ".join)
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
    rendered: list[str] = []

    def counting(source: str) -> Part:
        rendered.append(source)
        return render(source)

    segmenter = Segmenter(renderer=counting)
    first = segmenter.parts("Hello **world", streaming=True)
    first.append(Part("callers may change the list they get"))
    again = segmenter.parts("Hello **world", streaming=True)
    assert len(rendered) == 1
    assert again == [render("Hello **world**")]
    segmenter.parts("Hello **world", streaming=False)
    assert len(rendered) == 2
