"""The worker's producers of its outputs (alerts, dead letters) and of its live table's
changelog (:mod:`streams.changelog`), apart from Faust's producer.

Faust's producer sends in batches of at most ``PRODUCER_MAX_BATCH_BYTES``; on the embedded
broker that is one record per batch. A producer sends one request at a time to a broker and
waits for the partition's pending batch to leave before it starts the next one there: with
one record per batch, the 500 alerts of a street losing power went out about 60 round trips
one after the other (0.6 s and more before the last one was on the topic). Here outputs go in
batches of ordinary size (they are read by consumers only, never recovered from their end
offsets), and the changelog in batches as large as a batch of input makes.

Same guarantees as before: acknowledged by every in-sync replica, ordered per station (the key
picks the partition, as Faust's producer did), and a batch's offsets move only once its
outputs are delivered (:func:`streams.batch.send_alerts` awaits them).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from stationwatch.errors import BrokerUnavailableError, WorkerStoppingError
from stationwatch.kafka_auth import start_producer
from stationwatch.settings import Settings

logger = logging.getLogger(__name__)

BATCH_BYTES = 16_384  # aiokafka's default
# A send is retried (by aiokafka) this long before it fails: Faust's own producer waits as
# long (producer_request_timeout), so an output is never given up while the broker is away.
REQUEST_TIMEOUT_MS = 1_200_000
RETRY_S = 1.0


class OutputProducer:
    """Started on first use (a batch may come before the worker's own services have started),
    stopped with the worker (:meth:`stop`): what was handed over is delivered first.

    ``name``: what it carries (its client id, and its log lines); ``batch_bytes``: the largest
    batch it sends."""

    def __init__(
        self, settings: Settings, *, name: str = "outputs", batch_bytes: int = BATCH_BYTES
    ) -> None:
        self.settings = settings
        self.name = name
        self.batch_bytes = batch_bytes
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()
        self._stopping = False

    async def _started(self) -> AIOKafkaProducer:
        """The producer; while the broker does not answer, tried again each second (Faust's
        producer waits likewise) until it does or the worker stops."""
        async with self._lock:
            while self._producer is None:
                if self._stopping:
                    raise WorkerStoppingError("the output producer is stopped")
                try:
                    self._producer = await start_producer(
                        self.settings,
                        client_id=f"{self.settings.app_id}-{self.name}",
                        acks="all",
                        max_batch_size=self.batch_bytes,
                        request_timeout_ms=REQUEST_TIMEOUT_MS,
                    )
                except BrokerUnavailableError as exc:
                    logger.warning("the %s producer waits for the broker: %s", self.name, exc)
                    await asyncio.sleep(RETRY_S)
            return self._producer

    async def send(self, topic: str, key: bytes | None, value: bytes) -> Awaitable[Any]:
        """Hand one record to the producer; returns its delivery, to await."""
        producer = await self._started()
        try:
            delivery: Awaitable[Any] = await producer.send(topic, value, key=key)
        except KafkaError as exc:
            if self._stopping:
                raise WorkerStoppingError(f"stopping while sending to {topic}") from exc
            raise
        return delivery

    async def send_records(
        self, topic: str, partition: int, records: list[tuple[bytes, bytes | None]]
    ) -> list[Awaitable[tuple[int, int]]]:
        """Hand ``records`` (key, value; a value of None is a tombstone) to the producer for
        one partition, in order, in as few batches as they fit; returns the deliveries of the
        batches, each the batch's first offset and its number of records."""
        producer = await self._started()
        deliveries: list[Awaitable[tuple[int, int]]] = []
        builder = producer.create_batch()
        for key, value in records:
            if builder.append(key=key, value=value, timestamp=None) is None:  # full
                deliveries.append(await self._send_batch(producer, builder, topic, partition))
                builder = producer.create_batch()
                if builder.append(key=key, value=value, timestamp=None) is None:
                    # a first record always fits (aiokafka); never drop one unsaid
                    raise ValueError(f"a record of {topic} does not fit in an empty batch")
        if builder.record_count():
            deliveries.append(await self._send_batch(producer, builder, topic, partition))
        return deliveries

    async def _send_batch(
        self, producer: AIOKafkaProducer, builder: Any, topic: str, partition: int
    ) -> Awaitable[tuple[int, int]]:
        count = builder.record_count()
        try:
            delivery = await producer.send_batch(builder, topic, partition=partition)
        except KafkaError as exc:
            if self._stopping:
                raise WorkerStoppingError(f"stopping while sending to {topic}") from exc
            raise

        async def delivered() -> tuple[int, int]:
            return (await delivery).offset, count

        return delivered()

    async def stop(self) -> None:
        """Deliver what was handed over, then close; later sends raise WorkerStoppingError."""
        self._stopping = True
        async with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()
