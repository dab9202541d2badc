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
    turn contributes what was shown. One that failed before any text is left out, unless it is
    the last: after "the service is not answering", a user's "try again" or "and in French?" is
    about it, so its question goes before the new one, in the same message (some models refuse
    two user messages in a row, and an earlier one that failed is past).
    """
    if history and not history[-1].answer.strip():
        question = f"{history[-1].question}\n\n{question}"
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
