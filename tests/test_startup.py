"""Start-up: bad settings are one clear line and exit code 2; Telegram down means retries."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TOKEN
from tests.fakes.telegram import FakeTelegram

ROOT = Path(__file__).resolve().parent.parent


def run_bot(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "G4F_", "LLM_"))}
    clean["PYTHONPATH"] = str(ROOT)
    clean.update(WEB_HOST="127.0.0.1", WEB_PORT="0")  # never 8080 in tests
    return subprocess.run(
        [sys.executable, "-m", "bot"],
        cwd=tmp_path,  # no .env there
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "BOT_TOKEN is not set"),
        ({"BOT_TOKEN": "not-a-token"}, "BOT_TOKEN is malformed"),
        ({"BOT_TOKEN": TOKEN, "LLM_IDLE_TIMEOUT": "-1"}, "LLM_IDLE_TIMEOUT is invalid"),
        ({"BOT_TOKEN": TOKEN, "LLM_TOTAL_TIMEOUT": "inf"}, "LLM_TOTAL_TIMEOUT is invalid"),
        ({"BOT_TOKEN": TOKEN, "REDIS_URL": "redis://:pw@h:port/0"}, "its port must be"),
        ({"BOT_TOKEN": TOKEN, "REDIS_URL": "redis://h:6379/cache"}, "must be a database number"),
        ({"BOT_TOKEN": TOKEN, "WEBHOOK_URL": "https://h:99999/hook"}, "WEBHOOK_URL is invalid"),
        ({"BOT_TOKEN": TOKEN, "G4F_MODEL": "   "}, "G4F_MODEL is invalid: must name a model"),
        ({"BOT_TOKEN": TOKEN, "LLM_TOTAL_TIMEOUT": "1e20"}, "LLM_TOTAL_TIMEOUT is invalid"),
    ],
    ids=[
        "missing",
        "malformed",
        "bad-number",
        "infinite",
        "redis-port",
        "redis-db",
        "webhook-port",
        "blank-model",
        "huge-timeout",
    ],
)
def test_bad_settings_are_one_line_and_exit_2(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    result = run_bot(tmp_path, **env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr
    assert "not-a-token" not in result.stderr


def test_settings_come_from_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from config import load_settings

    (tmp_path / ".env").write_text(f"BOT_TOKEN={TOKEN}\nG4F_PROVIDER=A, B\nG4F_API_BASE=\n")
    monkeypatch.chdir(tmp_path)
    for name in ("BOT_TOKEN", "G4F_PROVIDER", "G4F_API_BASE"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.bot_token.get_secret_value() == TOKEN
    assert settings.providers == ["A", "B"]
    assert settings.g4f_api_base == ""
    assert settings.telegram_api_url == "https://api.telegram.org"
    assert TOKEN not in repr(settings)


def test_a_misspelt_setting_is_named_with_the_one_meant(tmp_path: Path) -> None:
    """`ALLOWED_USER_ID=42` is ignored, so the bot answers everyone: the log says so."""
    from config import misspelt

    (tmp_path / ".env").write_text("ALLOWED_USER_ID=42\nBOT_TOKEN=x\n")
    environ = {"ADMIN_IDS": "42", "PATH": "/bin", "HOSTNAME": "box", "LOG_LEVEL": "INFO"}
    assert misspelt(environ, tmp_path / ".env") == [
        "ADMIN_IDS is not a setting and is ignored; did you mean ADMIN_USER_IDS?",
        "ALLOWED_USER_ID is not a setting and is ignored; did you mean ALLOWED_USER_IDS?",
    ]


def test_an_unreadable_dotenv_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A working directory the bot's user may not read (a volume owned by another uid)."""
    from config import SettingsError, load_settings

    def denied(self: Path) -> bool:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(Path, "is_file", denied)
    with pytest.raises(SettingsError) as raised:
        load_settings(bot_token=TOKEN)
    assert str(raised.value).startswith(f"cannot read {tmp_path / '.env'}: Permission denied")


