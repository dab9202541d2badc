"""g4f-telegram-bot: a Telegram bot that streams answers from g4f."""

__version__ = "0.1.0"
