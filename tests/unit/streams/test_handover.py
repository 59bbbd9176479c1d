"""The worker's app reads the settings Faust's hand-over needs once, and answers as Faust's
would (streams.handover)."""

from __future__ import annotations

import asyncio
from typing import Any

import faust
import pytest
from faust.types import TP

from stationwatch.settings import Settings
from streams.app import faust_app
from streams.handover import SettledBuffer, StationApp


class CountedEvent(faust.Event):
    pass


def test_events_are_made_of_the_app_s_event_class() -> None:
    app = StationApp("handover-test", Event=CountedEvent)
    message: Any = faust.types.Message("t", 0, 3, 0.0, 0, [], b"k", b"v", None, None, tp=TP("t", 0))
    event = app.create_event(b"k", b"v", [], message)
    assert type(event) is CountedEvent
    assert (event.key, event.value, event.message) == (b"k", b"v", message)


def test_the_worker_s_producer_keeps_its_messages_in_a_settled_buffer() -> None:
    app = faust_app(Settings())
    assert isinstance(app, StationApp)
    buffer = app.producer.buffer
    assert isinstance(buffer, SettledBuffer)
    assert buffer.app is app


@pytest.mark.parametrize("threaded", [False, True])
async def test_the_settled_buffer_counts_what_waits_as_faust_s_does(threaded: bool) -> None:
    app = StationApp("handover-test", producer_threaded=threaded)
    settled, faust_s = SettledBuffer(), faust.transport.producer.ProducerBuffer()
    waiting: list[asyncio.Queue[Any]] = []
    for buffer in (settled, faust_s):
        buffer.app = app
        if threaded:
            buffer.queue = asyncio.Queue()
        waiting.append(buffer.queue if buffer.queue is not None else buffer.pending)
    assert settled.size == faust_s.size == 0
    for n in range(1, 4):
        for queue in waiting:
            queue.put_nowait(object())
        assert settled.size == faust_s.size == n
