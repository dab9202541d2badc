"""The pacer with a fake clock: Telegram's budgets hold, finals get headroom, 429s are obeyed."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from aiogram.methods import EditMessageText, SendMessage, TelegramMethod

from bot.streaming.pacer import Budgets, Pacer
from bot.streaming.reply import ReplyStream
from bot.streaming.split import Segmenter
from tests.test_render_split import CountingRenderer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def drive(pacer: Pacer, clock: Clock, chat: int, *, final: bool, seconds: float) -> list[float]:
    """Take every slot the pacer allows for `seconds`; return the times calls went out."""
    times = []
    end = clock.now + seconds
    while clock.now < end:
        wait = pacer.delay(chat, final=final)
        if wait > 0:
            clock.now += wait
            continue
        pacer.record(chat)
        times.append(clock.now)
    return times


def max_in_window(times: list[float], window: float) -> int:
    return max((sum(1 for u in times if t <= u < t + window) for t in times), default=0)


def test_private_intermediate_updates_are_one_a_second() -> None:
    clock = Clock()
    pacer = Pacer(clock=clock)
    times = drive(pacer, clock, 7, final=False, seconds=30)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 1.0 - 1e-9
    assert 29 <= len(times) <= 31


def test_private_finals_may_burst_but_not_beyond_the_bucket() -> None:
    clock = Clock()
    pacer = Pacer(Budgets(private_burst=2), clock=clock)
    times = drive(pacer, clock, 7, final=True, seconds=10)
    assert times[0] == times[1]  # a burst of two
    assert max_in_window(times, 1.0) <= 2
    assert len(times) <= 12  # sustained: one a second


def test_group_never_exceeds_20_a_minute_and_keeps_room_for_finals() -> None:
    clock = Clock()
    pacer = Pacer(clock=clock)
    chat = -100
    intermediate = drive(pacer, clock, chat, final=False, seconds=60)
    assert len(intermediate) == 18  # 20 minus the reserve for finals
    gaps = [b - a for a, b in itertools.pairwise(intermediate)]
    assert gaps[0] >= 1.5 - 1e-9  # quick at first ...
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(gaps))  # ... slower as it fills
    assert gaps[-1] >= 4.0
    assert pacer.delay(chat, final=True) == 0  # a final still goes out at once
    finals = drive(pacer, clock, chat, final=True, seconds=240)
    assert max_in_window(intermediate + finals, 60.0) <= 20


def test_global_budget_across_chats() -> None:
    clock = Clock()
    pacer = Pacer(clock=clock)
    sent = 0
    for chat in range(1, 101):
        if pacer.delay(chat, final=False) == 0:
            pacer.record(chat)
            sent += 1
    assert sent == 25  # 30 a second minus the reserve for finals
    for chat in range(101, 111):
        if pacer.delay(chat, final=True) == 0:
            pacer.record(chat)
            sent += 1
    assert sent == 30
    assert pacer.delay(999, final=True) > 0
    clock.now += 1.0 + pacer.budgets.margin
    assert pacer.delay(999, final=True) == 0


def test_a_call_that_leaves_late_is_counted_from_when_it_leaves() -> None:
    """A call that first fetches the newest text leaves a little after its slot: the windows
    count it from then, or calls granted on time after it could reach Telegram too close."""
    clock = Clock()
    pacer = Pacer(Budgets(global_per_second=2, global_final_reserve=0), clock=clock)
    granted = [pacer.record(chat) for chat in (1, 2, -3)]
    clock.now += 0.1
    pacer.departing(1, granted[0])
    pacer.departing(-3, granted[2])
    second = 1.0 + pacer.budgets.margin
    clock.now = granted[0] + second  # the grants' window has passed, not the departures'
    assert pacer.delay(4, final=True) > 0
    clock.now = granted[0] + 0.1 + second
    assert pacer.delay(4, final=True) == 0
    # The group's minute is counted from the departure too.
    group = pacer._chats[-3].window
    assert list(group) == [granted[2] + 0.1]
    before = list(pacer._global)
    pacer.departing(2, clock.now + 5)  # a departure "before" its grant changes nothing
    assert list(pacer._global) == before


def test_a_groups_minute_counts_a_call_from_its_answer() -> None:
    """A call that reached Telegram late (built and sent while many answers started) holds its
    place in the group's minute until it was answered, not from when it was counted."""
    clock = Clock()
    pacer = Pacer(Budgets(group_per_minute=1), clock=clock)
    first = pacer.record(-5)
    clock.now += 0.4  # its answer comes back only now
    pacer.arrived(-5, first)
    pacer.arrived(7, first)  # a private chat has no minute: nothing to move
    minute = 60.0 + pacer.budgets.margin
    clock.now = first + minute
    assert pacer.delay(-5, final=True) > 0  # counted from its grant, the minute would be over
    clock.now = first + 0.4 + minute
    assert pacer.delay(-5, final=True) == 0
    before = list(pacer._chats[-5].window)
    pacer.arrived(-5, clock.now + 5)  # an answer "before" its count changes nothing
    assert list(pacer._chats[-5].window) == before


