"""`stationwatch stations close|reopen|decommission|inspect|overdue|history` as a user runs them
(child processes), against the real broker, the real worker process and PostgreSQL: stations
with 1-second heartbeats, stale after 3 s of silence, offline after 6 s."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from stationwatch.broker import EmbeddedBroker
from tests.factories import profile
from tests.integration.alerts_reader import TopicCollector
from tests.integration.harness import Producer, WorkerProcess, wait_for
from tests.integration.test_liveness import OFFLINE_AFTER, Fleet, liveness_env, wait_online

pytestmark = pytest.mark.integration

# A closure with --until this far ahead: time for the command and the worker to apply it on a
# busy machine, and then for a silence longer than OFFLINE_AFTER before the closure ends.
CLOSED_FOR_S = 30


@dataclass
class Setup:
    worker: WorkerProcess
    env: dict[str, str]
    fleet: Fleet
    alerts: TopicCollector
    database_url: str
    token: str

    def ids(self, group: str, count: int) -> list[str]:
        return [f"RG-{group}{self.token[:5].upper()}{i:02d}" for i in range(count)]

    async def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`stationwatch ARGS…` in a child process (the fleet keeps beating meanwhile)."""
        return await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "stationwatch.cli", *args],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )

    async def ok(self, *args: str) -> str:
        done = await self.cli(*args)
        assert done.returncode == 0, f"{args}: {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done.stdout

    async def register(self, stations: list[str], **overrides: Any) -> None:
        """Register, and wait until the worker has written their rows (the CLI reads them)."""
        now = datetime.now(UTC).isoformat()
        await self.fleet.register(
            profile(sid, heartbeat_interval_s=1, updated_at=now, **overrides) for sid in stations
        )

        async def stored() -> bool:
            return len(
                self.query(
                    "SELECT 1 FROM stationwatch.stations WHERE station_id = ANY(%s)", stations
                )
            ) == len(stations)

        await wait_for(stored, timeout_s=20, what=f"{stations} in the stations table")

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url) as conn:
            return conn.execute(sql, params).fetchall()

    def query_write(self, sql: str, *params: Any) -> None:
        with psycopg.connect(self.database_url) as conn:
            conn.execute(sql, params)

    async def lifecycle(self, station_id: str) -> str:
        return str((await self.worker.get(f"/stations/{station_id}")).json().get("lifecycle"))

    def alerts_of(self, station_id: str) -> list[tuple[str, str]]:
        return self.alerts.of(station_id)


@pytest.fixture(scope="module")
async def setup(
    broker: EmbeddedBroker, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Setup]:
    token = uuid.uuid4().hex[:8]
    tmp = tmp_path_factory.mktemp("registry")
    env = liveness_env(broker, database_url, token, tmp / "data")
    worker = WorkerProcess(env, tmp / "worker.log").start()
    prefix = env["STATIONWATCH_TOPIC_PREFIX"]
    try:
        await worker.wait_healthy()
        async with (
            TopicCollector(broker.url, prefix + "station.alerts") as alerts,
            Producer(broker.url, prefix) as producer,
        ):
            fleet = Fleet(producer)
            fleet.start()
            try:
                yield Setup(worker, env, fleet, alerts, database_url, token)
            finally:
                await fleet.stop()
    finally:
        worker.stop()


