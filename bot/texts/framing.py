"""What the model is told around a user's words, in the asker's language: who wrote a message
quoted or forwarded, what it sent that the model cannot see.

Not in the chat catalogs: those are the bot's own messages, which it recognises in a chat
(`is_own_text`), and "Ann wrote:" in a user's text is not one. English framing around a
Russian question tilts some models to answer in English.
"""

from __future__ import annotations

from bot.texts import pick

_EN: dict[str, str] = {
    "wrote": "{author} wrote:",
    "sent_unseen": "{author} sent {kind}, which you cannot see.",
    "about_part": "About this part of your answer:",
    "you_wrote": "You wrote earlier:",
    "someone": "Someone",
    "a_channel": "A channel",
    "a_chat": "A chat",
    "photo": "a photo",
    "sticker": "a sticker",
    "animation": "a GIF",
    "video": "a video",
    "video_note": "a video message",
    "voice": "a voice message",
    "audio": "an audio file",
    "document": "a file",
    "poll": "a poll",
    "location": "a location",
    "contact": "a contact",
}

_RU: dict[str, str] = {
    "wrote": "{author} пишет:",
    "sent_unseen": "{author} прислал(а) {kind}; тебе не видно, что там.",
    "about_part": "Об этой части твоего ответа:",
    "you_wrote": "Твой ответ ранее:",
    "someone": "Кто-то",
    "a_channel": "Канал",
    "a_chat": "Чат",
    "photo": "фото",
    "sticker": "стикер",
    "animation": "GIF",
    "video": "видео",
    "video_note": "видеосообщение",
    "voice": "голосовое сообщение",
    "audio": "аудиофайл",
    "document": "файл",
    "poll": "опрос",
    "location": "геопозицию",
    "contact": "контакт",
}

_FRAMING = {"en": _EN, "ru": _RU}


def framing(lang: str | None, key: str, **values: object) -> str:
    """The framing `key` in the asker's language (English where there is none)."""
    return pick(_FRAMING, lang, key, **values)
