"""What the registry commands read and write in PostgreSQL (schema `stationwatch`).

The commands run once and briefly, so this is plain synchronous psycopg: one connection per
command. Driver errors become :class:`DatabaseUnavailableError` with a one-line reason.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import TupleRow

from stationwatch.errors import DatabaseUnavailableError, driver_message
from stationwatch.registry.history import HISTORY_COLUMNS, HistoryEntry

_NAMESPACE = uuid.UUID("0c7b3e2a-8f1d-4e55-9b7e-3a1f6c2d9e41")


@dataclass(frozen=True)
class Inspection:
    station_id: str
    inspected_at: datetime
    result: str  # pass | issues
    note: str
    inspected_by: str
    recorded_via: str = "stations inspect"

    @property
    def inspection_id(self) -> uuid.UUID:
        """Derived from what was inspected, when and by whom: the same inspection recorded
        twice (a command run again after an error) is one row."""
        key = "|".join(
            (self.station_id, self.inspected_at.isoformat(), self.inspected_by, self.result)
        )
        return uuid.uuid5(_NAMESPACE, f"{key}|{self.note}")


@dataclass(frozen=True)
class PatrolRow:
    station_id: str
    name: str
    street: str
    responsible_person: str | None
    responsible_phone: str | None
    last_inspection_at: datetime | None
    last_result: str | None


@contextmanager
def _connection(dsn: str) -> Iterator[psycopg.Connection[TupleRow]]:
    try:
        with psycopg.connect(dsn, connect_timeout=10) as conn:
            yield conn
    except psycopg.Error as exc:
        raise DatabaseUnavailableError(f"database: {driver_message(exc)}") from exc


def profile(dsn: str, station_id: str) -> dict[str, Any] | None:
    """The station's registry record as the worker last wrote it, or ``None``."""
    with _connection(dsn) as conn:
        row = conn.execute(
            "SELECT profile FROM stationwatch.stations WHERE station_id = %s", (station_id,)
        ).fetchone()
    return dict(row[0]) if row is not None else None


def record_inspection(dsn: str, inspection: Inspection, entry: HistoryEntry) -> bool:
    """The inspection and its history entry, in one transaction; ``False`` when it was
    recorded before (nothing written)."""
    columns = ", ".join(HISTORY_COLUMNS)
    with _connection(dsn) as conn, conn.transaction():
        inserted = conn.execute(
            "INSERT INTO stationwatch.inspections (inspection_id, station_id, inspected_at,"
            " result, note, inspected_by, recorded_via) VALUES (%s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (inspection_id) DO NOTHING",
            (
                inspection.inspection_id,
                inspection.station_id,
                inspection.inspected_at,
                inspection.result,
                inspection.note,
                inspection.inspected_by,
                inspection.recorded_via,
            ),
        ).rowcount
        conn.execute(
            f"INSERT INTO stationwatch.station_history ({columns})"  # noqa: S608 - constants
            " VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s::jsonb) ON CONFLICT DO NOTHING",
            entry.row(),
        )
    return inserted == 1


def patrol_rows(dsn: str) -> list[PatrolRow]:
    """Every station in service with its last inspection (view ``stations_patrol``)."""
    with _connection(dsn) as conn:
        rows = conn.execute(
            "SELECT station_id, name, street, responsible_person, responsible_phone,"
            " last_inspection_at, last_result FROM stationwatch.stations_patrol"
            " ORDER BY station_id"
        ).fetchall()
    return [PatrolRow(*row) for row in rows]


def history(dsn: str, station_id: str) -> list[HistoryEntry]:
    """The station's history, oldest first."""
    with _connection(dsn) as conn:
        rows = conn.execute(
            "SELECT station_id, time, what, changed_by, changed_via, old, new"
            " FROM stationwatch.station_history WHERE station_id = %s ORDER BY time, what",
            (station_id,),
        ).fetchall()
    return [HistoryEntry(*row) for row in rows]


def record_patrol_interval(dsn: str, days: int) -> None:
    """The patrol interval the ``stations_overdue`` view uses (set by `stationwatch migrate`)."""
    with _connection(dsn) as conn:
        conn.execute(
            "INSERT INTO stationwatch.patrol_policy (interval_days) VALUES (%s)"
            " ON CONFLICT (singleton) DO UPDATE SET interval_days = EXCLUDED.interval_days,"
            " updated_at = now()",
            (days,),
        )
