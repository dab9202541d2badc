"""The settings schema. Names of the fields are the environment variables (case-insensitive)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_TOKEN_RE = re.compile(r"^\d{3,}:[A-Za-z0-9_-]{8,}$")


class SettingsError(Exception):
    """A setting is missing or malformed; the message is one line, fit for a user."""


class Settings(BaseSettings):
    """Everything a self-hoster can set. Empty values count as unset, so `.env.example` works."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
    )

    bot_token: SecretStr
    telegram_api_url: str = "https://api.telegram.org"

    g4f_model: str = "gpt-4"
    g4f_provider: str = ""
    g4f_api_base: str = ""
    g4f_api_key: SecretStr = SecretStr("")

    llm_idle_timeout: float = Field(60.0, gt=0)
    llm_total_timeout: float = Field(300.0, gt=0)

    system_prompt: str = ""
    data_dir: Path = Path("./data")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    # Delivery pacing (Telegram's documented limits; see README "Flood limits").
    private_interval: float = Field(1.0, ge=0)
    group_interval: float = Field(3.0, ge=0)
    group_per_minute: int = Field(20, ge=1)
    global_per_second: int = Field(30, ge=1)

    @field_validator("bot_token")
    @classmethod
    def _token_shape(cls, value: SecretStr) -> SecretStr:
        if not _TOKEN_RE.match(value.get_secret_value().strip()):
            raise ValueError("malformed")
        return SecretStr(value.get_secret_value().strip())

    @field_validator("telegram_api_url", "g4f_api_base")
    @classmethod
    def _url_shape(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @property
    def providers(self) -> list[str]:
        """`G4F_PROVIDER` as a list, in fallback order."""
        return [p.strip() for p in self.g4f_provider.split(",") if p.strip()]


def _describe(error: ValidationError) -> str:
    """One line that names the variable and what is wrong with it, never its value."""
    first = error.errors()[0]
    name = str(first["loc"][0]).upper() if first["loc"] else "settings"
    if first["type"] == "missing":
        if name == "BOT_TOKEN":
            return "BOT_TOKEN is not set: put the token from @BotFather in .env or the environment"
        return f"{name} is not set"
    if name == "BOT_TOKEN":
        return "BOT_TOKEN is malformed: expected the form 123456789:AAE... given by @BotFather"
    return f"{name} is invalid: {first['msg']}"


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, turning pydantic's report into a `SettingsError` with one line."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise SettingsError(_describe(error)) from None
