"""A heartbeat from the future never keeps a dead station online: beyond the clock-skew bound
it is dead-lettered; within it, it counts as heard when it was received."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stationwatch.broker import EmbeddedBroker
from tests.factories import dumps, heartbeat, profile
from tests.integration.alerts_reader import TopicCollector
from tests.integration.harness import WorkerProcess, wait_for
from tests.integration.test_liveness import (
    OFFLINE_AFTER,
    count_of,
    ids,
    liveness_env,
    running_fleet,
    wait_online,
)

pytestmark = pytest.mark.integration


async def test_a_heartbeat_from_the_future_does_not_keep_a_silent_station_online(
    broker: EmbeddedBroker, database_url: str, tmp_path: Path, unique: str
) -> None:
    env = liveness_env(broker, database_url, unique, tmp_path / "data")
    prefix = env["STATIONWATCH_TOPIC_PREFIX"]
    beyond, within = ids(unique, "F", 2)
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        await worker.wait_healthy()
        async with (
            TopicCollector(broker.url, prefix + "station.alerts") as alerts,
            TopicCollector(broker.url, prefix + "station.deadletter") as letters,
            running_fleet(broker, prefix) as fleet,
        ):
            await fleet.register(profile(s, heartbeat_interval_s=1) for s in (beyond, within))
            fleet.beating.update((beyond, within))
            await wait_online(worker, [beyond, within])
            fleet.beating.clear()
            now = datetime.now(UTC)
            # the last words of each: one an hour ahead (past the 300 s bound), one 200 s ahead
            for sid, ahead in ((beyond, timedelta(hours=1)), (within, timedelta(seconds=200))):
                await fleet.producer.send(
                    "station.heartbeat", sid, dumps(heartbeat(sid, now + ahead, 10_000))
                )
            await fleet.producer.flush()
            silent_since = time.monotonic()

            async def both_offline() -> bool:
                return count_of(alerts, "offline", "firing") >= 2

            await wait_for(both_offline, timeout_s=OFFLINE_AFTER + 10, what="both offline")
            took = time.monotonic() - silent_since
            assert took < OFFLINE_AFTER + 5, took
            assert {a["station_id"] for a in alerts.records if a["kind"] == "offline"} == {
                beyond,
                within,
            }

            async def dead_lettered() -> bool:
                return any(letter["key"] == beyond for letter in letters.records)

            await wait_for(dead_lettered, timeout_s=10, what="the far-future heartbeat refused")
            letter = next(x for x in letters.records if x["key"] == beyond)
            assert "in the future" in letter["error"]
            assert not any(x["key"] == within for x in letters.records)
            state = (await worker.get(f"/stations/{within}")).json()
            heard = datetime.fromisoformat(state["last_heartbeat_at"])
            assert heard <= datetime.now(UTC)  # counted as heard on receipt, not 200 s ahead
    finally:
        worker.stop()
