"""Records the worker's consumer went past without handing them to the ingest agent.

Kafka's offsets are contiguous but for a transactional producer's markers, yet Faust's consumer
can skip records: its fetcher starts before the partitions are sought to their committed
offsets, and it drops every record below the offset it last read — a record fetched before the
seek moves that mark past records it then drops (faust-streaming issues 216 and 221). Faust
counts the jump as an offset gap and commits past it, so the skipped records would be lost.

The agent sees the hole (:func:`streams.batch.fold_and_judge`: a partition's next record
beyond the one expected; after a rebalance, beyond the group's committed offset:
:mod:`streams.resume`) and reads the skipped offsets again here, from the broker, with a client
of its own; they are folded before the record that showed the hole, in order. The same
early fetch makes a worker's first records come from before its committed offsets and then
jump to them: such a jump reads again records already processed, which folding ignores — up to
``MAX_HOLE`` offsets; a longer jump is taken as that seek.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.types import TP

READ_TIMEOUT_S = 5.0  # longest wait for the skipped records of one hole
# A jump longer than this is not records dropped (at most what one fetch prefetched) but a
# seek: a worker's first records, fetched before the seek to the committed offsets, and then
# the committed offset itself. What lies between was processed before.
MAX_HOLE = 10_000


@dataclass(frozen=True)
class ReadMessage:
    """What the agent reads of a consumed message, for a record read again."""

    topic: str
    partition: int
    offset: int
    timestamp: float  # seconds, as Faust gives it

    @property
    def tp(self) -> TP:
        return TP(self.topic, self.partition)


@dataclass(frozen=True)
class ReadAgain:
    """The stand-in for a Faust event of a record read again."""

    message: ReadMessage
    key: bytes | None
    value: bytes | None


async def read_again(
    reader: AIOKafkaConsumer, topic: str, partition: int, first: int, end: int
) -> list[ReadAgain]:
    """The records at offsets ``first`` to ``end - 1`` of a partition (fewer where there are
    none: a transactional producer's markers), read from the broker."""
    tp = TopicPartition(topic, partition)
    reader.assign([tp])
    reader.seek(tp, first)
    found: list[ReadAgain] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READ_TIMEOUT_S
    reached = first - 1
    while reached < end - 1:
        left = deadline - loop.time()
        if left <= 0:
            raise TimeoutError(f"{topic}/{partition}: offsets {first}..{end - 1} not read")
        batch: dict[Any, list[Any]] = await reader.getmany(
            tp, timeout_ms=int(min(left, 1.0) * 1000), max_records=max(end - first, 1)
        )
        for record in batch.get(tp, []):
            reached = max(reached, record.offset)
            if first <= record.offset < end:
                message = ReadMessage(topic, partition, record.offset, record.timestamp / 1000)
                found.append(ReadAgain(message, record.key, record.value))
    return sorted(found, key=lambda item: item.message.offset)


async def last_offset(
    reader: AIOKafkaConsumer, topic: str, partition: int, first: int, timeout_s: float
) -> int | None:
    """The offset of the last record of a partition, from the high-water mark of a fetch at
    offset ``first`` (None when nothing is found there within ``timeout_s``). The reader is
    left assigned to nothing."""
    tp = TopicPartition(topic, partition)
    reader.assign([tp])
    try:
        reader.seek(tp, first)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while (left := deadline - loop.time()) > 0:
            batch: dict[Any, list[Any]] = await reader.getmany(
                tp, timeout_ms=int(min(left, 1.0) * 1000)
            )
            offsets: list[int] = [record.offset for record in batch.get(tp, [])]
            if offsets:
                highwater: int | None = reader.highwater(tp)
                return max(*offsets, highwater - 1) if highwater is not None else max(offsets)
        return None
    finally:
        reader.unsubscribe()