def test_first_texts_may_use_most_of_the_room_kept_for_finals() -> None:
    clock = Clock()
    pacer = Pacer(clock=clock)
    for chat in range(1, 26):
        assert pacer.delay(chat, final=False) == 0
        pacer.record(chat)
    assert pacer.delay(100, final=False) > 0  # updates: 25 a second
    for chat in range(26, 29):
        assert pacer.delay(chat, final=False, first=True) == 0
        pacer.record(chat)
    assert pacer.delay(100, final=False, first=True) > 0  # first texts: 28
    assert pacer.delay(100, final=True) == 0  # two are left for finals
    pacer.record(100)
    pacer.record(101)
    assert pacer.delay(102, final=True) > 0


async def test_a_first_text_goes_before_other_updates() -> None:
    clock = Clock()
    budgets = Budgets(global_per_second=2, global_final_reserve=0, margin=0.0)
    pacer = Pacer(budgets, clock=clock)
    pacer.record(1)  # chat 1 was updated longest ago ...
    clock.now += 20
    pacer.record(2)  # ... but chat 2's new answer shows its first text
    clock.now += 10
    pacer.record(50)
    pacer.record(51)  # the global window is full
    order: list[int] = []

    async def take(chat: int, first: bool) -> None:
        await pacer.acquire(chat, first=first)
        order.append(chat)

    tasks = [asyncio.create_task(take(1, False)), asyncio.create_task(take(2, True))]
    await settle()
    clock.now += 1.0
    pacer.nudge()
    await settle()
    assert order[0] == 2
    clock.now += 1.0
    pacer.nudge()
    await asyncio.gather(*tasks)
    assert order == [2, 1]


def test_retry_after_blocks_the_chat_for_the_whole_window() -> None:
    clock = Clock()
    pacer = Pacer(clock=clock)
    pacer.penalize(5, 7)
    assert 7.0 <= pacer.delay(5, final=True) <= 7.2
    assert pacer.delay(6, final=True) == 0  # other chats go on
    clock.now += 7.1
    assert pacer.delay(5, final=True) == 0
    pacer.penalize(None, 3)  # a global 429
    assert pacer.delay(6, final=True) >= 3.0
    assert pacer.penalties == 2


# -- the scheduler: who gets the next slot --------------------------------------------------------


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_waiting_chats_are_served_stalest_first() -> None:
    """With the global budget used up, the chat that waited longest since its update goes next."""
    clock = Clock()
    budgets = Budgets(global_per_second=3, global_final_reserve=0, margin=0.0)
    pacer = Pacer(budgets, clock=clock)
    order: list[int] = []

    async def take(chat: int) -> None:
        await pacer.acquire(chat)
        order.append(chat)

    # Chats 1..3 were updated at different times; then the budget is spent elsewhere.
    for chat, at in ((1, 10.0), (2, 5.0), (3, 8.0)):
        clock.now = 1000.0 - at
        pacer.record(chat)
    clock.now = 1000.0
    for chat in (7, 8, 9):
        pacer.record(chat)
    clock.now += 2.0  # every chat is past its own interval; the global window is full again:
    for chat in (7, 8, 9):
        pacer.record(chat)
    tasks = [asyncio.create_task(take(chat)) for chat in (1, 3, 2)]
    await settle()
    assert order == []
    clock.now += 1.0
    pacer.nudge()
    await settle()
    assert order == [1, 3, 2]  # updated 10, 8 and 5 seconds before: stalest first
    await asyncio.gather(*tasks)


