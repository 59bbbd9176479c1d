"""Batches of a Faust stream (streams.take): the next batch is filled while the agent works
through the last, a batch is never larger than asked, a partial one is handed over ``within``
after its first event, and an event is acked only once its batch is processed."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import faust
import pytest

from streams.take import take_batches

WITHIN = 0.2


@pytest.fixture
async def channel() -> AsyncIterator[Any]:
    app: Any = faust.App(f"take-{uuid.uuid4().hex[:8]}", broker="kafka://127.0.0.1:1")
    app.loop = asyncio.get_running_loop()  # else Faust makes one of its own
    app.flow_control.resume()  # suspended until a worker's consumer starts
    yield app.channel(maxsize=1000)
    if app._consumer is not None:  # made by the first ack, never started
        app._consumer._thread.thread_loop.close()  # its thread's loop, never run


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
        assert stream.enable_acks is True
        assert not stream._processors
