"""Batches of a Faust stream (streams.take): the next batch is filled while the agent works
through the last, a batch is never larger than asked, a partial one is handed over ``within``
after its first event, an event is acked only once its batch is processed, and closing the
batches leaves no event held: those not processed are settled without a commit."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import faust
import pytest
from faust.types.tuples import ConsumerMessage

from stationwatch.errors import WorkerStoppingError
from streams.batch import work_through
from streams.take import PER_TURN, take_batches

WITHIN = 0.2


@pytest.fixture
async def app() -> AsyncIterator[Any]:
    app: Any = faust.App(f"take-{uuid.uuid4().hex[:8]}", broker="kafka://127.0.0.1:1")
    app.loop = asyncio.get_running_loop()  # else Faust makes one of its own
    app.flow_control.resume()  # suspended until a worker's consumer starts
    # the events acked for good, as streams tell (before they are made): Consumer.ack's
    # part for a topic's message
    app.committable = []
    app.sensors.on_message_out = lambda tp, offset, message: app.committable.append(message.value)
    yield app
    if app._consumer is not None:  # made by an ack, never started
        app._consumer._thread.thread_loop.close()  # its thread's loop, never run


@pytest.fixture
def channel(app: Any) -> Any:
    return app.channel(maxsize=1000)


def waiting(channel: Any) -> int:
    """Events sent and not yet taken out of the stream's queue."""
    return sum(subscriber.queue.qsize() for subscriber in channel._subscribers)


async def send(channel: Any, values: range) -> None:
    for value in values:
        await channel.send(value=value)


async def test_the_next_batch_fills_while_the_last_is_processed(channel: Any) -> None:
    async with channel.stream() as stream:
        batches = take_batches(stream, 4, WITHIN)
        await send(channel, range(20))
        first = await anext(batches)
        assert [e.value for e in first] == [0, 1, 2, 3]
        await asyncio.sleep(0.05)  # the agent at work
        # the next four were taken out of the queue meanwhile; one more waits for room
        # (Faust's take_events leaves all sixteen in the queue until it is asked again)
        assert waiting(channel) == 20 - 4 - 4 - 1
        started = time.monotonic()
        second = await anext(batches)
        assert time.monotonic() - started < WITHIN / 2  # ready when asked
        assert [e.value for e in second] == [4, 5, 6, 7]
        await asyncio.sleep(0.05)
        assert waiting(channel) == 20 - 12 - 1  # never more than one batch ahead
        await batches.aclose()


async def test_a_partial_batch_is_handed_over_within_of_its_first_event(channel: Any) -> None:
    async with channel.stream() as stream:
        batches = take_batches(stream, 100, WITHIN)
        sent = time.monotonic()
        await send(channel, range(3))
        batch = await anext(batches)
        taken = time.monotonic() - sent
        assert [e.value for e in batch] == [0, 1, 2]
        assert WITHIN * 0.8 <= taken < WITHIN * 3
        await batches.aclose()


async def test_a_batch_is_acked_once_processed_and_nothing_else(channel: Any) -> None:
    async with channel.stream() as stream:
        batches = take_batches(stream, 4, WITHIN)
        await send(channel, range(10))
        first = await anext(batches)
        assert stream.enable_acks is False  # acked by take_batches, not per event
        second = await anext(batches)  # the agent is done with the first
        assert all(e.message.acked for e in first)
        assert not any(e.message.acked for e in second)
        await asyncio.sleep(0.05)  # the rest waits in the next buffer
        await batches.aclose()  # stopping mid-batch: neither it nor the next is acked
        assert not any(e.message.acked for e in second)
        assert waiting(channel) == 0
        assert not stream._processors


async def test_a_batch_waiting_longer_than_within_is_handed_over_at_once(channel: Any) -> None:
    async with channel.stream() as stream:
        batches = take_batches(stream, 100, WITHIN)
        await send(channel, range(3))
        first = await anext(batches)
        await send(channel, range(3, 5))  # arrive while the agent is at work
        await asyncio.sleep(WITHIN * 1.5)  # the agent works longer than ``within``
        started = time.monotonic()
        second = await anext(batches)
        assert time.monotonic() - started < WITHIN / 2  # not another ``within``
        assert [e.value for e in first] == [0, 1, 2]
        assert [e.value for e in second] == [3, 4]
        await batches.aclose()


