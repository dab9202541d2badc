"""What g4f is sent: the system prompt, then the turns oldest-first, then the new question."""

from __future__ import annotations

from collections.abc import Sequence

from bot.conversations.models import Turn
from bot.llm import ChatMessage


def build_context(
    system_prompt: str, history: Sequence[Turn], question: str, max_chars: int
) -> list[ChatMessage]:
    """Trim whole turns from the oldest until everything fits in `max_chars`.

    The new question is always kept whole, even when it alone is longer. A turn whose answer is
    empty (it failed before any text) carries no exchange and is left out; a failed or stopped
    turn contributes what was shown.
    """
    budget = max_chars - len(system_prompt) - len(question)
    kept: list[Turn] = []
    for turn in reversed(history):
        if not turn.answer.strip():
            continue
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
        messages.append({"role": "assistant", "content": turn.answer})
    messages.append({"role": "user", "content": question})
    return messages
