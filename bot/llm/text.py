"""A reasoning model's `<think>…</think>` block, kept out of the answer.

Reasoning models (DeepSeek-R1, QwQ and others) served through many providers write their chain of
thought into the text itself, inside `<think>` tags at the start, and g4f passes it through as
text. Shown, the chat would fill with the model's drafts before the answer; stored, it would go
back to the model with every later question. Reasoning that a provider sends apart from the text
(`delta.reasoning`) is dropped the same way by the client.

While the model thinks, nothing is yielded, so the chat shows "typing…". A block that is never
closed was all the model wrote: it is given as the answer at the end rather than nothing.
"""

from __future__ import annotations

OPEN = "<think>"
CLOSE = "</think>"


class ReasoningFilter:
    """`feed` each piece of a stream's text, then `end`; what they return is the answer."""

    def __init__(self) -> None:
        self._held = ""
        self._state = "start"  # start → thinking → after (spaces dropped) → answer

    def feed(self, text: str) -> str:
        if self._state == "answer":
            return text
        self._held += text
        if self._state == "start":
            head = self._held.lstrip()
            if head.startswith(OPEN):
                self._state, self._held = "thinking", head[len(OPEN) :]
            elif OPEN.startswith(head):
                return ""  # blank so far, or the tag being written
            else:
                return self._answer(self._held)
        if self._state == "thinking":
            end = self._held.find(CLOSE)
            if end < 0:
                return ""
            self._state, self._held = "after", self._held[end + len(CLOSE) :]
        rest = self._held.lstrip()
        self._held = ""
        return self._answer(rest) if rest else ""

    def end(self) -> str:
        """What is left once the stream is over: an unclosed block's text, or nothing."""
        held, self._held = self._held, ""
        if self._state == "thinking":
            return held.strip()
        return held if self._state == "start" and held.strip() else ""

    def _answer(self, text: str) -> str:
        self._state, self._held = "answer", ""
        return text
