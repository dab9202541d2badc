"""Words the bot adds inside a model's answer, in the answer's language.

Not in the chat catalogs: those are the bot's own messages, which it recognises in a chat
(`is_own_text`); these are part of an answer. The answer's language is read from its text (a
model answers in the asker's), so the renderer needs no asker.
"""

from __future__ import annotations

import re

# GitHub's alerts, `> [!NOTE]` opening a quote.
ALERTS: dict[str, dict[str, str]] = {
    "en": {
        "NOTE": "Note",
        "TIP": "Tip",
        "IMPORTANT": "Important",
        "WARNING": "Warning",
        "CAUTION": "Caution",
    },
    "ru": {
        "NOTE": "Примечание",
        "TIP": "Совет",
        "IMPORTANT": "Важно",
        "WARNING": "Внимание",
        "CAUTION": "Осторожно",
    },
}

_CYRILLIC = re.compile(r"[А-Яа-яЁё]")


def language_of_text(text: str) -> str:
    """Russian ("ru") for a text with Cyrillic in it, else "en". (A Russian text is often half
    Latin: commands, names, terms; an English one seldom has a Cyrillic word.)"""
    return "ru" if _CYRILLIC.search(text) else "en"
