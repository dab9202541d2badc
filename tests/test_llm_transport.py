"""Reading the model's stream in batches: fewer reads, the first text at once, nothing lost."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest

from bot.llm import LLMClient, transport
from bot.llm.transport import BEATS, BatchingResponseHandler, streams_per_beat
from tests.fakes.llm import FakeLLM, Reply
from tests.helpers import started_client


def client_for(llm: FakeLLM, tmp_path: Path, read_interval: float) -> LLMClient:
    return started_client(tmp_path, api_base=llm.base_url, read_interval=read_interval)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Sizes of the network reads of batching connections."""
    sizes: list[int] = []
    original = BatchingResponseHandler.data_received

    def counting(self: BatchingResponseHandler, data: bytes) -> None:
        if data:
            sizes.append(len(data))
        original(self, data)

    monkeypatch.setattr(BatchingResponseHandler, "data_received", counting)
    return sizes


async def stream(client: LLMClient) -> tuple[str, float]:
    """The whole text and when its first piece came."""
    text, first = "", 0.0
    async with contextlib.aclosing(client.stream([{"role": "user", "content": "hi"}])) as pieces:
        async for piece in pieces:
            if not text:
                first = time.monotonic()
            text += piece
    return text, first


async def test_a_fast_stream_is_read_in_batches_and_arrives_whole(
    llm: FakeLLM, tmp_path: Path, reads: list[int]
) -> None:
    client = client_for(llm, tmp_path, read_interval=0.15)
    answer = "".join(f"word{i} " for i in range(120))  # 107 events, 10 ms apart
    for _ in range(2):  # the second on the kept-alive connection of the first
        reads.clear()
        llm.script(Reply(answer, chunk_size=8, delay=0.01))
        text, first = await stream(client)
        assert text == answer
        events = len(llm.received[-1].chunks)
        assert events == 107
        assert len(reads) < events / 3  # one read per interval, not one per event
        # The first text was not held back: it came before the backend sent its 5th event.
        assert first < llm.received[-1].chunks[4][0]
    # Once the answers have ended, their connections (idle in the pool) hold no place on a beat.
    await asyncio.sleep(0.2)
    assert sum(transport._streams_on_beat) == 0


async def test_without_an_interval_every_event_is_read_as_it_comes(
    llm: FakeLLM, tmp_path: Path, reads: list[int]
) -> None:
    client = client_for(llm, tmp_path, read_interval=0)
    answer = "".join(f"word{i} " for i in range(40))
    llm.script(Reply(answer, chunk_size=8, delay=0.01))
    text, _ = await stream(client)
    assert text == answer
    assert reads == []  # aiohttp's own protocol: no batching connection was used


async def test_catch_up_hands_over_what_a_held_stream_holds(llm: FakeLLM, tmp_path: Path) -> None:
    """Before a chat update, the answer's text is brought up to date: what the backend sent
    while the connection was held is read and taken by the stream's consumer at once."""
    client = client_for(llm, tmp_path, read_interval=1.0)  # holds far longer than the test waits
    answer = "".join(f"word{i} " for i in range(200))
    llm.script(Reply(answer, chunk_size=8, delay=0.01))
    text = ""

    async def consume() -> None:
        nonlocal text
        async with contextlib.aclosing(client.stream([{"role": "user", "content": "hi"}])) as it:
            async for piece in it:
                text += piece

    task = asyncio.create_task(consume())
    while len(text) < 200:  # noqa: ASYNC110 - past the unheld start: held from here on
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)
    sent_before = [n for at, n in llm.received[-1].chunks if at < time.monotonic() - 0.03]
    assert len(text) < sent_before[-1]  # held: the consumer is behind the backend
    await client.catch_up(task)
    assert len(text) >= sent_before[-1]  # everything sent up to 30 ms ago, no later than now
    await client.catch_up(None)  # a task that streams nothing: nothing to do
    await task
    assert text == answer
    # Its connection, back in the pool, may serve another answer: a late catch-up leaves it be.
    handler = transport._streams[task]
    llm.script(Reply(answer, chunk_size=8, delay=0.01))
    other = asyncio.create_task(stream(client))
    while transport._streams.get(other) is not handler:  # noqa: ASYNC110 - the pool's choice
        await asyncio.sleep(0.01)
    early_reads: list[object] = []
    read_now = handler.read_now
    handler.read_now = lambda: early_reads.append(1) or read_now()  # type: ignore[method-assign]
    await client.catch_up(task)
    assert early_reads == []  # not read early on behalf of the finished answer
    await client.catch_up(other)
    assert early_reads == [1]
    assert (await other)[0] == answer


