"""The g4f client against the fake backend: text only, failures classified, hazards fenced off."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.llm import ChatMessage, FailureKind, LLMClient, LLMFailure
from bot.llm.text import LineEnds, ReasoningFilter
from tests.fakes.llm import FakeLLM, Reply
from tests.helpers import started_client


def make_client(llm: FakeLLM, tmp_path: Path, idle: float = 5, total: float = 30) -> LLMClient:
    return started_client(tmp_path, api_base=llm.base_url, api_key="secret", idle=idle, total=total)


async def collect(client: LLMClient, messages: list[ChatMessage]) -> str:
    out = ""
    async with contextlib.aclosing(client.stream(messages)) as pieces:
        async for piece in pieces:
            out += piece
    return out


async def test_streams_text_only_and_leaves_messages_alone(llm: FakeLLM, tmp_path: Path) -> None:
    client = make_client(llm, tmp_path)
    llm.script(Reply("The answer.", reasoning="let me think"))
    messages: list[ChatMessage] = [
        {"role": "system", "content": "Be   brief."},
        {"role": "user", "content": "Q"},
        {"role": "user", "content": "Q"},
    ]
    before = [dict(m) for m in messages]
    assert await collect(client, messages) == "The answer."
    assert messages == before  # g4f edits the list it gets; ours must not change
    assert llm.received[-1].body["model"] == "gpt-4"
    # g4f's client appends every request to a usage log that is never trimmed; not here.
    assert not list(tmp_path.rglob("*.jsonl"))  # noqa: ASYNC240


async def test_the_backend_receives_exactly_the_conversation(llm: FakeLLM, tmp_path: Path) -> None:
    """g4f would drop a repeated question, rewrite the system prompt and collapse whitespace."""
    client = make_client(llm, tmp_path)
    code = "Why does this fail?\n\n\n\n```python\ndef f():   \n    return 1   \n```\n" + "x" * 80
    messages: list[ChatMessage] = [
        {
            "role": "system",
            "content": "You are a helpful assistant. Please always be concise. " * 3,
        },
        {"role": "user", "content": "continue"},
        {"role": "assistant", "content": "Part one."},
        {"role": "user", "content": code},
        {"role": "assistant", "content": "Part two."},
        {"role": "user", "content": "continue"},
    ]
    await collect(client, messages)
    assert llm.received[-1].messages == messages


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        (Reply("abc", fault="drop", fault_after=2), FailureKind.CONNECTION),
        (Reply(fault="http500"), FailureKind.HTTP),
        (Reply(fault="http500_plain"), FailureKind.HTTP),
        (Reply(fault="http429"), FailureKind.RATE_LIMIT),
        (Reply("abc", fault="sse_error", fault_after=2), FailureKind.HTTP),
        (Reply(fault="empty"), FailureKind.EMPTY),
        (Reply("abc", fault="stall", fault_after=1), FailureKind.IDLE_TIMEOUT),
        # A reply g4f cannot read (g4f's own code fails on it): the backend's, not the bot's.
        (Reply(fault="html"), FailureKind.HTTP),
        (Reply("abcdef", fault="garbage", fault_after=3), FailureKind.HTTP),
    ],
    ids=lambda v: v.value if isinstance(v, FailureKind) else "",
)
async def test_failures_are_classified(
    llm: FakeLLM, tmp_path: Path, reply: Reply, kind: FailureKind
) -> None:
    client = make_client(llm, tmp_path, idle=0.5)
    llm.script(reply)
    with pytest.raises(LLMFailure) as failure:
        await collect(client, [{"role": "user", "content": "hi"}])
    assert failure.value.kind is kind


def test_an_error_in_the_bots_own_code_stays_internal() -> None:
    """Only what code other than the bot's raised is taken for a reply it could not read."""
    import json

    from bot.llm.errors import misread

    def raised(call: Callable[[], object]) -> Exception:
        try:
            call()
        except Exception as error:
            return error
        raise AssertionError("nothing raised")

    assert misread(raised(lambda: json.loads("not json")))
    assert not misread(raised(lambda: LineEnds().feed(None)))  # type: ignore[arg-type]


async def test_total_timeout_cuts_a_slow_answer(llm: FakeLLM, tmp_path: Path) -> None:
    client = make_client(llm, tmp_path, total=0.5)
    llm.script(Reply("x" * 1000, chunk_size=1, delay=0.01))
    with pytest.raises(LLMFailure) as failure:
        await collect(client, [{"role": "user", "content": "hi"}])
    assert failure.value.kind is FailureKind.TOTAL_TIMEOUT
    await llm_closed(llm)


async def test_closing_the_stream_closes_the_upstream_request(llm: FakeLLM, tmp_path: Path) -> None:
    client = make_client(llm, tmp_path)
    llm.script(Reply("y" * 2000, chunk_size=1, delay=0.01))
    async with contextlib.aclosing(client.stream([{"role": "user", "content": "hi"}])) as s:
        async for _ in s:
            break
    await llm_closed(llm)


