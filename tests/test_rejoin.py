"""`Rejoiner` on its own: the order of joined messages, whatever order their handlers run in."""

from __future__ import annotations

import asyncio

from aiogram.types import Message

from bot.rejoin import Rejoiner
from bot.streaming.split import TELEGRAM_LIMIT as LIMIT

USER = 5005


def message(message_id: int, text: str) -> Message:
    return Message.model_validate(
        {
            "message_id": message_id,
            "date": 1_700_000_000,
            "chat": {"id": USER, "type": "private", "first_name": "Ann"},
            "from": {"id": USER, "is_bot": False, "first_name": "Ann"},
            "text": text,
        }
    )


async def test_pieces_are_joined_in_the_order_they_were_sent() -> None:
    rejoiner = Rejoiner(wait=5)
    second, first, third = message(11, "b" * 3000), message(10, "a" * LIMIT), message(12, "end")
    held = asyncio.create_task(rejoiner.join(second, second.text or ""))
    await asyncio.sleep(0)  # the second piece's handler ran first
    assert await rejoiner.join(first, first.text or "") is None
    assert await rejoiner.join(third, third.text or "") is None
    joined = await asyncio.wait_for(held, 1)  # ended by the short piece, not the wait
    assert joined is not None
    assert joined.first is first
    # A piece of exactly 4,096 characters was cut inside a word: no line break there.
    assert joined.text == "a" * LIMIT + "b" * 3000 + "\nend"


async def test_flush_asks_a_waiting_message_at_once() -> None:
    rejoiner = Rejoiner(wait=60)
    long = message(20, "x" * 2500)
    held = asyncio.create_task(rejoiner.join(long, long.text or ""))
    await asyncio.sleep(0)
    await asyncio.wait_for(rejoiner.flush(within=5), 1)
    assert held.done()
    later = message(21, "y" * 2500)  # after it: asked as it comes
    joined = await asyncio.wait_for(rejoiner.join(later, later.text or ""), 1)
    assert joined is not None and joined.text == later.text
