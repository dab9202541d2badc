"""One scheduler for every message call the bot makes, under Telegram's flood limits.

Telegram documents about one message a second per chat (short bursts tolerated), 20 a minute per
group and about 30 a second for the whole bot, and answers a call over the limit with 429 and
`retry_after`; calling again inside that window extends it. The pacer keeps the bot under those
limits instead of reacting to 429s, and never lets a call out while a `retry_after` window runs.

- Intermediate states of a streamed answer are paced at a steady interval and leave headroom in
  the group and global budgets; final states (the complete answer, a notice) may use it.
- When calls wait for the global budget, finals go first, then answers' first texts (which may
  also use most of the finals' headroom), then the chat that has waited longest since its last
  update: the budget is shared fairly between chats. A group's first update after its first
  text ranks as a first text, and groups go first among finals and first texts: a group can be
  updated 20 times a minute at most, and its answer otherwise waited for every private chat's
  first text and final. Their later updates take their turn with everybody's.
- A 429 pauses that chat for `retry_after` and slows its pace for a while; 429s in several chats
  at once are taken as a global limit and pause everything.
- A call is counted when its slot is granted; one that leaves noticeably later (it first fetched
  the newest text) is counted from then instead (`departing`), so windows hold at arrival too.

Telegram counts the bot as a whole, so replicas of it must share these budgets (scale-out). With
`shared` (`bot.cluster.budgets.SharedBudgets`), every grant is also counted in Redis: this pacer
still chooses who goes next, but a call leaves only when the shared budgets allow it, a refusal
holds that chat (or everything, when the bot-wide budget is the reason) until the shared window
frees up, and 429s pause the other replicas too.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Budgets:
    """Flood budgets; the defaults are Telegram's documented limits."""

    private_interval: float = 1.0  # seconds between intermediate updates in a private chat
    private_burst: int = 2  # calls a private chat may take back to back (finals)
    group_interval: float = 3.0  # seconds between intermediate updates in a half-used group window
    group_per_minute: int = 20  # hard cap per group in any 60 s
    group_final_reserve: int = 2  # of those, kept for final states
    global_per_second: int = 30  # hard cap for the whole bot in any 1 s
    global_final_reserve: int = 5  # of those, kept for final states
    global_first_reserve: int = 2  # of those, still kept when a chat's first text goes out
    max_slowdown: float = 8.0  # how far a chat's pace may be stretched after 429s
    # Windows are counted this much longer than Telegram's, because a call is counted here when it
    # leaves and there when it arrives: jitter in between must not squeeze 31 calls into 1 s.
    margin: float = 0.15


@dataclass(slots=True)
class _Chat:
    last: float = float("-inf")
    tokens: float = 0.0
    refilled: float = 0.0
    window: deque[float] = field(default_factory=deque)  # call times in the last 60 s (groups)
    blocked_until: float = 0.0
    slowdown: float = 1.0  # > 1 after 429s; decays back as calls succeed


@dataclass(slots=True)
class _Waiter:
    chat_id: int
    is_final: Callable[[], bool]
    future: asyncio.Future[float]
    since: float
    first: bool = False


class SharedBudgets(Protocol):
    """Budgets counted for several replicas at once (`bot.cluster.budgets.SharedBudgets`)."""

    async def take(self, chat_id: int, *, final: bool) -> tuple[float, bool]:
        """Count a call if allowed: (0, _), else (seconds to wait, whether bot-wide)."""
        ...

    async def pause(self, chat_id: int | None, retry_after: float) -> None:
        """Nothing to that chat (None: anywhere) for `retry_after` seconds."""
        ...

    async def arrived(self, chat_id: int) -> None:
        """The group's oldest call counted here and not yet answered has been answered: its
        place in the shared minute counts from now."""
        ...


