"""The fake Telegram and the fake model backend in a process of their own, with a control API.

The benchmark runs the bot in its own process so that CPU time, memory and event-loop lag are the
bot's alone. This process serves both fakes and `/control/*` for the harness:
`POST /control/ask`, `GET /control/report`, `POST /control/reset`.
It prints one JSON line with the three base URLs, then serves until stdin closes.
`--answers plain` makes every answer plain prose instead of Markdown; `--length` sets how many
characters each answer has (1,000 by default).
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from typing import Any

from aiohttp import web

from tests.fakes.llm import FakeLLM, Reply
from tests.fakes.telegram import FakeTelegram

TOKEN = "123456:BENCH-token-for-fake-telegram"
CHARS_PER_SECOND = 250.0  # a brisk model: ~60 tokens a second
CHUNK = 8


def answer_text(chat_id: int, length: int = 1000, kind: str = "markdown") -> str:
    """The answer a chat gets: Markdown as a model writes it (a paragraph, a list with bold
    labels, inline code, a code block, a link), or plain prose; each chat's text is its own."""
    n = abs(chat_id)
    if kind == "plain":
        words: list[str] = []
        size = 0
        i = 0
        while size < length:
            word = f"chat{n}w{i}"
            if i and i % 40 == 0:
                word = "\n\n" + word
            words.append(word)
            size += len(word) + 1
            i += 1
        return " ".join(words)[:length].rstrip()
    markdown = (
        f"Here is how **option {n}** works. It reads the input, checks it and writes the "
        "result; most of the time goes to waiting for the network, so *one thread* is enough.\n\n"
        f"1. **Install** the package with `pip install example-{n}`.\n"
        "2. **Configure** it: set `TIMEOUT` and `RETRIES` in the environment.\n"
        "3. **Run** it and watch the log for ~~errors~~ warnings.\n\n"
        "```python\n"
        "client = Client(timeout=30)\n"
        f'result = await client.fetch("https://example.com/{n}")\n'
        "```\n\n"
        f"See [the documentation](https://example.com/docs/{n}) for the details. "
    )
    step = 4
    while len(sentence := f"The **step {step}** is `optional`: skip it in a *hurry*. ") <= (
        length - len(markdown)
    ):
        markdown += sentence
        step += 1
    return markdown.rstrip()


ANSWERS = sys.argv[sys.argv.index("--answers") + 1] if "--answers" in sys.argv else "markdown"
if "--chars-per-second" in sys.argv:  # the test of the harness streams faster
    CHARS_PER_SECOND = float(sys.argv[sys.argv.index("--chars-per-second") + 1])
LENGTH = int(sys.argv[sys.argv.index("--length") + 1]) if "--length" in sys.argv else 1000


def responder(body: dict[str, Any]) -> Reply:
    question = body["messages"][-1]["content"]
    match = re.search(r"chat (-?\d+)", question)
    chat_id = int(match.group(1)) if match else 0
    return Reply(
        answer_text(chat_id, LENGTH, kind=ANSWERS), chunk_size=CHUNK, delay=CHUNK / CHARS_PER_SECOND
    )


async def main() -> None:
    tg = FakeTelegram(token=TOKEN)
    llm = FakeLLM(responder=responder)
    tg_url = await tg.start()
    llm_url = await llm.start()
    asked: dict[int, float] = {}

    async def ask(request: web.Request) -> web.Response:
        data = await request.json()
        for chat_id in data["chats"]:
            text = f"question for chat {chat_id}"
            if chat_id < 0:
                tg.send_user_message(
                    chat_id,
                    f"@{tg.bot_username} {text}",
                    user_id=abs(chat_id) % 10**6,
                    chat_type="supergroup",
                )
            else:
                tg.send_user_message(chat_id, text)
            asked[chat_id] = time.monotonic()
        return web.json_response({"ok": True})

    async def report(request: web.Request) -> web.Response:
        calls = [
            {
                "method": c.method,
                "chat_id": c.chat_id,
                "at": c.at,
                "status": c.status,
                "text": c.params.get("text"),
                "message_id": c.params.get("message_id"),
                "result_id": c.result.get("message_id") if isinstance(c.result, dict) else None,
            }
            for c in tg.calls
            if c.method in ("sendMessage", "editMessageText", "sendMessageDraft")
        ]
        streams = []
        for r in llm.received:
            question = r.messages[-1]["content"] if r.messages else ""
            match = re.search(r"chat (-?\d+)", str(question))
            streams.append(
                {
                    "chat_id": int(match.group(1)) if match else 0,
                    "chunks": r.chunks,
                    "text": answer_text(int(match.group(1)), LENGTH, kind=ANSWERS) if match else "",
                }
            )
        return web.json_response(
            {
                "calls": calls,
                "streams": streams,
                "asked": asked,
                "count_429": tg.count_429,
                "violations": tg.violations,
                "max_open_streams": llm.max_open_streams,
            }
        )

    async def reset(request: web.Request) -> web.Response:
        tg.reset()
        llm.reset()
        llm.responder = responder
        asked.clear()
        return web.json_response({"ok": True})

    control = web.Application()
    control.router.add_post("/control/ask", ask)
    control.router.add_get("/control/report", report)
    control.router.add_post("/control/reset", reset)
    runner = web.AppRunner(control, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(
        json.dumps(
            {
                "telegram": tg_url,
                "llm": llm_url,
                "control": f"http://127.0.0.1:{port}",
                "token": TOKEN,
                "bot_username": tg.bot_username,
            }
        ),
        flush=True,
    )
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until stdin closes
    await runner.cleanup()
    await tg.stop()
    await llm.stop()


if __name__ == "__main__":
    asyncio.run(main())
