"""Fault test 4 (issue 12): a backlog restart at 1,000 stations.

The fleet keeps sending while no worker runs, for twice the offline threshold. The next worker
works through the backlog judging each partition by the heartbeats it has processed there, not
by the wall clock: not one stale or offline alert for a station that kept sending. A few
stations do fall silent meanwhile; they must still be found offline (the test can fail both
ways), and every heartbeat sent is in the database once.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import psycopg
import pytest

from stationwatch.broker import EmbeddedBroker
from tests.factories import profile
from tests.integration.alerts_reader import TopicCollector
from tests.integration.harness import WorkerProcess, wait_for
from tests.integration.paced_fleet import PacedFleet, missing_heartbeats
from tests.integration.reliability import Report, sizes
from tests.integration.test_liveness import OFFLINE_AFTER, liveness_env
from tests.integration.test_worker import count_rows

pytestmark = pytest.mark.integration

INTERVAL_S = 2  # offline after OFFLINE_AFTER (6) intervals: 12 s of silence
OFFLINE_S = INTERVAL_S * OFFLINE_AFTER
SILENT_SHARE = 50  # one station in 50 falls silent while the worker is down


async def by_liveness(worker: WorkerProcess) -> dict[str, int]:
    answer = await worker.get("/summary")
    if answer.status_code != 200:
        return {}
    body: dict[str, Any] = answer.json()
    return dict(body["by_liveness"]) if body.get("complete", True) else {}


def heartbeat_rows(database_url: str, stations: list[str]) -> tuple[int, int]:
    """Heartbeat rows of these stations, and rows beyond one per (station, time)."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*), count(*) - count(DISTINCT (station_id, time)) "
            "FROM stationwatch.heartbeats WHERE station_id = ANY(%s)",
            (stations,),
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


@pytest.mark.parametrize("count", sizes(reduced=100, full=1_000, in_suite=False))
async def test_a_backlog_restart_raises_no_alert_for_stations_that_kept_sending(
    broker: EmbeddedBroker,
    database_url: str,
    tmp_path: Path,
    unique: str,
    report: Report,
    count: int,
) -> None:
    env = liveness_env(broker, database_url, unique, tmp_path / "data")
    prefix = env["STATIONWATCH_TOPIC_PREFIX"]
    stations = [f"BL-{unique[:5].upper()}{n:04d}" for n in range(count)]
    silent = stations[::SILENT_SHARE]
    kept = [s for s in stations if s not in set(silent)]
    first = WorkerProcess(env, tmp_path / "first.log").start()
    second = WorkerProcess(env, tmp_path / "second.log")
    try:
        await first.wait_healthy()
        async with (
            TopicCollector(broker.url, prefix + "station.alerts") as alerts,
            PacedFleet.running(broker.url, prefix, period_s=INTERVAL_S / 2) as fleet,
        ):
            await fleet.register(profile(s, heartbeat_interval_s=INTERVAL_S) for s in stations)
            fleet.beating.update(stations)

            async def all_online() -> bool:
                return (await by_liveness(first)).get("online") == count

            await wait_for(all_online, timeout_s=120, what=f"{count} stations online")
            assert first.stop() == 0
            fleet.beating.difference_update(silent)
            # What is tested: no worker runs for twice the offline threshold while the fleet
            # keeps sending. The wait is the outage itself, not a synchronisation.
            await asyncio.sleep(2 * OFFLINE_S)
            second.start()
            await second.wait_healthy(timeout_s=120)

            async def judged() -> bool:
                counts = await by_liveness(second)
                return counts.get("online") == len(kept) and counts.get("offline") == len(silent)

            await wait_for(judged, timeout_s=120, what="the backlog judged: silent ones offline")
            # An observation window: a wrong judgement of the backlog would raise an alert
            # within the offline threshold; none may arrive for a station that kept sending.
            await asyncio.sleep(OFFLINE_S + 1)
            await fleet.stop()
            sent = fleet.sent
            assert (await by_liveness(second)).get("online") == len(kept)

        async def all_written() -> bool:
            return heartbeat_rows(database_url, stations)[0] >= sent

        # the figures are recorded and asserted below, whether or not this wait succeeds; the
        # worker works off what the fleet sent faster than it takes in (scale is another test's)
        with contextlib.suppress(AssertionError):
            await wait_for(all_written, timeout_s=60 + 0.12 * count, what="every heartbeat written")
        rows, duplicates = heartbeat_rows(database_url, stations)
        false_alarms = [a for a in alerts.records if a["station_id"] not in set(silent)]
        offline = {
            a["station_id"]
            for a in alerts.records
            if a["kind"] == "offline" and a["state"] == "firing"
        }
        report.record(
            events_sent=sent + count,
            rows_found=rows + count_rows(database_url, "stations", stations),
            duplicates=duplicates,
            alerts_expected=len(silent),
            alerts_seen=len(offline),
            stations=count,
            false_alarms=len(false_alarms),
        )
        assert rows == sent, (
            f"{rows} heartbeat rows for {sent} heartbeats sent; without a row: "
            f"{missing_heartbeats(database_url, fleet, int(env['STATIONWATCH_PARTITIONS']))}"
        )
        assert false_alarms == []
        assert offline == set(silent)
        assert duplicates == 0
    finally:
        first.stop()
        second.stop()