async def test_a_closed_station_raises_no_alert_and_its_closure_ends_by_itself(
    setup: Setup,
) -> None:
    until_closed, closed, control = setup.ids("C", 3)
    stations = [until_closed, closed, control]
    setup.fleet.beating.update(stations)
    await setup.register(stations)
    await wait_online(setup.worker, stations)

    until = datetime.now(UTC) + timedelta(seconds=CLOSED_FOR_S)
    said = await setup.ok(
        "stations",
        "close",
        until_closed,
        "--until",
        until.isoformat(),
        "--reason",
        "供暖检修",
        "--by",
        "王芳",
    )
    assert until_closed in said
    assert "temporarily closed until" in said
    await setup.ok("stations", "close", closed, "--reason", "停电", "--by", "王芳")

    async def applied() -> bool:
        return [await setup.lifecycle(s) for s in (until_closed, closed)] == [
            "temporarily_closed"
        ] * 2

    await wait_for(applied, timeout_s=15, what="the closures applied by the worker")
    setup.fleet.beating.difference_update(stations)  # all three fall silent now
    silent_since = datetime.now(UTC)
    # Unless the closure is honoured, alerts start within OFFLINE_AFTER of the silence: that
    # must be well before the closure ends, or the test could not tell.
    assert silent_since + timedelta(seconds=OFFLINE_AFTER + 2) < until, "too slow to tell"

    async def control_offline() -> bool:
        return ("offline", "firing") in setup.alerts_of(control)

    await wait_for(control_offline, timeout_s=30, what="the open station's offline alert")
    # silent for longer than OFFLINE_AFTER, but closed: no alert of any kind
    assert setup.alerts_of(closed) == []
    if datetime.now(UTC) < until:
        assert setup.alerts_of(until_closed) == []

    # The closure ends by itself: judged again from then on, the silent station goes offline.
    async def reopened_offline() -> bool:
        return ("offline", "firing") in setup.alerts_of(until_closed)

    await wait_for(
        reopened_offline,
        timeout_s=CLOSED_FOR_S + OFFLINE_AFTER + 15,
        what="the offline alert after the closure ended",
    )
    offline = next(
        a
        for a in setup.alerts.records
        if a["station_id"] == until_closed and a["kind"] == "offline"
    )
    starts_at = datetime.fromisoformat(offline["starts_at"])
    assert starts_at >= until + timedelta(seconds=OFFLINE_AFTER) - timedelta(milliseconds=1)
    # nothing began while it was closed (the stale one starts when the closure ended, too)
    early = [
        a
        for a in setup.alerts.records
        if a["station_id"] == until_closed and datetime.fromisoformat(a["starts_at"]) < until
    ]
    assert early == []
    assert await setup.lifecycle(until_closed) == "active"

    async def current_active() -> bool:  # Grafana's live view follows
        rows = setup.query(
            "SELECT lifecycle FROM stationwatch.station_current WHERE station_id = %s",
            until_closed,
        )
        return rows == [("active",)]

    await wait_for(current_active, timeout_s=10, what="station_current lifecycle active")
    # the one closed without an end stays closed and quiet
    assert await setup.lifecycle(closed) == "temporarily_closed"
    assert setup.alerts_of(closed) == []

    # Reopened by hand, it is judged again at once: silent, it goes offline.
    said = await setup.ok("stations", "reopen", closed, "--by", "王芳")
    assert "active again" in said

    async def closed_offline() -> bool:
        return ("offline", "firing") in setup.alerts_of(closed)

    await wait_for(closed_offline, timeout_s=OFFLINE_AFTER + 15, what="offline after reopening")


async def test_closing_resolves_the_open_alerts_and_decommissioning_stops_monitoring(
    setup: Setup,
) -> None:
    silent, retired = setup.ids("R", 2)
    setup.fleet.beating.update([silent, retired])
    await setup.register([silent, retired])
    await wait_online(setup.worker, [silent, retired])
    setup.fleet.beating.difference_update([silent, retired])

    async def both_offline() -> bool:
        return all(("offline", "firing") in setup.alerts_of(s) for s in (silent, retired))

    await wait_for(both_offline, timeout_s=20, what="offline alerts")
    await setup.ok("stations", "close", silent, "--reason", "设备维修", "--by", "王芳")
    await setup.ok("stations", "decommission", retired, "--reason", "场地拆迁", "--by", "王芳")

    async def resolved() -> bool:
        return all(("offline", "resolved") in setup.alerts_of(s) for s in (silent, retired))

    await wait_for(resolved, timeout_s=15, what="the offline alerts resolved")
    rows = setup.query(
        "SELECT station_id, lifecycle, profile->>'closure_reason' FROM stationwatch.stations"
        " WHERE station_id = ANY(%s) ORDER BY station_id",
        [silent, retired],
    )
    assert sorted(rows) == sorted(
        [(silent, "temporarily_closed", "设备维修"), (retired, "decommissioned", "场地拆迁")]
    )
    body = (await setup.worker.get(f"/stations/{retired}")).json()
    assert body["liveness"] == "not_monitored"


