"""The memory model: a conversation is a chain of turns linked to their parents."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal

PrefName = Literal["model", "system_prompt"]


class TurnStatus(enum.StrEnum):
    STREAMING = "streaming"  # being answered now (or the process died while it was)
    DONE = "done"
    FAILED = "failed"  # the stream failed; `answer` holds what was shown
    STOPPED = "stopped"  # stopped by the user; `answer` holds what was shown
    INTERRUPTED = "interrupted"  # the bot stopped or crashed before the answer ended
    # Its question was asked again with the messages sent with it (a comment and its forwards):
    # nothing of it is shown, and no conversation goes on from it.
    WITHDRAWN = "withdrawn"

    @classmethod
    def _missing_(cls, value: object) -> TurnStatus:
        """A status only a newer version writes (replicas of two versions share Redis while one
        replaces the other; a downgrade reads its data): read as an answer that ended early."""
        return cls.FAILED


@dataclass(slots=True)
class Turn:
    """One question and its answer. `parent_id` is the turn it continues (None: a new thread)."""

    id: int
    chat_id: int
    thread_id: int | None
    user_id: int
    parent_id: int | None
    question: str
    question_message_id: int
    answer: str = ""
    status: TurnStatus = TurnStatus.STREAMING
    model: str | None = None
    created_at: float = 0.0
    lang: str | None = None  # the asker's language_code
    message_ids: list[int] = field(default_factory=list)  # the answer's messages


@dataclass(slots=True)
class Waiting:
    """A question waiting behind another answer, and the "⏳ I'll answer this right after…"
    notice it got. Stored so that a crash meanwhile does not leave that promise standing."""

    id: int
    chat_id: int
    thread_id: int | None
    message_id: int  # the question's
    notice_id: int
    lang: str | None = None


@dataclass(slots=True)
class ChatPrefs:
    """What a chat chose: its model and system prompt (None: the defaults)."""

    chat_id: int
    model: str | None = None
    system_prompt: str | None = None
    denied_notice_sent: bool = False