async def run_bot_async(tmp_path: Path, **env: str) -> asyncio.subprocess.Process:
    """`python -m bot` beside a fake in this event loop (which `run_bot` would block)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "G4F_", "LLM_"))}
    clean.update(PYTHONPATH=str(ROOT), WEB_HOST="127.0.0.1", WEB_PORT="0")
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        cwd=tmp_path,
        env={**clean, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_a_start_up_error_never_shows_the_token(tg: FakeTelegram, tmp_path: Path) -> None:
    """`https://api.telegram.org/bot<token>` pasted as TELEGRAM_API_URL: the one line says
    what is wrong without printing the token."""
    url = f"{tg.base_url}/bot{tg.token}"
    process = await run_bot_async(tmp_path, BOT_TOKEN=tg.token, TELEGRAM_API_URL=url)
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 2
    assert tg.token not in stderr.decode()
    assert stderr.decode().strip().splitlines()[-1] == (
        f"error: TELEGRAM_API_URL {tg.base_url}/bot<redacted> has no Bot API (getMe: 404 Not "
        "Found); give the server's address alone, without /bot<token>"
    )


async def test_sigterm_or_sigint_while_starting_ends_it_at_once(tmp_path: Path) -> None:
    """Before polling runs: while importing (seconds), and while Telegram is retried (for
    ever). A container's PID 1 ignores SIGTERM unless a handler is set."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"  # nothing listens there
    env = {"BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": url, "LOG_LEVEL": "INFO"}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    importing = await run_bot_async(tmp_path / "a", **env)
    retrying = await run_bot_async(tmp_path / "b", **env)
    await asyncio.sleep(0.5)
    importing.send_signal(signal.SIGINT)
    assert retrying.stderr is not None
    async with asyncio.timeout(60):
        while b"unreachable" not in await retrying.stderr.readline():
            pass
    retrying.send_signal(signal.SIGTERM)
    for process in (importing, retrying):
        _, stderr = await asyncio.wait_for(process.communicate(), 10)
        assert process.returncode == 0, stderr.decode()
        assert b"Traceback" not in stderr
    assert b"stopped during start-up" in stderr


def test_a_url_in_capitals_is_the_same_url() -> None:
    from config import load_settings

    settings = load_settings(
        bot_token=TOKEN,
        telegram_api_url="HTTPS://API.TELEGRAM.ORG/",
        g4f_api_base="Http://user:PassWord@LocalHost:11434/V1",
    )
    assert settings.telegram_api_url == "https://api.telegram.org"  # the official API
    assert settings.g4f_api_base == "http://user:PassWord@LocalHost:11434/V1"


def test_kubernetes_service_addresses_are_not_taken_for_misspellings() -> None:
    """A Service named "bot" gives every pod `BOT_PORT=tcp://…`: not a misspelt WEB_PORT."""
    from config import misspelt

    environ = {"BOT_PORT": "tcp://10.0.0.7:8080", "WEB_PROT": "8081"}
    assert misspelt(environ, None) == [
        "WEB_PROT is not a setting and is ignored; did you mean WEB_PORT?"
    ]


def test_settings_that_others_make_unused_are_named() -> None:
    from config import load_settings, unused

    polling = load_settings(
        bot_token=TOKEN, webhook_url="https://bot.example.com", webhook_secret="s3cret"
    )
    assert unused(polling) == [
        "WEBHOOK_URL and WEBHOOK_SECRET ignored: BOT_MODE is polling (BOT_MODE=webhook uses them)"
    ]
    keyless = load_settings(bot_token=TOKEN, g4f_api_key="sk-123", g4f_api_base="")
    [said] = unused(keyless)
    assert said.startswith("G4F_API_KEY ignored: it is for G4F_API_BASE's endpoint")
    assert "sk-123" not in said
    assert unused(load_settings(bot_token=TOKEN)) == []


def test_unknown_provider_is_a_startup_error(tmp_path: Path) -> None:
    from bot.app import StartupError, build_app
    from config import load_settings

    settings = load_settings(bot_token=TOKEN, g4f_provider="NoSuchProvider", data_dir=tmp_path)
    with pytest.raises(StartupError, match="unknown g4f provider: 'NoSuchProvider'"):
        build_app(settings)
    settings = load_settings(bot_token=TOKEN, g4f_provider="Copilt", data_dir=tmp_path)
    with pytest.raises(StartupError, match=r"'Copilt'; did you mean 'Copilot'\?$"):
        build_app(settings)


