"""The pacer with a fake clock: Telegram's budgets hold, finals get headroom, 429s are obeyed."""

from __future__ import annotations

import itertools

from bot.streaming.pacer import Budgets, Pacer


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
    assert min(b - a for a, b in itertools.pairwise(intermediate)) >= 3.0
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
    clock.now += 1.0
    assert pacer.delay(999, final=True) == 0


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
