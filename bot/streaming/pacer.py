"""One pacer for every message call the bot makes, under Telegram's flood limits.

Telegram documents about one message a second per chat (short bursts tolerated), 20 a minute per
group and about 30 a second for the whole bot, and answers a call over the limit with 429 and
`retry_after`; calling again inside that window extends it. The pacer keeps the bot under those
limits instead of reacting to 429s, and never lets a call out while a `retry_after` window runs.

Intermediate states of a streamed answer are paced at a steady interval and leave headroom; final
states (the complete answer, a notice) may use the headroom, so they are not stuck behind edits.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Budgets:
    """Flood budgets; the defaults are Telegram's documented limits."""

    private_interval: float = 1.0  # seconds between intermediate updates in a private chat
    private_burst: int = 2  # calls a private chat may take back to back (finals)
    group_interval: float = 3.0  # seconds between intermediate updates in a group
    group_per_minute: int = 20  # hard cap per group in any 60 s
    group_final_reserve: int = 2  # of those, kept for final states
    global_per_second: int = 30  # hard cap for the whole bot in any 1 s
    global_final_reserve: int = 5  # of those, kept for final states


@dataclass(slots=True)
class _Chat:
    last: float = float("-inf")
    tokens: float = 0.0
    refilled: float = 0.0
    window: deque[float] = field(default_factory=deque)  # call times in the last 60 s (groups)
    blocked_until: float = 0.0


class Pacer:
    """`await pacer.acquire(chat_id, final=...)` before each send/edit/draft to that chat."""

    def __init__(self, budgets: Budgets | None = None, clock: Callable[[], float] = time.monotonic):
        self.budgets = budgets or Budgets()
        self._clock = clock
        self._chats: dict[int, _Chat] = {}
        self._global: deque[float] = deque()
        self._global_blocked_until = 0.0
        self.penalties = 0  # 429s reported to the pacer

    def _chat(self, chat_id: int, now: float) -> _Chat:
        chat = self._chats.get(chat_id)
        if chat is None:
            burst = float(self.budgets.private_burst)
            chat = self._chats[chat_id] = _Chat(tokens=burst, refilled=now)
        return chat

    def delay(self, chat_id: int, *, final: bool) -> float:
        """Seconds to wait before a call to this chat may go out (0 = now)."""
        b = self.budgets
        now = self._clock()
        chat = self._chat(chat_id, now)
        waits = [chat.blocked_until - now, self._global_blocked_until - now]

        while self._global and self._global[0] <= now - 1.0:
            self._global.popleft()
        cap = b.global_per_second - (0 if final else b.global_final_reserve)
        if len(self._global) >= max(cap, 1):
            waits.append(self._global[len(self._global) - max(cap, 1)] + 1.0 - now)

        if chat_id > 0:  # private chat: token bucket, refilled at 1 / private_interval
            rate = 1.0 / b.private_interval if b.private_interval > 0 else float("inf")
            chat.tokens = min(float(b.private_burst), chat.tokens + (now - chat.refilled) * rate)
            chat.refilled = now
            if chat.tokens < 1.0:
                waits.append((1.0 - chat.tokens) / rate)
            if not final:
                waits.append(chat.last + b.private_interval - now)
        else:  # group: sliding 60 s window
            while chat.window and chat.window[0] <= now - 60.0:
                chat.window.popleft()
            cap = b.group_per_minute - (0 if final else b.group_final_reserve)
            cap = max(cap, 1)
            if len(chat.window) >= cap:
                waits.append(chat.window[len(chat.window) - cap] + 60.0 - now)
            if not final:
                waits.append(chat.last + b.group_interval - now)
        return max(0.0, *waits)

    def record(self, chat_id: int) -> None:
        """Count a call that is going out now."""
        now = self._clock()
        chat = self._chat(chat_id, now)
        chat.last = now
        if chat_id > 0:
            chat.tokens -= 1.0
        else:
            chat.window.append(now)
        self._global.append(now)

    async def acquire(self, chat_id: int, *, final: bool = False) -> None:
        """Wait until a call to this chat is within every budget, then count it."""
        while (wait := self.delay(chat_id, final=final)) > 0:  # noqa: ASYNC110 - a computed wait
            await asyncio.sleep(wait)
        self.record(chat_id)

    def penalize(self, chat_id: int | None, retry_after: float) -> None:
        """Telegram answered 429: nothing goes to that chat (None: anywhere) for `retry_after`."""
        self.penalties += 1
        until = self._clock() + retry_after + 0.05
        if chat_id is None:
            self._global_blocked_until = max(self._global_blocked_until, until)
        else:
            chat = self._chat(chat_id, self._clock())
            chat.blocked_until = max(chat.blocked_until, until)