async def test_finals_go_before_intermediate_updates() -> None:
    clock = Clock()
    budgets = Budgets(global_per_second=2, global_final_reserve=0, margin=0.0)
    pacer = Pacer(budgets, clock=clock)
    pacer.record(50)
    pacer.record(51)  # the global window is full
    order: list[str] = []
    closing = {"done": False}

    async def take(name: str, chat: int, is_final: bool | None = None) -> None:
        if is_final is None:
            await pacer.acquire(chat, is_final=lambda: closing["done"])
        else:
            await pacer.acquire(chat, final=is_final)
        order.append(name)

    clock.now -= 30  # the chats below were last updated long ago
    tasks = [
        asyncio.create_task(take("intermediate", 1, False)),
        asyncio.create_task(take("becomes-final", 2)),
        asyncio.create_task(take("final", 3, True)),
    ]
    clock.now += 30
    await settle()
    closing["done"] = True  # that answer ended while it waited
    clock.now += 1.0
    pacer.nudge()
    await settle()
    assert order == ["becomes-final", "final"] or order == ["final", "becomes-final"]
    clock.now += 1.0
    pacer.nudge()
    await settle()
    assert order[-1] == "intermediate"
    await asyncio.gather(*tasks)


def test_a_429_slows_the_chat_down_for_a_while() -> None:
    clock = Clock()
    pacer = Pacer(clock=clock)
    pacer.penalize(5, 2)
    clock.now += 2.1
    pacer.record(5)
    assert pacer.delay(5, final=False) > 1.5  # slower than the usual 1 s
    for _ in range(100):  # and back to normal after many good calls
        clock.now += 10
        pacer.record(5)
    clock.now += 1.0
    assert pacer.delay(5, final=False) == 0


def test_429s_in_several_chats_pause_everything() -> None:
    clock = Clock()
    pacer = Pacer(clock=clock)
    for chat in (1, 2, 3):
        pacer.penalize(chat, 4)
    assert pacer.delay(99, final=True) >= 4.0


