"""Streaming chat completions through g4f, with its hazards fenced off.

g4f (measured on 8.8.6) blocks the event loop while it loads its provider list, mutates the
message list it is given, writes state under `~/.g4f`, and never times a stream out by itself.
`LLMClient` runs the set-up off the loop, passes a deep copy, keeps g4f's state in `DATA_DIR`,
enforces the idle and total timeouts, and turns every failure into an `LLMFailure` with a kind a
chat can be told.

It streams from the provider's own generator rather than through g4f's `AsyncClient`. The client
layer adds nothing the bot uses and costs more CPU than everything else in an answer: it wraps
every chunk (a few characters) in several pydantic objects, and before sending it "optimizes" the
request — drops a user message that repeats an earlier one ("continue" asked twice vanishes, and
the model answers the previous question), rewrites the system prompt, collapses whitespace (code
indentation in a question) and drops old turns. It also appends every request to a usage log
that grows without limit. The conversation the bot builds is already trimmed to
`MAX_CONTEXT_CHARS`: the backend receives exactly that.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import difflib
import logging
import os
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any, Literal, TypedDict

import aiohttp

from bot.llm.errors import FailureKind, LLMFailure, classify, misread
from bot.llm.text import LineEnds, ReasoningFilter
from bot.llm.transport import catch_up, install_pool

log = logging.getLogger(__name__)


class ChatMessage(TypedDict):
    role: Literal["system", "user", "assistant"]
    content: str


class LLMClient:
    """One per process: `start()` once, then `stream()` per answer, `close()` at shutdown."""

    def __init__(
        self,
        *,
        model: str,
        providers: list[str],
        api_base: str,
        api_key: str,
        data_dir: Path,
        idle_timeout: float,
        total_timeout: float,
        read_interval: float = 0.0,
    ) -> None:
        self.model = model
        self.provider_names = providers
        self.api_base = api_base
        self.api_key = api_key
        self.data_dir = data_dir
        self.idle_timeout = idle_timeout
        self.total_timeout = total_timeout
        self.read_interval = read_interval
        self._started = False
        self._provider: Any = None
        self._method: Any = None  # the provider's streaming call, found on first use
        self._extra: dict[str, Any] = {}
        self._pooled_loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Import and configure g4f. Raises `ValueError` naming an unknown provider."""
        state = (self.data_dir / "g4f").resolve()
        (state / "cookies").mkdir(parents=True, exist_ok=True)
        # g4f computes these paths at import time, so they are set before the first import.
        os.environ.setdefault("G4F_CONFIG_DIR", str(state))
        os.environ.setdefault("G4F_CACHE_DIR", str(state / "cache"))
        import g4f.cookies

        g4f.cookies.set_cookies_dir(str(state / "cookies"))
        self._provider = self._build_provider()
        self._started = True

    def _build_provider(self) -> Any:
        from g4f.client import create_custom_provider
        from g4f.Provider import IterListProvider, ProviderUtils

        chain: list[Any] = []
        if self.api_base:
            # `models=` is given so that g4f does not fetch `/models` (a blocking call, no timeout).
            chain.append(
                create_custom_provider(
                    self.api_base,
                    api_key=self.api_key or None,
                    name="Custom",
                    models=[self.model],
                    default_model=self.model,
                )
            )
        for name in self.provider_names:
            provider = ProviderUtils.convert.get(name)
            if provider is None:
                # g4f's lazy map lists its names in keys(); iterating it yields nothing.
                names = ProviderUtils.convert.keys()
                known = {key.lower(): key for key in names}
                close = difflib.get_close_matches(name.lower(), list(known), n=1)
                hint = f"; did you mean {known[close[0]]!r}?" if close else ""
                raise ValueError(f"G4F_PROVIDER names an unknown g4f provider: {name!r}{hint}")
            chain.append(provider)
        if not chain:
            return None  # g4f's own choice
        if len(chain) == 1:
            return chain[0]
        return IterListProvider(chain, shuffle=False)

    @property
    def provider_label(self) -> str:
        if self._provider is None:
            return "g4f auto"
        return str(getattr(self._provider, "__name__", type(self._provider).__name__))

    def _create(self, messages: list[ChatMessage], model: str) -> Any:
        """The provider's stream (not started yet). With no provider configured, the first call
        imports g4f's automatic provider, which fetches a list over the network, blocking and with
        no timeout: `stream` runs it in a worker thread then."""
        if self._method is None:
            from g4f.providers.base_provider import get_async_provider_method
            from g4f.tools.auth import AuthManager

            provider = self._provider
            if provider is None:
                from g4f.providers.any_provider import AnyProvider

                provider = AnyProvider
            key = AuthManager.load_api_key(provider)  # a named provider's `<NAME>_API_KEY`
            self._extra = {"api_key": key} if key else {}
            self._method = get_async_provider_method(provider)
        return self._method(model=model, messages=messages, stream=True, **self._extra)

    async def check_endpoint(self) -> str | None:
        """What is wrong with `G4F_API_BASE`, as far as its `GET /models` tells: for the log at
        start-up, so that a wrong address or key is not first found by a user's question. None
        when it looks right (or no endpoint is configured); advice only, never fatal: a
        backend may well serve chats without listing models."""
        if not self.api_base:
            return None
        url = self.api_base.rstrip("/") + "/models"
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        timeout = aiohttp.ClientTimeout(total=min(self.idle_timeout, 15))
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(url, headers=headers) as response,
            ):
                if response.status in (401, 403):
                    return f"GET {url} answered HTTP {response.status}: is G4F_API_KEY right?"
                if response.status != 200:
                    return (
                        f"GET {url} answered HTTP {response.status}: is G4F_API_BASE the API's "
                        "base address (often ending in /v1)?"
                    )
                listed = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            return f"GET {url} failed ({type(error).__name__}): is the backend running there?"
        data = listed.get("data") if isinstance(listed, dict) else None
        ids = [m["id"] for m in data if isinstance(m, dict) and "id" in m] if data else []
        if ids and self.model not in ids:
            shown = ", ".join(ids[:5]) + (", …" if len(ids) > 5 else "")
            return f"G4F_MODEL {self.model} is not among the models {url} lists ({shown})"
        return None

    async def catch_up(self, task: asyncio.Task[Any] | None) -> None:
        """Let `task`, which consumes a `stream()`, take the text its connection holds right now
        (reads are batched, see `bot.llm.transport`): for a caller about to show that text."""
        await catch_up(task)

    def _install_pool(self) -> None:
        loop = asyncio.get_running_loop()
        if self._pooled_loop is not loop:
            self._pooled_loop = loop
            install_pool(self.read_interval)

    async def stream(
        self, messages: list[ChatMessage], model: str | None = None
    ) -> AsyncGenerator[str, None]:
        """Yield pieces of the answer's text. Raises `LLMFailure`; an empty answer is a failure.

        Close it with `contextlib.aclosing` so that a stop closes the upstream request at once.
        """
        if not self._started:
            raise RuntimeError("LLMClient.start() was not called")
        self._install_pool()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.total_timeout
        payload = copy.deepcopy(messages)  # g4f edits the list it is given
        try:
            if self._provider is None:
                # g4f's automatic provider fetches a provider list with blocking I/O and no
                # timeout of its own: off the loop, bounded by the idle timeout (the thread may
                # linger, the answer does not). A configured provider has no such step, and a
                # thread per answer would cost more than the rest of its set-up.
                async with asyncio.timeout(min(self.idle_timeout, self.total_timeout)):
                    chunks = await asyncio.to_thread(self._create, payload, model or self.model)
            else:
                chunks = self._create(payload, model or self.model)
        except TimeoutError as exc:
            raise LLMFailure(FailureKind.IDLE_TIMEOUT, "provider set-up hung") from exc
        except Exception as exc:
            raise LLMFailure(classify(exc), _describe(exc)) from exc

        produced = False
        swallowed: Exception | None = None
        reasoning = ReasoningFilter()
        lines = LineEnds()
        watchdog = _Watchdog(loop, self.idle_timeout, deadline)
        try:
            async with contextlib.aclosing(chunks) as iterator:
                while True:
                    if loop.time() >= deadline:
                        raise self._timed_out(FailureKind.TOTAL_TIMEOUT)
                    watchdog.waiting()
                    try:
                        chunk = await anext(iterator)
                    except StopAsyncIteration:
                        break
                    except asyncio.CancelledError as exc:
                        if kind := watchdog.fired(exc):
                            raise self._timed_out(kind) from None
                        raise
                    except Exception as exc:
                        if kind := watchdog.fired(exc):
                            raise self._timed_out(kind) from exc
                        raise _read_failure(exc) from exc
                    watchdog.received()
                    # Providers also yield reasoning, sources, usage and other objects: only
                    # plain text is the answer. Some yield an exception instead of raising it;
                    # g4f's client drops those, here one explains an answer that never came.
                    if isinstance(chunk, str):
                        if text := reasoning.feed(lines.feed(chunk)):
                            produced = True
                            yield text
                    elif isinstance(chunk, Exception):
                        swallowed = chunk
        finally:
            watchdog.stop()
        if text := reasoning.feed(lines.end()) + reasoning.end():
            produced = True
            yield text
        if not produced:
            if swallowed is not None:  # (the provider's own: yielded, not raised)
                raise _read_failure(swallowed) from swallowed
            raise LLMFailure(FailureKind.EMPTY, "no text")

    def _timed_out(self, kind: FailureKind) -> LLMFailure:
        """A timeout's failure, saying for the log what ran out."""
        if kind is FailureKind.IDLE_TIMEOUT:
            return LLMFailure(kind, f"no data for {self.idle_timeout:g} s")
        return LLMFailure(kind, f"over {self.total_timeout:g} s")

    async def close(self) -> None:
        """Close g4f's shared connection pools (they outlive clients)."""
        if not self._started:
            return
        with contextlib.suppress(Exception):
            from g4f.requests.aiohttp import close_shared_connectors

            await close_shared_connectors()


