"""The token never appears in logs, whatever quotes it."""

from __future__ import annotations

import io
import logging

from bot.logs import RedactingFilter

TOKEN = "123456789:AAEhBOweik9ai2o4yz-SECRETSECRETSECRET"


def test_token_is_redacted_from_messages_arguments_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter([TOKEN, "webhook-secret-value"]))
    log = logging.getLogger("test.redaction")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.error("GET https://api.telegram.org/bot%s/getMe failed", TOKEN)
        log.warning("secret header %s", "webhook-secret-value")
        log.warning("another bot's token 987654321:ZZZyyyXXXwwwVVVuuuTTTsss leaked")
        try:
            raise RuntimeError(f"Cannot connect to https://api.telegram.org/bot{TOKEN}/sendMessage")
        except RuntimeError:
            log.exception("request failed")
    finally:
        log.removeHandler(handler)
    output = stream.getvalue()
    assert TOKEN not in output and "SECRETSECRET" not in output
    assert "webhook-secret-value" not in output
    assert "ZZZyyyXXX" not in output
    assert output.count("<redacted>") == 4
    assert "RuntimeError" in output  # the traceback is still there, minus the secret


def test_settings_name_every_secret_including_the_redis_password() -> None:
    from config import load_settings

    settings = load_settings(
        bot_token=TOKEN,
        g4f_api_key="sk-backend-key",
        redis_url="redis://:hunter2-redis-pass@redis:6379/0",
    )
    secrets = settings.secrets
    assert TOKEN in secrets and "sk-backend-key" in secrets
    assert "hunter2-redis-pass" in secrets  # logged URLs may show it without the rest
    assert "redis://:hunter2-redis-pass@redis:6379/0" in secrets


def test_redis_url_must_be_a_redis_url() -> None:
    import pytest

    from config import SettingsError, load_settings

    with pytest.raises(SettingsError, match="REDIS_URL is invalid"):
        load_settings(bot_token=TOKEN, redis_url="http://redis:6379")


def test_a_quoted_token_is_taken_without_its_quotes() -> None:
    """`BOT_TOKEN="…"` in .env: `docker run --env-file` passes the quotes on, python-dotenv
    does not; the token is the same either way."""
    from config import load_settings

    for quoted in (f'"{TOKEN}"', f"'{TOKEN}'"):
        assert load_settings(bot_token=quoted).bot_token.get_secret_value() == TOKEN


def test_a_settings_error_is_one_plain_line() -> None:
    import pytest

    from config import SettingsError, load_settings

    with pytest.raises(SettingsError) as error:
        load_settings(bot_token=TOKEN, user_rate_limit="often")
    assert str(error.value) == (
        "USER_RATE_LIMIT is invalid: must look like 20/600 (requests / seconds)"
    )
