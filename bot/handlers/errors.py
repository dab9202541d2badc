"""The last resort: a message whose handling failed (storage down, a bug) gets one short notice.

Without it the failure would only reach the log, and the user would wait for an answer that never
comes (the update is acknowledged either way, so Telegram does not send it again)."""

from __future__ import annotations

import contextlib
import logging
import sqlite3

from aiogram.types import ErrorEvent
from redis.exceptions import RedisError

from bot.handlers.common import lang_of
from bot.notify import Notifier
from bot.texts import t

log = logging.getLogger(__name__)


async def failed(event: ErrorEvent, notifier: Notifier) -> bool:
    """The dispatcher's error handler (errors reach it from every router). Storage that
    fails (a full disk, Redis gone) is one line with its reason, question after question;
    anything else, a bug, comes with its traceback."""
    update = event.update
    error = event.exception
    if isinstance(error, sqlite3.Error | RedisError):
        log.error(
            "update %s failed: storage: %s: %s", update.update_id, type(error).__name__, error
        )
    else:
        log.error("update %s failed: %s", update.update_id, type(error).__name__, exc_info=error)
    if update.message is not None:  # an edit or a button press is not waiting for an answer
        with contextlib.suppress(Exception):  # Telegram itself may be what failed
            await notifier.to(update.message, t(lang_of(update.message), "notice_internal"))
    return True
