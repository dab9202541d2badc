"""A fake OpenAI-compatible chat backend that streams Server-Sent Events over real HTTP.

The bot reaches it through g4f's custom provider, exactly as it would reach Ollama or a proxy,
so every byte crosses g4f's real transport. Fault modes reproduce what real backends do.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

Fault = Literal[
    "drop", "http500", "http500_plain", "http429", "stall", "sse_error", "empty", "html", "garbage"
]


@dataclass
class Reply:
    """One scripted answer: its text, how it is chunked and paced, and how it fails."""

    text: str = "Hello! How can I help?"
    chunk_size: int = 8
    delay: float = 0.005
    first_delay: float = 0.0  # seconds before the first event, as a model starting slowly
    fault: Fault | None = None
    # characters sent before a mid-stream fault ("drop", "stall", "sse_error", "garbage")
    fault_after: int = 0
    reasoning: str = ""  # sent first as `delta.reasoning` chunks (no content), like thinking models


@dataclass
class Received:
    """One request as the backend saw it."""

    body: dict[str, Any]
    started: float
    finished: float | None = None
    client_closed: bool = False  # the client hung up before the stream ended
    chunks: list[tuple[float, int]] = field(default_factory=list)  # (sent at, characters so far)

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))


def echo_responder(body: dict[str, Any]) -> Reply:
    """Answers with a short text that quotes the last user message (handy for memory tests)."""
    last = next((m for m in reversed(body.get("messages", [])) if m.get("role") == "user"), None)
    content = last.get("content", "") if last else ""
    if isinstance(content, list):  # multimodal form
        content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return Reply(text=f"You said: {content}")


@dataclass
class FakeLLM:
    """Serves `/v1/chat/completions` (SSE) and `/v1/models`, scripted by `replies`/`responder`."""

    models: list[str] = field(default_factory=lambda: ["gpt-4", "gpt-4o-mini"])
    responder: Callable[[dict[str, Any]], Reply] = echo_responder
    replies: deque[Reply] = field(default_factory=deque)
    received: list[Received] = field(default_factory=list)
    open_streams: int = 0
    max_open_streams: int = 0  # the most requests served at the same time
    _runner: web.AppRunner | None = None
    _port: int = 0

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self._port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self.base_url

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}/v1"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def reset(self) -> None:
        self.replies.clear()
        self.received.clear()
        self.max_open_streams = self.open_streams
        self.responder = echo_responder

    def script(self, *replies: Reply) -> None:
        """Queue answers for the next requests, in order; then the responder takes over."""
        self.replies.extend(replies)

    @property
    def requests(self) -> list[dict[str, Any]]:
        return [r.body for r in self.received]

    async def _models(self, request: web.Request) -> web.Response:
        data = [{"id": m, "object": "model", "owned_by": "fake"} for m in self.models]
        return web.json_response({"object": "list", "data": data})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        rec = Received(body=body, started=time.monotonic())
        self.received.append(rec)
        reply = self.replies.popleft() if self.replies else self.responder(body)
        self.open_streams += 1
        self.max_open_streams = max(self.max_open_streams, self.open_streams)
        try:
            return await self._serve(request, body, reply, rec)
        except ConnectionResetError:
            # The client hung up (a Stop, a timeout): that is what some tests look for.
            rec.client_closed = True
            raise asyncio.CancelledError() from None
        except asyncio.CancelledError:
            rec.client_closed = True
            raise
        finally:
            self.open_streams -= 1
            rec.finished = time.monotonic()

    async def _serve(
        self, request: web.Request, body: dict[str, Any], reply: Reply, rec: Received
    ) -> web.StreamResponse:
        if reply.fault == "http500":
            err = {"error": {"message": "internal failure in model worker", "type": "server_error"}}
            return web.json_response(err, status=500)
        if reply.fault == "http500_plain":
            return web.Response(status=500, text="Internal Server Error")
        if reply.fault == "http429":
            err = {"error": {"message": "Rate limit reached", "type": "rate_limit_exceeded"}}
            return web.json_response(err, status=429, headers={"Retry-After": "7"})
        if reply.fault == "html":  # a proxy's challenge page, or an address that is a web UI
            page = "<html><body>Checking your browser…</body></html>"
            return web.Response(text=page, content_type="text/html")

        model = str(body.get("model") or "gpt-4")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)

        async def event(payload: dict[str, Any] | str) -> None:
            data = payload if isinstance(payload, str) else json.dumps(payload)
            await resp.write(f"data: {data}\n\n".encode())

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }

        if reply.first_delay:
            await asyncio.sleep(reply.first_delay)
        for i in range(0, len(reply.reasoning), reply.chunk_size):
            await event(chunk({"role": "assistant", "reasoning": reply.reasoning[i : i + 8]}))
            await asyncio.sleep(reply.delay)

        text = "" if reply.fault == "empty" else reply.text
        faults_midway = ("drop", "stall", "sse_error", "garbage")
        limit = reply.fault_after if reply.fault in faults_midway else len(text)
        sent = 0
        while sent < min(limit, len(text)):
            piece = text[sent : min(sent + reply.chunk_size, limit)]
            await event(chunk({"role": "assistant", "content": piece}))
            sent += len(piece)
            rec.chunks.append((time.monotonic(), sent))
            if reply.delay:
                await asyncio.sleep(reply.delay)

        if reply.fault == "drop":
            transport = request.transport
            if transport is not None:
                transport.abort()
            return resp
        if reply.fault == "stall":
            # aiohttp does not cancel a handler when its client leaves: watch the socket instead.
            transport = request.transport
            while transport is not None and not transport.is_closing():  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            raise ConnectionResetError("client went away during the stall")
        if reply.fault == "garbage":  # an event that is not JSON, then the stream goes on
            await event("not json at all")
            await event(chunk({"role": "assistant", "content": text[limit:]}))
        if reply.fault == "sse_error":
            await event({"error": {"message": "upstream model crashed", "type": "server_error"}})
            await resp.write_eof()
            return resp

        await event(chunk({}, finish="stop"))
        await event("[DONE]")
        await resp.write_eof()
        return resp
