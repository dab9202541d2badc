"""The web server: the webhook (secret, body limit, answers), /healthz and /metrics, and the
settings of webhook mode. The real bot runs against the fake Telegram and the fake backend."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import signal
import socket
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import TOKEN, BotRunner
from tests.fakes.llm import FakeLLM, Reply
from tests.fakes.telegram import FakeTelegram
from tests.helpers import answer_messages, final_answer
from tests.test_lifecycle import output_lines, start_process, wait_exit
from tests.test_startup import run_bot

USER = 7007
SECRET = "s3cret_Webhook-token"
WEBHOOK_URL = "https://bot.example.com/tg/updates"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def closed_url() -> str:
    """A URL nothing listens on."""
    return f"http://127.0.0.1:{free_port()}"


def make_app(tg_url: str, llm: FakeLLM, data_dir: Path, **overrides: Any) -> Any:
    from bot.app import build_app
    from config import load_settings

    values: dict[str, Any] = {
        "bot_token": TOKEN,
        "telegram_api_url": tg_url,
        "g4f_api_base": llm.base_url,
        "data_dir": data_dir,
        "llm_idle_timeout": 5,
        "llm_total_timeout": 60,
        "stream_mode": "edit",
        "web_host": "127.0.0.1",
        "web_port": free_port(),
    }
    values.update(overrides)
    return build_app(load_settings(**values))


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus' text format (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name) + (r"\{" + re.escape(wanted) + r"\}" if labels else "") + r" (\S+)$"
    for line in text.splitlines():
        match = re.match(pattern, line)
        if match:
            return float(match.group(1))
    return 0.0


@dataclass
class Running:
    app: Any
    base: str  # http://127.0.0.1:port of the bot's web server
    task: asyncio.Task[None]
    http: aiohttp.ClientSession

    async def get(self, path: str) -> tuple[int, str]:
        async with self.http.get(self.base + path) as response:
            return response.status, await response.text()

    async def post_update(
        self, update: Any, secret: str | None = SECRET, body: bytes | None = None
    ) -> int:
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret
        data = body if body is not None else json.dumps(update).encode()
        async with self.http.post(self.base + "/tg/updates", data=data, headers=headers) as r:
            return r.status


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


@pytest.fixture
async def webhook_bot(
    tg: FakeTelegram, llm: FakeLLM, tmp_path: Path, http: aiohttp.ClientSession
) -> AsyncIterator[Running]:
    """The bot in webhook mode, running until the test ends; ready once setWebhook was called."""
    from bot.app import run_webhook

    app = make_app(
        tg.base_url,
        llm,
        tmp_path / "data",
        bot_mode="webhook",
        webhook_url=WEBHOOK_URL,
        webhook_secret=SECRET,
        web_max_body=64 * 1024,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(run_webhook(app, handle_signals=False, stop=stop))
    running = Running(app, f"http://127.0.0.1:{app.settings.web_port}", task, http)
    try:
        await tg.wait_for(lambda: any(c.method == "setWebhook" for c in tg.calls) or task.done())
        if task.done():
            task.result()
        yield running
    finally:
        stop.set()
        try:
            await asyncio.wait_for(task, 15)
        finally:
            tg.webhook_url = None


async def test_webhook_with_the_right_secret_answers(
    tg: FakeTelegram, llm: FakeLLM, webhook_bot: Running
) -> None:
    update = tg.send_user_message(USER, "hello over the webhook")
    assert await webhook_bot.post_update(update) == 200

    [answer] = await final_answer(tg, USER, after=update["message"]["message_id"])

    assert answer.text == "You said: hello over the webhook"
    assert answer.reply_to_message_id == update["message"]["message_id"]
    assert not any(c.method == "getUpdates" for c in tg.calls)  # no polling in webhook mode


async def test_set_webhook_with_url_secret_and_used_update_types(
    tg: FakeTelegram, webhook_bot: Running
) -> None:
    [call] = [c for c in tg.calls if c.method == "setWebhook"]
    assert call.params["url"] == WEBHOOK_URL
    assert call.params["secret_token"] == SECRET
    assert call.params.get("drop_pending_updates") in (None, False)
    assert "message" in call.params["allowed_updates"]
    assert "callback_query" in call.params["allowed_updates"]
    assert tg.webhook_url == WEBHOOK_URL


@pytest.mark.parametrize("secret", ["wrong-secret", SECRET[:-1], SECRET + "x", "", None], ids=str)
async def test_webhook_without_the_right_secret_is_401_and_does_nothing(
    tg: FakeTelegram, llm: FakeLLM, webhook_bot: Running, secret: str | None
) -> None:
    update = tg.send_user_message(USER, "let me in")
    assert await webhook_bot.post_update(update, secret=secret) == 401

    await asyncio.sleep(0.3)
    assert llm.received == []
    assert not any(c.method in ("sendMessage", "sendChatAction") for c in tg.calls)
    _, metrics = await webhook_bot.get("/metrics")
    assert metric(metrics, "bot_updates_total", type="message") == 0


async def test_refused_webhook_requests_are_logged_once_a_minute(
    tg: FakeTelegram, webhook_bot: Running, caplog: pytest.LogCaptureFixture
) -> None:
    """A scanner posting to the public webhook must not fill the log."""
    caplog.set_level(logging.WARNING, logger="bot.server")
    update = tg.send_user_message(USER, "let me in")
    for _ in range(20):
        assert await webhook_bot.post_update(update, secret="wrong-secret") == 401
    said = [r.getMessage() for r in caplog.records if "secret" in r.getMessage()]
    assert said == ["webhook: 1 request(s) with a wrong or missing secret refused"]


async def test_webhook_secret_with_non_ascii_bytes_is_401(
    webhook_bot: Running, http: aiohttp.ClientSession
) -> None:
    # aiogram's str comparison raises on non-ASCII (a 500); bytes are compared here.
    reader, writer = await asyncio.open_connection("127.0.0.1", webhook_bot.app.settings.web_port)
    body = b"{}"
    writer.write(
        b"POST /tg/updates HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"X-Telegram-Bot-Api-Secret-Token: s\xc3\xa9cret\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()
    assert status_line.split()[1] == b"401"


async def test_webhook_oversized_body_is_413_and_malformed_is_400(
    tg: FakeTelegram, llm: FakeLLM, webhook_bot: Running
) -> None:
    update = tg.send_user_message(USER, "x" * 100)
    padded = {**update, "padding": "y" * (64 * 1024)}
    assert await webhook_bot.post_update(padded) == 413
    assert await webhook_bot.post_update(None, body=b"{not json") == 400
    assert await webhook_bot.post_update({"no": "update"}) == 400

    await asyncio.sleep(0.3)
    assert llm.received == []
    assert not any(c.method == "sendMessage" for c in tg.calls)


async def test_healthz_and_metrics_after_one_answer(
    tg: FakeTelegram, llm: FakeLLM, webhook_bot: Running
) -> None:
    status, body = await webhook_bot.get("/healthz")
    assert status == 200
    health = json.loads(body)
    assert health["ok"] is True and health["telegram"] == "ok" and health["storage"] == "ok"
    assert health["mode"] == "webhook"
    assert SECRET not in body and TOKEN not in body

    update = tg.send_user_message(USER, "count me")
    assert await webhook_bot.post_update(update) == 200
    await final_answer(tg, USER, after=update["message"]["message_id"])
    await tg.wait_for(lambda: webhook_bot.app.answerer.finished >= 1)

    status, text = await webhook_bot.get("/metrics")
    assert status == 200
    assert metric(text, "bot_updates_total", type="message") == 1
    assert metric(text, "bot_telegram_calls_total", method="sendMessage") >= 1
    assert metric(text, "bot_answers_total", outcome="done") == 1
    assert metric(text, "bot_answers_total", outcome="failed") == 0
    assert metric(text, "bot_time_to_first_text_seconds_count") == 1
    assert metric(text, "bot_time_to_first_text_seconds_sum") > 0
    assert metric(text, "bot_active_streams") == 0
    assert 'bot_backend_failures_total{kind="connection"} 0.0' in text


async def test_metrics_count_a_backend_failure(
    tg: FakeTelegram, llm: FakeLLM, webhook_bot: Running
) -> None:
    llm.script(Reply(fault="http500"))
    update = tg.send_user_message(USER, "fail please")
    assert await webhook_bot.post_update(update) == 200
    await final_answer(tg, USER, after=update["message"]["message_id"])
    await tg.wait_for(lambda: webhook_bot.app.answerer.finished >= 1)

    _, text = await webhook_bot.get("/metrics")
    assert metric(text, "bot_backend_failures_total", kind="http") == 1
    assert metric(text, "bot_answers_total", outcome="failed") == 1
    assert metric(text, "bot_answers_total", outcome="done") == 0
    assert metric(text, "bot_time_to_first_text_seconds_count") == 0  # no text ever came


async def test_healthz_caches_get_me_and_reports_storage(
    tg: FakeTelegram, webhook_bot: Running, caplog: pytest.LogCaptureFixture
) -> None:
    def get_mes() -> int:
        return sum(1 for c in tg.calls if c.method == "getMe")

    assert (await webhook_bot.get("/healthz"))[0] == 200
    before = get_mes()
    for _ in range(5):
        assert (await webhook_bot.get("/healthz"))[0] == 200
    assert get_mes() == before  # answered from the cache

    caplog.set_level(logging.INFO, logger="bot.server")
    await webhook_bot.app.store.close()
    for _ in range(3):
        status, body = await webhook_bot.get("/healthz")
    assert status == 503
    assert json.loads(body) == {
        "ok": False,
        "telegram": "ok",
        "storage": "unavailable",
        "mode": "webhook",
    }
    # The log says why /healthz turned 503, once rather than at every check.
    said = [r.getMessage() for r in caplog.records if "storage" in r.getMessage()]
    assert said == ["health: storage is unavailable (no answer, or under 1 MB free on its disk)"]


async def test_a_second_process_polling_with_the_token_is_reported(
    tg: FakeTelegram, start_bot: BotRunner, caplog: pytest.LogCaptureFixture
) -> None:
    """Two instances polling split the updates between them (a user sees every other question
    answered): Telegram says 409 to each; the log says so once and /healthz is 503."""
    from bot.server import Health

    caplog.set_level(logging.ERROR, logger="bot.session")
    first = await start_bot()
    second = await start_bot(data_dir=start_bot.data_dir.parent / "other")
    await tg.wait_for(lambda: sum(c.status == 409 for c in tg.calls) >= 4, timeout=20)
    for app in (first, second):
        health = Health(app.bot, app.store, conflicts=app.bot.session.conflicts)
        assert await health.check() == {"telegram": "conflict", "storage": "ok"}
    said = [r.getMessage() for r in caplog.records if "409" in r.getMessage()]
    assert len(said) == 2  # once per process, not at every request
    assert said[0].startswith("another process is polling with this bot token (409 Conflict)")


async def test_polling_serves_healthz_503_while_telegram_is_unreachable(
    llm: FakeLLM, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    from bot.app import run_polling

    app = make_app(closed_url(), llm, tmp_path / "data")
    task = asyncio.create_task(run_polling(app, handle_signals=False, polling_timeout=1, web=True))
    base = f"http://127.0.0.1:{app.settings.web_port}"
    try:
        body = ""
        for _ in range(100):  # until the server listens and start-up has opened the store
            with contextlib.suppress(aiohttp.ClientConnectionError):
                async with http.get(base + "/healthz") as response:
                    status, body = response.status, await response.text()
                    if json.loads(body)["storage"] == "ok":
                        break
            await asyncio.sleep(0.05)
        assert status == 503
        assert json.loads(body) == {
            "ok": False,
            "telegram": "unreachable",
            "storage": "ok",
            "mode": "polling",
        }
        assert TOKEN not in body
        async with http.get(base + "/metrics") as response:
            assert response.status == 200
            assert "bot_answers_total" in await response.text()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    with pytest.raises(aiohttp.ClientConnectionError):  # stopped listening
        await http.get(base + "/healthz")


async def test_polling_with_web_answers_and_counts(
    tg: FakeTelegram, llm: FakeLLM, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    from bot.app import run_polling

    app = make_app(tg.base_url, llm, tmp_path / "data")
    task = asyncio.create_task(run_polling(app, handle_signals=False, polling_timeout=1, web=True))
    base = f"http://127.0.0.1:{app.settings.web_port}"
    try:
        await tg.wait_for(lambda: any(c.method == "getUpdates" for c in tg.calls))
        question = tg.send_user_message(USER, "polled")["message"]
        await final_answer(tg, USER, after=question["message_id"])
        await tg.wait_for(lambda: app.answerer.finished >= 1)
        async with http.get(base + "/healthz") as response:
            assert response.status == 200
            assert (await response.json())["mode"] == "polling"
        async with http.get(base + "/metrics") as response:
            text = await response.text()
        assert metric(text, "bot_updates_total", type="message") == 1
        assert metric(text, "bot_answers_total", outcome="done") == 1
        assert not any(c.method == "setWebhook" for c in tg.calls)
        async with http.post(base + "/webhook", data=b"{}") as response:
            assert response.status in (404, 405)  # no webhook route when polling
    finally:
        await app.dispatcher.stop_polling()
        await asyncio.wait_for(task, 10)


def start_webhook(
    tg: FakeTelegram, llm: FakeLLM, data_dir: Path, port: int, **env: str
) -> subprocess.Popen[str]:
    """`python -m bot` in webhook mode, serving on `port`."""
    return start_process(
        tg,
        llm,
        data_dir,
        BOT_MODE="webhook",
        WEBHOOK_URL=WEBHOOK_URL,
        WEBHOOK_SECRET=SECRET,
        WEB_PORT=str(port),
        **env,
    )


async def test_python_m_bot_in_webhook_mode_answers_and_drains_on_sigterm(
    tg: FakeTelegram, llm: FakeLLM, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    port = free_port()
    process = start_webhook(tg, llm, tmp_path / "data", port, SHUTDOWN_GRACE="10")
    try:
        await tg.wait_for(lambda: any(c.method == "setWebhook" for c in tg.calls), timeout=60)
        llm.script(Reply("finishing after SIGTERM " * 12, chunk_size=8, delay=0.02))
        update = tg.send_user_message(USER, "answer while I stop you")
        headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
        url = f"http://127.0.0.1:{port}/tg/updates"
        async with http.post(url, json=update, headers=headers) as response:
            assert response.status == 200
        question_id = update["message"]["message_id"]
        await tg.wait_for(lambda: bool(answer_messages(tg, USER, question_id)))
        process.send_signal(signal.SIGTERM)
        assert await wait_exit(process) == 0
    finally:
        if process.poll() is None:
            process.kill()
    [answer] = answer_messages(tg, USER, question_id)
    assert answer.text == ("finishing after SIGTERM " * 12).strip()
    assert answer.reply_markup is None
    assert tg.webhook_url == WEBHOOK_URL  # left set: Telegram keeps updates until the bot is back


async def test_a_second_sigterm_while_the_webhook_server_stops_still_exits_cleanly(
    tg: FakeTelegram, llm: FakeLLM, tmp_path: Path
) -> None:
    """`docker stop` twice, say: the second SIGTERM comes while the server waits for a request
    still arriving. Before, it found no handler there and killed the process."""
    port = free_port()
    process = start_webhook(tg, llm, tmp_path / "data", port)
    lines = output_lines(process)
    try:
        await tg.wait_for(lambda: any(c.method == "setWebhook" for c in tg.calls), timeout=60)
        # A webhook request whose body is still arriving: the server's stop waits for it.
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /tg/updates HTTP/1.1\r\nHost: bot\r\nContent-Type: application/json\r\n"
            + f"X-Telegram-Bot-Api-Secret-Token: {SECRET}\r\n".encode()
            + b"Content-Length: 100\r\n\r\n{"
        )
        await writer.drain()
        await asyncio.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        await tg.wait_for(lambda: any("stopping: webhook" in line for line in lines))
        process.send_signal(signal.SIGTERM)
        assert await wait_exit(process, timeout=20) == 0
        writer.close()
    finally:
        if process.poll() is None:
            process.kill()


async def test_port_in_use_is_a_startup_error(llm: FakeLLM, tmp_path: Path) -> None:
    from bot.app import StartupError, run_polling

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        app = make_app(closed_url(), llm, tmp_path / "data", web_port=port)
        with pytest.raises(StartupError, match=rf"cannot listen on 127\.0\.0\.1:{port}"):
            await run_polling(app, handle_signals=False, web=True)


# -- settings --------------------------------------------------------------------------------


def webhook_settings(**overrides: Any) -> Any:
    from config import load_settings

    values: dict[str, Any] = {
        "bot_token": TOKEN,
        "bot_mode": "webhook",
        "webhook_url": WEBHOOK_URL,
        "webhook_secret": SECRET,
    }
    values.update(overrides)
    return load_settings(**values)


def test_serving_defaults() -> None:
    from config import load_settings

    settings = load_settings(bot_token=TOKEN)
    assert settings.bot_mode == "polling"
    assert (settings.web_host, settings.web_port, settings.web_max_body) == (
        "0.0.0.0",
        8080,
        1024 * 1024,
    )
    webhook = webhook_settings(bot_mode="WEBHOOK", webhook_url="https://bot.example.com")
    assert webhook.bot_mode == "webhook"
    assert webhook.webhook_url == "https://bot.example.com/webhook"
    assert webhook.webhook_path == "/webhook"
    assert webhook_settings().webhook_path == "/tg/updates"
    assert SECRET not in repr(webhook)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"webhook_secret": ""}, "WEBHOOK_SECRET is not set"),
        ({"webhook_url": ""}, "WEBHOOK_URL is not set"),
        ({"webhook_secret": "has spaces in it"}, "WEBHOOK_SECRET is invalid"),
        ({"webhook_secret": "ünïcode"}, "WEBHOOK_SECRET is invalid"),
        ({"webhook_secret": "a" * 257}, "WEBHOOK_SECRET is invalid"),
        ({"webhook_url": "http://bot.example.com/hook"}, "WEBHOOK_URL is invalid"),
        ({"webhook_url": "bot.example.com/hook"}, "WEBHOOK_URL is invalid"),
        ({"webhook_url": "https://bot.example.com/metrics"}, "WEBHOOK_URL is invalid"),
        ({"bot_mode": "push"}, "BOT_MODE is invalid"),
        ({"web_port": 70000}, "WEB_PORT is invalid"),
        ({"web_max_body": 10}, "WEB_MAX_BODY is invalid"),
    ],
    ids=lambda value: str(value)[:40],
)
def test_webhook_settings_errors_name_the_variable(overrides: dict[str, Any], message: str) -> None:
    from config import SettingsError

    with pytest.raises(SettingsError) as caught:
        webhook_settings(**overrides)
    text = str(caught.value)
    assert message in text and "\n" not in text
    assert SECRET not in text and "has spaces" not in text


def test_secret_of_256_allowed_characters_is_accepted() -> None:
    secret = ("Az09_-" * 50)[:256]
    assert webhook_settings(webhook_secret=secret).webhook_secret.get_secret_value() == secret
    # A self-hosted Bot API server may call plain http.
    local = webhook_settings(
        telegram_api_url="http://127.0.0.1:8081", webhook_url="http://127.0.0.1:8080/hook"
    )
    assert local.webhook_path == "/hook"


def test_webhook_mode_without_secret_exits_2_with_one_line(tmp_path: Path) -> None:
    result = run_bot(tmp_path, BOT_TOKEN=TOKEN, BOT_MODE="webhook", WEBHOOK_URL=WEBHOOK_URL)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "WEBHOOK_SECRET is not set" in lines[0]
    assert "Traceback" not in result.stderr
