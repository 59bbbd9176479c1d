"""availability_daily against an independent recomputation, to the second; and the running worker
writing expected_changes.

A simulated week of a fleet (``availability_sim``: 24-hour, office-hours, split-shift, overnight
and six-day stations, holidays open or not, outages, temporary closures, a decommissioning, a
removal, late registrations, a public holiday and a make-up working day) is driven through the
worker's ingest step and written by the real sink into a migrated database; every station's
every day in ``availability_daily`` must equal what the test recomputes from the raw heartbeat
times and the schedule.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from stationwatch.broker import EmbeddedBroker
from stationwatch.db.migrate import migrate
from stationwatch.db.sink import TimescaleSink
from streams.ingest import Outcome
from tests.factories import dumps, profile
from tests.integration import availability_sim as sim
from tests.integration.conftest import (
    database_url_for,
    drop_database,
    timescale_skip_reason,
)
from tests.integration.harness import Producer, running_worker, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def week() -> tuple[list[sim.Station], list[Outcome]]:
    """The fleet and what the worker's ingest step made of its week (computed once)."""
    fleet = sim.simulate()
    return fleet, list(sim.drive(fleet))


def _rows(url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query.encode(), params or None).fetchall()


async def _write(url: str, outcomes: list[Outcome]) -> None:
    sink = TimescaleSink(url)
    try:
        for outcome in outcomes:
            result = await sink.write(outcome.batch)
            assert result.refused == []
        # a redelivery (the worker crashed before committing): nothing is written twice
        again = await sink.write(outcomes[0].batch)
        appended = ("heartbeats", "liveness_changes", "expected_changes")
        assert [again.written[table] for table in appended] == [0, 0, 0]
    finally:
        await sink.close()


def _fleet_mix(fleet: list[sim.Station]) -> None:
    """The week holds what the test claims it holds."""
    assert len(fleet) >= 50
    assert {s.category for s in fleet} >= {"smart_24h", "standard", "truck_driver"}
    lifecycles = {lifecycle for s in fleet for _, lifecycle in s.registry}
    assert lifecycles == {"active", "temporarily_closed", "decommissioned", "removed"}
    assert {s.hours.get("holidays_open") for s in fleet} == {True, False}
    assert any(len(spans) > 1 for s in fleet for spans in (s.hours.get("weekly") or {}).values())
    assert "holiday" in {sim.DAY_KINDS.get(d) for d in sim.DAYS}


async def _check(url: str, week: tuple[list[sim.Station], list[Outcome]]) -> None:
    fleet, outcomes = week
    _fleet_mix(fleet)
    await _write(url, outcomes)
    last_day = sim.WEEK_END.date() - timedelta(days=1)
    got = {
        (sid, day): (monitored, online, availability)
        for sid, day, monitored, online, availability in _rows(
            url,
            "SELECT station_id, day, monitored_s, online_s, availability"
            " FROM stationwatch.availability_daily WHERE day <= %s",
            last_day,
        )
    }
    want = {
        (station.station_id, day): numbers
        for station in fleet
        for day, numbers in sim.recompute(station).items()
    }
    assert want, "the recomputation found nothing"
    assert sorted(got) == sorted(want)
    wrong = []
    for key, (monitored, online) in sorted(want.items()):
        m, o, a = got[key]
        if abs(m - monitored) >= 0.001 or abs(o - online) >= 0.001 or abs(a - o / m) > 1e-9:
            wrong.append((key, (m, o), (monitored, online)))
    assert wrong == [], f"{len(wrong)} station-days differ (view, recomputed): {wrong[:10]}"
    _same_as_the_view_for_any_range(url, sorted({day for _, day in want}))
    # the week is not trivial: stations fell short, some never answered, holidays were closed
    ratios = [o / m for m, o in want.values()]
    assert min(ratios) == 0.0
    assert sum(r == 1.0 for r in ratios) > len(ratios) / 3
    assert sum(0.0 < r < 1.0 for r in ratios) >= 20
    office = [s for s in fleet if s.hours.get("weekly") == sim.OFFICE]
    closed_on_holiday = [s for s in office if not s.hours["holidays_open"]]
    assert closed_on_holiday
    assert all((s.station_id, date(2026, 9, 25)) not in got for s in closed_on_holiday)
    assert all((s.station_id, date(2026, 9, 20)) in got for s in office)  # make-up working day
    # the last interval runs to now(): an always-open station is monitored until today
    (until_now,) = _rows(
        url,
        "SELECT sum(monitored_s) FROM stationwatch.availability_daily"
        " WHERE station_id = 'AV-0000' AND day > %s",
        last_day,
    )
    assert until_now[0] == pytest.approx(
        (datetime.now(UTC) - sim.WEEK_END).total_seconds(), abs=120
    )


