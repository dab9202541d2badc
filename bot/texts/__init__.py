"""Every user-visible string, in English and Russian, picked by the user's `language_code`."""

from __future__ import annotations

import re

from bot.texts.en import EN
from bot.texts.ru import RU

CATALOGS: dict[str, dict[str, str]] = {"en": EN, "ru": RU}
DEFAULT_LANGUAGE = "en"


def language_of(code: str | None) -> str:
    """Telegram's `language_code` (an IETF tag such as "ru" or "pt-br") → a catalog we have."""
    if code:
        base = code.split("-")[0].lower()
        if base in CATALOGS:
            return base
    return DEFAULT_LANGUAGE


def t(lang: str | None, key: str, **values: object) -> str:
    """The text `key` in the user's language (English where a translation is missing)."""
    return pick(CATALOGS, lang, key, **values)


def pick(catalogs: dict[str, dict[str, str]], lang: str | None, key: str, **values: object) -> str:
    """`key` from the catalog in the user's language, with `values` put in (English where a
    translation is missing)."""
    catalog = catalogs.get(language_of(lang), catalogs[DEFAULT_LANGUAGE])
    template = catalog.get(key) or catalogs[DEFAULT_LANGUAGE][key]
    return template.format(**values) if values else template


def _pattern(template: str) -> str:
    pieces = re.split(r"\{\w+\}", template)
    return ".*?".join(re.escape(piece) for piece in pieces)


# Every message text the bot sends of its own (not a model's), in any language.
_OWN = re.compile(
    "|".join(_pattern(text) for catalog in CATALOGS.values() for text in catalog.values()),
    re.DOTALL,
)


def is_own_text(text: str) -> bool:
    """Whether `text` is one of the bot's own messages (help, a notice) rather than an answer:
    a reply to it is not about it."""
    return _OWN.fullmatch(text) is not None


__all__ = ["CATALOGS", "DEFAULT_LANGUAGE", "is_own_text", "language_of", "pick", "t"]
