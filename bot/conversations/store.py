"""What the conversation service needs from a storage backend."""

from __future__ import annotations

from typing import Protocol

from bot.conversations.models import ChatPrefs, PrefName, Turn, TurnStatus, Waiting

LEFT_FOR = 30 * 86400  # seconds: a chat that never lets the bot back in is forgotten after that


def continued_head(
    head: int, new_from: int | None, head_asked: int | None, asked: int
) -> int | None:
    """`head`, unless the question asked as message `asked` came after a `/new` (sent as
    `new_from`) that came after the head's own question (`head_asked`)."""
    if new_from is not None and asked > new_from and (head_asked or 0) < new_from:
        return None
    return head


class Store(Protocol):
    """Storage of turns, the message → turn index, branch heads and per-chat preferences."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def add_turn(
        self,
        *,
        chat_id: int,
        thread_id: int | None,
        user_id: int,
        parent_id: int | None,
        question: str,
        question_message_id: int,
        model: str | None,
        lang: str | None = None,
    ) -> Turn: ...

    async def finish_turn(
        self, turn_id: int, *, answer: str, status: TurnStatus, message_ids: list[int]
    ) -> None: ...

    async def save_progress(self, turn_id: int, answer: str) -> None:
        """The text an answer being written shows so far, kept in case the process dies before
        it ends (`recover` finds it). Nothing changes once the turn is finished."""
        ...

    async def set_question(self, chat_id: int, message_id: int, question: str) -> None:
        """The question of every turn that message asked (the user edited it; each /retry
        stored it again)."""
        ...

    async def link_message(self, chat_id: int, message_id: int, turn_id: int) -> None: ...

    async def turn_by_message(self, chat_id: int, message_id: int) -> Turn | None: ...

    async def get_turn(self, turn_id: int) -> Turn | None: ...

    async def chain(self, turn_id: int, max_turns: int = 500) -> list[Turn]:
        """The turn and its ancestors, oldest first."""
        ...

    async def latest_turn(
        self, chat_id: int, thread_id: int | None, user_id: int | None = None
    ) -> Turn | None: ...

    async def get_head(self, chat_id: int, thread_id: int | None) -> int | None: ...

    async def set_head(self, chat_id: int, thread_id: int | None, turn_id: int | None) -> None: ...

    async def start_afresh(self, chat_id: int, thread_id: int | None, message_id: int) -> None:
        """`/new`, sent as `message_id`: a question asked after it starts a new conversation.
        Kept beside the head, which stays: a question asked before it, and answered only now
        (it waited behind another answer), continues the old conversation."""
        ...

    async def head_for(self, chat_id: int, thread_id: int | None, message_id: int) -> int | None:
        """The turn a question asked as `message_id` continues: the head, unless `/new` came
        between the head's question and this one."""
        ...

    async def prefs(self, chat_id: int) -> ChatPrefs: ...

    async def set_pref(self, chat_id: int, name: PrefName, value: str | None) -> None:
        """Set one preference, leaving the others as they are."""
        ...

    async def claim_denied_notice(self, chat_id: int) -> bool:
        """True once per chat: whoever gets it sends the "not enabled here" notice."""
        ...

    async def unfinished(self) -> list[Turn]:
        """Turns still marked streaming (left by a crash)."""
        ...

    async def add_waiting(
        self,
        *,
        chat_id: int,
        thread_id: int | None,
        message_id: int,
        notice_id: int,
        lang: str | None,
    ) -> int:
        """A question now waits behind another answer; returns the record's id."""
        ...

    async def remove_waiting(self, waiting_id: int) -> None:
        """It is being answered, or was told why not."""
        ...

    async def orphaned_waiting(self) -> list[Waiting]:
        """Questions left waiting by a process that is gone, each removed as it is returned
        (whoever gets it tells the asker)."""
        ...

    async def leave(self, chat_id: int, item: str) -> None:
        """Something a chat that shut the bot out is to show once it lets the bot back in (an
        answer as it ended, a notice deleted), as JSON; kept `LEFT_FOR` seconds at most."""
        ...

    async def take_left(self, chat_id: int) -> list[str]:
        """Those things, oldest first, each returned once (whoever gets them puts them
        right)."""
        ...

    async def ping(self) -> bool: ...
