"""The sink against the real PostgreSQL: rows it refuses — a NUL the server rejects, an integer
and a string the driver cannot encode — are handed back with the reason, every other row is
written exactly once, a batch written again adds nothing, and the sink keeps working after."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from schemas.alerts import Alert
from stationwatch.db.sink import (
    HEARTBEAT_COLUMNS,
    Batch,
    CurrentWriter,
    CurrentWritten,
    TimescaleSink,
    station_row,
)
from streams.ingest import alert_row
from streams.liveness import LivenessConfig
from streams.record import holding
from streams.state import StationState
from streams.views import current_row, live_row
from tests import factories

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
S = timedelta(seconds=1)
ZONE = LivenessConfig().zone


def station_ids(count: int) -> list[str]:
    token = uuid.uuid4().hex[:6].upper()
    return [f"SK-{token}{n:04d}" for n in range(count)]


def beat_row(station_id: str, n: int, **values: Any) -> tuple[Any, ...]:
    row = {
        "time": T0 + n * S,
        "station_id": station_id,
        "seq": n,
        "received_at": T0 + n * S,
        "device_id": f"gw-{station_id}",
        "uptime_s": 1000 + n,
        "battery_pct": 90.5,
        "on_mains": True,
        "temperature_c": 21.0,
        "firmware": "1.4.2",
        "interval_s": 30,
    }
    row.update(values)
    return tuple(row[name] for name in HEARTBEAT_COLUMNS)


@pytest.fixture
async def sink(database_url: str) -> AsyncIterator[TimescaleSink]:
    opened = TimescaleSink(database_url, max_backoff_s=0.5)
    try:
        yield opened
    finally:
        await opened.close()


async def fetch(database_url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


async def stored_beats(database_url: str, station_ids: list[str]) -> list[tuple[str, datetime]]:
    rows = await fetch(
        database_url,
        "SELECT station_id, time FROM stationwatch.heartbeats WHERE station_id = ANY($1)",
        station_ids,
    )
    return [(row["station_id"], row["time"]) for row in rows]


async def test_refused_rows_are_handed_back_and_every_other_row_is_written_once(
    database_url: str, sink: TimescaleSink
) -> None:
    sids = station_ids(100)
    poisoned: dict[int, tuple[str, dict[str, Any]]] = {
        37: ("CharacterNotInRepertoireError", {"firmware": "1.4\x002"}),  # the server refuses
        250: ("OverflowError", {"uptime_s": 2**70}),  # the driver cannot encode it as bigint
        444: ("UnicodeEncodeError", {"device_id": "gw-\ud800"}),  # nor as UTF-8
    }
    batch = Batch()
    for n in range(5):
        for sid in sids:
            _, values = poisoned.get(len(batch.heartbeats), ("", {}))
            batch.add("heartbeats", beat_row(sid, n, **values), f"{sid}#{n}")
    for n in range(50):
        batch.add("occupancy", (T0 + n * S, sids[n], n % 10, 10, "sensor", T0), f"count {n}")
    profile = factories.profile(sids[0], updated_at=T0.isoformat())
    batch.stations[sids[0]] = station_row(profile, T0)
    alert = Alert(
        alert_id=str(uuid.uuid4()),
        fingerprint=f"{sids[0]}:stale",
        station_id=sids[0],
        kind="stale",
        state="firing",
        severity="warning",
        starts_at=T0,
        detected_at=T0,
    )
    batch.alerts[alert.alert_id] = alert_row(alert)

    result = await sink.write(batch)

    refused = {id(item.row): item for item in result.refused}
    assert len(result.refused) == 3
    for index, (error, _) in poisoned.items():
        row = batch.heartbeats[index]
        item = refused[id(row)]  # the very row of the batch
        assert item.table == "heartbeats"
        assert error in item.error
        assert batch.origin(item.row) == f"{row[1]}#{row[2]}"  # dead-lettered as its record
    assert result.written == {"heartbeats": 497, "occupancy": 50, "stations": 1, "alerts": 1}
    good = [(row[1], row[0]) for i, row in enumerate(batch.heartbeats) if i not in poisoned]
    stored = await stored_beats(database_url, sids)
    assert sorted(stored) == sorted(good)  # each once, and none of the refused
    (station,) = await fetch(
        database_url, "SELECT name FROM stationwatch.stations WHERE station_id = $1", sids[0]
    )
    assert station["name"] == profile["name"]

    again = await sink.write(batch)

    assert again.written.get("heartbeats", 0) == 0
    assert again.written.get("occupancy", 0) == 0
    assert sorted(id(item.row) for item in again.refused) == sorted(refused)
    assert sorted(await stored_beats(database_url, sids)) == sorted(good)

    after = Batch()
    for sid in sids[:10]:
        after.add("heartbeats", beat_row(sid, 100), sid)
    later = await sink.write(after)

    assert later.written == {"heartbeats": 10}
    assert later.refused == []
    assert len(await stored_beats(database_url, sids)) == len(good) + 10


async def test_a_station_current_row_refused_is_skipped_and_the_others_written(
    database_url: str,
) -> None:
    sids = station_ids(6)
    gone, bad = sids[0], sids[3]

    def row(sid: str, name: str) -> tuple[Any, ...]:
        state = StationState(
            sid,
            **holding(factories.profile(sid, name=name)),
            liveness="online",
            liveness_since=T0,
            last_heartbeat_at=T0,
            occupants=2,
            occupancy_at=T0,
        )
        return current_row(state, ZONE, T0, None)

    writer = CurrentWriter(database_url)
    try:
        assert await writer.write([row(gone, "将被删除")], []) == CurrentWritten()
        rows = [row(sid, "驿\x00站" if sid == bad else f"驿站 {sid}") for sid in sids[1:]]
        written = await writer.write(rows, [gone])
        assert written == CurrentWritten(refused=[bad])
        assert await writer.write([row(sids[1], "改名驿站")], []) == CurrentWritten()  # works
    finally:
        await writer.close()

    stored = await fetch(
        database_url,
        "SELECT station_id, name FROM stationwatch.station_current WHERE station_id = ANY($1)",
        sids,
    )
    assert {r["station_id"]: r["name"] for r in stored} == {
        sids[1]: "改名驿站",
        sids[2]: f"驿站 {sids[2]}",
        sids[4]: f"驿站 {sids[4]}",
        sids[5]: f"驿站 {sids[5]}",
    }


async def test_live_rows_change_the_live_columns_and_name_the_stations_without_a_row(
    database_url: str,
) -> None:
    """A row written ``live`` keeps the registry columns written whole before it; one of a
    station without a row is not written, and is named to be written whole."""
    known, unknown = station_ids(2)

    def state(sid: str, heard: datetime) -> StationState:
        return StationState(
            sid,
            **holding(factories.profile(sid, name="老名字")),
            liveness="online",
            liveness_since=T0,
            last_heartbeat_at=heard,
        )

    writer = CurrentWriter(database_url)
    try:
        first = current_row(state(known, T0), ZONE, T0, None)
        assert await writer.write([first], []) == CurrentWritten()
        later = T0 + 60 * S
        renamed = StationState(
            known,
            **holding(factories.profile(known, name="不该写入")),
            liveness="stale",
            liveness_since=later,
            last_heartbeat_at=later,
        )
        live = [live_row(renamed, ZONE, later, later), live_row(state(unknown, T0), ZONE, T0, T0)]
        assert await writer.write([], [], live=live) == CurrentWritten(missing=[unknown])
    finally:
        await writer.close()

    stored = await fetch(
        database_url,
        "SELECT station_id, name, services, liveness, last_heartbeat_at, updated_at"
        " FROM stationwatch.station_current_reported WHERE station_id = ANY($1)",
        [known, unknown],
    )
    assert [tuple(r) for r in stored] == [
        (known, "老名字", ["water", "charging", "rest"], "stale", later, later)
    ]