async def llm_closed(llm: FakeLLM) -> None:
    import asyncio

    for _ in range(100):
        if llm.received[-1].client_closed:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the upstream request was not closed")


async def test_an_exception_a_provider_yields_explains_an_empty_answer(tmp_path: Path) -> None:
    """Some g4f providers yield an exception instead of raising it; with no text before it, the
    answer fails with that exception's kind rather than as merely empty."""
    from g4f.errors import RateLimitError

    client = started_client(tmp_path, api_base="http://127.0.0.1:9/v1", total=5)

    async def pieces() -> AsyncIterator[object]:
        yield RateLimitError("slow down")

    client._create = lambda messages, model: pieces()  # type: ignore[method-assign]
    with pytest.raises(LLMFailure) as failure:
        await collect(client, [{"role": "user", "content": "hi"}])
    assert failure.value.kind is FailureKind.RATE_LIMIT


async def test_only_text_is_kept_from_what_a_provider_yields(tmp_path: Path) -> None:
    from g4f.providers.response import FinishReason, Reasoning, Usage

    client = started_client(tmp_path, api_base="http://127.0.0.1:9/v1", total=5)

    async def pieces() -> AsyncIterator[object]:
        yield Reasoning("thinking")
        yield "Hel"
        yield ""
        yield ValueError("skipped once text has come")
        yield "lo"
        yield Usage(completion_tokens=2)
        yield FinishReason("stop")

    client._create = lambda messages, model: pieces()  # type: ignore[method-assign]
    assert await collect(client, [{"role": "user", "content": "hi"}]) == "Hello"


async def test_a_cancelled_stream_stays_cancelled_and_its_timer_is_gone(
    llm: FakeLLM, tmp_path: Path
) -> None:
    """A stop cancels the task reading the stream: that is not turned into a timeout, and the
    idle timer does not fire at the task later."""
    import asyncio

    client = make_client(llm, tmp_path, idle=0.3)
    llm.script(Reply("abc", fault="stall", fault_after=1))
    started = asyncio.Event()

    async def read() -> None:
        async for _ in client.stream([{"role": "user", "content": "hi"}]):
            started.set()

    task = asyncio.create_task(read())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.5)  # past the idle timeout: nothing fires
    assert task.cancelled()
    await llm_closed(llm)


async def test_the_endpoint_is_checked_for_the_log(llm: FakeLLM, tmp_path: Path) -> None:
    """A wrong G4F_API_BASE or G4F_MODEL is named at start-up, not found by a user's question."""
    import socket

    def client(base: str, model: str = "gpt-4") -> LLMClient:
        made = started_client(tmp_path, api_base=base, api_key="", idle=5, total=30)
        made.model = model
        return made

    assert await client(llm.base_url).check_endpoint() is None
    models = f"{llm.base_url}/models"
    assert await client(llm.base_url, "llama3").check_endpoint() == (
        f"G4F_MODEL llama3 is not among the models {models} lists (gpt-4, gpt-4o-mini)"
    )
    no_v1 = llm.base_url.removesuffix("/v1")
    assert await client(no_v1).check_endpoint() == (
        f"GET {no_v1}/models answered HTTP 404: is G4F_API_BASE the API's base address (often "
        "ending in /v1)?"
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    said = await client(nowhere).check_endpoint()
    assert said is not None and said.startswith(f"GET {nowhere}/models failed (")
    assert await client("").check_endpoint() is None  # g4f's own providers: nothing to ask


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=40))
def test_a_think_block_is_not_the_answer_however_it_is_chunked(sizes: list[int]) -> None:
    """Reasoning models write their thinking into the text, in `<think>` tags at the start."""

    def through(text: str) -> str:
        reasoning, out, at = ReasoningFilter(), "", 0
        for size in [*sizes, len(text)]:
            out += reasoning.feed(text[at : at + size])
            at += size
        return out + reasoning.end()

    assert through("<think>\nFirst, 2 < 3.\n</think>\n\nThe answer is **42**.") == (
        "The answer is **42**."
    )
    assert through("\n<think>a</think>Yes") == "Yes"
    assert through("<think>only thinking, cut off") == "only thinking, cut off"
    assert through("<think></think>   ") == ""  # empty: a failure, as an empty answer is
    assert through("<thing> is not a tag") == "<thing> is not a tag"
    assert through("Use <think> tags like this: <think>x</think>") == (
        "Use <think> tags like this: <think>x</think>"
    )


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=30))
def test_line_ends_are_newlines_however_they_are_chunked(sizes: list[int]) -> None:
    text = "## Title\r\n\r\nA paragraph.\r\nMore.\rOld Mac.\r\n"
    lines, out, at = LineEnds(), "", 0
    for size in [*sizes, len(text)]:
        out += lines.feed(text[at : at + size])
        at += size
    assert out + lines.end() == "## Title\n\nA paragraph.\nMore.\nOld Mac.\n"
