"""Fault test 1 (issue 12): a worker killed (-9) in the middle of a stream, then restarted.

The same events go to two pipelines, each with its own topics, consumer group and database: a
control worker that runs through, and a worker killed -9 while it works through them (with
more events arriving while it is dead) and started again. Afterwards the killed pipeline holds
every event exactly once, the same live state as the control, and the same alert episodes,
each fired and resolved once, none left open.

Per station (100 events): its registry record, taken in by both workers before the rest, then
80 heartbeats a second apart, 16 head counts (three of them above capacity: one
``over_capacity`` episode that fires and resolves) and three open/closed reports, all in the
last two minutes.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from stationwatch.broker import EmbeddedBroker
from tests.factories import dumps, heartbeat, occupancy, profile, status
from tests.integration.alerts_reader import TopicCollector
from tests.integration.conftest import migrated_database
from tests.integration.harness import Producer, WorkerProcess, wait_for, worker_env
from tests.integration.reliability import Report, sizes

pytestmark = pytest.mark.integration

BEATS, COUNTS, REPORTS = 80, 16, 3  # per station, with the registry record: 100 events
CROWDED = {5, 6, 7}  # the head counts above capacity: one episode
TABLES = ("stations", "heartbeats", "occupancy", "status_events")
# what a live state must hold alike in both pipelines
COMPARED = (
    "station_id",
    "name",
    "lifecycle",
    "liveness",
    "last_heartbeat_at",
    "open_state",
    "open_state_since",
    "scheduled_open",
    "occupants",
    "capacity",
    "occupancy_at",
)

Event = tuple[str, str, dict[str, Any]]


def station_events(sid: str, base: datetime) -> tuple[Event, list[Event]]:
    """A station's registry record, and its telemetry in time order."""
    record = ("station.registry", sid, profile(sid, heartbeat_interval_s=120, capacity=10))
    timed: list[tuple[datetime, Event]] = []
    for i in range(BEATS):
        at = base + timedelta(seconds=i)
        timed.append((at, ("station.heartbeat", sid, heartbeat(sid, at, i))))
    for j in range(COUNTS):
        at = base + timedelta(seconds=5 * j + 0.5)
        people = 12 if j in CROWDED else j % 5
        timed.append((at, ("station.occupancy", sid, occupancy(sid, at, people, capacity=10))))
    for k, state in enumerate(["open", "closed", "open"]):
        at = base + timedelta(seconds=10 + 30 * k + 0.25)
        timed.append((at, ("station.status", sid, status(sid, at, state))))
    return record, [event for _, event in sorted(timed, key=lambda t: t[0])]


def stream(stations: list[str], base: datetime) -> list[Event]:
    """Every station's registry record first, then the telemetry of all of them in time
    order, as a fleet would send it."""
    records, telemetry = [], []
    for sid in stations:
        record, events = station_events(sid, base)
        records.append(record)
        telemetry.append(events)
    merged = [event for batch in zip(*telemetry, strict=True) for event in batch]
    return records + merged


def counts(database_url: str, stations: list[str]) -> dict[str, tuple[int, int]]:
    """Per table: rows of these stations, and rows beyond one per key (duplicates)."""
    keys = {"stations": "station_id", "status_events": "station_id, time, state"}
    found = {}
    with psycopg.connect(database_url) as conn:
        for table in TABLES:
            key = keys.get(table, "station_id, time")
            row = conn.execute(
                f"SELECT count(*), count(*) - count(DISTINCT ({key})) "  # noqa: S608 - constants
                f"FROM stationwatch.{table} WHERE station_id = ANY(%s)",
                (stations,),
            ).fetchone()
            assert row is not None
            found[table] = (int(row[0]), int(row[1]))
    return found


def episodes(database_url: str, stations: list[str]) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT alert_id, station_id, kind, starts_at, ends_at "
            "FROM stationwatch.alerts WHERE station_id = ANY(%s) ORDER BY alert_id",
            (stations,),
        ).fetchall()


async def live_states(worker: WorkerProcess) -> dict[str, dict[str, Any]]:
    states: dict[str, dict[str, Any]] = {}
    while True:
        page = (await worker.get("/stations", limit=1000, offset=len(states))).json()
        states.update({s["station_id"]: {k: s.get(k) for k in COMPARED} for s in page["items"]})
        if not page["items"] or len(states) >= page["total"]:
            return states


async def send(producer: Producer, events: list[Event]) -> None:
    for topic, key, value in events:
        await producer.send(topic, key, dumps(value))
    await producer.flush()


@pytest.fixture
def other_database() -> Iterator[str]:
    yield from migrated_database()


