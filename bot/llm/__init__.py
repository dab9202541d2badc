"""The only package that talks to g4f: streaming client, provider set-up, failure classification."""

from bot.llm.client import ChatMessage, LLMClient
from bot.llm.errors import FailureKind, LLMFailure

__all__ = ["ChatMessage", "FailureKind", "LLMClient", "LLMFailure"]
