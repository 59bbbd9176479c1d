"""Writes batches of accepted messages to PostgreSQL/TimescaleDB.

Each table is filled by COPY into a session-temporary staging table, then
``INSERT … SELECT … ON CONFLICT DO NOTHING``: fast, and a message delivered twice writes one row.
A batch is one transaction. Transient failures are retried with backoff, forever: the agent
calling :meth:`TimescaleSink.write` blocks, consumption pauses, and the offsets of the batch are
committed only once its rows are durable.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from stationwatch.errors import DatabaseUnavailableError

logger = logging.getLogger(__name__)

HEARTBEAT_COLUMNS = (
    "time",
    "station_id",
    "seq",
    "received_at",
    "device_id",
    "uptime_s",
    "battery_pct",
    "on_mains",
    "temperature_c",
    "firmware",
    "interval_s",
)
OCCUPANCY_COLUMNS = ("time", "station_id", "occupants", "capacity", "source", "received_at")
STATUS_COLUMNS = ("time", "station_id", "state", "reason", "actor", "received_at")
STATION_COLUMNS = (
    "station_id",
    "name",
    "district",
    "street",
    "category",
    "host",
    "lat",
    "lon",
    "services",
    "capacity",
    "opening_hours",
    "heartbeat_interval_s",
    "contact_phone",
    "lifecycle",
    "updated_at",
    "profile",
)
LIVENESS_COLUMNS = ("time", "station_id", "from_liveness", "to_liveness")
ALERT_COLUMNS = (
    "alert_id",
    "fingerprint",
    "station_id",
    "kind",
    "severity",
    "starts_at",
    "ends_at",
    "detected_at",
    "resolved_detected_at",
    "last_heartbeat_at",
    "labels",
    "summary",
)
_APPEND_TABLES = {
    "heartbeats": HEARTBEAT_COLUMNS,
    "occupancy": OCCUPANCY_COLUMNS,
    "status_events": STATUS_COLUMNS,
    "liveness_changes": LIVENESS_COLUMNS,
}


@dataclass
class Batch:
    """Rows of one batch of input, in the column order above."""

    heartbeats: list[tuple[Any, ...]] = field(default_factory=list)
    occupancy: list[tuple[Any, ...]] = field(default_factory=list)
    status_events: list[tuple[Any, ...]] = field(default_factory=list)
    liveness_changes: list[tuple[Any, ...]] = field(default_factory=list)
    # The last registry action per station in this batch: a row to upsert, or None to delete.
    stations: dict[str, tuple[Any, ...] | None] = field(default_factory=dict)
    # One row per alert episode touched (firing, resolved, or both merged).
    alerts: dict[str, tuple[Any, ...]] = field(default_factory=dict)

    def __len__(self) -> int:
        return (
            len(self.heartbeats)
            + len(self.occupancy)
            + len(self.status_events)
            + len(self.liveness_changes)
            + len(self.stations)
            + len(self.alerts)
        )


def station_row(profile: dict[str, Any], updated_at: datetime) -> tuple[Any, ...]:
    """A ``stations`` row from a registry record (as JSON)."""
    return (
        profile["station_id"],
        profile["name"],
        profile.get("district") or "",
        profile.get("street") or "",
        profile["category"],
        profile["host"],
        profile["location"]["lat"],
        profile["location"]["lon"],
        list(profile.get("services") or []),
        profile.get("capacity"),
        json.dumps(profile["opening_hours"], ensure_ascii=False),
        profile.get("heartbeat_interval_s"),
        profile.get("contact_phone"),
        profile["lifecycle"],
        updated_at,
        json.dumps(profile, ensure_ascii=False),
    )


_UPSERT_STATIONS = f"""
INSERT INTO stationwatch.stations ({", ".join(STATION_COLUMNS)})
SELECT {", ".join(STATION_COLUMNS)} FROM _stage_stations
ON CONFLICT (station_id) DO UPDATE SET
{", ".join(f"{c} = EXCLUDED.{c}" for c in STATION_COLUMNS[1:])}, ingested_at = now()
WHERE EXCLUDED.updated_at >= stationwatch.stations.updated_at
"""  # noqa: S608 - column names are constants of this module

# A firing row, then its resolution: detected_at is kept from the firing, ends_at added.
_UPSERT_ALERTS = f"""
INSERT INTO stationwatch.alerts ({", ".join(ALERT_COLUMNS)})
SELECT {", ".join(ALERT_COLUMNS)} FROM _stage_alerts
ON CONFLICT (alert_id) DO UPDATE SET
ends_at = COALESCE(EXCLUDED.ends_at, stationwatch.alerts.ends_at),
resolved_detected_at = COALESCE(
    EXCLUDED.resolved_detected_at, stationwatch.alerts.resolved_detected_at
),
last_heartbeat_at = COALESCE(EXCLUDED.last_heartbeat_at, stationwatch.alerts.last_heartbeat_at)
"""  # noqa: S608 - column names are constants of this module


class TimescaleSink:
    """One connection, used by the single ingest agent of a worker."""

    def __init__(
        self,
        dsn: str,
        *,
        on_retry: Callable[[], None] | None = None,
        on_available: Callable[[bool], None] | None = None,
        max_backoff_s: float = 30.0,
    ) -> None:
        self._dsn = dsn
        self._conn: asyncpg.Connection | None = None
        self._on_retry = on_retry
        self._on_available = on_available
        self._max_backoff_s = max_backoff_s
        self._down_since: float | None = None

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                await asyncio.wait_for(conn.close(), timeout=5)
            except (OSError, asyncpg.PostgresError, TimeoutError):
                conn.terminate()

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            conn = await asyncpg.connect(self._dsn, timeout=10, command_timeout=60)
            for table in (*_APPEND_TABLES, "stations", "alerts"):
                await conn.execute(
                    f"CREATE TEMP TABLE IF NOT EXISTS _stage_{table} "
                    f"(LIKE stationwatch.{table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
                )
            self._conn = conn
        return self._conn

    async def write_once(self, batch: Batch) -> dict[str, int]:
        """Write one batch in one transaction; returns rows newly inserted per table."""
        try:
            conn = await self._connection()
            written: dict[str, int] = {}
            async with conn.transaction():
                for table, columns in _APPEND_TABLES.items():
                    rows: Sequence[tuple[Any, ...]] = getattr(batch, table)
                    if not rows:
                        continue
                    await conn.copy_records_to_table(
                        f"_stage_{table}", records=rows, columns=columns
                    )
                    status = await conn.execute(
                        f"INSERT INTO stationwatch.{table} ({', '.join(columns)}) "  # noqa: S608
                        f"SELECT {', '.join(columns)} FROM _stage_{table} "
                        "ON CONFLICT DO NOTHING"
                    )
                    written[table] = int(status.rsplit(" ", 1)[-1])
                upserts = [row for row in batch.stations.values() if row is not None]
                deletes = [sid for sid, row in batch.stations.items() if row is None]
                if upserts:
                    await conn.copy_records_to_table(
                        "_stage_stations", records=upserts, columns=STATION_COLUMNS
                    )
                    status = await conn.execute(_UPSERT_STATIONS)
                    written["stations"] = int(status.rsplit(" ", 1)[-1])
                if batch.alerts:
                    await conn.copy_records_to_table(
                        "_stage_alerts", records=list(batch.alerts.values()), columns=ALERT_COLUMNS
                    )
                    status = await conn.execute(_UPSERT_ALERTS)
                    written["alerts"] = int(status.rsplit(" ", 1)[-1])
                if deletes:
                    await conn.execute(
                        "DELETE FROM stationwatch.stations WHERE station_id = ANY($1::text[])",
                        deletes,
                    )
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            await self.close()
            raise DatabaseUnavailableError(f"{type(exc).__name__}: {exc}") from exc
        return written

    async def write(self, batch: Batch, *, log_context: str = "") -> dict[str, int]:
        """Write the batch, retrying with capped exponential backoff until it succeeds."""
        attempt = 0
        while True:
            try:
                written = await self.write_once(batch)
            except DatabaseUnavailableError as exc:
                attempt += 1
                if self._down_since is None:
                    self._down_since = time.monotonic()
                    if self._on_available:
                        self._on_available(False)
                if self._on_retry:
                    self._on_retry()
                delay = min(self._max_backoff_s, 0.25 * 2 ** min(attempt, 10))
                delay *= 0.5 + random.random() / 2  # noqa: S311 - jitter, not security
                logger.warning(
                    "database write failed (%s), %d rows held, consumption paused; "
                    "retry %d in %.1f s %s",
                    exc,
                    len(batch),
                    attempt,
                    delay,
                    log_context,
                )
                await asyncio.sleep(delay)
                continue
            if self._down_since is not None:
                logger.warning(
                    "database writes recovered after %.1f s; consumption resumed",
                    time.monotonic() - self._down_since,
                )
                self._down_since = None
            if self._on_available:
                self._on_available(True)
            return written


CURRENT_COLUMNS = (
    "station_id",
    "name",
    "category",
    "street",
    "district",
    "lat",
    "lon",
    "services",
    "lifecycle",
    "liveness",
    "liveness_since",
    "last_heartbeat_at",
    "open_state",
    "open_state_since",
    "scheduled_open",
    "occupants",
    "capacity",
    "occupancy_at",
    "updated_at",
)

_UPSERT_CURRENT = f"""
INSERT INTO stationwatch.station_current ({", ".join(CURRENT_COLUMNS)})
SELECT {", ".join(CURRENT_COLUMNS)} FROM _stage_station_current
ON CONFLICT (station_id) DO UPDATE SET
{", ".join(f"{c} = EXCLUDED.{c}" for c in CURRENT_COLUMNS[1:])}
"""  # noqa: S608 - column names are constants of this module


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def station_current_row(view: dict[str, Any], now: datetime) -> tuple[Any, ...]:
    """A ``station_current`` row from a station's public live state."""
    location = view.get("location") or {}
    return (
        view["station_id"],
        view.get("name"),
        view.get("category"),
        view.get("street"),
        view.get("district"),
        location.get("lat"),
        location.get("lon"),
        list(view.get("services") or []),
        view["lifecycle"],
        view["liveness"],
        _time(view.get("liveness_since")),
        _time(view.get("last_heartbeat_at")),
        view["open_state"],
        _time(view.get("open_state_since")),
        view.get("scheduled_open"),
        view.get("occupants"),
        view.get("capacity"),
        _time(view.get("occupancy_at")),
        now,
    )


class CurrentWriter:
    """Keeps ``station_current`` (the live state for Grafana) on a connection of its own."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: asyncpg.Connection | None = None

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.terminate()

    async def write(self, rows: list[tuple[Any, ...]], deletes: list[str]) -> None:
        try:
            if self._conn is None or self._conn.is_closed():
                self._conn = await asyncpg.connect(self._dsn, timeout=10, command_timeout=30)
                await self._conn.execute(
                    "CREATE TEMP TABLE IF NOT EXISTS _stage_station_current "
                    "(LIKE stationwatch.station_current) ON COMMIT DELETE ROWS"
                )
            conn = self._conn
            async with conn.transaction():
                if rows:
                    await conn.copy_records_to_table(
                        "_stage_station_current", records=rows, columns=CURRENT_COLUMNS
                    )
                    await conn.execute(_UPSERT_CURRENT)
                if deletes:
                    await conn.execute(
                        "DELETE FROM stationwatch.station_current WHERE station_id = ANY($1)",
                        deletes,
                    )
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            await self.close()
            raise DatabaseUnavailableError(f"{type(exc).__name__}: {exc}") from exc