@pytest.mark.parametrize("events", sizes(reduced=5_000, full=50_000, in_suite=False))
async def test_a_worker_killed_mid_stream_writes_every_event_once_and_ends_as_a_clean_run(
    broker: EmbeddedBroker,
    database_url: str,
    other_database: str,
    tmp_path: Path,
    unique: str,
    report: Report,
    events: int,
) -> None:
    count = max(1, events // 100)
    stations = [f"KW-{unique[:5].upper()}{n:04d}" for n in range(count)]
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=BEATS + 40)
    messages = stream(stations, base)
    sent = len(messages)

    def env_for(token: str, database: str, data: str) -> dict[str, str]:
        env = worker_env(
            kafka_url=broker.url, database_url=database, token=token, data_dir=tmp_path / data
        )
        # an episode fires and resolves as its condition comes and goes (no pending time)
        env.update(STATIONWATCH_ALERT_PENDING_S="{}", STATIONWATCH_ALERT_KEEP_FIRING_S="{}")
        return env

    control_env = env_for(f"c{unique}", other_database, "control")
    faulted_env = env_for(unique, database_url, "faulted")
    control = WorkerProcess(control_env, tmp_path / "control.log").start()
    first = WorkerProcess(faulted_env, tmp_path / "first.log").start()
    second = WorkerProcess(faulted_env, tmp_path / "second.log")
    expected = {
        "stations": count,
        "heartbeats": count * BEATS,
        "occupancy": count * COUNTS,
        "status_events": count * REPORTS,
    }
    try:
        await control.wait_healthy()
        await first.wait_healthy()
        async with (
            TopicCollector(broker.url, f"t{unique}.station.alerts") as alerts,
            TopicCollector(broker.url, f"tc{unique}.station.alerts") as control_alerts,
            Producer(broker.url, control_env["STATIONWATCH_TOPIC_PREFIX"]) as to_control,
            Producer(broker.url, faulted_env["STATIONWATCH_TOPIC_PREFIX"]) as to_faulted,
        ):
            # The registry first, taken in by both workers before any telemetry, as stations
            # are registered before their devices report: Kafka keeps no order across
            # topics, and a worker killed before its first batch was written reads the
            # registry and the telemetry again together, in whatever order it fetches them;
            # readings of a station folded before its record are of no registered station.
            await send(to_control, messages[:count])
            await send(to_faulted, messages[:count])

            async def registered() -> bool:
                return len(await live_states(control)) == len(await live_states(first)) == count

            await wait_for(registered, timeout_s=60, what="every station registered in both")
            await send(to_control, messages[count:])
            cut = count + (len(messages) - count) * 6 // 10  # 60 % before the kill
            await send(to_faulted, messages[count:cut])

            async def midway() -> int:
                with psycopg.connect(database_url) as conn:
                    row = conn.execute(
                        "SELECT count(*) FROM stationwatch.heartbeats WHERE station_id = ANY(%s)",
                        (stations,),
                    ).fetchone()
                written = int(row[0]) if row else 0
                return written if written >= expected["heartbeats"] * 3 // 10 else 0

            written = await wait_for(
                midway, timeout_s=120, interval=0.05, what="30 % of the heartbeats written"
            )
            first.stop(signal.SIGKILL)
            await send(to_faulted, messages[cut:])  # the fleet goes on while no worker runs
            second.start()

            def done(url: str) -> bool:
                return {t: n for t, (n, _) in counts(url, stations).items()} == expected

            async def both_done() -> bool:
                return done(database_url) and done(other_database)

            await wait_for(both_done, timeout_s=240, what="every event written by both pipelines")

            async def episodes_over() -> bool:
                ends = [
                    a for a in alerts.records + control_alerts.records if a["state"] == "resolved"
                ]
                return len(ends) >= 2 * count

            await wait_for(episodes_over, timeout_s=60, what="every episode resolved in both")
            await second.wait_healthy(timeout_s=60)
            await asyncio.sleep(2)  # an observation window: a repeated alert would arrive in it

        found = counts(database_url, stations)
        messages_per_episode = Counter((a["alert_id"], a["state"]) for a in alerts.records)
        repeated = {k: n for k, n in messages_per_episode.items() if n > 1}
        report.record(
            events_sent=sent,
            rows_found=sum(n for n, _ in found.values()),
            duplicates=sum(d for _, d in found.values()),
            alerts_expected=2 * count,
            alerts_seen=len(alerts.records),
            killed_after_rows=written,
            alert_messages_repeated=sum(n - 1 for n in repeated.values()),
        )
        assert found == {t: (n, 0) for t, n in expected.items()}
        # the same episodes as the control run — begun and ended at the same moments (dated by
        # the readings, not by when they were processed) — each fired and resolved once
        assert episodes(database_url, stations) == episodes(other_database, stations)
        assert len(episodes(database_url, stations)) == count
        assert all(row[4] is not None for row in episodes(database_url, stations))  # none open
        # At-least-once output: a kill between an alert's send and its station's changelog
        # write repeats the message on replay — the same episode (alert id) and state, at most
        # once per kill; the alerts table keeps one row, the notifier tells it once.
        assert {a["alert_id"] for a in alerts.records} == {
            a["alert_id"] for a in control_alerts.records
        }
        assert set(messages_per_episode.values()) <= {1, 2}, repeated
        for alert_id, state in repeated:
            same = {
                (a["starts_at"], a["kind"], a["station_id"])
                for a in alerts.records
                if a["alert_id"] == alert_id and a["state"] == state
            }
            assert len(same) == 1, (alert_id, state, same)
        assert set(messages_per_episode) == {
            (a["alert_id"], a["state"]) for a in control_alerts.records
        }
        assert {a["kind"] for a in alerts.records} == {"over_capacity"}
        # the same live state as the run that was never killed
        faulted, clean = await live_states(second), await live_states(control)
        assert len(clean) == count
        differ = [sid for sid in stations if faulted.get(sid) != clean.get(sid)]
        assert differ == [], (differ[:3], [(faulted.get(s), clean.get(s)) for s in differ[:1]])
    finally:
        first.stop()
        second.stop()
        control.stop()
