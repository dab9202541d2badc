"""What g4f is sent: the system prompt, then the turns oldest-first, then the new question."""

from __future__ import annotations

from collections.abc import Sequence

from bot.conversations.models import Turn
from bot.llm import ChatMessage


def build_context(
    system_prompt: str, history: Sequence[Turn], question: str, max_chars: int
) -> list[ChatMessage]:
    """Trim whole turns from the oldest until everything fits in `max_chars`.

    The new question is always kept whole, even when it alone is longer. A failed or stopped
    turn contributes what was shown; one that failed before any text, its question alone: after
    "the service is not answering", a user's "try again" or "and in French?" is about it.
    """
    budget = max_chars - len(system_prompt) - len(question)
    kept: list[Turn] = []
    for turn in reversed(history):
        cost = len(turn.question) + len(turn.answer)
        if cost > budget:
            break
        budget -= cost
        kept.append(turn)
    messages: list[ChatMessage] = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    for turn in reversed(kept):
        messages.append({"role": "user", "content": turn.question})
        if turn.answer.strip():
            messages.append({"role": "assistant", "content": turn.answer})
    messages.append({"role": "user", "content": question})
    return messages