async def test_a_closure_and_an_inspection_are_in_the_history(setup: Setup) -> None:
    (station,) = setup.ids("H", 1)
    await setup.register([station])
    await setup.ok(
        "stations",
        "close",
        station,
        "--until",
        "2099-12-31",
        "--reason",
        "供暖检修",
        "--by",
        "王芳",
    )
    inspected_at = "2026-11-30T09:15:00+08:00"
    said = await setup.ok(
        "stations",
        "inspect",
        station,
        "--result",
        "issues",
        "--note",
        "饮水机故障",
        "--by",
        "李强",
        "--at",
        inspected_at,
    )
    assert "recorded" in said
    again = await setup.ok(
        "stations",
        "inspect",
        station,
        "--result",
        "issues",
        "--note",
        "饮水机故障",
        "--by",
        "李强",
        "--at",
        inspected_at,
    )
    assert "already recorded" in again

    def history() -> list[tuple[Any, ...]]:
        return setup.query(
            "SELECT what, changed_by, changed_via, old, new FROM stationwatch.station_history"
            " WHERE station_id = %s ORDER BY time, what",
            station,
        )

    async def closure_recorded() -> bool:
        return any(row[0] == "lifecycle" for row in history())

    await wait_for(closure_recorded, timeout_s=15, what="the closure in station_history")
    rows = history()
    whats = [row[0] for row in rows]
    assert sorted(whats) == ["added", "inspection", "lifecycle"]
    inspection = next(row for row in rows if row[0] == "inspection")
    assert inspection[1:] == (
        "李强",
        "stations inspect",
        None,
        {"result": "issues", "note": "饮水机故障"},
    )
    closure = next(row for row in rows if row[0] == "lifecycle")
    assert closure[1:3] == ("王芳", "stations close")
    assert closure[3] == {"lifecycle": "active", "closed_until": None, "closure_reason": None}
    assert closure[4]["lifecycle"] == "temporarily_closed"
    assert closure[4]["closure_reason"] == "供暖检修"
    # the day's start in STATIONWATCH_TIMEZONE (Asia/Shanghai)
    assert datetime.fromisoformat(closure[4]["closed_until"]) == datetime(
        2099, 12, 30, 16, 0, tzinfo=UTC
    )
    assert setup.query(
        "SELECT count(*) FROM stationwatch.inspections WHERE station_id = %s", station
    ) == [(1,)]

    printed = await setup.ok("stations", "history", station)
    assert "lifecycle" in printed
    assert "供暖检修" in printed
    assert "王芳 via stations close" in printed
    assert "李强 via stations inspect" in printed
    as_json = json.loads(await setup.ok("stations", "history", station, "--json"))
    assert [e["what"] for e in as_json] == ["inspection", "added", "lifecycle"]


async def test_overdue_lists_stations_never_inspected_not_one_just_inspected(
    setup: Setup,
) -> None:
    never, inspected, lapsed, closed = setup.ids("O", 4)
    mine = [never, inspected, lapsed, closed]
    await setup.register(
        [never, inspected, lapsed], responsible_person="李强", responsible_phone="13800000000"
    )
    await setup.register([closed], lifecycle="temporarily_closed")
    await setup.ok(
        "stations", "inspect", inspected, "--result", "pass", "--note", "一切正常", "--by", "李强"
    )
    forty_days_ago = datetime.now(UTC) - timedelta(days=40, hours=1)
    await setup.ok(
        "stations",
        "inspect",
        lapsed,
        "--result",
        "issues",
        "--note",
        "门锁坏",
        "--by",
        "李强",
        "--at",
        forty_days_ago.isoformat(),
    )
    listed = json.loads(await setup.ok("stations", "overdue", "--json"))
    found = {e["station_id"]: e for e in listed if e["station_id"] in mine}
    assert list(found) == [never, lapsed]  # never inspected first
    assert found[never]["responsible_person"] == "李强"
    assert found[never]["responsible_phone"] == "13800000000"
    assert (found[never]["last_inspection_at"], found[never]["days_overdue"]) == (None, None)
    assert found[lapsed]["days_overdue"] == 10  # interval: 30 days by default
    assert found[lapsed]["last_result"] == "issues"
    # the dashboards' view says the same
    viewed = setup.query(
        "SELECT station_id, days_overdue, interval_days FROM stationwatch.stations_overdue"
        " WHERE station_id = ANY(%s) ORDER BY station_id",
        mine,
    )
    assert viewed == sorted([(never, None, 30), (lapsed, 10, 30)])
    table = await setup.ok("stations", "overdue")
    assert never in table
    assert lapsed in table
    assert inspected not in table
    assert closed not in table

    # The interval is a setting: the command reads it, `migrate` records it for the view.
    setup.env["STATIONWATCH_PATROL_INTERVAL_DAYS"] = "45"
    try:
        await setup.ok("migrate")
        longer = json.loads(await setup.ok("stations", "overdue", "--json"))
    finally:
        del setup.env["STATIONWATCH_PATROL_INTERVAL_DAYS"]
    assert [e["station_id"] for e in longer if e["station_id"] in mine] == [never]
    viewed = setup.query(
        "SELECT station_id, interval_days FROM stationwatch.stations_overdue"
        " WHERE station_id = ANY(%s)",
        mine,
    )
    assert viewed == [(never, 45)]


