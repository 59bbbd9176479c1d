"""Which stations are overdue for a patrol."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from stationwatch.registry.patrol import overdue, overdue_at
from stationwatch.registry.store import PatrolRow

NOW = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def row(sid: str, last: datetime | None) -> PatrolRow:
    return PatrolRow(sid, f"驿站 {sid}", "空港街道", "李强", "13800000000", last, "pass")


@pytest.mark.parametrize(
    ("last", "days"),
    [
        pytest.param(NOW - 30 * DAY + timedelta(seconds=1), None, id="just-in-time"),
        pytest.param(NOW - 30 * DAY, None, id="due-now"),
        pytest.param(NOW - 30 * DAY - timedelta(seconds=1), 0, id="just-overdue"),
        pytest.param(NOW - 32 * DAY - timedelta(hours=1), 2, id="two-days"),
        pytest.param(NOW - DAY, None, id="recent"),
    ],
)
def test_overdue_past_the_interval(last: datetime, days: int | None) -> None:
    found = overdue_at(row("SY-1", last), 30, NOW)
    if days is None:
        assert found is None
    else:
        assert found is not None
        assert found.days_overdue == days
        assert found.due_at == last + 30 * DAY


def test_never_inspected_is_overdue() -> None:
    found = overdue_at(row("SY-1", None), 30, NOW)
    assert found is not None
    assert (found.due_at, found.days_overdue) == (None, None)


def test_never_inspected_first_then_longest_overdue() -> None:
    rows = [
        row("SY-3", NOW - 40 * DAY),
        row("SY-2", None),
        row("SY-4", NOW - 90 * DAY),
        row("SY-5", NOW - DAY),
        row("SY-1", None),
    ]
    assert [o.row.station_id for o in overdue(rows, 30, NOW)] == ["SY-1", "SY-2", "SY-4", "SY-3"]
    assert [o.row.station_id for o in overdue(rows, 7, NOW)][-1] == "SY-3"
    assert len(overdue(rows, 100, NOW)) == 2
