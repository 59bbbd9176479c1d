"""Stations belong to the partition their records arrive on, whatever their producer's
partitioner: a fleet produced with librdkafka's default (CRC32 of the key) instead of the Java
client's murmur2 is judged and answered for by the right worker, also after a rebalance."""

from __future__ import annotations

import zlib
from collections import Counter
from pathlib import Path

import pytest

from stationwatch.broker import EmbeddedBroker
from streams.tracker import partition_for
from tests.factories import profile
from tests.integration.alerts_reader import TopicCollector
from tests.integration.harness import Producer, WorkerProcess, wait_for
from tests.integration.test_liveness import Fleet, count_of, liveness_env, wait_online

pytestmark = pytest.mark.integration

PARTITIONS = 4


def crc32_partitioner(key: bytes, all_partitions: list[int], available: list[int]) -> int:
    """librdkafka's default partitioner ("consistent_random") for a non-empty key."""
    return all_partitions[zlib.crc32(key) % len(all_partitions)]


def misplaced_ids(token: str, count: int) -> list[str]:
    """Station ids that CRC32 and murmur2 put on different partitions."""
    found: list[str] = []
    i = 0
    while len(found) < count:
        sid = f"CR-{token[:5].upper()}{i:03d}"
        if zlib.crc32(sid.encode()) % PARTITIONS != partition_for(sid, PARTITIONS):
            found.append(sid)
        i += 1
    return found


async def test_a_fleet_partitioned_by_crc32_is_judged_and_answered_across_a_rebalance(
    broker: EmbeddedBroker, database_url: str, tmp_path: Path, unique: str
) -> None:
    env = liveness_env(broker, database_url, unique, tmp_path / "data-a")
    env["STATIONWATCH_PARTITIONS"] = str(PARTITIONS)
    env_b = {**env, "STATIONWATCH_WEB_PORT": str(int(env["STATIONWATCH_WEB_PORT"]) + 1)}
    env_b["STATIONWATCH_DATA_DIR"] = str(tmp_path / "data-b")
    stations = misplaced_ids(unique, 16)
    prefix = env["STATIONWATCH_TOPIC_PREFIX"]
    first = WorkerProcess(env, tmp_path / "a.log").start()
    second = WorkerProcess(env_b, tmp_path / "b.log")
    try:
        await first.wait_healthy()
        async with (
            TopicCollector(broker.url, prefix + "station.alerts") as alerts,
            Producer(broker.url, prefix, partitioner=crc32_partitioner) as producer,
        ):
            fleet = Fleet(producer)
            fleet.start()
            try:
                await fleet.register(profile(s, heartbeat_interval_s=1) for s in stations)
                fleet.beating.update(stations)
                await wait_online(first, stations)
                assert "default Kafka partitioner (murmur2)" in first.log()

                async def counted() -> bool:  # the API server shows the worker's metrics as
                    # of its last status report, up to a second behind the log
                    return await first.metric("stationwatch_partition_mismatches_total") >= 1

                await wait_for(counted, timeout_s=10, what="the mismatches counted")

                second.start()  # a rebalance: some partitions move to the second worker
                await second.wait_healthy()
                await first.wait_healthy()
                owned = [
                    (await first.get("/health")).json()["partitions"],
                    (await second.get("/health")).json()["partitions"],
                ]
                assert all(owned), owned
                for worker in (first, second):  # either worker answers for every station
                    answers = [await worker.get(f"/stations/{s}") for s in stations]
                    assert [a.status_code for a in answers] == [200] * len(stations)
                    assert {a.json()["liveness"] for a in answers} == {"online"}

                fleet.beating.clear()  # every station falls silent: each owner must notice

                async def offline() -> bool:
                    return count_of(alerts, "offline") >= len(stations)

                await wait_for(offline, timeout_s=40, what="every station offline")
                fleet.beating.update(stations)

                async def resolved() -> bool:
                    return count_of(alerts, "offline", "resolved") >= len(stations)

                await wait_for(resolved, timeout_s=40, what="every offline episode resolved")
            finally:
                await fleet.stop()
        episodes = Counter(
            (a["station_id"], a["state"]) for a in alerts.records if a["kind"] == "offline"
        )
        assert set(episodes) == {(s, st) for s in stations for st in ("firing", "resolved")}
        assert set(episodes.values()) == {1}, episodes
        nearby = await second.get("/stations", limit=100)
        listed = {item["station_id"] for item in nearby.json()["items"]}
        assert set(stations) <= listed
    finally:
        first.stop()
        second.stop()
