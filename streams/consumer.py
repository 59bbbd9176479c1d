"""The worker's Kafka consumer: Faust's, with the time a broker may hold a fetch as a setting
(``STATIONWATCH_CONSUMER_FETCH_WAIT_MS``), each fetched message handed to the streams
without a race of tasks when it need not wait (:mod:`streams.eager`), and a partition paused
for a full stream buffer fetched again as soon as it is resumed.

Faust asks the broker to hold each fetch up to 1.5 s while no record is waiting for it. Apache
Kafka answers a held fetch as soon as a record arrives. The embedded broker answers it only
when that time is up, so a record arriving at a quiet moment (a liveness tick, the heartbeat
after a lull) reached the worker up to 1.5 s late: measured on it, 260 to 380 ms per record
with 1.5 s, 15 ms with 100 ms. That delay was the larger part of the time from a station's
offline threshold to its alert. On Apache Kafka a shorter wait only means more empty fetches
while nothing arrives (ten a second at 100 ms).
"""

from __future__ import annotations

import inspect
from typing import Any

import faust
from faust.transport.drivers import aiokafka as driver
from mode.services import WaitArgT, WaitResults
from mode.utils.times import Seconds

from streams.eager import Finished, step

# When the stream's buffer fills, Faust stops fetching the partitions that fill it
# (``on_buffer_full``) and resumes them once the buffer has emptied to 40% (``on_buffer_drop``).
# Its fetcher meanwhile asks for the partitions still active (the quiet ones: ticks, registry)
# and waits up to 1 s for their records; a partition resumed during that wait comes back only
# with the next records of another partition, or at the end of the wait; with every partition
# paused, Faust sleeps 1 s. A saturated worker's stream stood idle 0.2 to 1 s every four to six
# batches, about a third of its time. While any partition waits to be resumed, the fetcher
# waits at most this long (the records aiokafka fetched ahead for a paused partition are kept,
# and come with the first fetch after it is resumed).
RESUME_WAIT_S = 0.02


def install_consumer(app: faust.App, fetch_wait_ms: int) -> None:
    """Make the consumer ``app`` creates ask brokers to hold a fetch at most
    ``fetch_wait_ms``, and hand each message over at once. Before the app starts; a
    transport other than aiokafka is left as it is."""
    transport: Any = app.transport
    if not issubclass(transport.Consumer, driver.Consumer):
        return

    class ConsumerThread(driver.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: Any) -> Any:
            consumer = super()._create_worker_consumer(transport)
            # read by the consumer when it starts (aiokafka has no setter; Faust fixes 1500)
            consumer._fetch_max_wait_ms = fetch_wait_ms
            return consumer

    class Consumer(transport.Consumer):  # type: ignore[misc] # a class known at run time
        def _new_consumer_thread(self) -> ConsumerThread:
            return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

        def _waiting_to_resume(self) -> bool:
            """Whether a partition of the assignment is paused for a full stream buffer
            (Faust leaves a revoked one in its set, makes one assigned again active, and
            while it recovers the tables keeps the streams' partitions paused itself)."""
            full: set[Any] = self._buffered_partitions
            if not full:
                return False
            waiting = (full & self.assignment()) - self._get_active_partitions()
            return bool(waiting - self._paused_partitions)

        async def _getmany(
            self,
            active_partitions: set[Any] | None,
            timeout: float,  # noqa: ASYNC109 - Faust's signature
        ) -> Any:
            """Faust's fetch of the active partitions; while a partition is paused for a full
            stream buffer, waiting at most ``RESUME_WAIT_S`` (see there)."""
            if self._waiting_to_resume():
                timeout = min(timeout, RESUME_WAIT_S)
            return await super()._getmany(active_partitions, timeout)

        async def _wait_next_records(
            self,
            timeout: float,  # noqa: ASYNC109 - Faust's signature
        ) -> tuple[Any, set[Any] | None]:
            """Faust's wait for the next records; with every partition paused for a full
            stream buffer, looking again after ``RESUME_WAIT_S``, not Faust's 1 s."""
            if (
                self.flow_active
                and not self.app.client_only
                and not self._get_active_partitions()
                and self._waiting_to_resume()
            ):
                await self.sleep(RESUME_WAIT_S)
                return {}, self._get_active_partitions()
            records, active = await super()._wait_next_records(timeout)
            return records, active

        async def wait_first(
            self,
            *coros: WaitArgT,
            timeout: Seconds | None = None,  # noqa: ASYNC109 - mode's signature
        ) -> Any:
            """Faust's drain calls this once per message: ``callback(message)`` raced
            with the flow's suspension, the consumer's stop and its crash. The callback runs
            at once; only if it has to wait (a full stream buffer) is the rest of it raced
            as before."""
            first = coros[0] if coros else None
            stopping = self._stopped.is_set() or self._crashed.is_set()  # the race: stopped
            if timeout is None and not stopping and inspect.iscoroutine(first):
                started = step(first)
                if isinstance(started, Finished):
                    for other in coros[1:]:  # never started: closed, as the race would
                        if inspect.iscoroutine(other):
                            other.close()
                    return WaitResults([first], [started.value], False)
                coros = (started, *coros[1:])
            return await super().wait_first(*coros, timeout=timeout)

    transport.Consumer = Consumer
