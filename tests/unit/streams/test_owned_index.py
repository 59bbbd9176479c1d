"""After a rebalance the worker indexes the stations it now owns a part of a partition at a time
(streams.owned.index_owned_stations): every one scheduled, fed to the API server and queued for
the station_current re-sync; a rebalance arriving between two parts stops it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from faust.types import TP
from prometheus_client import CollectorRegistry

from schemas.topics import HEARTBEAT
from stationwatch.db.sink import TimescaleSink
from stationwatch.metrics import WorkerMetrics
from stationwatch.settings import Settings
from streams import owned
from streams.owned import index_owned_stations
from streams.runtime import Runtime, ingest_config
from streams.state import StationState
from streams.state_codec import encode_state
from streams.store import StationStore
from tests.station_store import close_station_store, open_station_store

SETTINGS = Settings(topic_prefix="t8.", partitions=4)
T0 = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)


@dataclass
class FakeAssignor:
    actives: set[int]

    def assigned_actives(self) -> set[Any]:
        return {TP(SETTINGS.topic(HEARTBEAT), p) for p in self.actives}


@dataclass
class FakeApp:
    assignor: FakeAssignor
    rebalancing: bool = False


@dataclass
class RecordingFeed:
    """What the API server would be sent, as the feed takes it."""

    stations: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    ready_partitions: list[int] | None = None
    resets: int = 0

    def reset(self) -> None:  # as ApiFeed.reset
        self.resets += 1
        self.stations.clear()
        self.ready_partitions = None

    def put_many(self, stations: list[tuple[str, int, bytes]]) -> None:
        self.stations.update((sid, (p, stored)) for sid, p, stored in stations)

    def ready(self, partitions: set[int]) -> None:
        self.ready_partitions = sorted(partitions)


class MemoryTable(dict[str, bytes]):
    """The live table on the memory store, as far as indexing reads it."""

    @property
    def data(self) -> dict[str, bytes]:
        return self


def runtime_with(stations: dict[str, int], actives: set[int]) -> tuple[Runtime, RecordingFeed]:
    """A runtime whose live table (a plain mapping) holds ``stations`` (id → partition), each
    stored due an hour from ``T0``."""
    config = ingest_config(SETTINGS)
    table = MemoryTable(
        (sid, encode_state(StationState(sid, partition=p), T0 + timedelta(hours=1), config.basis))
        for sid, p in stations.items()
    )
    registry = CollectorRegistry()
    runtime = Runtime(
        SETTINGS,
        FakeApp(FakeAssignor(actives)),  # type: ignore[arg-type]
        table,
        TimescaleSink(SETTINGS.dsn),  # never connects
        WorkerMetrics.create(registry),
        registry,
        config,
    )
    runtime.recovered = True
    feed = RecordingFeed()
    runtime.feed = feed  # type: ignore[assignment]
    return runtime, feed


STATIONS = {"A": 0, "B": 0, "C": 1, "D": 2, "E": 3}


async def test_every_owned_station_is_scheduled_fed_and_queued_for_the_resync() -> None:
    runtime, feed = runtime_with(STATIONS, actives={0, 1, 2})
    assert await index_owned_stations(runtime)
    assert runtime.indexed
    owned = {"A", "B", "C", "D"}  # E's partition is another worker's
    assert set(feed.stations) == owned
    assert feed.ready_partitions == [0, 1, 2]
    assert set(runtime.current_resync) == owned
    due = (T0 + timedelta(hours=1)).timestamp()
    assert {s: runtime.due.due(s) for s in owned} == dict.fromkeys(owned, due)
    assert runtime.due.pop_due(0, T0 + timedelta(hours=1), limit=10) == ["A", "B"]


async def test_a_rebalance_between_two_partitions_stops_the_indexing() -> None:
    runtime, feed = runtime_with(STATIONS, actives={0, 1, 2})

    async def rebalance() -> None:  # completes while the first partition's yield lasts
        runtime.assignments += 1

    task = asyncio.ensure_future(rebalance())
    assert not await index_owned_stations(runtime)
    await task
    assert not runtime.indexed
    assert feed.ready_partitions is None  # the server is never told it has them all
    assert set(feed.stations) <= {"A", "B"}  # at most the first partition went out


async def test_a_revocation_stops_the_indexing() -> None:
    runtime, feed = runtime_with(STATIONS, actives={0, 1})

    async def revoke() -> None:
        runtime.recovered = False

    task = asyncio.ensure_future(revoke())
    assert not await index_owned_stations(runtime)
    await task
    assert not runtime.indexed
    assert feed.ready_partitions is None


async def test_a_server_started_while_indexing_is_sent_every_station() -> None:
    runtime, feed = runtime_with(STATIONS, actives={0, 1, 2})

    async def new_server() -> None:  # the feed starts a new server: it forgets what was put
        feed.reset()

    task = asyncio.ensure_future(new_server())
    assert await index_owned_stations(runtime)
    await task
    assert set(feed.stations) == {"A", "B", "C", "D"}
    assert feed.ready_partitions == [0, 1, 2]


@dataclass
class DiskTable:
    """The live table on disk (streams.store), as far as indexing reads it."""

    data: StationStore


@pytest.fixture
def disk_store(tmp_path: Path) -> Iterator[StationStore]:
    store = open_station_store(tmp_path, SETTINGS.partitions)
    yield store
    close_station_store(store)


async def test_a_partition_on_disk_is_indexed_a_part_at_a_time_each_part_read_when_reached(
    disk_store: StationStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between two parts the agent runs: a station it writes in a part not read yet is
    scheduled as it wrote it, one in a part already read keeps the agent's own schedule."""
    monkeypatch.setattr(owned, "INDEX_PART", 2)
    runtime, feed = runtime_with({}, actives={0, 1})
    runtime.table = DiskTable(disk_store)
    basis = runtime.config.basis
    hour, two_hours = T0 + timedelta(hours=1), T0 + timedelta(hours=2)

    def store(sid: str, partition: int, due: datetime) -> bytes:
        value = encode_state(StationState(sid, partition=partition), due, basis)
        disk_store.write_partition(partition, [(disk_store.station_key(sid), value)])
        return value

    for n in range(5):  # three parts: S0 S1 | S2 S3 | S4
        store(f"S{n}", 0, hour)
    store("T0", 1, hour)

    async def agent() -> None:  # runs in the turn the indexing gives after its first part
        assert set(feed.stations) == {"S0", "S1"}
        store("S4", 0, two_hours)  # not read yet
        store("S0", 0, two_hours)  # read already: the agent schedules it itself
        runtime.due.schedule("S0", 0, two_hours, "online")

    task = asyncio.ensure_future(agent())
    async with asyncio.timeout(10):
        assert await index_owned_stations(runtime)
        await task
    assert set(feed.stations) == {"S0", "S1", "S2", "S3", "S4", "T0"}
    assert feed.ready_partitions == [0, 1]
    assert runtime.due.due("S4") == two_hours.timestamp()  # read with the agent's write
    assert runtime.due.due("S0") == two_hours.timestamp()
    assert runtime.due.due("S1") == hour.timestamp()
    assert len(runtime.due.heaps[0]) == 5  # compacted: S0's superseded entry is gone
    due = runtime.due.pop_due(0, two_hours, limit=10)
    assert due == ["S1", "S2", "S3", "S0", "S4"]  # in due order: sorted


def test_a_partition_is_read_a_part_at_a_time_in_key_order(disk_store: StationStore) -> None:
    for sid in ["B", "D", "A", "C", "E"]:
        disk_store.write_partition(2, [(disk_store.station_key(sid), sid.encode())])
    parts, after = [], None
    while True:
        part, after = disk_store.partition_part(2, after, 2)
        parts.append([sid for sid, _, _ in part])
        if after is None:
            break
    assert parts == [["A", "B"], ["C", "D"], ["E"]]
    disk_store.write_partition(2, [(disk_store.station_key("F"), b"F")])
    first, after = disk_store.partition_part(2, None, 3)
    assert [sid for sid, _, _ in first] == ["A", "B", "C"]
    disk_store.write_partition(2, [(disk_store.station_key("C"), None)])  # removed meanwhile
    second, after = disk_store.partition_part(2, after, 3)
    assert [sid for sid, _, _ in second] == ["D", "E", "F"]
    assert after is None  # exactly a part's worth left: no empty part after it
    assert disk_store.partition_part(3, None, 2) == ([], None)  # nothing stored there
