"""The catalogs: every string in every language, with the same placeholders."""

from __future__ import annotations

from string import Formatter

from bot.texts import CATALOGS, DEFAULT_LANGUAGE, t


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in Formatter().parse(template) if name}


def test_every_language_has_every_string_with_the_same_placeholders() -> None:
    default = CATALOGS[DEFAULT_LANGUAGE]
    for language, catalog in CATALOGS.items():
        assert catalog.keys() == default.keys(), language
        for key, template in catalog.items():
            assert _fields(template) == _fields(default[key]), (language, key)


def test_the_language_follows_telegrams_language_code() -> None:
    assert t("ru", "notice_stopped") == "⏹ Остановлено."
    assert t("ru-RU", "notice_stopped") == "⏹ Остановлено."
    assert t("pt-br", "notice_stopped") == t(None, "notice_stopped") == "⏹ Stopped."
