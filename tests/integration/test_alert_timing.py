"""Pending and keep-firing times in the running worker: a head count over capacity for longer
than the pending time, then hovering around it, is one episode; a short spike is none."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stationwatch.broker import EmbeddedBroker
from tests.factories import dumps, occupancy, profile
from tests.integration.alerts_reader import TopicCollector
from tests.integration.harness import Producer, WorkerProcess, wait_for
from tests.integration.test_liveness import ids, liveness_env

pytestmark = pytest.mark.integration

PENDING_S, KEEP_S = 3, 2


async def test_hovering_occupancy_is_one_episode_and_a_spike_none(
    broker: EmbeddedBroker, database_url: str, tmp_path: Path, unique: str
) -> None:
    env = liveness_env(broker, database_url, unique, tmp_path / "data")
    env["STATIONWATCH_ALERT_PENDING_S"] = f'{{"over_capacity": {PENDING_S}}}'
    env["STATIONWATCH_ALERT_KEEP_FIRING_S"] = f'{{"over_capacity": {KEEP_S}}}'
    prefix = env["STATIONWATCH_TOPIC_PREFIX"]
    hovering, spike = ids(unique, "H", 2)
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        await worker.wait_healthy()
        async with (
            TopicCollector(broker.url, prefix + "station.alerts") as alerts,
            Producer(broker.url, prefix) as producer,
        ):

            async def count(sid: str, occupants: int) -> None:
                message = occupancy(sid, datetime.now(UTC), occupants, capacity=None)
                await producer.send("station.occupancy", sid, dumps(message))
                await producer.flush()

            for sid in (hovering, spike):
                body = profile(sid, capacity=10, heartbeat_interval_s=None)
                await producer.send("station.registry", sid, dumps(body))
            await count(spike, 15)  # over for a moment only
            await count(hovering, 12)
            await asyncio.sleep(1)  # the spike lasts one second
            await count(spike, 5)
            await asyncio.sleep(PENDING_S + 1)  # over for longer than the pending time
            # then hovering: a dip of half a second, over again … for 6 s
            for _ in range(6):
                await asyncio.sleep(0.5)
                await count(hovering, 9)
                await asyncio.sleep(0.5)
                await count(hovering, 11)
            await count(hovering, 3)

            async def resolved() -> bool:
                return any(a["state"] == "resolved" for a in alerts.records)

            await wait_for(resolved, timeout_s=20, what="the hovering episode to resolve")
            # An observation window: a second episode or a spike alert would arrive in it.
            await asyncio.sleep(PENDING_S + KEEP_S)
        sent = [(a["station_id"], a["kind"], a["state"]) for a in alerts.records]
        assert sent == [
            (hovering, "over_capacity", "firing"),
            (hovering, "over_capacity", "resolved"),
        ]
        firing, ended = alerts.records
        length = datetime.fromisoformat(ended["ends_at"]) - datetime.fromisoformat(
            firing["starts_at"]
        )
        assert length.total_seconds() >= PENDING_S
    finally:
        worker.stop()
