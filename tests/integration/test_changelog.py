"""The live table written a batch at a time (streams.changelog), against the real broker: the
store holds each station's newest state, the changelog holds every write in order (a removal
as a tombstone), the broker's end offsets count every record (the last one of a batch goes
alone), and the store keeps the offset a restarted worker reads the changelog again from."""

from __future__ import annotations

import time
from pathlib import Path

import faust
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.types import TP

from stationwatch.broker import EmbeddedBroker, bootstrap_servers, ensure_topics
from stationwatch.settings import Settings
from streams.changelog import BATCH_BYTES, TableWrite, TableWriter
from streams.output import OutputProducer
from streams.runtime import add_station_table
from streams.store import StationStore

pytestmark = pytest.mark.integration

PARTITIONS = 3


async def writer_for(broker: EmbeddedBroker, unique: str, datadir: Path) -> TableWriter:
    """A worker's live table (RocksDB in ``datadir``), its changelog topic on the broker, and
    the writer of both."""
    app_id = f"changelog-{unique}"
    app = faust.App(
        app_id,
        broker=broker.url,
        store="rocksdb://",
        datadir=str(datadir),
        key_serializer="raw",  # as the worker's (streams.app)
        value_serializer="raw",
    )
    table = add_station_table(app, PARTITIONS)
    await ensure_topics(broker.url, [table.changelog_topic.get_topic_name()], PARTITIONS)
    producer = OutputProducer(
        Settings(kafka=broker.url, app_id=app_id), name="changelog", batch_bytes=BATCH_BYTES
    )
    return TableWriter(table, producer)


async def changelog(
    broker: EmbeddedBroker, topic: str, count: int
) -> tuple[dict[int, list[tuple[str, bytes | None]]], dict[int, int]]:
    """Every record of the changelog by partition, in order (keys as Faust encodes a table's
    keys: JSON); and the broker's end offsets."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap_servers(broker.url), auto_offset_reset="earliest"
    )
    await consumer.start()
    found: dict[int, list[tuple[str, bytes | None]]] = {}
    try:
        deadline = time.monotonic() + 30
        while sum(map(len, found.values())) < count and time.monotonic() < deadline:
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                found.setdefault(tp.partition, []).extend(
                    (orjson.loads(r.key), r.value) for r in records if r.key is not None
                )
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends = {tp.partition: end for tp, end in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()
    return found, ends


async def test_each_write_is_stored_and_on_the_changelog_with_its_offset_kept(
    broker: EmbeddedBroker, unique: str, tmp_path: Path
) -> None:
    writer = await writer_for(broker, unique, tmp_path)
    store: StationStore = writer.table.data
    stations = [f"SY-{n:04d}" for n in range(1, 401)]
    first = [TableWrite(sid, n % PARTITIONS, f"{sid}:1".encode()) for n, sid in enumerate(stations)]
    second = [
        TableWrite(sid, n % PARTITIONS, f"{sid}:2".encode()) for n, sid in enumerate(stations)
    ]
    try:
        await writer.write(first)
        await writer.write([*second[:200], TableWrite("SY-0003", 2, None)])
    finally:
        await writer.producer.stop()

    topic = writer.table.changelog_topic.get_topic_name()
    found, ends = await changelog(broker, topic, 601)
    assert sum(map(len, found.values())) == 601
    for partition, records in found.items():
        assert ends[partition] == len(records)  # the broker counts every record
        persisted = store.persisted_offset(TP(topic, partition))
        assert persisted == len(records) - 1  # a restart reads the changelog from here on
        newest = dict(records)
        assert all(n % PARTITIONS == partition for n in (stations.index(k) for k in newest))
        for key, value in newest.items():
            assert store.fetch(key, partition) == value
    newest_of = {k: v for records in found.values() for k, v in records}
    assert newest_of["SY-0001"] == b"SY-0001:2"  # the second write of the first 200
    assert newest_of["SY-0300"] == b"SY-0300:1"
    assert newest_of["SY-0003"] is None  # removed: a tombstone
    assert store.fetch("SY-0003", 2) is None


async def test_a_station_whose_records_move_is_stored_once(
    broker: EmbeddedBroker, unique: str, tmp_path: Path
) -> None:
    writer = await writer_for(broker, unique, tmp_path)
    store: StationStore = writer.table.data
    try:
        await writer.write([TableWrite("SY-0001", 0, b"old")])
        store._key_index.clear()  # as after a restart
        await writer.write([TableWrite("SY-0001", 1, b"new")])
    finally:
        await writer.producer.stop()
    assert list(store.partition_items({0, 1, 2})) == [("SY-0001", 1, b"new")]


async def test_many_stations_are_read_at_once_as_each_would_be_alone(
    broker: EmbeddedBroker, unique: str, tmp_path: Path
) -> None:
    """fetch_many: a station kept where its record arrived, kept in another partition's
    database (moved, or seen there first), known there by the key index or not (a restart),
    or kept nowhere; each found, and kept once after its next write (that each is found as
    it would be alone: tests/unit/streams/test_store.py)."""
    writer = await writer_for(broker, unique, tmp_path)
    store: StationStore = writer.table.data
    try:
        await writer.write(
            [
                TableWrite("SY-0001", 0, b"home"),
                TableWrite("SY-0002", 1, b"moved"),
                TableWrite("SY-0003", 2, b"moved, unindexed"),
            ]
        )
        store._key_index.pop(b'"SY-0003"')  # as after a restart
        wanted = {"SY-0001": 0, "SY-0002": 0, "SY-0003": 0, "SY-0004": 1}
        assert store.fetch_many(wanted) == {
            "SY-0001": b"home",
            "SY-0002": b"moved",
            "SY-0003": b"moved, unindexed",
            "SY-0004": None,
        }
        assert store.fetch_many({}) == {}
        await writer.write([TableWrite(k, p, f"{k} at {p}".encode()) for k, p in wanted.items()])
    finally:
        await writer.producer.stop()
    assert sorted(store.partition_items({0, 1, 2})) == [
        ("SY-0001", 0, b"SY-0001 at 0"),
        ("SY-0002", 0, b"SY-0002 at 0"),
        ("SY-0003", 0, b"SY-0003 at 0"),
        ("SY-0004", 1, b"SY-0004 at 1"),
    ]