def test_a_data_dir_that_cannot_be_made_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file, not a folder")
    result = run_bot(tmp_path, BOT_TOKEN=TOKEN, DATA_DIR=str(tmp_path / "taken"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"error: DATA_DIR {tmp_path / 'taken'} is not usable: it is a file, not a folder"
    ]


@pytest.mark.parametrize("content", [b"not a database" * 100, None], ids=["corrupt", "newer"])
async def test_a_database_that_cannot_be_opened_is_a_startup_error(
    tmp_path: Path, content: bytes | None
) -> None:
    import sqlite3

    from bot.app import StartupError, build_app, startup
    from bot.conversations.sqlite import MIGRATIONS
    from config import load_settings

    path = tmp_path / "bot.sqlite3"
    if content is None:
        with sqlite3.connect(path) as db:
            db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    else:
        path.write_bytes(content)
    app = build_app(load_settings(bot_token=TOKEN, data_dir=tmp_path))
    try:
        with pytest.raises(StartupError, match=rf"DATA_DIR {tmp_path} is not usable: "):
            await startup(app)
    finally:
        await app.bot.session.close()


async def test_unreachable_telegram_is_retried_with_backoff(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from bot.app import build_app, wait_for_telegram
    from config import load_settings

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    app = build_app(load_settings(bot_token=TOKEN, telegram_api_url=url, data_dir=tmp_path))
    caplog.set_level(logging.WARNING, logger="bot")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(wait_for_telegram(app.bot, url), 3.5)
    await app.bot.session.close()
    messages = [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(messages) >= 2
    assert "retrying in 1 s" in messages[0] and "retrying in 2 s" in messages[1]
    assert TOKEN not in "".join(messages)


async def test_a_bad_gateway_page_at_start_up_is_retried(tg: FakeTelegram, tmp_path: Path) -> None:
    from bot.app import build_app, wait_for_telegram
    from config import load_settings

    settings = load_settings(bot_token=tg.token, telegram_api_url=tg.base_url, data_dir=tmp_path)
    app = build_app(settings)
    tg.inject_gateway_error(methods=("getMe",))
    me = await asyncio.wait_for(wait_for_telegram(app.bot, tg.base_url), 5)
    await app.bot.session.close()
    assert me.is_bot
    assert [c.status for c in tg.calls if c.method == "getMe"] == [502, 200]


async def test_rejected_token_is_a_startup_error(tg: FakeTelegram, tmp_path: Path) -> None:
    from bot.app import StartupError, build_app, wait_for_telegram
    from config import load_settings

    settings = load_settings(
        bot_token="999999:WRONG-token-value", telegram_api_url=tg.base_url, data_dir=tmp_path
    )
    app = build_app(settings)
    with pytest.raises(StartupError, match="401"):
        await wait_for_telegram(app.bot, tg.base_url)
    await app.bot.session.close()


async def test_an_api_url_with_a_path_is_a_startup_error(tg: FakeTelegram, tmp_path: Path) -> None:
    """`TELEGRAM_API_URL=http://host:8081/bot` (the path getMe's URL already has) would be
    retried for ever as "unreachable"; 404 on getMe says what is wrong."""
    from bot.app import StartupError, build_app, wait_for_telegram
    from config import load_settings

    url = f"{tg.base_url}/bot"
    app = build_app(load_settings(bot_token=tg.token, telegram_api_url=url, data_dir=tmp_path))
    with pytest.raises(StartupError, match=r"has no Bot API .*404.*without /bot<token>"):
        await asyncio.wait_for(wait_for_telegram(app.bot, url), 5)
    await app.bot.session.close()


async def test_a_server_that_is_not_the_bot_api_is_named_in_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A web server that answers with a page (a proxy's error, another service's port) is
    retried, and the log says what it answered rather than only "unreachable"."""
    from aiohttp import web

    from bot.app import StartupError, build_app, wait_for_telegram
    from config import load_settings

    answers = [503, 404]

    async def page(request: web.Request) -> web.Response:
        return web.Response(
            status=answers.pop(0), text="<html>nope</html>", content_type="text/html"
        )

    server = web.Application()
    server.router.add_route("*", "/{tail:.*}", page)
    runner = web.AppRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    url = f"http://127.0.0.1:{port}"
    app = build_app(load_settings(bot_token=TOKEN, telegram_api_url=url, data_dir=tmp_path))
    caplog.set_level(logging.WARNING, logger="bot")
    try:
        with pytest.raises(StartupError, match="404"):
            await asyncio.wait_for(wait_for_telegram(app.bot, url), 5)
    finally:
        await app.bot.session.close()
        await runner.cleanup()
    [warning] = [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()]
    assert "(HTTP 503: not the Bot API's JSON); retrying in 1 s" in warning


def test_every_setting_is_in_env_example_and_the_readme() -> None:
    """A self-hoster learns the settings from `.env.example` and the README's table."""
    from config.settings import Settings

    example = (ROOT / ".env.example").read_text()
    readme = (ROOT / "README.md").read_text()
    assigned = {line.split("=", 1)[0] for line in example.splitlines() if "=" in line[:40]}
    for name in (field.upper() for field in Settings.model_fields):
        assert name in assigned, f"{name} is not in .env.example"
        assert f"`{name}`" in readme, f"{name} is not in the README"
