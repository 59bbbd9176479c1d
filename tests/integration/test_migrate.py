"""`migrate` against the real PostgreSQL: creation, idempotence, relations and their numbers."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

import psycopg
import pytest

import stationwatch.db.migrate as migrate_module
from stationwatch.db.migrate import MigrationResult, migrate
from stationwatch.db.migrations import Migration, load_migrations
from stationwatch.db.ready import require_schema
from stationwatch.errors import MigrationError
from tests.integration.conftest import (
    ADMIN_URL,
    database_url_for,
    drop_database,
    timescale_skip_reason,
    timescale_state,
)

pytestmark = pytest.mark.integration

ALL_MIGRATIONS = [f"{m.version:04d}_{m.name}" for m in load_migrations()]

# The columns the worker, the API and the dashboards rely on, per relation.
CONTRACT_COLUMNS: dict[str, set[str]] = {
    "stations": {
        "station_id", "name", "district", "street", "category", "host", "lat", "lon", "services",
        "capacity", "opening_hours", "heartbeat_interval_s", "contact_phone", "lifecycle",
        "updated_at", "profile", "ingested_at",
    },
    "heartbeats": {
        "time", "station_id", "seq", "received_at", "device_id", "uptime_s", "battery_pct",
        "on_mains", "temperature_c", "firmware", "interval_s",
    },
    "occupancy": {"time", "station_id", "occupants", "capacity", "source", "received_at"},
    "status_events": {"time", "station_id", "state", "reason", "actor", "received_at"},
    "liveness_changes": {"time", "station_id", "from_liveness", "to_liveness"},
    "expected_changes": {"time", "station_id", "expected", "reason"},
    "alerts": {
        "alert_id", "fingerprint", "station_id", "kind", "severity", "starts_at", "ends_at",
        "detected_at", "resolved_detected_at", "last_heartbeat_at", "labels", "summary",
    },
    "station_current": {
        "station_id", "name", "category", "street", "district", "lat", "lon", "services",
        "lifecycle", "liveness", "liveness_since", "last_heartbeat_at", "open_state",
        "open_state_since", "scheduled_open", "occupants", "capacity", "occupancy_at",
        "updated_at", "reported_liveness", "fresh_until",
    },
    "occupancy_5m": {"bucket", "station_id", "avg_occupants", "max_occupants", "capacity"},
    "heartbeats_1h": {"bucket", "station_id", "heartbeats", "expected"},
    "availability_daily": {"day", "station_id", "monitored_s", "online_s", "availability"},
}  # fmt: skip


@pytest.fixture
def db_name() -> Iterator[str]:
    """A uuid database name that does not exist yet; dropped at the end."""
    name = f"stationwatch_migrate_{uuid.uuid4().hex[:10]}"
    yield name
    drop_database(name)


def _rows(url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query.encode(), params or None).fetchall()


def _exists(name: str) -> bool:
    return bool(_rows(ADMIN_URL, "SELECT 1 FROM pg_database WHERE datname = %s", name))


def test_creates_the_missing_database_and_applies_every_migration(db_name: str) -> None:
    assert not _exists(db_name)
    result = migrate(database_url_for(db_name))
    assert _exists(db_name)
    assert result.database_created
    assert result.applied == ALL_MIGRATIONS
    recorded = _rows(
        database_url_for(db_name),
        "SELECT name, flavor FROM stationwatch.schema_migrations ORDER BY version",
    )
    assert recorded == [(name, result.flavor) for name in ALL_MIGRATIONS]
    assert db_name in result.describe()


def test_second_run_applies_nothing(db_name: str) -> None:
    first = migrate(database_url_for(db_name))
    second = migrate(database_url_for(db_name))
    assert second == MigrationResult(
        first.flavor, [], database_created=False, database=db_name, version=first.version
    )
    assert "up to date" in second.describe()


def test_every_contract_relation_has_its_columns(db_name: str) -> None:
    migrate(database_url_for(db_name))
    rows = _rows(
        database_url_for(db_name),
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = 'stationwatch'",
    )
    columns: dict[str, set[str]] = {}
    for table, column in rows:
        columns.setdefault(table, set()).add(column)
    for relation, expected in CONTRACT_COLUMNS.items():
        assert expected <= columns.get(relation, set()), relation


def _insert_samples(url: str) -> None:
    with psycopg.connect(url) as conn:
        occupancy = [
            ("2026-11-30T08:00:00Z", 2, 10),
            ("2026-11-30T08:01:00Z", 4, 12),
            ("2026-11-30T08:04:59Z", 6, 12),
            ("2026-11-30T08:05:00Z", 1, None),
        ]
        conn.cursor().executemany(
            "INSERT INTO stationwatch.occupancy (time, station_id, occupants, capacity, source,"
            " received_at) VALUES (%s, 'SY-0001', %s, %s, 'sensor', now())",
            occupancy,
        )
        start = datetime.fromisoformat("2026-11-30T08:00:00+00:00")
        beats: list[tuple[datetime, int | None]] = [
            (start + timedelta(seconds=30 * i), 30) for i in range(120)
        ]
        beats += [(start + timedelta(hours=1, minutes=m), None) for m in (0, 10, 20)]
        conn.cursor().executemany(
            "INSERT INTO stationwatch.heartbeats (time, station_id, received_at, interval_s)"
            " VALUES (%s, 'SY-0001', now(), %s)",
            beats,
        )
        changes = [
            # one local day: online 6 h, offline 2 h, then not monitored (closed)
            ("SY-A", "2024-03-10T00:00:00+08:00", "unknown", "online"),
            ("SY-A", "2024-03-10T06:00:00+08:00", "online", "offline"),
            ("SY-A", "2024-03-10T08:00:00+08:00", "offline", "not_monitored"),
            # across local midnight: 2 h online on the 10th; 3 h online + 1 h offline on the 11th
            ("SY-B", "2024-03-10T22:00:00+08:00", "unknown", "online"),
            ("SY-B", "2024-03-11T03:00:00+08:00", "online", "offline"),
            ("SY-B", "2024-03-11T04:00:00+08:00", "offline", "not_monitored"),
            # one interval over four local days
            ("SY-C", "2024-03-01T12:00:00+08:00", "unknown", "online"),
            ("SY-C", "2024-03-04T06:00:00+08:00", "online", "not_monitored"),
            # stale is a late heartbeat, not online: online 1 h of 4 h expected
            ("SY-D", "2024-03-12T00:00:00+08:00", "unknown", "online"),
            ("SY-D", "2024-03-12T01:00:00+08:00", "online", "stale"),
            ("SY-D", "2024-03-12T02:00:00+08:00", "stale", "offline"),
            ("SY-D", "2024-03-12T04:00:00+08:00", "offline", "unknown"),
            # online all day, expected only in its opening hours (09:00-17:00)
            ("SY-F", "2024-03-12T20:00:00+08:00", "unknown", "online"),
            # never heard from: stale, then offline, never online
            ("SY-G", "2024-03-14T08:01:30+08:00", "unknown", "stale"),
            ("SY-G", "2024-03-14T08:05:00+08:00", "stale", "offline"),
        ]
        conn.cursor().executemany(
            "INSERT INTO stationwatch.liveness_changes (station_id, time, from_liveness,"
            " to_liveness) VALUES (%s, %s, %s, %s)",
            changes,
        )
        expected = [
            ("SY-A", "2024-03-10T00:00:00+08:00", True),
            ("SY-A", "2024-03-10T08:00:00+08:00", False),
            ("SY-B", "2024-03-10T22:00:00+08:00", True),
            ("SY-B", "2024-03-11T04:00:00+08:00", False),
            ("SY-C", "2024-03-01T12:00:00+08:00", True),
            ("SY-C", "2024-03-04T06:00:00+08:00", False),
            ("SY-D", "2024-03-12T00:00:00+08:00", True),
            ("SY-D", "2024-03-12T04:00:00+08:00", False),
            ("SY-F", "2024-03-13T09:00:00+08:00", True),
            ("SY-F", "2024-03-13T17:00:00+08:00", False),
            ("SY-G", "2024-03-14T08:00:00+08:00", True),
            ("SY-G", "2024-03-14T20:00:00+08:00", False),
        ]
        conn.cursor().executemany(
            "INSERT INTO stationwatch.expected_changes (station_id, time, expected, reason)"
            " VALUES (%s, %s, %s, 'schedule')",
            expected,
        )
        # the newest changes stay open until now()
        conn.execute(
            "INSERT INTO stationwatch.liveness_changes VALUES"
            " (now() - interval '2 hours', 'SY-E', 'unknown', 'online')"
        )
        conn.execute(
            "INSERT INTO stationwatch.expected_changes VALUES"
            " (now() - interval '1 hour', 'SY-E', true, 'first_seen')"
        )


def _check_rollups(url: str) -> None:
    buckets = _rows(
        url,
        "SELECT bucket, avg_occupants, max_occupants, capacity FROM stationwatch.occupancy_5m"
        " WHERE station_id = 'SY-0001' ORDER BY bucket",
    )
    utc8 = datetime.fromisoformat("2026-11-30T08:00:00+00:00")
    assert buckets == [(utc8, 4.0, 6, 12), (utc8 + timedelta(minutes=5), 1.0, 1, None)]
    hours = _rows(
        url,
        "SELECT bucket, heartbeats, expected FROM stationwatch.heartbeats_1h"
        " WHERE station_id = 'SY-0001' ORDER BY bucket",
    )
    assert hours == [(utc8, 120, 120.0), (utc8 + timedelta(hours=1), 3, None)]


def _check_availability(url: str) -> None:
    days = _rows(
        url,
        "SELECT station_id, day, monitored_s, online_s, availability"
        " FROM stationwatch.availability_daily WHERE station_id <> 'SY-E'"
        " ORDER BY station_id, day",
    )
    h = 3600.0
    assert days == [
        ("SY-A", date(2024, 3, 10), 8 * h, 6 * h, 0.75),
        ("SY-B", date(2024, 3, 10), 2 * h, 2 * h, 1.0),
        ("SY-B", date(2024, 3, 11), 4 * h, 3 * h, 0.75),
        ("SY-C", date(2024, 3, 1), 12 * h, 12 * h, 1.0),
        ("SY-C", date(2024, 3, 2), 24 * h, 24 * h, 1.0),
        ("SY-C", date(2024, 3, 3), 24 * h, 24 * h, 1.0),
        ("SY-C", date(2024, 3, 4), 6 * h, 6 * h, 1.0),
        ("SY-D", date(2024, 3, 12), 4 * h, 1 * h, 0.25),
        ("SY-F", date(2024, 3, 13), 8 * h, 8 * h, 1.0),
        ("SY-G", date(2024, 3, 14), 12 * h, 0.0, 0.0),
    ]
    (open_until_now,) = _rows(
        url,
        "SELECT sum(monitored_s), sum(online_s) FROM stationwatch.availability_daily"
        " WHERE station_id = 'SY-E'",
    )
    assert open_until_now[0] == open_until_now[1]
    assert h <= open_until_now[0] < h + 60


def test_rollups_and_availability_give_hand_computed_numbers(db_name: str) -> None:
    url = database_url_for(db_name)
    migrate(url)
    _insert_samples(url)
    _check_rollups(url)
    _check_availability(url)


def test_concurrent_migrates_apply_each_migration_once(db_name: str) -> None:
    url = database_url_for(db_name)
    barrier = threading.Barrier(2)
    results: list[MigrationResult] = []
    failures: list[BaseException] = []

    def run() -> None:
        barrier.wait()
        try:
            results.append(migrate(url))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    assert sorted(len(r.applied) for r in results) == [0, len(ALL_MIGRATIONS)]
    assert sum(r.database_created for r in results) == 1
    versions = _rows(url, "SELECT version FROM stationwatch.schema_migrations ORDER BY version")
    assert [v for (v,) in versions] == list(range(1, len(ALL_MIGRATIONS) + 1))


def test_failed_migration_leaves_the_last_complete_version(
    db_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = database_url_for(db_name)
    migrate(url)
    broken = Migration(
        len(ALL_MIGRATIONS) + 1,
        "broken",
        dict.fromkeys(
            ("postgres", "timescale"),
            "CREATE TABLE stationwatch.half_done (x int); SELECT no_such_function();",
        ),
    )
    real = load_migrations()
    monkeypatch.setattr(migrate_module, "load_migrations", lambda: [*real, broken])
    with pytest.raises(MigrationError, match="broken") as caught:
        migrate(url)
    assert "no_such_function" in str(caught.value)
    assert len(_rows(url, "SELECT 1 FROM stationwatch.schema_migrations")) == len(real)
    assert _rows(url, "SELECT to_regclass('stationwatch.half_done')") == [(None,)]


def test_unreachable_server_raises_a_clear_error_without_the_password() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://postgres:hunter2secret@127.0.0.1:{port}/stationwatch"
    with pytest.raises(MigrationError) as caught:
        migrate(url)
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message
    assert "hunter2secret" not in message
    assert "\n" not in message


@pytest.mark.skipif(bool(timescale_skip_reason()), reason=timescale_skip_reason())
def test_timescale_branch_builds_hypertables_policies_and_aggregates(db_name: str) -> None:
    url = database_url_for(db_name)
    result = migrate(url)
    assert result.flavor == "timescale"
    hypertables = _rows(
        url,
        "SELECT hypertable_name FROM timescaledb_information.hypertables"
        " WHERE hypertable_schema = 'stationwatch' ORDER BY 1",
    )
    assert [n for (n,) in hypertables] == [
        "expected_changes", "heartbeats", "liveness_changes", "occupancy", "status_events",
    ]  # fmt: skip
    caggs = _rows(
        url,
        "SELECT view_name FROM timescaledb_information.continuous_aggregates"
        " WHERE view_schema = 'stationwatch' ORDER BY 1",
    )
    assert [n for (n,) in caggs] == ["heartbeats_1h", "occupancy_5m"]
    jobs = _rows(url, "SELECT proc_name FROM timescaledb_information.jobs")
    procs = [n for (n,) in jobs]
    assert procs.count("policy_compression") == 5
    assert procs.count("policy_retention") == 2
    assert procs.count("policy_refresh_continuous_aggregate") == 2
    _insert_samples(url)
    _check_rollups(url)
    _check_availability(url)


def test_the_servers_timescaledb_state_is_read_without_creating_anything(db_name: str) -> None:
    state = timescale_state()
    # this suite runs on servers with and without TimescaleDB: the choice follows the state
    result = migrate(database_url_for(db_name))
    assert result.flavor == ("timescale" if state.usable() else "postgres")


def test_plain_postgresql_can_be_insisted_on(db_name: str) -> None:
    assert migrate(database_url_for(db_name), "postgres").flavor == "postgres"


@pytest.mark.skipif(timescale_state().available, reason="this server has TimescaleDB installed")
def test_insisting_on_timescaledb_where_it_is_missing_says_so(db_name: str) -> None:
    with pytest.raises(MigrationError, match="STATIONWATCH_DB_FLAVOR=timescale, but") as caught:
        migrate(database_url_for(db_name), "timescale")
    assert "\n" not in str(caught.value)


def test_a_worker_needs_the_newest_schema_and_says_what_to_run(db_name: str) -> None:
    url = database_url_for(db_name)
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db_name}"'.encode())
    with pytest.raises(MigrationError, match="has no stationwatch schema") as caught:
        require_schema(url)
    assert "run `stationwatch migrate` first" in str(caught.value)
    migrate(url)
    assert require_schema(url) == load_migrations()[-1].version
