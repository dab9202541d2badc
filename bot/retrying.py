"""Calls that must outlive a passing outage (Redis restarting, a full disk): a call that failed is
tried again in the background, with growing pauses, for as long as it is worth trying."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

Call = Callable[[], Awaitable[object]]


class Retrying:
    """Background retries: after `first` s, then twice as long each time up to `most` s, until a
    try succeeds or `give_up_after` s have passed (then `lost` is logged, if given)."""

    def __init__(
        self,
        *,
        first: float,
        most: float,
        give_up_after: float,
        errors: tuple[type[BaseException], ...] = (Exception,),
        lost: str | None = "%s could not be stored: %s",
    ) -> None:
        self.first = first
        self.most = most
        self.give_up_after = give_up_after
        self.errors = errors
        self.lost = lost
        self._tasks: dict[asyncio.Task[None], tuple[str, Call]] = {}

    def start(self, what: str, call: Call) -> None:
        """Try `call` again in the background (it has just failed); `what` names it in the log."""
        task = asyncio.create_task(self._keep_trying(what, call), name=f"retry: {what}")
        self._tasks[task] = (what, call)
        task.add_done_callback(self._tasks.pop)

    async def _keep_trying(self, what: str, call: Call) -> None:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.give_up_after
        delay = self.first
        while True:
            await asyncio.sleep(delay)
            try:
                await call()
            except self.errors as error:
                if loop.time() + delay >= give_up:
                    self._given_up(what, error)
                    return
                delay = min(delay * 2, self.most)
            else:
                log.info("%s: done on a later try", what)
                return

    async def last_tries(self) -> None:
        """At shutdown: each call still being retried is tried once more, now, then given up."""
        for task, (what, call) in list(self._tasks.items()):
            task.cancel()
            try:
                await call()
            except self.errors as error:
                self._given_up(what, error)

    def _given_up(self, what: str, error: BaseException) -> None:
        if self.lost:
            log.error(self.lost, what, type(error).__name__)
