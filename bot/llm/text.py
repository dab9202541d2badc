"""What of a model's text is the answer: not a reasoning model's `<think>…</think>` block, and
line breaks as `\n` only.

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
            # Only where the new piece could have completed the tag: a long block held whole
            # would be searched again at every piece.
            end = self._held.find(CLOSE, max(0, len(self._held) - len(text) - len(CLOSE)))
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


class LineEnds:
    """`\r\n` (and a lone `\r`) as `\n`: Markdown's blank lines, paragraph breaks and code
    fences are looked for as `\n` when an answer is split into messages (with `\r\n` one was
    cut under a heading, with none found between paragraphs). A `\r` that ends a piece waits for
    the next one, which may begin with its `\n`."""

    def __init__(self) -> None:
        self._cr = False

    def feed(self, text: str) -> str:
        if self._cr:
            text = "\r" + text
        self._cr = text.endswith("\r")
        if self._cr:
            text = text[:-1]
        return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text

    def end(self) -> str:
        cr, self._cr = self._cr, False
        return "\n" if cr else ""