async def test_bad_input_is_one_line_and_a_failing_exit_code(setup: Setup) -> None:
    (station,) = setup.ids("B", 1)
    await setup.register([station])
    cases = [
        (("stations", "close", "RG-NOSUCH99", "--reason", "x"), 1, "no station RG-NOSUCH99"),
        (
            ("stations", "inspect", "RG-NOSUCH99", "--result", "pass", "--note", "x", "--by", "y"),
            1,
            "no station RG-NOSUCH99",
        ),
        (
            ("stations", "close", station, "--reason", "x", "--until", "2001-01-01"),
            2,
            "is not in the future",
        ),
        (
            ("stations", "close", station, "--reason", "x", "--until", "next week"),
            2,
            "--until: 'next week' is not a day",
        ),
        (("stations", "reopen", station), 1, "is already active"),
        (("stations", "history", "RG-NOSUCH99"), 1, "no station RG-NOSUCH99"),
        (("stations", "history", "not-an-id"), 2, "is not a station id"),
    ]
    for args, code, message in cases:
        done = await setup.cli(*args)
        assert done.returncode == code, (args, done.stderr)
        assert message in done.stderr, (args, done.stderr)
        assert done.stderr.strip().count("\n") == 0, (args, done.stderr)
    assert await setup.lifecycle(station) == "active"  # nothing was published


async def test_a_history_row_written_twice_is_one_row(setup: Setup) -> None:
    """A registry record redelivered before the worker's table was updated gives the same
    history row again (same key): the database keeps one."""
    from stationwatch.db.sink import Batch, TimescaleSink
    from stationwatch.registry.history import registry_change

    (station,) = setup.ids("D", 1)
    before = profile(station, updated_at="2026-11-01T00:00:00+00:00")
    after = {**before, "capacity": 25, "updated_at": "2026-11-02T00:00:00+00:00"}
    entry = registry_change(before, after)
    assert entry is not None
    sink = TimescaleSink(setup.database_url)
    try:
        for _ in range(2):
            batch = Batch()
            batch.add("station_history", entry.row(), None)
            await sink.write(batch)
    finally:
        await sink.close()
    rows = setup.query(
        "SELECT what, old, new FROM stationwatch.station_history WHERE station_id = %s", station
    )
    assert rows == [("changed", {"capacity": 10}, {"capacity": 25})]


async def test_station_current_follows_a_changed_record_and_a_lost_row_comes_back_whole(
    setup: Setup,
) -> None:
    """A heartbeat writes only the live columns of a station's ``station_current`` row; its
    registry columns are written when its record changes, and a row that is not there (a
    hand-made repair, a restored database) is written whole again."""
    (station,) = setup.ids("N", 1)
    setup.fleet.beating.add(station)
    try:
        await _station_current_follows(setup, station)
    finally:
        setup.fleet.beating.discard(station)


async def _station_current_follows(setup: Setup, station: str) -> None:
    await setup.register([station], name="驿站甲", services=["water"])
    await wait_online(setup.worker, [station])

    def current() -> list[tuple[Any, ...]]:
        return setup.query(
            "SELECT name, services, liveness, last_heartbeat_at"
            " FROM stationwatch.station_current WHERE station_id = %s",
            station,
        )

    async def shown(name: str, services: list[str]) -> tuple[Any, ...]:
        async def there() -> bool:
            rows = current()
            return bool(rows) and rows[0][:3] == (name, services, "online")

        await wait_for(there, timeout_s=15, what=f"{station} as {name} in station_current")
        return current()[0]

    await shown("驿站甲", ["water"])
    await setup.register([station], name="驿站乙", services=["water", "legal_aid"])
    renamed = await shown("驿站乙", ["water", "legal_aid"])

    async def beats_on() -> bool:  # later heartbeats change the live columns only
        rows = current()
        return bool(rows) and rows[0][3] > renamed[3] and rows[0][0] == "驿站乙"

    await wait_for(beats_on, timeout_s=15, what="later heartbeats in station_current")
    setup.query_write(
        "DELETE FROM stationwatch.station_current_reported WHERE station_id = %s", station
    )
    assert current() == []
    await shown("驿站乙", ["water", "legal_aid"])  # whole again, from its next heartbeat on