async def test_every_event_once_in_order_over_many_batches(app: Any, channel: Any) -> None:
    async with channel.stream() as stream:
        batches = take_batches(stream, 7, 0.02)
        sending = asyncio.ensure_future(send(channel, range(100)))
        seen: list[Any] = []
        async for events in batches:
            seen.extend(e.value for e in events)
            assert len(events) <= 7
            await asyncio.sleep(0.005)
            if len(seen) >= 100:
                break
        await sending
        await batches.aclose()
        assert seen == list(range(100))
        assert app.committable == seen[: len(app.committable)]  # each once, in order
        assert len(app.committable) >= 93  # all but the last batch


async def test_closing_settles_what_waits_and_lets_the_next_batches_go_on(
    app: Any, channel: Any
) -> None:
    async with channel.stream() as stream:
        batches = take_batches(stream, 4, WITHIN)
        await send(channel, range(12))
        sent = list(stream.channel.queue._queue)  # the twelve events, in the stream's buffer
        first = await anext(batches)
        await asyncio.sleep(0.05)  # four wait in the next buffer, one more for room
        await batches.aclose()  # the agent gives up (stopping, or crashed)
        await asyncio.sleep(0.01)
        assert waiting(channel) == 3  # 9, 10 and 11, never taken: left in the stream's buffer
        # the next buffer's four, and the one taken and waiting for room: settled
        assert [e.message.acked for e in sent] == [False] * 4 + [True] * 5 + [False] * 3
        assert not stream._processors
        assert not any(e.message.acked for e in first)  # the agent's to settle (abandon)
        # a new agent on the same stream (Faust restarts a crashed one so) takes what was left
        # and what is sent after; nothing of the twelve is committed (those of the next buffer
        # were settled: the worker reads them again, see streams.holes)
        again = take_batches(stream, 4, WITHIN)
        await send(channel, range(100, 104))
        taken = await anext(again)
        assert [e.value for e in taken] == [9, 10, 11, 100]
        assert app.committable == []
        await again.aclose()


async def test_an_event_of_an_earlier_generation_is_dropped(app: Any, channel: Any) -> None:
    """As Faust's stream drops it: an event fetched for an assignment a rebalance ended."""
    async with channel.stream() as stream:
        batches = take_batches(stream, 100, WITHIN)
        await send(channel, range(2))
        app.consumer_generation_id += 1  # a rebalance: the two were fetched before it
        await send(channel, range(2, 4))
        batch = await anext(batches)
        assert [e.value for e in batch] == [2, 3]
        await batches.aclose()


async def test_the_batches_take_many_events_in_one_turn_of_the_loop(channel: Any) -> None:
    """Faust's iterator gave the event loop a turn before every event; here a turn is given
    every ``PER_TURN`` events."""
    async with channel.stream() as stream:
        batches = take_batches(stream, 1000, WITHIN)
        await send(channel, range(3 * PER_TURN))
        asking = asyncio.ensure_future(anext(batches))  # the agent asks for a batch
        turns = 0
        while waiting(channel) and turns < 100:
            await asyncio.sleep(0)
            turns += 1
        assert waiting(channel) == 0
        assert turns <= 6  # about three, where Faust's iterator took 3 * PER_TURN
        assert [e.value for e in await asking] == list(range(3 * PER_TURN))
        await batches.aclose()


def consumed(app: Any, stream: Any, topic: str, offset: int) -> Any:
    """An event as the consumer and Faust's conductor hand one over: its message tracked only
    once taken, with a reference for the one stream it goes to."""
    message = ConsumerMessage(
        topic, 0, offset, time.time(), 0, [], b"SY-0001", b"{}", None,
        generation_id=app.consumer_generation_id,
    )  # fmt: skip
    message.tracked = False
    message.incref()
    event = app.create_event(message.key, message.value, message.headers, message)
    stream.channel.queue.put_nowait(event)
    return event


