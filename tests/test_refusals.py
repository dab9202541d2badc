"""Which refusals mean the bot may not write in a chat any more."""

from __future__ import annotations

import pytest
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError
from aiogram.methods import SendMessage

from bot.streaming.refusals import cannot_write

CALL = SendMessage(chat_id=1, text="x")


@pytest.mark.parametrize(
    ("error", "gone"),
    [
        (TelegramForbiddenError(CALL, "Forbidden: bot was blocked by the user"), True),
        (TelegramForbiddenError(CALL, "Forbidden: bot was kicked from the group chat"), True),
        (TelegramBadRequest(CALL, "Bad Request: not enough rights to send text messages"), True),
        (TelegramBadRequest(CALL, "Bad Request: CHAT_WRITE_FORBIDDEN"), True),
        (TelegramBadRequest(CALL, "Bad Request: CHAT_RESTRICTED"), True),
        (TelegramBadRequest(CALL, "Bad Request: can't parse entities: bad offset"), False),
        (TelegramBadRequest(CALL, "Bad Request: message is not modified"), False),
        (TelegramBadRequest(CALL, "Bad Request: message to edit not found"), False),
    ],
)
def test_a_refusal_says_whether_the_bot_may_still_write(error: Exception, gone: bool) -> None:
    assert cannot_write(error) is gone  # type: ignore[arg-type]
