"""Liveness and alerts end to end: a small fleet with 1-second heartbeats on the real broker and
database, judged by the real worker process(es)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from schemas.registry import WEEKDAYS
from stationwatch.broker import EmbeddedBroker
from tests.factories import dumps, heartbeat, occupancy, profile, status
from tests.integration.alerts_reader import TopicCollector
from tests.integration.harness import Producer, WorkerProcess, wait_for, worker_env

pytestmark = pytest.mark.integration

STALE_AFTER, OFFLINE_AFTER = 3, 6  # intervals of 1 s


def liveness_env(
    broker: EmbeddedBroker, database_url: str, token: str, data: Path
) -> dict[str, str]:
    env = worker_env(kafka_url=broker.url, database_url=database_url, token=token, data_dir=data)
    env.update(
        STATIONWATCH_STALE_AFTER=str(STALE_AFTER),
        STATIONWATCH_OFFLINE_AFTER=str(OFFLINE_AFTER),
        STATIONWATCH_TICK_INTERVAL_S="0.25",
        # every kind fires and resolves at once here; the pending and keep-firing times have
        # tests of their own
        STATIONWATCH_ALERT_PENDING_S="{}",
        STATIONWATCH_ALERT_KEEP_FIRING_S="{}",
    )
    return env


def closed_now_hours() -> dict[str, Any]:
    """Opening hours that are certainly closed for the next hours: one short interval, half a
    day away, on a day that is neither today nor yesterday (no overnight spill)."""
    local = datetime.now(ZoneInfo("Asia/Shanghai"))
    day = WEEKDAYS[(local.weekday() + 3) % 7]
    start = (local + timedelta(hours=12)).replace(minute=0)
    end = start + timedelta(minutes=30)
    return {
        "always_open": False,
        "weekly": {day: [[f"{start:%H:%M}", f"{end:%H:%M}"]]},
        "holidays_open": False,
    }


class Fleet:
    """Sends heartbeats every half second for the stations told to beat."""

    def __init__(self, producer: Producer) -> None:
        self.producer = producer
        self.beating: set[str] = set()
        self.seq: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None

    async def register(self, profiles: Iterable[dict[str, Any]]) -> None:
        for message in profiles:
            await self.producer.send("station.registry", message["station_id"], dumps(message))
        await self.producer.flush()

    async def _run(self) -> None:
        while True:
            now = datetime.now(UTC)
            for sid in sorted(self.beating):
                self.seq[sid] += 1
                await self.producer.send(
                    "station.heartbeat", sid, dumps(heartbeat(sid, now, self.seq[sid]))
                )
            await self.producer.flush()
            await asyncio.sleep(0.5)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


@contextlib.asynccontextmanager
async def running_fleet(broker: EmbeddedBroker, prefix: str) -> AsyncIterator[Fleet]:
    async with Producer(broker.url, prefix) as producer:
        fleet = Fleet(producer)
        fleet.start()
        try:
            yield fleet
        finally:
            await fleet.stop()


def ids(token: str, group: str, count: int) -> list[str]:
    return [f"LV-{group}{token[:5].upper()}{i:02d}" for i in range(count)]


async def wait_online(worker: WorkerProcess, stations: list[str], timeout_s: float = 20) -> None:
    """Until the worker has heard from every one of ``stations`` and judges it online."""

    async def online() -> bool:
        bodies = [(await worker.get(f"/stations/{s}")).json() for s in stations]
        return all(b.get("liveness") == "online" for b in bodies)

    await wait_for(online, timeout_s=timeout_s, what=f"{len(stations)} stations online")


def count_of(alerts: TopicCollector, kind: str, state: str | None = None) -> int:
    """How many alerts of ``kind`` (and ``state``, when given) arrived."""
    return sum(
        1 for a in alerts.records if a["kind"] == kind and (state is None or a["state"] == state)
    )


def alert_rows(database_url: str, stations: list[str]) -> list[tuple[str, str, bool]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT station_id, kind, ends_at IS NOT NULL FROM stationwatch.alerts"
            " WHERE station_id = ANY(%s) ORDER BY station_id, starts_at",
            (stations,),
        ).fetchall()
    return [(r[0], r[1], bool(r[2])) for r in rows]


async def test_only_expected_stations_that_fall_silent_raise_alerts(
    broker: EmbeddedBroker, database_url: str, tmp_path: Path, unique: str
) -> None:
    env = liveness_env(broker, database_url, unique, tmp_path / "data")
    steady, silent = ids(unique, "S", 12), ids(unique, "Q", 6)
    outside, paused, deviceless = ids(unique, "H", 4), ids(unique, "T", 4), ids(unique, "N", 4)
    profiles = [profile(s, heartbeat_interval_s=1) for s in steady + silent]
    profiles += [
        profile(s, heartbeat_interval_s=1, opening_hours=closed_now_hours()) for s in outside
    ]
    profiles += [profile(s, heartbeat_interval_s=1, lifecycle="temporarily_closed") for s in paused]
    profiles += [profile(s, heartbeat_interval_s=None) for s in deviceless]
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    prefix = env["STATIONWATCH_TOPIC_PREFIX"]
    try:
        await worker.wait_healthy()
        async with (
            TopicCollector(broker.url, prefix + "station.alerts") as alerts,
            running_fleet(broker, prefix) as fleet,
        ):
            fleet.beating.update(steady + silent)
            await fleet.register(profiles)
            await wait_online(worker, steady + silent)  # every station heard from
            fleet.beating.difference_update(silent)  # now the silent ones stop

            async def all_offline() -> bool:
                return count_of(alerts, "offline") >= len(silent)

            await wait_for(all_offline, timeout_s=30, what="offline alerts for the silent stations")
            # An observation window, not a synchronisation: nothing else may arrive in it.
            await asyncio.sleep(2)
            for sid in silent:
                assert alerts.of(sid) == [
                    ("stale", "firing"),
                    ("stale", "resolved"),
                    ("offline", "firing"),
                ], sid
            assert {a["station_id"] for a in alerts.records} == set(silent)
            stale = {
                a["station_id"]: a
                for a in alerts.records
                if a["kind"] == "stale" and a["state"] == "firing"
            }
            offline = {a["station_id"]: a for a in alerts.records if a["kind"] == "offline"}
            for sid in silent:
                last = datetime.fromisoformat(offline[sid]["last_heartbeat_at"])
                assert datetime.fromisoformat(stale[sid]["starts_at"]) == last + timedelta(
                    seconds=STALE_AFTER
                )
                assert datetime.fromisoformat(offline[sid]["starts_at"]) == last + timedelta(
                    seconds=OFFLINE_AFTER
                )
                detected = datetime.fromisoformat(offline[sid]["detected_at"])
                assert detected - datetime.fromisoformat(offline[sid]["starts_at"]) < timedelta(
                    seconds=1.5
                )
                assert offline[sid]["severity"] == "critical"
                assert offline[sid]["fingerprint"] == f"{sid}:offline"
                assert offline[sid]["labels"]["street"] == "空港街道"

            # Two of them come back: their offline episodes resolve (after two beats).
            back = silent[:2]
            fleet.beating.update(back)

            async def resolved() -> bool:
                return all(("offline", "resolved") in alerts.of(s) for s in back)

            await wait_for(resolved, timeout_s=15, what="offline alerts to resolve")
            for sid in back:
                pair = [
                    a for a in alerts.records if a["station_id"] == sid and a["kind"] == "offline"
                ]
                assert [a["state"] for a in pair] == ["firing", "resolved"]
                assert pair[0]["alert_id"] == pair[1]["alert_id"]
                assert pair[1]["ends_at"] is not None

            states = {
                sid: (await worker.get(f"/stations/{sid}")).json() for sid in profiles_ids(profiles)
            }
            assert {states[s]["liveness"] for s in steady + back} == {"online"}
            assert {states[s]["liveness"] for s in silent[2:]} == {"offline"}
            assert {states[s]["liveness"] for s in deviceless} == {"not_monitored"}
            assert {states[s]["scheduled_open"] for s in outside} == {False}

        rows = alert_rows(database_url, silent + steady + outside + paused + deviceless)
        expected = {(s, "stale", True) for s in silent}
        expected |= {(s, "offline", s in back) for s in silent}
        assert sorted(rows) == sorted(expected)
        with psycopg.connect(database_url) as conn:
            changes = conn.execute(
                "SELECT count(*) FROM stationwatch.liveness_changes WHERE station_id = ANY(%s)"
                " AND to_liveness = 'offline'",
                (silent,),
            ).fetchone()
        assert changes is not None
        assert changes[0] == len(silent)
    finally:
        worker.stop()


def profiles_ids(profiles: list[dict[str, Any]]) -> list[str]:
    return [p["station_id"] for p in profiles]


async def test_a_worker_down_longer_than_the_offline_threshold_raises_no_alarm(
    broker: EmbeddedBroker, database_url: str, tmp_path: Path, unique: str
) -> None:
    """Heartbeats kept coming while no worker ran: the backlog is judged by its own times."""
    env = liveness_env(broker, database_url, unique, tmp_path / "data")
    stations = ids(unique, "D", 10)
    prefix = env["STATIONWATCH_TOPIC_PREFIX"]
    first = WorkerProcess(env, tmp_path / "first.log").start()
    second = WorkerProcess(env, tmp_path / "second.log")
    try:
        await first.wait_healthy()
        async with (
            TopicCollector(broker.url, prefix + "station.alerts") as alerts,
            running_fleet(broker, prefix) as fleet,
        ):
            await fleet.register(profile(s, heartbeat_interval_s=1) for s in stations)
            fleet.beating.update(stations)
            await wait_online(first, stations)
            assert first.stop() == 0
            # What is tested: no worker runs for twice the offline threshold while the
            # heartbeats keep coming. The wait is the outage itself, not a synchronisation.
            await asyncio.sleep(OFFLINE_AFTER * 2)
            second.start()
            await second.wait_healthy()

            async def caught_up() -> bool:
                bodies = [(await second.get(f"/stations/{s}")).json() for s in stations]
                newest = min(datetime.fromisoformat(b["last_heartbeat_at"]) for b in bodies)
                return datetime.now(UTC) - newest < timedelta(seconds=2)

            await wait_for(caught_up, timeout_s=30, what="the new worker to catch up")
            # An observation window: a wrong judgement of the backlog would raise an alert
            # within the offline threshold; none may arrive.
            await asyncio.sleep(OFFLINE_AFTER + 1)
            assert alerts.records == []
            bodies = [(await second.get(f"/stations/{s}")).json() for s in stations]
            assert {b["liveness"] for b in bodies} == {"online"}
    finally:
        first.stop()
        second.stop()


async def test_two_workers_judge_each_station_once_across_a_rebalance(
    broker: EmbeddedBroker, database_url: str, tmp_path: Path, unique: str
) -> None:
    env = liveness_env(broker, database_url, unique, tmp_path / "data-a")
    env_b = {**env, "STATIONWATCH_WEB_PORT": str(int(env["STATIONWATCH_WEB_PORT"]) + 1)}
    env_b["STATIONWATCH_DATA_DIR"] = str(tmp_path / "data-b")
    stations = ids(unique, "W", 16)
    prefix = env["STATIONWATCH_TOPIC_PREFIX"]
    first = WorkerProcess(env, tmp_path / "a.log").start()
    second = WorkerProcess(env_b, tmp_path / "b.log")
    try:
        await first.wait_healthy()
        async with (
            TopicCollector(broker.url, prefix + "station.alerts") as alerts,
            running_fleet(broker, prefix) as fleet,
        ):
            await fleet.register(profile(s, heartbeat_interval_s=1) for s in stations)
            fleet.beating.update(stations)
            await wait_online(first, stations)
            fleet.beating.clear()

            async def offline() -> bool:
                return count_of(alerts, "offline") >= len(stations)

            await wait_for(offline, timeout_s=30, what="every station offline")
            second.start()  # a rebalance while episodes are open
            await second.wait_healthy()
            await first.wait_healthy()
            fleet.beating.update(stations)

            async def resolved() -> bool:
                return count_of(alerts, "offline", "resolved") >= len(stations)

            await wait_for(resolved, timeout_s=60, what="every offline episode to resolve")
            # An observation window: a station judged by both workers would send a second
            # alert in it.
            await asyncio.sleep(2)
            owners = [
                ((await first.get("/health")).json()["partitions"]),
                ((await second.get("/health")).json()["partitions"]),
            ]
            assert all(owners), owners  # both workers own partitions
            for worker in (first, second):  # either worker answers for every station
                answers = [await worker.get(f"/stations/{s}") for s in stations]
                assert [a.status_code for a in answers] == [200] * len(stations)
                await wait_online(worker, stations)  # while the stations still beat
        offline_ids = Counter(
            (a["alert_id"], a["state"]) for a in alerts.records if a["kind"] == "offline"
        )
        assert len(offline_ids) == 2 * len(stations)
        assert set(offline_ids.values()) == {1}, offline_ids
    finally:
        first.stop()
        second.stop()


async def test_occupancy_status_and_registry_changes_raise_and_resolve_alerts(
    broker: EmbeddedBroker, database_url: str, tmp_path: Path, unique: str
) -> None:
    env = liveness_env(broker, database_url, unique, tmp_path / "data")
    env["STATIONWATCH_CLOSED_GRACE_S"] = "2"
    crowded, shut, paused = ids(unique, "C", 1)[0], ids(unique, "X", 1)[0], ids(unique, "P", 1)[0]
    prefix = env["STATIONWATCH_TOPIC_PREFIX"]
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        await worker.wait_healthy()
        async with (
            TopicCollector(broker.url, prefix + "station.alerts") as alerts,
            running_fleet(broker, prefix) as fleet,
        ):
            fleet.beating.update([crowded, shut, paused])
            await fleet.register(
                [profile(s, heartbeat_interval_s=1, capacity=5) for s in (crowded, shut, paused)]
            )

            async def registered() -> bool:
                # topics are consumed side by side: a status read before the registry record
                # would date the closure from when the station became known to be open
                bodies = [(await worker.get(f"/stations/{s}")) for s in (crowded, shut)]
                return all(
                    b.status_code == 200 and b.json()["lifecycle"] == "active" for b in bodies
                )

            await wait_for(registered, timeout_s=15, what="the stations registered")
            send = fleet.producer.send
            now = datetime.now(UTC)
            await send("station.occupancy", crowded, dumps(occupancy(crowded, now, 7, capacity=5)))
            await send("station.status", shut, dumps(status(shut, now, "closed", reason="manual")))
            await fleet.producer.flush()

            async def fired() -> bool:
                return ("over_capacity", "firing") in alerts.of(crowded) and (
                    "closed_during_hours",
                    "firing",
                ) in alerts.of(shut)

            await wait_for(fired, timeout_s=15, what="over_capacity and closed_during_hours")
            closed = next(a for a in alerts.records if a["kind"] == "closed_during_hours")
            assert datetime.fromisoformat(closed["starts_at"]) == now
            assert datetime.fromisoformat(closed["detected_at"]) >= now + timedelta(seconds=2)

            later = datetime.now(UTC)
            await send(
                "station.occupancy", crowded, dumps(occupancy(crowded, later, 4, capacity=5))
            )
            await send("station.status", shut, dumps(status(shut, later, "open")))
            await fleet.producer.flush()

            # The third goes silent, is offline, then the operators mark it temporarily closed:
            fleet.beating.discard(paused)

            async def paused_offline() -> bool:
                return ("offline", "firing") in alerts.of(paused)

            await wait_for(paused_offline, timeout_s=20, what="the silent station to be offline")
            await fleet.register(
                [
                    profile(
                        paused,
                        heartbeat_interval_s=1,
                        lifecycle="temporarily_closed",
                        updated_at=datetime.now(UTC).isoformat(),
                    )
                ]
            )

            async def all_resolved() -> bool:
                return (
                    ("over_capacity", "resolved") in alerts.of(crowded)
                    and ("closed_during_hours", "resolved") in alerts.of(shut)
                    and ("offline", "resolved") in alerts.of(paused)
                )

            await wait_for(all_resolved, timeout_s=15, what="every episode to resolve")
            # An observation window: no further alert (a repeated episode) may arrive in it.
            await asyncio.sleep(1.5)
            assert alerts.of(crowded) == [
                ("over_capacity", "firing"),
                ("over_capacity", "resolved"),
            ]
            assert alerts.of(shut) == [
                ("closed_during_hours", "firing"),
                ("closed_during_hours", "resolved"),
            ]
            assert alerts.of(paused)[-1] == ("offline", "resolved")
            body = (await worker.get(f"/stations/{paused}")).json()
            assert body["lifecycle"] == "temporarily_closed"
    finally:
        worker.stop()
