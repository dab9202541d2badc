"""The connection pool g4f streams through: uncapped, and reading each stream in batches.

g4f shares one aiohttp connector per event loop, capped at 20 connections per host: the 21st
simultaneous answer from one backend would wait for a free connection. `install_pool` puts an
uncapped connector in its place before g4f makes its own.

A model streams a few characters per event, tens of events a second per answer, and every event
that arrives on its own wakes the process and goes through aiohttp, g4f's SSE parser and the
answer's consumer: per answer that is most of the bot's CPU time. Nobody sees text sooner than
the pacer's next update (a second or more apart), so while events keep coming the connection is
left unread until the next beat, and what arrived meanwhile is read in one go; and just before
the pacer lets an answer's chat update, `catch_up` reads that answer's stream at once, so the
update carries all the text generated so far. The beats (every `read_interval` seconds) only
have to notice that there is new text to show, and the stream's end. Data after a quiet spell,
and its first `UNHELD_BYTES` (the response's headers and first events: the first text must show
at once), is read as it comes; so is a slow model's.
Holds end on common beats (multiples of the interval on the loop's clock), so one wake-up reads
every held stream however the answers' starts are staggered. A beat reads at most
`STREAM_SECONDS_PER_BEAT` seconds of streaming (20 streams at the default 0.5 s interval); past
that, a stream gets one of `BEATS - 1` beats in between, and keeps it until its response ends, so
that no wake-up has to parse hundreds of streams' events at once (200 streams on one beat held
the event loop for about 50 ms).
"""

from __future__ import annotations

import asyncio
import logging
import math
import weakref
from typing import Any

from aiohttp import TCPConnector
from aiohttp.client_proto import ResponseHandler

log = logging.getLogger(__name__)

UNHELD_BYTES = 1024
BEATS = 10
STREAM_SECONDS_PER_BEAT = 10.0
_streams_on_beat = [0] * BEATS  # streaming connections per beat
_closing: set[asyncio.Task[None]] = set()
# The connection each task is streaming from (the task that sent the request reads the response).
_streams: weakref.WeakKeyDictionary[asyncio.Task[Any], BatchingResponseHandler] = (
    weakref.WeakKeyDictionary()
)
CATCH_UP_WAIT = 0.02  # a held connection with nothing new: how long catch_up waits for data


class BatchingResponseHandler(ResponseHandler):
    """aiohttp's protocol, pausing the socket for `interval` after data arrives in a burst."""

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float) -> None:
        super().__init__(loop=loop)
        self._hold_interval = interval
        self._hold: asyncio.TimerHandle | None = None
        self._last_data = -math.inf
        self._burst = 0  # bytes since the last quiet spell
        self._beat: int | None = None  # which of the BEATS this stream is read on
        self._arrived: asyncio.Future[None] | None = None  # a catch-up waiting for the read

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not data:
            return  # aiohttp re-running its parser, not the network
        self._caught_up()
        now = self._loop.time()
        if now - self._last_data >= 2 * self._hold_interval:
            self._burst = 0
            self._leave_beat()
        self._last_data = now
        self._burst += len(data)
        transport = self.transport
        if (
            self._burst > UNHELD_BYTES
            and self._hold is None
            and transport is not None
            and not self._reading_paused  # aiohttp's own flow control is not overridden
            and not self._buffer_paused
        ):
            transport.pause_reading()
            if self._beat is None:
                self._beat = _join_beat(self._hold_interval)
            interval = self._hold_interval
            offset = self._beat * interval / BEATS
            beat = (math.floor((now - offset) / interval) + 1) * interval + offset
            self._hold = self._loop.call_at(beat, self._release)

    def read_now(self) -> asyncio.Future[None] | None:
        """End a hold now; the future is done once what was held has been read (the reader's
        wake-up is then already scheduled, ahead of whoever awaits it). None if not held."""
        if self._hold is None:
            return None
        self._hold.cancel()
        self._release()
        if self._reading_paused or self._buffer_paused:
            return None  # aiohttp's buffer is full: the reader has text to take already
        if self._arrived is None:
            self._arrived = self._loop.create_future()
        return self._arrived

    def _caught_up(self) -> None:
        if self._arrived is not None:
            if not self._arrived.done():
                self._arrived.set_result(None)
            self._arrived = None

    def _leave_beat(self) -> None:
        if self._beat is not None:
            _streams_on_beat[self._beat] -= 1
            self._beat = None

    def set_response_params(self, *args: Any, **kwargs: Any) -> None:
        # A new request on this connection: its response starts unheld.
        if self._hold is not None:
            self._hold.cancel()
            self._release()
        self._leave_beat()
        self._last_data = -math.inf
        task = asyncio.current_task()
        if task is not None:
            _streams[task] = self
        super().set_response_params(*args, **kwargs)

    def resume_reading(self, resume_parser: bool = True) -> None:
        # aiohttp calls this after every line it hands out from its buffer (twice per SSE event),
        # and re-runs its parser each time. Unless its own flow control paused reading, the
        # parser has nothing pending (it only keeps input back while paused): nothing to do.
        if self._reading_paused or self._buffer_paused:
            super().resume_reading(resume_parser)

    def _resume_transport_reading(self) -> None:
        # aiohttp asks for this after every read from its buffer; while held, `_release` will.
        if self._hold is None:
            super()._resume_transport_reading()

    def _release(self) -> None:
        self._hold = None
        payload = getattr(self, "_payload", None)
        if payload is not None and payload.is_eof():
            self._leave_beat()  # the response has ended: the connection goes idle in the pool
        if not self._reading_paused and not self._buffer_paused:
            super()._resume_transport_reading()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._hold is not None:
            self._hold.cancel()
            self._hold = None
        self._leave_beat()
        self._caught_up()
        super().connection_lost(exc)