async def test_a_message_is_tracked_once_taken_until_its_batch_is_acked(
    app: Any, channel: Any
) -> None:
    """What a rebalance (stream_wait_empty) waits for: the messages taken and not acked."""
    topic = "t.station.heartbeat"
    app.topics._acking_topics.add(topic)
    unacked = app.consumer._unacked_messages
    async with channel.stream() as stream:
        batches = take_batches(stream, 2, WITHIN)
        events = [consumed(app, stream, topic, offset) for offset in range(3)]
        assert not unacked  # in the stream's buffer, not taken yet
        first = await anext(batches)
        assert first == events[:2]
        await asyncio.sleep(0.01)
        assert {e.message for e in events} <= set(unacked)
        second = await anext(batches)  # the agent is done with the first
        assert second == events[2:]
        assert not {e.message for e in first} & set(unacked)
        assert events[2].message in unacked
        await batches.aclose()


async def test_events_found_while_faust_suspends_the_flow_are_dropped(
    app: Any, channel: Any
) -> None:
    """As Faust's stream drops them: events found in the buffer while a rebalance suspends
    the flow (events of the assignment it ends)."""
    topic = "t.station.heartbeat"
    async with channel.stream() as stream:
        batches = take_batches(stream, 100, WITHIN)
        app.flow_control.suspend()  # a rebalance
        dropped = [consumed(app, stream, topic, offset) for offset in range(2)]
        asking = asyncio.ensure_future(anext(batches))
        await asyncio.sleep(0.05)
        assert waiting(channel) == 0  # taken, and dropped
        app.flow_control.resume()
        kept = [consumed(app, stream, topic, offset) for offset in range(2, 4)]
        assert await asking == kept
        assert not any(e.message.acked for e in dropped)  # Faust's stream acks none either
        await batches.aclose()


async def test_an_agents_stream_ended_by_faust_ends_the_batches(app: Any, channel: Any) -> None:
    """Faust ends an agent's stream (never started: the agent takes its batches) by throwing
    StopAsyncIteration into its channel: the agent's loop ends, what waits is settled."""
    stream = channel.stream()
    batches = take_batches(stream, 2, WITHIN)
    await send(channel, range(3))
    sent = list(stream.channel.queue._queue)
    first = await anext(batches)
    await asyncio.sleep(0.05)  # the next buffer holds 2
    await stream.channel.throw(StopAsyncIteration())
    rest = [events async for events in batches]  # ends, no RuntimeError
    assert [e.value for e in first] == [0, 1]
    assert rest == []
    assert sent[2].message.acked  # settled: read again at the next start
    assert app.committable == [0, 1]  # acked as the agent asked for more


class Handled:
    """The agent's work on each batch (:func:`streams.batch.work_through`), ending the way it
    is told at the batch it is told: raising, or waiting until it is cancelled or closed."""

    def __init__(self, end_at: int, ending: BaseException | None = None) -> None:
        self.batches: list[list[Any]] = []
        self.end_at, self.ending = end_at, ending
        self.reached = asyncio.Event()  # the batch it ends at has come

    async def __call__(self, events: list[Any]) -> None:
        self.batches.append(events)
        if len(self.batches) == self.end_at:
            self.reached.set()
            await asyncio.sleep(0.05)  # the next buffer fills meanwhile
            if self.ending is None:
                await asyncio.sleep(60)  # until cancelled or closed
                return
            raise self.ending


def held(stream: Any, sent: list[Any]) -> list[Any]:
    """Of the events sent, those neither settled nor acked nor left in the stream's buffer."""
    waiting = {id(e) for e in stream.channel.queue._queue}
    return [e for e in sent if not e.message.acked and id(e) not in waiting]


@pytest.mark.parametrize(
    ("ending", "raised"),
    [(RuntimeError("a bug"), RuntimeError), (WorkerStoppingError("stopping"), None)],
    ids=["crash", "stopping"],
)
async def test_an_agent_that_ends_mid_batch_commits_nothing_of_it_and_ends_the_batches(
    app: Any, channel: Any, ending: BaseException, raised: type[BaseException] | None
) -> None:
    """A crash and a stop alike: the batch in hand and the next buffer are settled, never
    committed (read again at the next start), the filler is gone; only a crash is raised on."""
    async with channel.stream() as stream:
        await send(channel, range(12))
        sent = list(stream.channel.queue._queue)
        handled = Handled(end_at=2, ending=ending)
        batches = take_batches(stream, 4, WITHIN)
        working = work_through(batches, handled)
        if raised is None:
            await working
        else:
            with pytest.raises(raised):
                await working
        assert [[e.value for e in b] for b in handled.batches] == [[0, 1, 2, 3], [4, 5, 6, 7]]
        assert app.committable == [0, 1, 2, 3]  # the first batch, done
        assert all(e.message.acked for e in sent[4:12])  # the second and the next four
        assert held(stream, sent) == []
        assert batches._filler is not None
        assert batches._filler.done()


