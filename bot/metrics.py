"""Prometheus metrics, served at `/metrics`.

Each app has its own registry (not prometheus-client's global one), so several bots can run in one
process. What is counted:

- updates received, by update type (an outer middleware on the Dispatcher);
- answers being streamed now;
- Telegram calls made delivering answers, by method, and the 429s among them;
- backend failures, by kind (`FailureKind`);
- answers finished, by outcome (done, failed, stopped, interrupted);
- seconds from a question to the first text of its answer.

Answers are recorded once each, when their final state has been delivered (`Answerer.answer`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiogram.types import TelegramObject, Update
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from bot.llm import FailureKind

if TYPE_CHECKING:
    from bot.answering import Outcome
    from bot.streaming.reply import DeliveryStats

OUTCOMES = ("done", "failed", "stopped", "interrupted", "withdrawn")
DELIVERY_METHODS = ("sendMessage", "editMessageText", "sendMessageDraft")
FIRST_TEXT_BUCKETS = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 60.0, 120.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST

UpdateHandler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class Metrics:
    """The bot's metrics in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.updates = Counter(
            "bot_updates",
            "Updates received from Telegram, by update type.",
            ["type"],
            registry=registry,
        )
        self.active_streams = Gauge(
            "bot_active_streams", "Answers being streamed now.", registry=registry
        )
        self.telegram_calls = Counter(
            "bot_telegram_calls",
            "Telegram calls that delivered answers, by method (counted when an answer ends).",
            ["method"],
            registry=registry,
        )
        self.telegram_retry_after = Counter(
            "bot_telegram_retry_after",
            "429 Too Many Requests from Telegram while delivering answers.",
            registry=registry,
        )
        self.backend_failures = Counter(
            "bot_backend_failures",
            "Answers the model backend failed, by kind of failure.",
            ["kind"],
            registry=registry,
        )
        self.answers = Counter(
            "bot_answers",
            "Answers finished (final state delivered), by outcome.",
            ["outcome"],
            registry=registry,
        )
        self.first_text = Histogram(
            "bot_time_to_first_text_seconds",
            "Seconds from a question to the first text of its answer.",
            buckets=FIRST_TEXT_BUCKETS,
            registry=registry,
        )
        # Every known series exists from the start, at 0, so rates work from the first scrape.
        for method in DELIVERY_METHODS:
            self.telegram_calls.labels(method=method)
        for kind in FailureKind:
            self.backend_failures.labels(kind=kind.value)
        for outcome in OUTCOMES:
            self.answers.labels(outcome=outcome)

    def track_active_streams(self, count: Callable[[], int]) -> None:
        """Read the number of answers in flight from `count` at every scrape."""
        self.active_streams.set_function(count)

    def record_answer(self, outcome: Outcome, stats: DeliveryStats) -> None:
        """One finished answer: how it ended and what delivering it cost."""
        if outcome.result == "failed" and outcome.failure is not None:
            self.backend_failures.labels(kind=outcome.failure.value).inc()
        self.answers.labels(outcome=outcome.result).inc()
        self.telegram_calls.labels(method="sendMessage").inc(stats.sends)
        self.telegram_calls.labels(method="editMessageText").inc(stats.edits)
        self.telegram_calls.labels(method="sendMessageDraft").inc(stats.drafts)
        self.telegram_retry_after.inc(stats.retry_afters)
        if outcome.first_text_after is not None:
            self.first_text.observe(outcome.first_text_after)

    async def count_update(
        self, handler: UpdateHandler, event: TelegramObject, data: dict[str, Any]
    ) -> Any:
        """Outer middleware for `dispatcher.update`: counts every update by its type."""
        kind = "unknown"
        if isinstance(event, Update):
            try:
                kind = event.event_type
            except Exception:  # an update type this aiogram does not know
                kind = "unknown"
        self.updates.labels(type=kind).inc()
        return await handler(event, data)

    def render(self) -> bytes:
        """The registry in Prometheus' text format (`CONTENT_TYPE`)."""
        return generate_latest(self.registry)
