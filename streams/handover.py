"""Faust's hand-over of each fetched message to its stream, without reading the app's
settings for every message.

Faust's settings object records every attribute read (``SettingsRegistry.__getattribute__``,
for its warning about settings changed after use), which costs about a microsecond a read.
Two reads happened for every message: the event class (``conf.Event``, in
``App.create_event``) and whether the producer is threaded (``conf.producer_threaded``, in
the producer buffer's ``size``, which the hand-over checks before each message). Both are
fixed once the app is made; here each is read once. Together they were about 2% of a
saturated worker's time.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import faust
from faust.transport.producer import ProducerBuffer
from faust.types import EventT


class StationApp(faust.App):
    """Faust's App, its event class read from the settings once."""

    @cached_property
    def _event_class(self) -> Any:
        return self.conf.Event

    def create_event(self, key: Any, value: Any, headers: Any, message: Any) -> EventT[Any]:
        event: EventT[Any] = self._event_class(self, key, value, headers, message)
        return event


class SettledBuffer(ProducerBuffer):
    """Faust's producer buffer, whether its producer is threaded read once."""

    _threaded: bool | None = None

    @property
    def size(self) -> int:
        """Messages waiting to be produced (as Faust's ``ProducerBuffer.size``)."""
        threaded = self._threaded
        if threaded is None:
            assert self.app is not None  # noqa: S101 - set by the producer that made it
            threaded = self._threaded = bool(self.app.conf.producer_threaded)
        if threaded:
            return len(self.queue._queue) if self.queue else 0  # type: ignore[attr-defined]
        return len(self.pending._queue)  # type: ignore[attr-defined]


def install_settled_buffer(app: faust.App) -> None:
    """Make the producer ``app`` creates keep its messages in a :class:`SettledBuffer`.
    Before the app starts."""
    transport: Any = app.transport

    class Producer(transport.Producer):  # type: ignore[misc] # a class known at run time
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # not started yet: replaced by one alike
            made: Any = self.buffer  # type: ignore[has-type]
            settled = SettledBuffer(loop=self.loop, beacon=self.beacon)
            if hasattr(made, "threaded_producer"):
                settled.threaded_producer = made.threaded_producer
            settled.app = made.app
            self.buffer = settled

    transport.Producer = Producer
