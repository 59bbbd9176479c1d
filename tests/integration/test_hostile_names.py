"""Hostile station names and labels go through the whole pipeline — registry, live state, the
database, the HTTP API (filters included), alerts and the notifier's webhook — unharmed: every
SQL statement takes them as parameters, never as text of the statement."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from stationwatch.broker import EmbeddedBroker
from tests.factories import profile
from tests.integration.harness import WorkerProcess, wait_for
from tests.integration.notifier_harness import (
    NotifierProcess,
    Sink,
    notifier_env,
    webhook_config,
    write_config,
)
from tests.integration.test_liveness import ids, liveness_env, running_fleet, wait_online

pytestmark = pytest.mark.integration

NAMES = [
    "'); DROP TABLE stationwatch.heartbeats; --",
    "Robert\"); DELETE FROM stationwatch.stations WHERE ('1'='1",
    "驿站 <script>alert('x')</script> & %s {0} $1 \\N \\\\",
]
STREETS = ["街道'; TRUNCATE stationwatch.alerts; --", 'a"b\\c%_', "$$ ; SELECT pg_sleep(30); $$"]


def rows(database_url: str, query: str, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(query.encode(), params or None).fetchall()


async def test_hostile_names_arrive_everywhere_unharmed(
    broker: EmbeddedBroker, database_url: str, tmp_path: Path, unique: str
) -> None:
    sink = await Sink().start()
    env = liveness_env(broker, database_url, unique, tmp_path / "data")
    config = write_config(tmp_path / "notify.yaml", webhook_config(sink.url, group_wait="1s"))
    stations = ids(unique, "X", len(NAMES))
    named = dict(zip(stations, NAMES, strict=True))
    street = dict(zip(stations, STREETS, strict=True))
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    notifier = NotifierProcess(notifier_env(env, config), tmp_path / "notifier.log").start()
    try:
        await worker.wait_healthy()
        await notifier.wait_healthy()
        async with running_fleet(broker, env["STATIONWATCH_TOPIC_PREFIX"]) as fleet:
            await fleet.register(
                profile(s, name=named[s], street=street[s], district=street[s],
                        heartbeat_interval_s=1)
                for s in stations
            )  # fmt: skip
            fleet.beating.update(stations)
            await wait_online(worker, stations)

            # the API: one station, and a filter by the hostile street
            for sid in stations:
                body = (await worker.get(f"/stations/{sid}")).json()
                assert (body["name"], body["street"]) == (named[sid], street[sid])
                listed = (await worker.get("/stations", street=street[sid])).json()
                assert [s["station_id"] for s in listed["items"]] == [sid]

            fleet.beating.clear()

            def notified() -> dict[str, dict[str, str]]:
                return {
                    a["labels"]["station_id"]: a["labels"]
                    for body in sink.bodies
                    for a in body["alerts"]
                    if a["labels"]["kind"] == "offline"
                }

            async def all_notified() -> bool:
                return set(notified()) == set(stations)

            await wait_for(all_notified, timeout_s=60, what="an offline notice for each station")
    finally:
        notifier.stop()
        worker.stop()
        await sink.stop()
    for sid, labels in notified().items():
        assert labels["name"] == named[sid]
        assert labels["street"] == street[sid]
        assert labels["district"] == street[sid]
    # the database holds them as written, and every table is still there and filled
    stored = rows(
        database_url,
        "SELECT station_id, name, street FROM stationwatch.stations WHERE station_id = ANY(%s)",
        stations,
    )
    assert {r[0]: (r[1], r[2]) for r in stored} == {s: (named[s], street[s]) for s in stations}
    for table in ("heartbeats", "alerts", "station_current", "liveness_changes"):
        found = rows(
            database_url,
            f"SELECT count(*) FROM stationwatch.{table} WHERE station_id = ANY(%s)",  # noqa: S608 - fixed names
            stations,
        )
        assert found[0][0] > 0, table
    summaries = rows(
        database_url,
        "SELECT station_id, summary FROM stationwatch.alerts"
        " WHERE station_id = ANY(%s) AND kind = 'offline'",
        stations,
    )
    assert {sid: named[sid] in text for sid, text in summaries} == dict.fromkeys(stations, True)
