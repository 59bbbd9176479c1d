"""Batches of a Faust stream's events, the next one filled while the last is processed.

Faust's ``Stream.take_events`` stops filling its buffer while the agent works through a
batch, and starts the next one only when the agent asks for it: every event then passes
through Faust's stream machinery (its iterator, the buffering processor, one at a time) while
the agent waits, and the agent's own waits (the database's ``COPY``, the changelog's delivery)
are time in which no event moves. Measured on a saturated worker loading 150,000 station
profiles: 7.8 s of 44 s between two batches (6.6 s of it the event loop's own work), and 5.3 s
waiting for PostgreSQL within the batches.

:func:`take_batches` keeps filling a second buffer while the agent works, up to the same size,
so the next batch is ready when the agent asks, and that per-event work is done in the agent's
waits. A batch's events are acked once the agent is done with it (it asks for the next), those
waiting in the next buffer only with their own batch. Closing the batches never acks: the
events of the batch in hand (which the agent settles, :func:`streams.batch.abandon`, when it
gives it up) and of the next buffer are settled without a commit, so that Faust's shutdown does
not wait for them and they are read again at the next start (their partitions' commits stop
before them until then). Events still in the stream's buffer stay there, untaken and
untracked, for the agent Faust starts again after a crash.

The events are taken out of the stream's buffer (its channel's queue) here, not by iterating
the stream. Faust's iterator yields to the event loop before every event, awaits the queue
even when an event is waiting in it, and runs each event through the stream's processors and
``on_merge`` as coroutines; ``Stream.ack`` is a coroutine per event too. Faust's per-message
path (its fetcher's hand-over and that iteration) was 15 to 17% of a saturated worker's busy
time in a native profile at 150,000 stations; the iteration's part is, here, a few checks per
event and a turn of the event loop per :data:`PER_TURN` events.

What the iterator does with an event is done here alike (:meth:`_Taker.take`): an event of an
earlier consumer generation (a rebalance's leftover) or arriving while Faust's flow is
suspended is dropped as Faust drops it; a message of an acking topic is tracked as unacked
(what ``stream_wait_empty`` waits for) and the sensors are told, as they are of every ack. The
stream itself is not iterated: it adds nothing to what is taken (no processors, no
``on_merge``: the agent is its only taker).

A rebalance, and a worker stopping in the ordinary way, wait until every event handed to a
stream is acked (Faust's ``stream_wait_empty``): now until the agent has worked through the
batch in hand and the next one, up to twice ``BATCH_SIZE`` events instead of once.

A batch waits for more events at most ``within`` after its first event arrived (Faust's waits
``within`` from the moment the agent asks).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from faust.types import EventT, StreamT

# Events taken out of the stream's buffer in one turn of the event loop at most (Faust's
# iterator takes one per turn); the agent and the HTTP feed run in between.
PER_TURN = 64


class _Taker:
    """What Faust's stream iterator does with an event it takes from its buffer, but for
    running it through the stream's processors (``faust._cython.streams.StreamIterator``,
    ``Stream._py_aiter``)."""

    def __init__(self, stream: Any) -> None:
        app = stream.app
        self.stream = stream
        self.app = app
        self.flow = app.flow_control
        self.acking_topics = app.topics._acking_topics
        self.add_unacked = app.consumer._unacked_messages.add
        self.on_message_in = stream._on_message_in
        self.on_stream_event_in = stream._on_stream_event_in
        self.on_stream_event_out = stream._on_stream_event_out
        self.on_message_out = stream._on_message_out

    def take(self, event: Any) -> bool:
        """Whether the event is the agent's (else it is dropped, as Faust drops it); a
        message taken is tracked until acked."""
        if not isinstance(event, EventT):
            raise TypeError(f"take_batches takes events, not {type(event).__name__}")
        message = event.message
        if not self.flow.is_active() or message.generation_id != self.app.consumer_generation_id:
            return False
        tp, offset = message.tp, message.offset
        if message.topic in self.acking_topics and not message.tracked:
            message.tracked = True
            self.add_unacked(message)
            self.on_message_in(tp, offset, message)
        self.on_stream_event_in(tp, offset, self.stream, event)
        return True

    def ack(self, event: Any) -> None:
        """``Stream.ack``, without a coroutine per event."""
        last_to_ack = event.ack()
        message = event.message
        self.on_stream_event_out(message.tp, message.offset, self.stream, event)
        if last_to_ack:
            self.on_message_out(message.tp, message.offset, message)


def take_batches(stream: StreamT[Any], max_: int, within: float) -> Batches:
    """Lists of up to ``max_`` events of ``stream``; a list is handed over when it is full, or
    ``within`` seconds after its first event; its events are acked when the caller asks for the
    next list (never when it closes the batches)."""
    return Batches(stream, max_, within)


class Batches:
    """The batches of one stream (:func:`take_batches`), an async iterator for one caller at
    a time, to be ended by it: :meth:`aclose`, or :meth:`abort` where nothing may be awaited
    (dropped without either, its filler runs on and holds what it took).

    Not an async generator, so that they can be ended without awaiting: by an agent whose
    coroutine is closed where it waits for a batch. A generator whose ``__anext__`` is in
    progress there (suspended in an ``await``, not at a ``yield``) cannot be closed
    (``aclose()``: "asynchronous generator is already running"); closing the coroutine
    awaiting it does not run its ``finally`` on Python 3.11 (and on later versions before
    gh-117714), and where it does, that ``finally`` may not await its filler."""

    def __init__(self, stream: StreamT[Any], max_: int, within: float) -> None:
        self._stream: Any = stream  # Faust's Stream: its channel's queue, its sensors
        self._max, self._within = max_, within
        self._filling: list[EventT[Any]] = []
        self._first_at = 0.0  # monotonic time of the first event in ``_filling``
        self._full = asyncio.Event()  # ``_filling`` holds ``max_`` events
        self._room = asyncio.Event()  # ``_filling`` may take more events
        self._room.set()
        self._closed = False  # no more batches: the filler adds nothing more
        self._filler: asyncio.Future[None] | None = None  # started at the first ask
        self._taker: _Taker | None = None
        self._handed: list[EventT[Any]] = []  # the caller's batch, acked when it asks again
        self._waiting: EventT[Any] | None = None  # taken by the filler, waiting for room

    def __aiter__(self) -> Batches:
        return self

    async def __anext__(self) -> list[EventT[Any]]:
        if self._closed:
            raise StopAsyncIteration
        taker, filler = self._taker, self._filler
        if taker is None or filler is None:
            taker, filler = self._start()
        handed, self._handed = self._handed, []
        try:
            for event in handed:
                taker.ack(event)
            events = await self._next(filler)
        except GeneratorExit:  # the caller's coroutine closed where it waits: no await now
            self.abort()
            raise
        except BaseException:  # cancelled, or an error Faust threw into the buffer
            await self.aclose()
            raise
        if events is None:  # the stream ended: so do the batches
            await self.aclose()
            raise StopAsyncIteration
        self._handed = events
        return events

    def _start(self) -> tuple[_Taker, asyncio.Future[None]]:
        # Acked here, once processed: Faust's stream acks nothing it does not iterate, and it
        # is not iterated; left off all the same, should anything iterate it.
        self._stream.enable_acks = False
        self._taker = _Taker(self._stream)
        self._filler = asyncio.ensure_future(self._fill(self._taker))
        return self._taker, self._filler

    async def _next(self, filler: asyncio.Future[None]) -> list[EventT[Any]] | None:
        """The next batch, when full or ``within`` after its first event; None once the
        stream ended."""
        stream = self._stream
        # (a stream that is started and stopped ends so; an agent's stream is never started:
        # Faust ends it by throwing StopAsyncIteration into its channel, which ends the filler)
        while not stream.should_stop:
            filling = self._filling
            waited = self._within - (time.monotonic() - self._first_at) if filling else self._within
            if waited > 0 and not self._full.is_set():
                await stream.wait_for_stopped(self._full, timeout=waited)
            if filler.done():
                filler.result()  # raises what ended it: an error Faust threw into the buffer
                return None
            if not filling:
                continue
            events = list(filling)
            filling.clear()
            self._full.clear()
            self._room.set()
            return events
        return None

    async def _fill(self, taker: _Taker) -> None:
        """Take events out of the stream's buffer into ``_filling`` while there is room."""
        try:
            await self._take_events(taker)
        finally:
            self._full.set()  # the batches see it ended (an error: they raise it)

    async def _take_events(self, taker: _Taker) -> None:
        queue, filling, max_ = self._stream.channel.queue, self._filling, self._max
        in_turn = 0
        while not self._closed:
            if in_turn >= PER_TURN:
                in_turn = 0
                await asyncio.sleep(0)
            try:
                if queue.empty():
                    in_turn = 0
                    event = await queue.get()
                else:
                    event = queue.get_nowait()
                    in_turn += 1
            except StopAsyncIteration:  # Faust ends the agent's stream so (Actor.cancel)
                return
            if not taker.take(event):
                continue
            self._waiting = event
            try:
                while len(filling) >= max_ and not self._closed:  # both buffers full: wait
                    self._room.clear()
                    await self._room.wait()
            except asyncio.CancelledError:
                settle(event)  # never taken into a batch: read again next start
                raise
            finally:
                self._waiting = None
            if self._closed:
                settle(event)
                return
            if not filling:
                self._first_at = time.monotonic()
            filling.append(event)
            if len(filling) >= max_:
                self._full.set()

    def abort(self) -> None:
        """End the batches without awaiting: what the next buffer holds, and the event the
        filler waits to add, are settled; the filler is cancelled. Also when the event loop
        is closed already (an agent's coroutine is closed when its task is destroyed, at the
        worker's end): what was taken is settled all the same. The batch in the caller's
        hands is the caller's to settle (:func:`streams.batch.abandon`)."""
        self._closed = True
        for event in self._filling:
            settle(event)
        self._filling.clear()
        if self._waiting is not None:
            settle(self._waiting)
        filler = self._filler
        if filler is not None and not filler.get_loop().is_closed():
            self._room.set()  # the filler's wait for room ends
            filler.cancel()

    async def aclose(self) -> None:
        """End the batches (:meth:`abort`), and wait until the filler has stopped."""
        self.abort()
        if self._filler is not None:
            await asyncio.gather(self._filler, return_exceptions=True)  # its error was raised


def settle(event: EventT[Any]) -> None:
    """Mark an event's message done for the consumer without acking it: Faust no longer waits
    for it (its shutdown, a rebalance), and its offset is not committed (only ``Consumer.ack``
    makes an offset committable), so it is read again at the next start."""
    event.message.acked = True
