"""The worker's Kafka consumer (streams.consumer): Faust's own, asking brokers to hold a fetch
no longer than STATIONWATCH_CONSUMER_FETCH_WAIT_MS (the embedded broker answers a held fetch
only when that time is up), handing over at most MAX_POLL_RECORDS records per call (set with
the app, streams.app), and looking again within RESUME_WAIT_S while a partition is paused for
a full stream buffer."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from faust.types import TP

from schemas.topics import HEARTBEAT, REGISTRY
from stationwatch.settings import Settings
from streams.app import MAX_POLL_RECORDS, faust_app
from streams.consumer import RESUME_WAIT_S


@pytest.mark.parametrize("wait_ms", [100, 40])
async def test_the_worker_consumer_holds_a_fetch_at_most_the_setting_and_hands_over_less(
    wait_ms: int,
) -> None:
    app: Any = faust_app(Settings(consumer_fetch_wait_ms=wait_ms))
    thread = app.consumer._thread
    thread._assignor = app.assignor  # as its start sets it
    consumer = thread._create_worker_consumer(app.transport)
    try:
        assert consumer._fetch_max_wait_ms == wait_ms  # Faust's own is 1500
        assert consumer._max_poll_records == MAX_POLL_RECORDS  # aiokafka's own: no limit
    finally:
        await consumer.stop()  # never started: releases its client
        thread.thread_loop.close()  # the consumer thread's loop, never run


class RecordingThread:
    """The consumer thread's fetch, answering nothing and noting how long it was let wait."""

    def __init__(self, assigned: set[TP]) -> None:
        self.asked: list[tuple[set[TP], float]] = []
        self.assigned = assigned

    def assignment(self) -> set[TP]:
        return self.assigned

    async def getmany(
        self,
        active: set[TP],
        timeout: float,  # noqa: ASYNC109 - the consumer thread's signature
    ) -> dict[TP, Any]:
        self.asked.append((set(active), timeout))
        return {}


def partitions(topic: str, *numbers: int) -> list[TP]:
    return [TP(Settings().topic(topic), n) for n in numbers]


@contextmanager
def recorded_fetches(assigned: set[TP]) -> Iterator[tuple[Any, RecordingThread]]:
    """The worker's consumer, its partitions ``assigned`` and active, fetching through a
    :class:`RecordingThread`."""
    consumer: Any = faust_app(Settings()).consumer
    real, thread = consumer._thread, RecordingThread(assigned)
    consumer._thread = thread
    consumer._set_active_tps(assigned)
    try:
        yield consumer, thread
    finally:
        consumer._thread = real
        real.thread_loop.close()  # the consumer thread's loop, never run


async def test_a_fetch_waits_briefly_while_a_partition_waits_to_be_resumed() -> None:
    """Faust pauses a partition whose records fill the stream's buffer and resumes it once the
    buffer has emptied; a fetch of the partitions still active, begun meanwhile, must not hold
    the resumed one back for Faust's full second."""
    [heartbeats], [registry] = partitions(HEARTBEAT, 0), partitions(REGISTRY, 0)
    with recorded_fetches({heartbeats, registry}) as (consumer, thread):
        await consumer._wait_next_records(1.0)  # nothing paused: Faust's own wait
        consumer.on_buffer_full(heartbeats)
        await consumer._wait_next_records(1.0)
        consumer.on_buffer_drop(heartbeats)
        await consumer._wait_next_records(1.0)
    assert thread.asked == [
        ({heartbeats, registry}, 1.0),
        ({registry}, RESUME_WAIT_S),
        ({heartbeats, registry}, 1.0),
    ]


async def test_with_every_partition_paused_the_fetcher_looks_again_within_the_short_wait() -> None:
    """Faust sleeps a whole second when no partition is left active."""
    [heartbeats] = partitions(HEARTBEAT, 0)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    with recorded_fetches({heartbeats}) as (consumer, thread):
        consumer.on_buffer_full(heartbeats)
        consumer.sleep = sleep
        records, active = await consumer._wait_next_records(1.0)
    assert (records, active, thread.asked) == ({}, set(), [])
    assert slept == [RESUME_WAIT_S]  # Faust's own: 1 s


async def test_a_partition_paused_then_revoked_or_assigned_again_keeps_the_long_wait() -> None:
    """Faust leaves a revoked partition among the paused ones, and an assignment makes every
    assigned partition active again: neither waits to be resumed."""
    [heartbeats, moved], [registry] = partitions(HEARTBEAT, 0, 1), partitions(REGISTRY, 0)
    with recorded_fetches({heartbeats, moved, registry}) as (consumer, thread):
        consumer.on_buffer_full(heartbeats)
        consumer.on_buffer_full(moved)
        thread.assigned = {heartbeats, registry}  # moved: revoked
        consumer._set_active_tps({heartbeats, registry})  # heartbeats: assigned again
        await consumer._wait_next_records(1.0)
    assert consumer._buffered_partitions == {heartbeats, moved}  # as Faust leaves them
    assert thread.asked == [({heartbeats, registry}, 1.0)]


async def test_a_partition_faust_pauses_while_recovering_keeps_the_long_wait() -> None:
    """After an assignment Faust pauses the streams' partitions until the tables are
    recovered; one also left among the full-buffer ones is not waiting to be resumed."""
    [heartbeats], [registry] = partitions(HEARTBEAT, 0), partitions(REGISTRY, 0)
    with recorded_fetches({heartbeats, registry}) as (consumer, thread):
        consumer.on_buffer_full(heartbeats)
        consumer._paused_partitions.add(heartbeats)  # as Faust's pause_partitions leaves it
        await consumer._wait_next_records(1.0)
    assert thread.asked == [({registry}, 1.0)]
