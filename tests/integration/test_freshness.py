"""The database never shows a stale picture as live: with the worker gone, `station_current`
stops calling stations online within the offline threshold, and `pipeline_status` says the
pipeline is down — read as Grafana reads them, from the real worker's rows."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from stationwatch.broker import EmbeddedBroker
from tests.factories import profile
from tests.integration.harness import WorkerProcess, wait_for
from tests.integration.test_liveness import (
    OFFLINE_AFTER,
    ids,
    liveness_env,
    running_fleet,
    wait_online,
)

pytestmark = pytest.mark.integration


def rows(database_url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(query.encode(), params or None).fetchall()


def liveness_of(database_url: str, stations: list[str]) -> dict[str, str]:
    found = rows(
        database_url,
        "SELECT station_id, liveness FROM stationwatch.station_current WHERE station_id = ANY(%s)",
        stations,
    )
    return dict(found)


def pipeline(database_url: str) -> dict[str, Any]:
    cursor_rows = rows(
        database_url,
        "SELECT state, data_age_s, workers_reporting, workers_healthy"
        " FROM stationwatch.pipeline_status",
    )
    assert len(cursor_rows) == 1  # one row, even with no worker ever seen
    state, age, reporting, healthy = cursor_rows[0]
    return {"state": state, "age": age, "reporting": reporting, "healthy": healthy}


async def test_a_stopped_worker_leaves_no_station_online_in_the_database(
    broker: EmbeddedBroker, database_url: str, tmp_path: Path, unique: str
) -> None:
    assert pipeline(database_url)["state"] == "down"  # nothing has reported yet
    env = liveness_env(broker, database_url, unique, tmp_path / "data")
    beating, silent, deviceless = ids(unique, "F", 6), ids(unique, "G", 2), ids(unique, "D", 2)
    everyone = beating + silent + deviceless
    profiles = [profile(s, heartbeat_interval_s=1) for s in beating + silent]
    profiles += [profile(s, heartbeat_interval_s=None) for s in deviceless]
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    prefix = env["STATIONWATCH_TOPIC_PREFIX"]
    try:
        await worker.wait_healthy()
        async with running_fleet(broker, prefix) as fleet:
            fleet.beating.update(beating + silent)
            await fleet.register(profiles)
            await wait_online(worker, beating + silent)
            fleet.beating.difference_update(silent)

            async def live_picture() -> bool:
                seen = liveness_of(database_url, everyone)
                return (
                    all(seen.get(s) == "online" for s in beating)
                    and all(seen.get(s) == "offline" for s in silent)
                    and all(seen.get(s) == "not_monitored" for s in deviceless)
                    and pipeline(database_url)["state"] == "live"
                )

            await wait_for(live_picture, timeout_s=30, what="the live picture in the database")
            status = pipeline(database_url)
            assert status["healthy"] >= 1
            assert status["age"] < 10
            opened = rows(
                database_url,
                "SELECT bool_and(scheduled_open) FROM stationwatch.station_current"
                " WHERE station_id = ANY(%s)",
                beating,
            )
            assert opened == [(True,)]

            # The pipeline dies; the stations keep sending, but nothing reads them.
            worker.stop(signal.SIGKILL)
            stopped = time.monotonic()

            async def nobody_online() -> bool:
                seen = liveness_of(database_url, everyone)
                return not any(v in ("online", "stale") for v in seen.values())

            await wait_for(nobody_online, timeout_s=30, what="no station online in the database")
            took = time.monotonic() - stopped
            assert took < OFFLINE_AFTER, f"stations still online {took:.1f} s after the stop"
            seen = liveness_of(database_url, everyone)
            assert {s: seen[s] for s in beating} == dict.fromkeys(beating, "unknown")
            # what held without input still holds: the last word on them
            assert {s: seen[s] for s in silent} == dict.fromkeys(silent, "offline")
            assert {s: seen[s] for s in deviceless} == dict.fromkeys(deviceless, "not_monitored")
            reported = rows(
                database_url,
                "SELECT reported_liveness, liveness_since = fresh_until"
                " FROM stationwatch.station_current WHERE station_id = ANY(%s)",
                beating,
            )
            assert set(reported) == {("online", True)}

            async def pipeline_down() -> bool:
                return bool(pipeline(database_url)["state"] == "down")

            await wait_for(pipeline_down, timeout_s=30, what="pipeline_status to say down")
            assert pipeline(database_url)["age"] > 10
            unknown_hours = rows(
                database_url,
                "SELECT count(*) FROM stationwatch.station_current"
                " WHERE station_id = ANY(%s) AND scheduled_open IS NOT NULL",
                everyone,
            )
            assert unknown_hours == [(0,)]
    finally:
        worker.stop()


async def test_a_worker_stopping_cleanly_says_so_at_once(
    broker: EmbeddedBroker, database_url: str, tmp_path: Path, unique: str
) -> None:
    env = liveness_env(broker, database_url, unique, tmp_path / "data")
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        await worker.wait_healthy()

        async def reported(state: str) -> bool:
            return bool(pipeline(database_url)["state"] == state)

        await wait_for(lambda: reported("live"), timeout_s=15, what="pipeline_status live")
        assert worker.stop() == 0
        # no waiting for its last report to age: down as soon as the worker is gone, and the
        # picture's age still counts from its last healthy report
        status = pipeline(database_url)
        assert status["state"] == "down"
        assert status["age"] is not None
        assert 0 <= status["age"] < 30
        stopped = rows(
            database_url,
            "SELECT healthy, worker_id FROM stationwatch.pipeline_workers"
            " WHERE 'stopped' = ANY(problems)",
        )
        assert [(healthy, url.rsplit(":", 1)[1]) for healthy, url in stopped] == [
            (False, str(worker.port))
        ]
    finally:
        worker.stop()