class _Watchdog:
    """The idle and total timeouts of one stream, with one timer per idle period.

    `asyncio.timeout` around each chunk arms and cancels a timer per chunk — a few characters —
    which measured as a visible share of an answer's CPU time. Here a chunk only notes the time;
    the timer looks at it when it fires and either arms itself again or, if the stream has been
    waiting too long, cancels the task waiting for it (as `asyncio.timeout` does).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, idle: float, deadline: float) -> None:
        self._loop = loop
        self._idle = idle
        self._deadline = deadline
        self._since: float | None = None  # when the wait for the next chunk began
        self._task: asyncio.Task[Any] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.kind: FailureKind | None = None

    def waiting(self) -> None:
        self._since = self._loop.time()
        self._task = asyncio.current_task()
        if self._timer is None:
            self._arm(self._since)

    def received(self) -> None:
        self._since = None

    def _arm(self, now: float) -> None:
        since = now if self._since is None else self._since
        self._timer = self._loop.call_at(min(since + self._idle, self._deadline), self._check)

    def _check(self) -> None:
        self._timer = None
        now = self._loop.time()
        if self._since is not None and self._task is not None:
            if now >= self._deadline:
                self.kind = FailureKind.TOTAL_TIMEOUT
            elif now - self._since >= self._idle:
                self.kind = FailureKind.IDLE_TIMEOUT
            if self.kind is not None:
                self._task.cancel()
                return
        if self._since is not None or now < self._deadline:
            self._arm(now)

    def fired(self, exc: BaseException) -> FailureKind | None:
        """The timeout `exc` stands for, if it is this watchdog's doing (then the task's
        cancellation is taken back); None if it is not."""
        if self.kind is None or self._task is None:
            return None
        if self._task.uncancel() > 0 and isinstance(exc, asyncio.CancelledError):
            return None  # cancelled from outside as well: that wins
        return self.kind

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _read_failure(exc: Exception) -> LLMFailure:
    """The failure of a stream that raised `exc` while it was read."""
    kind = classify(exc)
    if kind is FailureKind.INTERNAL and misread(exc):  # the logged cause says which reply
        return LLMFailure(FailureKind.HTTP, f"reply not understood: {_describe(exc)}")
    return LLMFailure(kind, _describe(exc))


def _describe(exc: BaseException) -> str:
    """For the log only: the exception's class and first line, never shown in a chat."""
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {first}"[:300]
