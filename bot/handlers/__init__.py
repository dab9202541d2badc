"""aiogram routers, thin: each turns an update into a call on a service."""

from aiogram import Router

from bot.handlers import buttons, chats, commands, edits, fallback, questions


def get_routers() -> list[Router]:
    """New routers, in the order they must see updates: service messages and commands first,
    the catch-all last."""
    return [m.create_router() for m in (chats, commands, buttons, questions, edits, fallback)]
