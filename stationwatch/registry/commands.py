"""`stationwatch stations close|reopen|decommission|inspect|overdue|history`: each reads the
database, decides with the pure modules beside it, and publishes or records.

Lifecycle changes go through ``station.registry`` like every registry change: the worker
applies them (liveness honours them at once), writes the ``stations`` row and the history.
Inspections are written to PostgreSQL directly (``inspections`` and ``station_history`` in one
transaction): nothing in the stream depends on them, and the command already needs the database.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from schemas.common import STATION_ID_PATTERN
from schemas.registry import StationProfile
from stationwatch.errors import StationwatchError
from stationwatch.registry import lifecycle, patrol, store
from stationwatch.registry.history import HistoryEntry, describe_values, inspection_entry
from stationwatch.registry.publish import publish
from stationwatch.settings import Settings

Action = Literal["close", "reopen", "decommission"]
_STATION_ID = re.compile(STATION_ID_PATTERN)


class UnknownStationError(StationwatchError):
    """No station with this id is in the registry (the `stations` table)."""


def check_station_id(station_id: str) -> str:
    """The id as given, or :class:`lifecycle.LifecycleError` when it cannot be one."""
    if not _STATION_ID.match(station_id):
        raise lifecycle.LifecycleError(
            f"{station_id!r} is not a station id (like SY-0001: 2-4 capital letters, '-', "
            "1-12 digits or capital letters)"
        )
    return station_id


def _current(settings: Settings, station_id: str) -> dict[str, Any]:
    found = store.profile(settings.dsn, station_id)
    if found is None:
        raise UnknownStationError(f"no station {station_id} in the registry")
    return found


@dataclass(frozen=True)
class LifecycleRequest:
    action: Action
    station_id: str
    by: str | None
    reason: str | None = None
    until: datetime | None = None


def change_lifecycle(settings: Settings, request: LifecycleRequest, now: datetime) -> str:
    """Publish the station's changed record; returns what was done, for people."""
    current = _current(settings, request.station_id)
    if request.action == "close":
        record = lifecycle.close(
            current, now=now, reason=request.reason or "", until=request.until, by=request.by
        )
    elif request.action == "reopen":
        record = lifecycle.reopen(current, now=now, by=request.by)
    else:
        record = lifecycle.decommission(current, now=now, by=request.by, reason=request.reason)
    asyncio.run(publish(settings, [record]))
    return describe_lifecycle(
        record, ZoneInfo(settings.timezone), settings.topic("station.registry")
    )


def describe_lifecycle(record: StationProfile, zone: ZoneInfo, topic: str) -> str:
    who = f"{record.station_id} {record.name}"
    if record.lifecycle == "temporarily_closed":
        until = (
            f" until {record.closed_until.astimezone(zone):%Y-%m-%d %H:%M %Z}"
            if record.closed_until is not None
            else " until reopened"
        )
        what = f"temporarily closed{until}: {record.closure_reason}"
    elif record.lifecycle == "decommissioned":
        what = "decommissioned" + (f": {record.closure_reason}" if record.closure_reason else "")
    else:
        what = "active again"
    return f"{who}: {what} (published to {topic})"


def inspect(
    settings: Settings,
    station_id: str,
    *,
    result: str,
    note: str,
    by: str,
    at: datetime,
) -> str:
    """Record an inspection; returns what was done, for people."""
    current = _current(settings, station_id)
    inspection = store.Inspection(station_id, at, result, note, by)
    entry = inspection_entry(station_id, at=at, result=result, note=note, by=by)
    new = store.record_inspection(settings.dsn, inspection, entry)
    local = at.astimezone(ZoneInfo(settings.timezone))
    done = "recorded" if new else "already recorded"
    name = current.get("name", "")
    return f"{station_id} {name}: inspection ({result}) {local:%Y-%m-%d %H:%M} by {by} {done}"


def overdue(settings: Settings, now: datetime) -> list[patrol.Overdue]:
    return patrol.overdue(store.patrol_rows(settings.dsn), settings.patrol_interval_days, now)


def overdue_json(found: list[patrol.Overdue]) -> str:
    return json.dumps(
        [
            {
                "station_id": o.row.station_id,
                "name": o.row.name,
                "street": o.row.street,
                "responsible_person": o.row.responsible_person,
                "responsible_phone": o.row.responsible_phone,
                "last_inspection_at": _iso(o.row.last_inspection_at),
                "last_result": o.row.last_result,
                "due_at": _iso(o.due_at),
                "days_overdue": o.days_overdue,
            }
            for o in found
        ],
        ensure_ascii=False,
        indent=2,
    )


def history(settings: Settings, station_id: str) -> list[HistoryEntry]:
    entries = store.history(settings.dsn, station_id)
    if not entries and store.profile(settings.dsn, station_id) is None:
        raise UnknownStationError(f"no station {station_id} in the registry or its history")
    return entries


def history_json(entries: list[HistoryEntry]) -> str:
    return json.dumps(
        [
            {
                "station_id": e.station_id,
                "time": e.time.isoformat(),
                "what": e.what,
                "by": e.changed_by,
                "via": e.changed_via,
                "old": e.old,
                "new": e.new,
            }
            for e in entries
        ],
        ensure_ascii=False,
        indent=2,
    )


def history_lines(entries: list[HistoryEntry], zone: ZoneInfo) -> list[str]:
    return [
        f"{e.time.astimezone(zone):%Y-%m-%d %H:%M:%S}  {e.what:<10}  "
        f"{e.changed_by or '—'} via {e.changed_via or '—'}  {describe_values(e.old, e.new)}"
        for e in entries
    ]


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def overdue_table(found: list[patrol.Overdue], zone: ZoneInfo, interval_days: int) -> Any:
    """A rich table of the overdue stations."""
    from rich.table import Table

    table = Table(title=f"Overdue for a patrol (every {interval_days} days)")
    for column in ("id", "name", "street", "responsible", "phone", "last inspection", "overdue"):
        # ids, phones and dates stay whole (searchable, copyable); names may wrap
        table.add_column(column, no_wrap=column in ("id", "phone", "last inspection"))
    for o in found:
        last = o.row.last_inspection_at
        table.add_row(
            o.row.station_id,
            o.row.name,
            o.row.street,
            o.row.responsible_person or "—",
            o.row.responsible_phone or "—",
            f"{last.astimezone(zone):%Y-%m-%d} ({o.row.last_result})" if last else "never",
            f"{o.days_overdue} d" if o.days_overdue is not None else "never inspected",
        )
    return table
