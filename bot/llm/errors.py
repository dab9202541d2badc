"""What can go wrong with a stream, in words a chat can be told (the details go to the log)."""

from __future__ import annotations

import asyncio
import enum


class FailureKind(enum.Enum):
    """Kinds of failure that get their own notice in the chat."""

    CONNECTION = "connection"  # the connection dropped or could not be made
    HTTP = "http"  # the backend answered with an error status or an error event
    RATE_LIMIT = "rate_limit"  # the backend said "too many requests"
    IDLE_TIMEOUT = "idle_timeout"  # no new text for LLM_IDLE_TIMEOUT seconds
    TOTAL_TIMEOUT = "total_timeout"  # the answer ran past LLM_TOTAL_TIMEOUT
    EMPTY = "empty"  # the stream ended without any text
    UNAVAILABLE = "unavailable"  # no provider or model could be used (set-up, auth, payment)
    INTERNAL = "internal"  # anything else


class LLMFailure(Exception):
    """A failed stream, classified. `__cause__` keeps the original exception for the log."""

    def __init__(self, kind: FailureKind, detail: str = "") -> None:
        super().__init__(f"{kind.value}: {detail}" if detail else kind.value)
        self.kind = kind
        self.detail = detail


def classify(exc: BaseException) -> FailureKind:
    """Map an exception raised while streaming to a `FailureKind`.

    g4f's errors are matched by class name so that this module does not import g4f at import time
    (importing g4f is slow and must happen after its state directories are configured).
    """
    if isinstance(exc, LLMFailure):
        return exc.kind
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "RateLimitError" in names:
        return FailureKind.RATE_LIMIT
    if names & {
        "MissingAuthError",
        "PaymentRequiredError",
        "ModelNotFoundError",
        "ProviderNotFoundError",
        "ProviderNotWorkingError",
        "RetryNoProviderError",
        "NoValidHarFileError",
        "MissingRequirementsError",
    }:
        return FailureKind.UNAVAILABLE
    if names & {"ResponseStatusError", "ResponseError", "RetryProviderError"}:
        return FailureKind.HTTP
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return FailureKind.IDLE_TIMEOUT
    if names & {"ClientError", "ClientPayloadError", "ServerDisconnectedError"} or isinstance(
        exc, ConnectionError | OSError
    ):
        return FailureKind.CONNECTION
    return FailureKind.INTERNAL


def misread(exc: BaseException) -> bool:
    """Whether `exc`, raised while the stream was read and of no kind above, came from code
    other than the bot's (past the frame that caught it): g4f failing on what the backend sent,
    such as an HTML page where events were due, or an event that is not JSON. That is the
    backend's failure, not the bot's."""
    frame = exc.__traceback__.tb_next if exc.__traceback__ else None
    while frame is not None:
        module = str(frame.tb_frame.f_globals.get("__name__", ""))
        if module == "bot" or module.startswith("bot."):  # (not its path: links, mounts)
            return False
        frame = frame.tb_next
    return True
