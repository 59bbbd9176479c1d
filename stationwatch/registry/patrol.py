"""Which stations are overdue for a patrol, decided purely (the ``stations_overdue`` view in
PostgreSQL applies the same rule for the dashboards).

A station in service (lifecycle ``active``, or a temporary closure past its end) is overdue
when its last inspection is more than ``interval_days`` ago, or when it was never inspected.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from stationwatch.registry.store import PatrolRow


@dataclass(frozen=True)
class Overdue:
    row: PatrolRow
    due_at: datetime | None  # None: never inspected
    days_overdue: int | None  # whole days past due_at (None: never inspected)


def overdue_at(row: PatrolRow, interval_days: int, now: datetime) -> Overdue | None:
    if row.last_inspection_at is None:
        return Overdue(row, None, None)
    due_at = row.last_inspection_at + timedelta(days=interval_days)
    if due_at >= now:
        return None
    return Overdue(row, due_at, math.floor((now - due_at).total_seconds() / 86_400))


def overdue(rows: Iterable[PatrolRow], interval_days: int, now: datetime) -> list[Overdue]:
    """The overdue ones: never inspected first, then the longest overdue first."""
    found = [o for row in rows if (o := overdue_at(row, interval_days, now)) is not None]
    return sorted(
        found,
        key=lambda o: (o.days_overdue is not None, -(o.days_overdue or 0), o.row.station_id),
    )
