"""The settings schema. Names of the fields are the environment variables (case-insensitive)."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import SplitResult, urlsplit, urlunsplit

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

_TOKEN_RE = re.compile(r"^\d{3,}:[A-Za-z0-9_-]{8,}$")
_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*$")
_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")  # what Telegram accepts as secret_token
OFFICIAL_API = "https://api.telegram.org"
DEFAULT_WEBHOOK_PATH = "/webhook"
RESERVED_PATHS = frozenset({"/healthz", "/metrics"})

IdList = Annotated[frozenset[int], NoDecode]
NameList = Annotated[tuple[str, ...], NoDecode]


class SettingsError(Exception):
    """A setting is missing or malformed; the message is one line, fit for a user."""


class Settings(BaseSettings):
    """Everything a self-hoster can set. Empty values count as unset, so `.env.example` works."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
        allow_inf_nan=False,  # `inf` seconds would overflow where a timeout becomes a TTL
    )

    bot_token: SecretStr
    telegram_api_url: str = OFFICIAL_API

    g4f_model: str = "gpt-4"
    g4f_models: NameList = ()  # choices offered by /model; empty: just G4F_MODEL
    g4f_provider: str = ""
    g4f_api_base: str = ""
    g4f_api_key: SecretStr = SecretStr("")

    llm_idle_timeout: float = Field(60.0, gt=0, le=86_400)  # a day at most: timers and
    llm_total_timeout: float = Field(300.0, gt=0, le=86_400)  # Redis expiries are built on them
    llm_read_interval: float = Field(0.5, ge=0, le=1)

    system_prompt: str = ""
    max_context_chars: int = Field(24000, ge=100)

    allowed_user_ids: IdList = frozenset()
    allowed_chat_ids: IdList = frozenset()
    admin_user_ids: IdList = frozenset()
    user_rate_limit: str = "20/600"

    shutdown_grace: float = Field(10.0, ge=0)

    data_dir: Path = Path("./data")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    stream_mode: Literal["auto", "draft", "edit"] = "auto"
    # How long a private message that may be the first of several waits for the rest: a long
    # text the app cut into pieces, messages forwarded at once (bot/rejoin.py); 0: never.
    join_wait: float = Field(1.5, ge=0, le=60)

    # Delivery pacing (Telegram's documented limits; see README "Flood limits").
    private_interval: float = Field(1.0, ge=0)
    group_interval: float = Field(3.0, gt=0)
    group_per_minute: int = Field(20, ge=1)
    global_per_second: int = Field(30, ge=1)

    # Serving: how updates arrive, and the web server (/healthz, /metrics, the webhook).
    bot_mode: Literal["polling", "webhook"] = "polling"
    webhook_url: str = ""  # the public URL Telegram posts updates to (webhook mode)
    webhook_secret: SecretStr = SecretStr("")  # sent back by Telegram in every webhook request
    web_host: str = "0.0.0.0"
    web_port: int = Field(8080, ge=0, le=65535)  # 0: any free port
    web_max_body: int = Field(1024 * 1024, ge=1024)  # bytes a webhook request may carry

    # Scale-out: replicas sharing one Redis behave as one bot (empty: SQLite, one instance).
    redis_url: SecretStr = SecretStr("")  # redis://[:password@]host:port/db; may hold a password

    @field_validator("bot_token")
    @classmethod
    def _token_shape(cls, value: SecretStr) -> SecretStr:
        token = value.get_secret_value().strip()
        if len(token) > 2 and token[0] == token[-1] and token[0] in "\"'":
            token = token[1:-1].strip()  # `docker run --env-file` keeps the quotes of BOT_TOKEN="…"
        if not _TOKEN_RE.match(token):
            raise ValueError("malformed")
        return SecretStr(token)

    @field_validator("telegram_api_url", "g4f_api_base")
    @classmethod
    def _url_shape(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not re.match(r"^https?://[^\s/]+", value, re.IGNORECASE):
            raise ValueError("must be an http(s) URL")
        parts = urlsplit(value)
        _check_port(parts)
        if not value:
            return value
        # `HTTPS://API.TELEGRAM.ORG` is the official API too (a password in it keeps its case).
        netloc = parts.netloc if "@" in parts.netloc else parts.netloc.lower()
        return urlunsplit(parts._replace(scheme=parts.scheme.lower(), netloc=netloc))

    @field_validator("g4f_model")
    @classmethod
    def _model_name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must name a model")
        return value.strip()

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url_shape(cls, value: str) -> str:
        value = value.strip()
        if not value:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or " " in value:
            raise ValueError("must be an https URL (or http, for a self-hosted Bot API server)")
        _check_port(parts)
        if parts.path in ("", "/"):  # no path given: updates go to /webhook
            parts = parts._replace(path=DEFAULT_WEBHOOK_PATH)
        return urlunsplit(parts._replace(fragment=""))

    @field_validator("webhook_secret")
    @classmethod
    def _secret_shape(cls, value: SecretStr) -> SecretStr:
        secret = value.get_secret_value().strip()
        if secret and not _SECRET_RE.match(secret):
            raise ValueError("must be 1-256 characters, only A-Z, a-z, 0-9, _ and -")
        return SecretStr(secret)

    @field_validator("redis_url")
    @classmethod
    def _redis_url_shape(cls, value: SecretStr) -> SecretStr:
        url = value.get_secret_value().strip()
        if not url:
            return SecretStr(url)
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        _check_port(parts)
        if parts.scheme != "unix" and not re.fullmatch(r"/?(\d+)?", parts.path):
            raise ValueError("the path after host:port must be a database number, like /0")
        return SecretStr(url)

    @field_validator("web_host")
    @classmethod
    def _host_shape(cls, value: str) -> str:
        value = value.strip()
        if not value or any(c.isspace() for c in value):
            raise ValueError("must be a host name or address to listen on")
        return value

    @model_validator(mode="after")
    def _webhook_complete(self) -> Settings:
        """Webhook mode needs the URL and the secret; errors name the variable, never a value."""
        if self.bot_mode != "webhook":
            return self
        if not self.webhook_url:
            raise ValueError("WEBHOOK_URL is not set: BOT_MODE=webhook needs the public https URL")
        if not self.webhook_secret.get_secret_value():
            raise ValueError(
                "WEBHOOK_SECRET is not set: BOT_MODE=webhook needs a secret "
                "(1-256 characters: A-Z, a-z, 0-9, _ and -)"
            )
        if self.telegram_api_url == OFFICIAL_API and not self.webhook_url.startswith("https://"):
            raise ValueError("WEBHOOK_URL is invalid: Telegram calls only https URLs")
        if self.webhook_path in RESERVED_PATHS:
            raise ValueError(f"WEBHOOK_URL is invalid: its path may not be {self.webhook_path}")
        return self

    @field_validator("allowed_user_ids", "allowed_chat_ids", "admin_user_ids", mode="before")
    @classmethod
    def _id_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return frozenset(int(v) for v in value.replace(";", ",").split(",") if v.strip())
            except ValueError:
                raise ValueError("must be a comma-separated list of numeric ids") from None
        return value

    @field_validator("g4f_models", mode="before")
    @classmethod
    def _name_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
        return value

    @field_validator("user_rate_limit")
    @classmethod
    def _rate_shape(cls, value: str) -> str:
        match = _RATE_RE.match(value)
        if not match or int(match.group(1)) < 1 or float(match.group(2)) <= 0:
            raise ValueError("must look like 20/600 (requests / seconds)")
        return value.replace(" ", "")

    @field_validator("log_level", "stream_mode", "bot_mode", mode="before")
    @classmethod
    def _case(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, str):
            return value
        return value.upper() if info.field_name == "log_level" else value.strip().lower()

    @property
    def models(self) -> tuple[str, ...]:
        """The models /model offers; `G4F_MODEL` is always among them, first by default."""
        if not self.g4f_models:
            return (self.g4f_model,)
        if self.g4f_model in self.g4f_models:
            return self.g4f_models
        return (self.g4f_model, *self.g4f_models)

    @property
    def rate_limit(self) -> tuple[int, float]:
        """`USER_RATE_LIMIT` as (requests, seconds)."""
        count, seconds = self.user_rate_limit.split("/")
        return int(count), float(seconds)

    @property
    def webhook_path(self) -> str:
        """The path of `WEBHOOK_URL`: where the web server takes Telegram's requests."""
        return urlsplit(self.webhook_url).path or DEFAULT_WEBHOOK_PATH

    @property
    def secrets(self) -> list[str]:
        """Values that must never reach a log line."""
        values = [self.bot_token, self.g4f_api_key, self.webhook_secret, self.redis_url]
        found = [v.get_secret_value() for v in values]
        password = urlsplit(self.redis_url.get_secret_value()).password
        return [*found, *([password] if password else [])]

    @property
    def providers(self) -> list[str]:
        """`G4F_PROVIDER` as a list, in fallback order."""
        return [p.strip() for p in self.g4f_provider.split(",") if p.strip()]


def _check_port(parts: SplitResult) -> None:
    """A port in a URL must be a number up to 65535 (urllib raises only when asked for it)."""
    try:
        parts.port  # noqa: B018
    except ValueError:
        raise ValueError("its port must be a number up to 65535") from None


def _describe(error: ValidationError) -> str:
    """One line that names the variable and what is wrong with it, never its value."""
    first = error.errors()[0]
    cause = first.get("ctx", {}).get("error")  # the ValueError a validator raised, if one did
    if not first["loc"] and isinstance(cause, ValueError):
        return str(cause)  # a check across settings: its message names them
    name = str(first["loc"][0]).upper() if first["loc"] else "settings"
    if first["type"] == "missing":
        if name == "BOT_TOKEN":
            return "BOT_TOKEN is not set: put the token from @BotFather in .env or the environment"
        return f"{name} is not set"
    if name == "BOT_TOKEN":
        return "BOT_TOKEN is malformed: expected the form 123456789:AAE... given by @BotFather"
    reason = str(cause) if isinstance(cause, ValueError) else first["msg"]
    return f"{name} is invalid: {reason}"


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, turning pydantic's report into a `SettingsError` with one line."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise SettingsError(_describe(error)) from None
    except OSError as error:  # `.env` in the working directory cannot be read
        where = Path(error.filename or ".env").absolute()
        raise SettingsError(
            f"cannot read {where}: {error.strerror or type(error).__name__} (the bot runs as "
            f"user {os.getuid()}: it needs to read its working directory)"
        ) from None


def misspelt(
    environ: Mapping[str, str] | None = None, env_file: Path | None = Path(".env")
) -> list[str]:
    """Variables in `.env` or the environment that look like a setting but are none
    (`ALLOWED_USER_ID`): they are ignored, which for an allow-list means an open bot. One
    warning line each, naming the setting meant."""
    values: dict[str, str | None] = dict(os.environ if environ is None else environ)
    if env_file is not None and env_file.is_file():
        from dotenv import dotenv_values

        values.update(dotenv_values(env_file))
    # Kubernetes gives each Service's address to every pod (`BOT_PORT=tcp://10.0.0.7:8080` for
    # a Service named "bot"): those are not settings meant by someone.
    names = {name for name, value in values.items() if not (value or "").startswith("tcp://")}
    settings = [name.upper() for name in Settings.model_fields]
    found = []
    for name in sorted(names):
        if name.upper() in settings:
            continue
        if close := difflib.get_close_matches(name.upper(), settings, n=1, cutoff=0.75):
            found.append(f"{name} is not a setting and is ignored; did you mean {close[0]}?")
    return found


def unused(settings: Settings) -> list[str]:
    """Settings given that the rest of the settings make ignored, one warning line each: the
    bot runs, but not as whoever set them meant."""
    found = []
    if settings.bot_mode == "polling":
        given = [name for name in ("webhook_url", "webhook_secret") if _is_set(settings, name)]
        if given:
            names = " and ".join(name.upper() for name in given)
            found.append(f"{names} ignored: BOT_MODE is polling (BOT_MODE=webhook uses them)")
    if settings.g4f_api_key.get_secret_value() and not settings.g4f_api_base:
        found.append(
            "G4F_API_KEY ignored: it is for G4F_API_BASE's endpoint, which is not set (a named "
            "G4F_PROVIDER takes its key from <PROVIDER>_API_KEY)"
        )
    return found


def _is_set(settings: Settings, name: str) -> bool:
    value = getattr(settings, name)
    return bool(value.get_secret_value() if isinstance(value, SecretStr) else value)
