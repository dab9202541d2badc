"""What a refused call says about the chat: whether the bot may still write there.

A user who blocks the bot, or a group that removes it, answers every call with 403. A group
that takes away the bot's right to send messages (an admin restricts it, or makes the group
read-only for members) answers a send with 400 instead, in words that are not an error code:
"not enough rights to send text messages to the chat", or "CHAT_WRITE_FORBIDDEN" /
"CHAT_RESTRICTED" from the layer below. Taken for a formatting problem, that would cost three
tries per answer and a misleading log line, and the stream would go on for nobody.
"""

from __future__ import annotations

import re

from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
)

_NO_RIGHT_TO_WRITE = re.compile(
    r"not enough rights to send|have no rights to send|chat_write_forbidden|chat_restricted",
    re.IGNORECASE,
)


def cannot_write(error: TelegramAPIError) -> bool:
    """Whether the refusal means the bot may not write in that chat (now): it was blocked,
    removed or muted there, not that this one call was wrong."""
    if isinstance(error, TelegramForbiddenError):
        return True
    return isinstance(error, TelegramBadRequest) and bool(_NO_RIGHT_TO_WRITE.search(error.message))
