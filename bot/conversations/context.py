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
    turn contributes what was shown. The question of one that failed before any text goes
    before the next question, in the same message, as it was sent then: after "the service is
    not answering", a user's "try again" or "and in French?" is about it (some models refuse two
    user messages in a row, and an earlier one that failed is past). So it stays in the
    context after that next question is answered, too. Those that go before the new question
    are trimmed like turns, the oldest first: a long paste that failed is not sent again with
    every question after it.
    """
    exchanges: list[tuple[str, str]] = []  # each question as it was sent, and its answer
    unanswered: list[str] = []  # questions that got no text, waiting for the next one
    for turn in history:
        if turn.answer.strip():
            exchanges.append(("\n\n".join([*unanswered, turn.question]), turn.answer))
            unanswered = []
        else:
            unanswered.append(turn.question)
    budget = max_chars - len(system_prompt) - len(question)
    carried: list[str] = []
    for earlier in reversed(unanswered):
        if len(earlier) + 2 > budget:
            break
        budget -= len(earlier) + 2
        carried.insert(0, earlier)
    question = "\n\n".join([*carried, question])
    kept: list[tuple[str, str]] = []
    for asked, answer in reversed(exchanges):
        cost = len(asked) + len(answer)
        if cost > budget:
            break
        budget -= cost
        kept.append((asked, answer))
    messages: list[ChatMessage] = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    for asked, answer in reversed(kept):
        messages.append({"role": "user", "content": asked})
        messages.append({"role": "assistant", "content": answer})
    messages.append({"role": "user", "content": question})
    return messages