class Pacer:
    """`await pacer.acquire(chat_id, final=...)` before each send/edit/draft to that chat."""

    def __init__(
        self,
        budgets: Budgets | None = None,
        clock: Callable[[], float] = time.monotonic,
        shared: SharedBudgets | None = None,
    ) -> None:
        self.budgets = budgets or Budgets()
        self.shared = shared
        self._held: dict[int, float] = {}  # chat -> until when the shared budgets refused it
        self._held_global = 0.0
        self._taking = 0  # shared.take calls in flight: no other grant meanwhile
        self._background: set[asyncio.Task[None]] = set()
        self._clock = clock
        self._chats: dict[int, _Chat] = {}
        self._global: deque[float] = deque()
        self._global_blocked_until = 0.0
        self._recent_429s: deque[tuple[float, int]] = deque()
        self._waiters: list[_Waiter] = []
        self._kick: asyncio.Event | None = None
        self._pump: asyncio.Task[None] | None = None
        self.penalties = 0  # 429s reported to the pacer
        self.granted = 0

    # -- budgets -----------------------------------------------------------------------------------

    def _chat(self, chat_id: int, now: float) -> _Chat:
        chat = self._chats.get(chat_id)
        if chat is None:
            burst = float(self.budgets.private_burst)
            chat = self._chats[chat_id] = _Chat(tokens=burst, refilled=now)
        return chat

    def delay(self, chat_id: int, *, final: bool, first: bool = False) -> float:
        """Seconds to wait before a call to this chat may go out (0 = now)."""
        now = self._clock()
        return max(self._global_wait(now, final, first), self._chat_wait(chat_id, now, final))

    def paused(self, chat_id: int) -> bool:
        """Whether a `retry_after` window (the chat's, or the bot's) is still running: nothing,
        not even a chat action, should go to that chat now."""
        now = self._clock()
        chat = self._chats.get(chat_id)
        until = max(self._global_blocked_until, chat.blocked_until if chat else 0.0)
        return until > now

    def _global_wait(self, now: float, final: bool, first: bool = False) -> float:
        """What the bot-wide budget (and a bot-wide pause) asks every call to wait."""
        b = self.budgets
        waits = [0.0, self._global_blocked_until - now]
        second = 1.0 + b.margin
        while self._global and self._global[0] <= now - second:
            self._global.popleft()
        if final:
            reserve = 0
        elif first:
            reserve = min(b.global_first_reserve, b.global_final_reserve)
        else:
            reserve = b.global_final_reserve
        cap = max(b.global_per_second - reserve, 1)
        if len(self._global) >= cap:
            waits.append(self._global[len(self._global) - cap] + second - now)
        if self.shared is not None:
            waits.append(self._held_global - now)
        return max(waits)

    def _chat_wait(self, chat_id: int, now: float, final: bool) -> float:
        """What this chat's own budget (and a pause of it) asks a call to it to wait."""
        b = self.budgets
        chat = self._chat(chat_id, now)
        waits = [0.0, chat.blocked_until - now]
        if chat_id > 0:  # private chat: token bucket, refilled at 1 / private_interval
            interval = b.private_interval * chat.slowdown
            rate = 1.0 / interval if interval > 0 else math.inf
            chat.tokens = min(float(b.private_burst), chat.tokens + (now - chat.refilled) * rate)
            chat.refilled = now
            if chat.tokens < 1.0:
                waits.append((1.0 - chat.tokens) / rate)
            if not final:
                waits.append(chat.last + interval - now)
        else:  # group: sliding 60 s window
            window = self._minute(chat, now)
            cap = max(b.group_per_minute - (0 if final else b.group_final_reserve), 1)
            if len(window) >= cap:
                waits.append(window[len(window) - cap] + 60.0 + b.margin - now)
            if not final:
                # Quick while the minute's budget is mostly unused, slower as it fills up: short
                # answers update often, long ones never run into the cap.
                interval = b.group_interval * (0.5 + len(chat.window) / cap)
                waits.append(chat.last + interval * chat.slowdown - now)
        if self.shared is not None:
            held = self._held.get(chat_id)
            if held is not None:
                waits.append(held - now)
        return max(waits)

    def record(self, chat_id: int) -> float:
        """Count a call that is going out now; returns the time it is counted at."""
        now = self._clock()
        if self.granted % 10_000 == 9_999:
            self._forget_idle(now)
        chat = self._chat(chat_id, now)
        chat.last = now
        chat.slowdown = max(1.0, chat.slowdown * 0.95)
        if chat_id > 0:
            chat.tokens -= 1.0
        else:
            chat.window.append(now)
        self._global.append(now)
        self.granted += 1
        return now

    def departing(self, chat_id: int, granted: float) -> float:
        """A call counted at `granted` leaves only now (it first fetched the newest text): count
        it from now, so that the time in between cannot squeeze more calls into Telegram's
        windows than the margin allows for. Returns when the call counts from."""
        now = self._clock()
        if now <= granted:
            return granted
        _move(self._global, granted, now)
        chat = self._chats.get(chat_id)
        if chat is None:
            return now
        chat.last = max(chat.last, now)
        if chat_id < 0:
            _move(chat.window, granted, now)
        return now

    @contextlib.asynccontextmanager
    async def call(self, chat_id: int, *, final: bool) -> AsyncIterator[None]:
        """`acquire` a slot for the call made inside; its answer is its arrival (`arrived`)."""
        counted = await self.acquire(chat_id, final=final)
        try:
            yield
        finally:
            self.arrived(chat_id, counted)

    def arrived(self, chat_id: int, counted: float) -> None:
        """A call to a group, counted at `counted`, has been answered, so it reached Telegram by
        now: its place in the group's minute is counted from now. Between the count and the
        arrival the call is built and sent, and while many answers start at once that took
        longer than the margin (a 429 sixty seconds later, at the window's edge). The bot-wide
        second keeps its margin instead: moving its entries by a round trip would cost a share of
        its 30 calls a second."""
        chat = self._chats.get(chat_id)
        now = self._clock()
        if chat_id < 0 and chat is not None and now > counted:
            _move(chat.window, counted, now)
        if chat_id < 0 and self.shared is not None:
            self._in_background(self.shared.arrived(chat_id), "pacer-arrived")

    def _forget_idle(self, now: float) -> None:
        """Drop chats idle for 10 minutes (nothing of theirs is in any window any more)."""
        self._chats = {
            chat_id: chat
            for chat_id, chat in self._chats.items()
            if chat.last > now - 600 or chat.blocked_until > now
        }
        self._held = {chat_id: until for chat_id, until in self._held.items() if until > now}

    def penalize(self, chat_id: int | None, retry_after: float) -> None:
        """Telegram answered 429: nothing goes to that chat (None: anywhere) for `retry_after`."""
        self.penalties += 1
        now = self._clock()
        until = now + retry_after + 0.05
        reported = chat_id
        if chat_id is not None:
            chat = self._chat(chat_id, now)
            chat.blocked_until = max(chat.blocked_until, until)
            chat.slowdown = min(chat.slowdown * 2.0, self.budgets.max_slowdown)
            self._recent_429s.append((now, chat_id))
            while self._recent_429s and self._recent_429s[0][0] < now - 2.0:
                self._recent_429s.popleft()
            if len({c for _, c in self._recent_429s}) >= 3:
                chat_id = None  # several chats at once: the bot-wide limit
        if chat_id is None:
            self._global_blocked_until = max(self._global_blocked_until, until)
        if self.shared is not None:
            self._share_pause(reported, chat_id is None, retry_after + 0.05)
        self.nudge()

    def _share_pause(self, chat_id: int | None, everywhere: bool, seconds: float) -> None:
        """Tell the other replicas about a 429 (in the background: `penalize` is synchronous)."""
        shared = self.shared
        assert shared is not None

        async def pause() -> None:
            try:
                if chat_id is not None:
                    await shared.pause(chat_id, seconds)
                if everywhere:
                    await shared.pause(None, seconds)
            except Exception:
                log.warning("pause not shared with other replicas", exc_info=True)

        self._in_background(pause(), "pacer-pause")

    def _in_background(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run `work` without waiting for it (the caller is synchronous); kept until done."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            work.close()
            return
        task = loop.create_task(work, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _take_shared(self, chat_id: int, final: bool) -> bool:
        """Ask the shared budgets for this call; on refusal hold the chat (or all) meanwhile."""
        assert self.shared is not None
        try:
            wait, everywhere = await self.shared.take(chat_id, final=final)
        finally:
            self._taking -= 1
            self.nudge()
        if wait <= 0:
            self._held.pop(chat_id, None)
            return True
        until = self._clock() + wait
        if everywhere:
            self._held_global = max(self._held_global, until)
        else:
            self._held[chat_id] = max(self._held.get(chat_id, 0.0), until)
        return False

    # -- scheduling --------------------------------------------------------------------------------

    async def acquire(
        self,
        chat_id: int,
        *,
        final: bool = False,
        is_final: Callable[[], bool] | None = None,
        first: bool = False,
    ) -> float:
        """Wait for a slot for a call to this chat, then count it; returns when it was counted.

        `is_final` is asked again while waiting, so a waiting intermediate update that becomes
        a final one (the answer ended meanwhile) gets a final's priority; call `nudge()` then.
        `first`: the call shows an answer's first text. It goes before other updates and may
        use most of the room kept for finals: the first text is what a user waits for most.
        """
        check = is_final or (lambda: final)
        if (
            not self._waiters
            and not self._taking
            and self.delay(chat_id, final=check(), first=first) <= 0
        ):
            if self.shared is None:
                return self.record(chat_id)
            self._taking += 1
            if await self._take_shared(chat_id, check()):
                return self.record(chat_id)
        loop = asyncio.get_running_loop()
        waiter = _Waiter(chat_id, check, loop.create_future(), self._clock(), first)
        self._waiters.append(waiter)
        self._ensure_pump()
        try:
            return await waiter.future
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def nudge(self) -> None:
        """Something changed (an answer ended, a 429 arrived): look at the waiters again."""
        if self._kick is not None:
            self._kick.set()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def choose(self) -> tuple[_Waiter | None, float]:
        """The waiter to serve now (finals first, then the stalest chat) or the time to wait.

        The bot-wide wait is worked out once, not per waiter: under load, when hundreds of
        chats wait, it is usually what holds them all, and then no chat needs looking at.
        """
        now = self._clock()
        for_final = self._global_wait(now, True)
        if for_final > 0:
            return None, for_final  # nothing may go, not even a final
        for_update = self._global_wait(now, False)
        for_first = self._global_wait(now, False, first=True)
        best: _Waiter | None = None
        best_key: tuple[int, bool, float, float] | None = None
        soonest = math.inf
        for waiter in self._waiters:
            if waiter.future.done():
                continue
            final = waiter.is_final()
            group = waiter.chat_id < 0
            # A group's first update after its first text ranks as a first text: its chat can
            # be updated 20 times a minute at most, and waiting behind every private chat's
            # first text left a group's answer without an update until its end.
            calls = len(self._minute(self._chat(waiter.chat_id, now), now)) if group else 0
            early = waiter.first or (group and calls < 2)
            held = 0.0 if final else for_first if early else for_update
            if held > 0:
                soonest = min(soonest, held)  # the bot-wide budget holds it; no need to look
                continue
            wait = self._chat_wait(waiter.chat_id, now, final)
            if wait > 0:
                soonest = min(soonest, wait)
                continue
            rank = 0 if final else 1 if early else 2
            # Groups first among finals and first texts (one each per answer, or a minute); their
            # later updates take their turn with everybody's, stalest first.
            key = (rank, rank < 2 and not group, self._chats[waiter.chat_id].last, waiter.since)
            if best_key is None or key < best_key:
                best, best_key = waiter, key
        return best, soonest

    def _minute(self, chat: _Chat, now: float) -> deque[float]:
        """A group's calls in the last minute (older ones are dropped)."""
        since = now - 60.0 - self.budgets.margin
        while chat.window and chat.window[0] <= since:
            chat.window.popleft()
        return chat.window

    def _ensure_pump(self) -> None:
        if self._kick is None:
            self._kick = asyncio.Event()
        self._kick.set()
        if self._pump is None or self._pump.done():
            self._pump = asyncio.create_task(self._serve(), name="pacer")

    async def _serve(self) -> None:
        assert self._kick is not None
        while self._waiters:
            if self._taking:  # a fast-path call is being counted in Redis: its outcome first
                waiter, soonest = None, math.inf
            else:
                waiter, soonest = self.choose()
            if waiter is not None and self.shared is not None:
                self._taking += 1
                granted = await self._take_shared(waiter.chat_id, waiter.is_final())
                if not granted or waiter not in self._waiters or waiter.future.done():
                    continue  # refused (held now), or the caller gave up meanwhile
            if waiter is not None:
                self._waiters.remove(waiter)
                waiter.future.set_result(self.record(waiter.chat_id))
                await asyncio.sleep(0)  # let the granted call start before the next grant
                continue
            self._kick.clear()
            timeout = None if math.isinf(soonest) else soonest
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._kick.wait()


def _move(times: deque[float], old: float, new: float) -> None:
    """Move one entry `old` of a sorted window to `new` (later), keeping it sorted."""
    for i in range(len(times) - 1, -1, -1):
        if times[i] == old:
            del times[i]
            bisect.insort(times, new)
            return
