"""The live table written a batch at a time: the stations' new states to the store at once,
then to the table's changelog, one batch per partition, delivered before the batch of input
is acknowledged.

Why not ``table[key] = value``: Faust sends each write to the changelog on its own, a future
through its producer buffer, a send and a callback that writes the partition's changelog
offset to RocksDB, per record; at saturation that was about a fifth of the worker's time, as
much again as folding and judging the heartbeats. Here a batch's states of one partition
are one RocksDB write and one producer batch, and the partition's offset is written once.

What stays as Faust does it: the changelog topic, its records (the station id as key, the
stored state as value, a tombstone when a station leaves the registry), the partition of
each (the one the station's records arrive on), and the offset kept with the store, from
which a restarted worker reads the changelog again. A crash between the store's write and
the changelog's delivery leaves the batch unacknowledged, so its input is processed again.

The last record of each partition goes in a batch of its own: a broker's end offset of a
partition is then right even where it counts only the first record of the newest batch (the
embedded broker does), and a table recovery reads the changelog up to that end offset. A
worker killed between a batch and that last record leaves the batch last; the recovery then
finds the real end itself (:class:`streams.runtime.EndCheckedRecovery`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import Any

import msgspec
from faust.types import TP

from streams.output import OutputProducer
from streams.store import StationStore

BATCH_BYTES = 512 * 1024  # at most, per producer batch (under Kafka's 1 MB message limit)


class TableWrite(msgspec.Struct, frozen=True):
    """One station's state for the live table (a struct: one per changed station and batch)."""

    station_id: str
    partition: int
    value: bytes | None  # the state as stored; None: the station is removed


class TableWriter:
    """Writes the live table (``table``: a :class:`streams.runtime.StationTable`) through
    its own producer (``producer``), started on first use and stopped with the worker."""

    def __init__(self, table: Any, producer: OutputProducer) -> None:
        self.table = table
        self.producer = producer

    async def write(self, writes: Iterable[TableWrite]) -> None:
        """Store every write, then send it to the changelog and wait until the broker has it;
        then each partition's changelog offset is kept with the store."""
        store = self.table.data
        encode = store.station_key if isinstance(store, StationStore) else store._encode_key
        by_partition: dict[int, list[tuple[bytes, bytes | None]]] = {}
        for write in writes:
            key = encode(write.station_id)
            by_partition.setdefault(write.partition, []).append((key, write.value))
            if not isinstance(store, StationStore):  # memory://: a dict of station ids
                if write.value is None:
                    store.pop(write.station_id, None)
                else:
                    store[write.station_id] = write.value
        if not by_partition:
            return
        if isinstance(store, StationStore):
            for partition, records in by_partition.items():
                store.write_partition(partition, records)
        topic = self.table.changelog_topic.get_topic_name()
        deliveries: dict[int, list[Awaitable[tuple[int, int]]]] = {}
        for part in (slice(None, -1), slice(-1, None)):  # the last record alone (see above)
            for partition, records in by_partition.items():
                if records[part]:
                    sent = await self.producer.send_records(topic, partition, records[part])
                    deliveries.setdefault(partition, []).extend(sent)
        for partition, sent in deliveries.items():
            first, count = (await asyncio.gather(*sent))[-1]
            if isinstance(store, StationStore) and partition not in store._dbs:
                continue  # revoked meanwhile: its database is closed
            store.set_persisted_offset(TP(topic, partition), first + count - 1)