async def test_availability_daily_matches_an_independent_recomputation(
    database_url: str, week: tuple[list[sim.Station], list[Outcome]]
) -> None:
    await _check(database_url, week)


@pytest.fixture
def timescale_url() -> Iterator[str]:
    name = f"stationwatch_avail_ts_{uuid.uuid4().hex[:10]}"
    url = database_url_for(name)
    try:
        result = migrate(url)
        assert result.flavor == "timescale"
        yield url
    finally:
        drop_database(name)


@pytest.mark.skipif(bool(timescale_skip_reason()), reason=timescale_skip_reason())
async def test_availability_daily_matches_on_timescaledb(
    timescale_url: str, week: tuple[list[sim.Station], list[Outcome]]
) -> None:
    (hypertable,) = _rows(
        timescale_url,
        "SELECT count(*) FROM timescaledb_information.hypertables"
        " WHERE hypertable_schema = 'stationwatch' AND hypertable_name = 'expected_changes'",
    )
    assert hypertable == (1,)
    await _check(timescale_url, week)


# -- the running worker --------------------------------------------------------------------------
def _expected_rows(url: str, station_id: str) -> list[tuple[bool, str]]:
    return [
        (expected, reason)
        for expected, reason in _rows(
            url,
            "SELECT expected, reason FROM stationwatch.expected_changes"
            " WHERE station_id = %s ORDER BY time",
            station_id,
        )
    ]


async def test_the_worker_writes_when_a_station_stops_and_starts_being_expected(
    broker: EmbeddedBroker, database_url: str, tmp_path: Path
) -> None:
    sid = f"AW-{uuid.uuid4().hex[:8].upper()}"
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)

    def record(lifecycle: str, at: datetime) -> bytes:
        return dumps(
            profile(sid, heartbeat_interval_s=30, lifecycle=lifecycle, updated_at=at.isoformat())
        )

    async with running_worker(broker.url, database_url, tmp_path) as worker:
        prefix = worker.env["STATIONWATCH_TOPIC_PREFIX"]
        async with Producer(broker.url, prefix) as producer:

            async def rows_are(wanted: list[tuple[bool, str]]) -> bool:
                return _expected_rows(database_url, sid) == wanted

            await producer.send("station.registry", sid, record("active", base))
            await producer.flush()
            await wait_for(
                lambda: rows_are([(True, "first_seen")]), timeout_s=30, what="first sight"
            )
            await producer.send(
                "station.registry", sid, record("temporarily_closed", base + timedelta(seconds=1))
            )
            await producer.flush()
            await wait_for(
                lambda: rows_are([(True, "first_seen"), (False, "lifecycle")]),
                timeout_s=30,
                what="the temporary closure",
            )
            await producer.send(
                "station.registry", sid, record("active", base + timedelta(seconds=2))
            )
            await producer.flush()
            wanted = [(True, "first_seen"), (False, "lifecycle"), (True, "lifecycle")]
            await wait_for(lambda: rows_are(wanted), timeout_s=30, what="the reopening")
        # A restart recovers the station from the changelog and judges it again: no new row.
        worker.stop()
        worker.start()
        await worker.wait_healthy()

        async def served() -> bool:
            return (await worker.get(f"/stations/{sid}")).status_code == 200

        await wait_for(served, timeout_s=30, what="the station recovered after the restart")
        await asyncio.sleep(2)  # an observation window: nothing may arrive in it
        assert _expected_rows(database_url, sid) == wanted
        (today,) = _rows(
            database_url,
            "SELECT monitored_s FROM stationwatch.availability_daily WHERE station_id = %s"
            " AND day = (now() AT TIME ZONE 'Asia/Shanghai')::date",
            sid,
        )
        assert today[0] > 0


def _same_as_the_view_for_any_range(url: str, days: list[date]) -> None:
    """availability_between(first, last) answers exactly the view's rows for those days: the
    whole week, every single day, and a stretch in the middle (which starts from the stations'
    states at its first midnight)."""
    ranges = [(days[0], days[-1]), (days[2], days[4]), *((day, day) for day in days)]
    for first, last in ranges:
        view = _rows(
            url,
            "SELECT day, station_id, monitored_s, online_s, availability"
            " FROM stationwatch.availability_daily WHERE day BETWEEN %s AND %s"
            " ORDER BY day, station_id",
            first,
            last,
        )
        ranged = _rows(
            url,
            "SELECT day, station_id, monitored_s, online_s, availability"
            " FROM stationwatch.availability_between(%s, %s) ORDER BY day, station_id",
            first,
            last,
        )
        assert view, (first, last)
        assert [row[:2] for row in ranged] == [row[:2] for row in view], (first, last)
        for got, want in zip(ranged, view, strict=True):
            assert got[2:] == pytest.approx(want[2:], abs=1e-6), (first, last, got, want)
