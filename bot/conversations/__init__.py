"""The memory model (turns in reply chains) and its storage backends."""

from bot.conversations.models import ChatPrefs, Turn, TurnStatus
from bot.conversations.service import Conversations, Defaults
from bot.conversations.sqlite import SQLiteStore
from bot.conversations.store import Store

__all__ = [
    "ChatPrefs",
    "Conversations",
    "Defaults",
    "SQLiteStore",
    "Store",
    "Turn",
    "TurnStatus",
]