class RecordingBot:
    """Just enough of aiogram's Bot for the reply engine: records what would be sent."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.ids = 0

    async def __call__(self, method: TelegramMethod[Any]) -> object:
        if isinstance(method, SendMessage):
            self.calls.append(("send", method.text))
            self.ids += 1
            return type("Sent", (), {"message_id": self.ids})()
        assert isinstance(method, EditMessageText), method
        self.calls.append(("edit", method.text))
        return True

    async def send_chat_action(self, *_: object, **__: object) -> bool:
        return True


async def stream_words(reply: ReplyStream, words: list[str], *, pause: float) -> str:
    """Feed `reply` a growing text, a word every `pause` seconds, then close it."""
    reply.start()
    text = ""
    for word in words:
        text += word + " "
        reply.update(text)
        await asyncio.sleep(pause)
    await reply.close()
    return text


async def test_only_the_newest_snapshot_is_sent() -> None:
    """Coalescing: 200 updates within the pacing interval become a handful of calls."""
    bot = RecordingBot()
    pacer = Pacer(Budgets(private_interval=0.2))
    reply = ReplyStream(bot, pacer, chat_id=1)  # type: ignore[arg-type]
    text = await stream_words(reply, [f"w{i}" for i in range(200)], pause=0.005)
    assert 2 <= len(bot.calls) <= 12
    assert bot.calls[-1] == ("edit", text.strip())
    # States only grow: nothing is shown twice or out of order.
    shown = [t.rstrip(" ▌") for _, t in bot.calls]
    assert all(b.startswith(a) for a, b in itertools.pairwise(shown))


async def test_each_call_carries_the_text_caught_up_after_its_slot() -> None:
    """Right before each call (after the pacer's slot) the reply engine asks for the newest
    text, and the call carries what that brought in."""
    bot = RecordingBot()
    pacer = Pacer(Budgets(private_interval=0.05))
    words: list[str] = []
    caught: list[int] = []  # per catch-up: how many calls had been made before it

    async def catch_up() -> None:  # as a held stream would: the text grows when it is read
        caught.append(len(bot.calls))
        words.append(f"c{len(caught) - 1}")
        reply.update(" ".join(words))

    reply = ReplyStream(bot, pacer, chat_id=1, catch_up=catch_up)  # type: ignore[arg-type]
    reply.start()
    for i in range(30):  # the stream's own beats
        words.append(f"b{i}")
        reply.update(" ".join(words))
        await asyncio.sleep(0.01)
    await reply.close()
    sent = [t.rstrip(" ▌") for _, t in bot.calls]
    assert len(sent) >= 3
    for i, text in enumerate(sent[:-1]):
        # The newest catch-up before call i produced the end of the text call i carries.
        newest = max(k for k, calls_before in enumerate(caught) if calls_before == i)
        assert text.split()[-1] == f"c{newest}"
    assert sent[-1] == " ".join(words)  # the final state: everything, with no catch-up first


async def test_a_snapshot_is_rendered_once_per_call_once_text_is_shown() -> None:
    """Rendering is most of a tick's cost: new text that arrives while a call is on its way is
    rendered after the next slot (with what the slot's catch-up brings), not also before it."""
    bot = RecordingBot()
    pacer = Pacer(Budgets(private_interval=0.05))
    reply = ReplyStream(bot, pacer, chat_id=1)  # type: ignore[arg-type]
    renderer = CountingRenderer()
    reply._segmenter = Segmenter(renderer=renderer)
    await stream_words(reply, [f"**w{i}**" for i in range(60)], pause=0.004)
    calls = len(bot.calls)
    assert calls >= 3
    # One render for each call, and one for the first text's check before its slot (the final
    # state reuses its call's render); rendering before each slot as well would double it.
    assert len(renderer.sources) <= calls + 2, (len(renderer.sources), calls)
    assert bot.calls[-1] == ("edit", " ".join(f"w{i}" for i in range(60)))


async def test_a_groups_first_update_and_its_final_go_before_private_chats() -> None:
    """With the bot-wide budget full, a group's first update after its first text ranks as a
    first text and goes before private chats' first texts (a group's answer otherwise waited for
    every private chat's first text, and showed nothing new until its end); its later updates
    rank as updates, stalest first. Among finals, groups go first."""
    clock = Clock()
    budgets = Budgets(global_per_second=1, global_final_reserve=0, margin=0.0)
    pacer = Pacer(budgets, clock=clock)
    order: list[str] = []

    async def take(name: str, chat: int, *, first: bool = False, final: bool = False) -> None:
        await pacer.acquire(chat, first=first, final=final)
        order.append(name)

    async def step() -> None:
        clock.now += 10.0  # past every chat's own interval; one call a second bot-wide
        pacer.nudge()
        await settle()

    pacer.record(-100)  # the group's first text
    clock.now += 10.0
    pacer.record(7)  # the bot-wide second is full
    tasks = [
        asyncio.create_task(take("private first text", 1, first=True)),
        asyncio.create_task(take("group update", -100)),
    ]
    await settle()
    await step()
    await step()
    assert order == ["group update", "private first text"]
    tasks += [
        asyncio.create_task(take("group's next update", -100)),
        asyncio.create_task(take("private first text 2", 2, first=True)),
    ]
    await settle()
    await step()
    await step()
    assert order[2:] == ["private first text 2", "group's next update"]
    tasks += [
        asyncio.create_task(take("private final", 3, final=True)),
        asyncio.create_task(take("group final", -100, final=True)),
    ]
    await settle()
    await step()
    await step()
    assert order[4:] == ["group final", "private final"]
    # Later updates: stalest first, groups or not (many long group answers must not starve
    # private chats' updates).
    clock.now += 10.0
    pacer.record(-100)
    clock.now += 10.0
    pacer.record(-100)  # the group has used three more calls of its minute
    tasks += [
        asyncio.create_task(take("group's later update", -100)),
        asyncio.create_task(take("private update", 1)),  # updated longer ago
    ]
    await settle()
    await step()
    await step()
    assert order[6:] == ["private update", "group's later update"]
    await asyncio.gather(*tasks)