async def test_an_agent_cancelled_mid_batch_commits_nothing_of_it(
    app: Any, channel: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async with channel.stream() as stream:
        await send(channel, range(12))
        sent = list(stream.channel.queue._queue)
        batches = take_batches(stream, 4, WITHIN)
        handled = Handled(end_at=2)
        agent = asyncio.ensure_future(work_through(batches, handled))
        await asyncio.wait_for(handled.reached.wait(), 10)
        await asyncio.sleep(0.1)  # in the second batch, the next buffer full
        agent.cancel()
        with pytest.raises(asyncio.CancelledError):
            await agent
        assert "batch of 4 records unfinished (CancelledError)" in caplog.text
        assert app.committable == [0, 1, 2, 3]
        assert all(e.message.acked for e in sent[4:12])
        assert held(stream, sent) == []
        assert batches._filler is not None
        assert batches._filler.done()


@pytest.mark.parametrize("where", ["waiting for a batch", "handling a batch"])
async def test_an_agent_closed_where_it_waits_ends_the_batches_without_awaiting(
    app: Any, channel: Any, where: str
) -> None:
    """Faust may close an agent's coroutine where it waits, never to run it on: nothing may
    be awaited then (``coroutine ignored GeneratorExit``); the batches end all the same:
    nothing taken is left held, and nothing more is taken."""
    async with channel.stream() as stream:
        await send(channel, range(12))
        sent = list(stream.channel.queue._queue)
        batches = take_batches(stream, 4, WITHIN)
        handled = Handled(end_at=1)
        working = work_through(batches, handled)  # run by hand, as a task would run it
        waits_on = working.send(None)
        for _ in range(100):
            if where != "handling a batch" or handled.batches:
                break
            await asyncio.wait([waits_on], timeout=5) if waits_on else await asyncio.sleep(0)
            waits_on = working.send(None)
        assert where != "handling a batch" or handled.batches
        await asyncio.sleep(0.05)  # the filler takes what it finds meanwhile
        working.close()  # raises RuntimeError if it awaits on its way out
        await asyncio.sleep(0.01)
        assert [len(b) for b in handled.batches] == ([4] if where == "handling a batch" else [])
        assert app.committable == []
        assert held(stream, sent) == []  # the batch in hand (if any) and the next: settled
        filler = batches._filler
        assert filler is not None
        assert filler.cancelled()
        left = waiting(channel)
        await send(channel, range(100, 102))
        await asyncio.sleep(0.01)
        assert waiting(channel) == left + 2  # for the agent Faust starts again


def test_an_agent_closed_after_the_loop_settles_what_its_batches_took() -> None:
    """An agent's coroutine is closed when its pending task is destroyed, after the worker's
    event loop is closed: nothing can be scheduled then, and what the batches took (the
    next buffer, the event waiting for room) is settled all the same."""
    loop = asyncio.new_event_loop()

    app: Any = None

    async def running() -> tuple[Any, list[Any], Handled, asyncio.Task[None]]:
        nonlocal app
        app = faust.App(f"take-{uuid.uuid4().hex[:8]}", broker="kafka://127.0.0.1:1")
        app.loop = asyncio.get_running_loop()
        app.flow_control.resume()
        channel = app.channel(maxsize=1000)
        stream = channel.stream()
        await send(channel, range(12))
        sent = list(stream.channel.queue._queue)
        handled = Handled(end_at=1)
        agent = asyncio.ensure_future(work_through(take_batches(stream, 4, WITHIN), handled))
        await asyncio.wait_for(handled.reached.wait(), 10)
        await asyncio.sleep(0.1)  # the next buffer full, one more event waiting for room
        return stream, sent, handled, agent

    stream, sent, handled, agent = loop.run_until_complete(running())
    loop.close()
    agent.get_coro().close()  # what destroying the pending task comes to
    app._consumer._thread.thread_loop.close()  # the consumer's thread's loop, never run
    assert [e.value for e in handled.batches[0]] == [0, 1, 2, 3]
    assert held(stream, sent) == []  # the batch in hand, the next four, the one waiting
    assert [e.message.acked for e in sent] == [True] * 9 + [False] * 3  # three never taken
