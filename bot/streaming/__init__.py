"""The reply engine: render a snapshot into Telegram parts, pace the calls, send and edit."""

from bot.streaming.pacer import Budgets, Pacer
from bot.streaming.render import Part, render
from bot.streaming.reply import ReplyStream
from bot.streaming.split import Segmenter

__all__ = ["Budgets", "Pacer", "Part", "ReplyStream", "Segmenter", "render"]