async def catch_up(task: asyncio.Task[Any] | None) -> None:
    """Read what the stream `task` is consuming holds, and return once its reader has been
    woken for it: a caller that runs next sees the text that was waiting in the socket."""
    if task is None or task.done():
        return  # no stream, or its connection may be serving another answer by now
    handler = _streams.get(task)
    arrived = handler.read_now() if handler is not None else None
    if arrived is None:
        return
    try:
        async with asyncio.timeout(CATCH_UP_WAIT):
            await asyncio.shield(arrived)
    except TimeoutError:
        pass  # nothing was waiting: the stream is between events
    # Otherwise the reader's wake-up was scheduled before this one: it has taken the text.


def streams_per_beat(interval: float) -> int:
    return max(1, int(STREAM_SECONDS_PER_BEAT / interval))


def _join_beat(interval: float) -> int:
    """The beat for a stream that starts being held: the common one while it has room."""
    beat = 0
    if _streams_on_beat[0] >= streams_per_beat(interval):
        beat = min(range(BEATS), key=_streams_on_beat.__getitem__)
    _streams_on_beat[beat] += 1
    return beat


def _can_batch() -> bool:
    """Whether this aiohttp has the internals `BatchingResponseHandler` relies on (3.14's)."""
    probe = ResponseHandler(asyncio.get_running_loop())
    names = ("_reading_paused", "_buffer_paused", "_resume_transport_reading")
    return all(hasattr(probe, name) for name in names)


class Connector(TCPConnector):
    """An uncapped pool whose connections read in batches (`read_interval` 0: as data comes)."""

    def __init__(self, read_interval: float) -> None:
        super().__init__(
            limit=0,  # no cap: concurrency is bounded by the answers in flight
            keepalive_timeout=30,
            ttl_dns_cache=300,
            enable_cleanup_closed=True,
        )
        self.read_interval = read_interval
        if read_interval > 0 and not _can_batch():
            log.warning("this aiohttp cannot read streams in batches; reading every event")
            self.read_interval = 0
        if self.read_interval > 0:
            loop = self._loop

            def factory() -> ResponseHandler:
                return BatchingResponseHandler(loop, read_interval)

            self._factory = factory  # type: ignore[assignment]


def install_pool(read_interval: float) -> None:
    """Give g4f this loop's connector (once per loop, before g4f makes its own)."""
    loop = asyncio.get_running_loop()
    try:
        from g4f.requests import aiohttp as g4f_aiohttp

        connectors: Any = g4f_aiohttp._loop_connectors
    except (ImportError, AttributeError) as error:  # a g4f release that changed this
        log.warning("could not replace g4f's connection pool: %s", error)
        return
    current = connectors.get(loop)
    if isinstance(current, Connector) and not current.closed:
        if current.read_interval == read_interval:
            return
        # Another client's settings (tests): close that pool once its streams are done.
        closing = loop.create_task(current.close())
        _closing.add(closing)
        closing.add_done_callback(_closing.discard)
    connectors[loop] = Connector(read_interval)
