"""An operator-declared holiday in the running worker and its API: a station closed on holidays
is not expected open, so its silence raises nothing; one open on holidays is still watched."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from stationwatch.broker import EmbeddedBroker
from tests.factories import profile
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

ALL_DAY = {day: [["00:00", "24:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


async def test_a_declared_holiday_closes_stations_that_close_on_holidays(
    broker: EmbeddedBroker, database_url: str, tmp_path: Path, unique: str
) -> None:
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    holidays = tmp_path / "holidays.yaml"
    holidays.write_text(f"holidays:\n  {today.isoformat()}: 测试假日\n", encoding="utf-8")
    env = liveness_env(broker, database_url, unique, tmp_path / "data")
    env["STATIONWATCH_HOLIDAYS_FILE"] = str(holidays)
    prefix = env["STATIONWATCH_TOPIC_PREFIX"]
    closed, open_ = ids(unique, "Y", 2)
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        await worker.wait_healthy()
        health = (await worker.get("/health")).json()
        assert health["holidays_known_until"] >= today.isoformat()
        async with (
            TopicCollector(broker.url, prefix + "station.alerts") as alerts,
            running_fleet(broker, prefix) as fleet,
        ):
            for sid, on_holidays in ((closed, False), (open_, True)):
                hours = {"always_open": False, "weekly": ALL_DAY, "holidays_open": on_holidays}
                await fleet.register([profile(sid, heartbeat_interval_s=1, opening_hours=hours)])
            fleet.beating.update((closed, open_))
            await wait_online(worker, [closed, open_])
            states = {s: (await worker.get(f"/stations/{s}")).json() for s in (closed, open_)}
            assert states[closed]["scheduled_open"] is False
            assert states[open_]["scheduled_open"] is True
            fleet.beating.clear()

            async def open_one_offline() -> bool:
                return count_of(alerts, "offline", "firing") >= 1

            await wait_for(open_one_offline, timeout_s=OFFLINE_AFTER + 10, what="offline")
            await asyncio.sleep(2)  # an observation window: nothing for the closed one
        assert {a["station_id"] for a in alerts.records} == {open_}
    finally:
        worker.stop()
