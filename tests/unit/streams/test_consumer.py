"""The worker's Kafka consumer (streams.consumer): Faust's own, asking brokers to hold a fetch
no longer than STATIONWATCH_CONSUMER_FETCH_WAIT_MS (the embedded broker answers a held fetch
only when that time is up)."""

from __future__ import annotations

from typing import Any

import pytest

from stationwatch.settings import Settings
from streams.app import faust_app


@pytest.mark.parametrize("wait_ms", [100, 40])
async def test_the_worker_consumer_asks_brokers_to_hold_a_fetch_at_most_the_setting(
    wait_ms: int,
) -> None:
    app: Any = faust_app(Settings(consumer_fetch_wait_ms=wait_ms))
    thread = app.consumer._thread
    thread._assignor = app.assignor  # as its start sets it
    consumer = thread._create_worker_consumer(app.transport)
    try:
        assert consumer._fetch_max_wait_ms == wait_ms  # Faust's own is 1500
    finally:
        await consumer.stop()  # never started: releases its client
        thread.thread_loop.close()  # the consumer thread's loop, never run
