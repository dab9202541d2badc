"""Streaming chat completions through g4f, with its hazards fenced off.

g4f (measured on 8.8.6) blocks the event loop while it picks a provider, mutates the message list
it is given, writes state under `~/.g4f`, and never times a stream out by itself. `LLMClient` runs
the set-up off the loop, passes a deep copy, keeps g4f's state in `DATA_DIR`, enforces the idle and
total timeouts, and turns every failure into an `LLMFailure` with a kind a chat can be told.

g4f also "optimizes" every request before sending it: it drops a user message that repeats an
earlier one ("continue" asked twice vanishes, and the model answers the previous question),
rewrites the system prompt, collapses whitespace (code indentation in a question) and drops old
turns. The conversation the bot builds is already trimmed to `MAX_CONTEXT_CHARS`, so that step is
switched off: the backend receives exactly the conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import os
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any, Literal, TypedDict

from bot.llm.errors import FailureKind, LLMFailure, classify

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
    ) -> None:
        self.model = model
        self.provider_names = providers
        self.api_base = api_base
        self.api_key = api_key
        self.data_dir = data_dir
        self.idle_timeout = idle_timeout
        self.total_timeout = total_timeout
        self._client: Any = None
        self._provider: Any = None
        self._pooled_loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Import and configure g4f. Raises `ValueError` naming an unknown provider."""
        state = (self.data_dir / "g4f").resolve()
        (state / "cookies").mkdir(parents=True, exist_ok=True)
        # g4f computes these paths at import time, so they are set before the first import.
        os.environ.setdefault("G4F_CONFIG_DIR", str(state))
        os.environ.setdefault("G4F_CACHE_DIR", str(state / "cache"))
        import g4f.cookies
        from g4f.client import AsyncClient

        g4f.cookies.set_cookies_dir(str(state / "cookies"))
        _keep_messages_as_given()
        self._provider = self._build_provider()
        self._client = AsyncClient()

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
                raise ValueError(f"G4F_PROVIDER names an unknown g4f provider: {name!r}")
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
        return self._client.chat.completions.create(
            model=model, messages=messages, provider=self._provider, stream=True
        )

    def _widen_pool(self) -> None:
        """g4f shares one aiohttp connector per event loop, capped at 20 connections per host:
        the 21st simultaneous answer from one backend would wait for a free connection. Put a
        connector without that cap in its place (once per loop, before g4f makes its own)."""
        loop = asyncio.get_running_loop()
        if self._pooled_loop is loop:
            return
        self._pooled_loop = loop
        try:
            from aiohttp import TCPConnector
            from g4f.requests import aiohttp as g4f_aiohttp

            connectors = g4f_aiohttp._loop_connectors
            current = connectors.get(loop)
            if current is None or current.closed or current.limit_per_host:
                connectors[loop] = TCPConnector(
                    limit=0,  # no cap: concurrency is bounded by the answers in flight
                    keepalive_timeout=30,
                    ttl_dns_cache=300,
                    enable_cleanup_closed=True,
                )
        except (ImportError, AttributeError) as error:  # a g4f release that changed this
            log.warning("could not widen g4f's connection pool: %s", error)

    async def stream(
        self, messages: list[ChatMessage], model: str | None = None
    ) -> AsyncGenerator[str, None]:
        """Yield pieces of the answer's text. Raises `LLMFailure`; an empty answer is a failure.

        Close it with `contextlib.aclosing` so that a stop closes the upstream request at once.
        """
        if self._client is None:
            raise RuntimeError("LLMClient.start() was not called")
        self._widen_pool()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.total_timeout
        payload = copy.deepcopy(messages)  # g4f edits the list it is given
        try:
            # Without an explicit provider g4f fetches a provider list with blocking I/O here,
            # with no timeout of its own: the idle timeout bounds the wait (the thread may
            # linger, the answer does not).
            async with asyncio.timeout(min(self.idle_timeout, self.total_timeout)):
                chunks = await asyncio.to_thread(self._create, payload, model or self.model)
        except TimeoutError as exc:
            raise LLMFailure(FailureKind.IDLE_TIMEOUT, "provider set-up hung") from exc
        except Exception as exc:
            raise LLMFailure(classify(exc), _describe(exc)) from exc

        produced = False
        async with contextlib.aclosing(chunks) as iterator:
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise LLMFailure(FailureKind.TOTAL_TIMEOUT)
                try:
                    async with asyncio.timeout(min(self.idle_timeout, remaining)):
                        chunk = await anext(iterator)
                except StopAsyncIteration:
                    break
                except TimeoutError as exc:
                    over = deadline - loop.time() <= 0
                    kind = FailureKind.TOTAL_TIMEOUT if over else FailureKind.IDLE_TIMEOUT
                    raise LLMFailure(kind) from exc
                except Exception as exc:
                    raise LLMFailure(classify(exc), _describe(exc)) from exc
                text = _text_of(chunk)
                if text:
                    produced = True
                    yield text
        if not produced:
            raise LLMFailure(FailureKind.EMPTY)

    async def close(self) -> None:
        """Close g4f's shared connection pools (they outlive clients)."""
        if self._client is None:
            return
        with contextlib.suppress(Exception):
            from g4f.requests.aiohttp import close_shared_connectors

            await close_shared_connectors()


def _no_optimization(messages: Any, tools: Any) -> tuple[int, dict[str, str]]:
    return 0, {}


def _keep_messages_as_given() -> None:
    """Switch off g4f's request "optimizer" (see the module's docstring)."""
    try:
        from g4f.tools import run_tools

        if not hasattr(run_tools, "optimize_request"):
            raise AttributeError("g4f.tools.run_tools.optimize_request")
        run_tools.optimize_request = _no_optimization
    except (ImportError, AttributeError) as error:
        log.warning("g4f may rewrite conversations before sending them: %s", error)


def _text_of(chunk: Any) -> str:
    """The text in a chunk; g4f also yields reasoning, sources and usage chunks with no text."""
    choices = getattr(chunk, "choices", None)
    if not choices:
        return ""
    content = getattr(getattr(choices[0], "delta", None), "content", None)
    return content if isinstance(content, str) else ""


def _describe(exc: BaseException) -> str:
    """For the log only: the exception's class and first line, never shown in a chat."""
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {first}"[:300]