async def test_held_streams_are_released_together(
    llm: FakeLLM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Answers that started at different moments are read on common beats: fewer wake-ups."""

    interval = 0.15
    client = client_for(llm, tmp_path, read_interval=interval)
    releases: list[float] = []
    original = BatchingResponseHandler.data_received

    def noting(self: BatchingResponseHandler, data: bytes) -> None:
        original(self, data)
        if self._hold is not None and self._hold.when() not in releases:
            releases.append(self._hold.when())

    monkeypatch.setattr(BatchingResponseHandler, "data_received", noting)
    answer = "".join(f"word{i} " for i in range(60))

    async def late(delay: float) -> str:
        await asyncio.sleep(delay)
        llm.script(Reply(answer, chunk_size=8, delay=0.01))
        text, _ = await stream(client)
        return text

    assert await asyncio.gather(late(0), late(0.07)) == [answer, answer]
    assert len(releases) >= 3
    for when in releases:  # on one of the few beats each interval has, not just anywhere
        beats = when / (interval / BEATS)
        assert abs(beats - round(beats)) < 1e-6


def test_streams_share_one_beat_until_it_is_full() -> None:
    """A beat reads as much streaming as 20 streams make in 0.5 s, or 50 in 0.2 s."""
    before = list(transport._streams_on_beat)
    try:
        for interval, full in ((0.5, 20), (0.2, 50)):
            assert streams_per_beat(interval) == full
            transport._streams_on_beat[:] = [0] * BEATS
            beats = [transport._join_beat(interval) for _ in range(full + 3 * (BEATS - 1))]
            assert beats[:full] == [0] * full
            assert sorted(set(beats[full:])) == list(range(1, BEATS))
            assert transport._streams_on_beat == [full] + [3] * (BEATS - 1)
    finally:
        transport._streams_on_beat[:] = before


async def test_aiohttp_flow_control_still_works_under_batching(
    unused_tcp_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large compressed response read slowly: aiohttp pauses and resumes reading (and its
    decompression) on its own; the batching connection must not lose or stall any of it."""
    import gzip
    import random

    from aiohttp import ClientSession, web

    rng = random.Random(4)
    body = "".join(f"data: {rng.random()} {'x' * rng.randint(0, 200)}\n\n" for _ in range(40_000))

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Encoding": "gzip"})
        await response.prepare(request)
        packed = gzip.compress(body.encode())
        for i in range(0, len(packed), 4096):
            await response.write(packed[i : i + 4096])
        await response.write_eof()
        return response

    pauses = 0
    original = BatchingResponseHandler.pause_reading

    def pause_reading(self: BatchingResponseHandler) -> None:
        nonlocal pauses
        pauses += 1
        original(self)

    monkeypatch.setattr(BatchingResponseHandler, "pause_reading", pause_reading)
    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
    connector = transport.Connector(read_interval=0.05)
    try:
        async with ClientSession(connector=connector, connector_owner=False) as session:
            for _ in range(2):  # the second on the kept-alive connection
                lines: list[bytes] = []
                async with (
                    asyncio.timeout(30),  # a stalled connection fails here
                    session.get(f"http://127.0.0.1:{unused_tcp_port}/") as response,
                ):
                    async for line in response.content:
                        lines.append(line)
                        if len(lines) % 5000 == 0:
                            await asyncio.sleep(0.02)  # a slow reader: aiohttp's buffer fills
                assert b"".join(lines).decode() == body
        assert pauses > 0  # aiohttp's flow control did pause (and resume) reading
    finally:
        await connector.close()
        await runner.cleanup()
