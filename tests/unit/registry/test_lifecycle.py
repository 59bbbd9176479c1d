"""`--until` and the records `stations close|reopen|decommission` publish."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from stationwatch.registry.lifecycle import (
    LifecycleError,
    close,
    decommission,
    parse_until,
    reopen,
)
from tests import factories

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 2, 9, 30, tzinfo=SH)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("2026-12-10", datetime(2026, 12, 10, 0, 0, tzinfo=SH), id="day"),
        pytest.param(" 2026-12-10 ", datetime(2026, 12, 10, 0, 0, tzinfo=SH), id="day-spaces"),
        pytest.param("2026-12-02T18:00", datetime(2026, 12, 2, 18, 0, tzinfo=SH), id="local"),
        pytest.param("2026-12-02 18:00:30", datetime(2026, 12, 2, 18, 0, 30, tzinfo=SH), id="sp"),
        pytest.param("2026-12-02T12:00:00Z", datetime(2026, 12, 2, 12, 0, tzinfo=UTC), id="utc"),
        pytest.param("2026-12-03T00:00+08:00", datetime(2026, 12, 3, 0, 0, tzinfo=SH), id="offset"),
    ],
)
def test_until_accepts_a_day_or_a_time(text: str, expected: datetime) -> None:
    got = parse_until(text, SH, NOW)
    assert got == expected
    assert got.tzinfo is not None


def test_a_day_starts_in_the_configured_zone() -> None:
    utc = ZoneInfo("UTC")
    assert parse_until("2026-12-10", utc, NOW) == datetime(2026, 12, 10, tzinfo=UTC)
    assert parse_until("2026-12-10", SH, NOW) == datetime(2026, 12, 9, 16, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("tomorrow", "not a day like 2026-12-10", id="words"),
        pytest.param("2026-13-01", "not a day like 2026-12-10", id="month-13"),
        pytest.param("2026-02-30", "not a day like 2026-12-10", id="feb-30"),
        pytest.param("2026-12-10T25:00", "not a day like 2026-12-10", id="hour-25"),
        pytest.param("", "not a day like 2026-12-10", id="empty"),
        pytest.param("2026-12-02", "is not in the future", id="today-started"),
        pytest.param("2026-12-02T09:30", "is not in the future", id="now"),
        pytest.param("2020-01-01T00:00Z", "is not in the future", id="past"),
    ],
)
def test_until_refuses_what_is_no_future_moment(text: str, message: str) -> None:
    with pytest.raises(LifecycleError, match=message) as caught:
        parse_until(text, SH, NOW)
    assert str(caught.value).startswith("--until: ")
    assert "\n" not in str(caught.value)


def stored(**overrides: Any) -> dict[str, Any]:
    """A record as the `stations` table's profile holds it."""
    overrides.setdefault("updated_at", "2026-11-01T00:00:00+00:00")
    base = factories.profile("SY-0001", **overrides)
    return {**base, "closed_until": None, "closure_reason": None, "changed_by": None}


def test_close_with_an_end_and_a_reason() -> None:
    until = datetime(2026, 12, 10, tzinfo=SH)
    record = close(stored(), now=NOW, reason=" 供暖检修 ", until=until, by="王芳")
    assert record.lifecycle == "temporarily_closed"
    assert record.closed_until == until
    assert record.closure_reason == "供暖检修"
    assert (record.changed_by, record.changed_via) == ("王芳", "stations close")
    assert record.updated_at == NOW
    assert record.name == "测试工会驿站 SY-0001"  # everything else kept
    assert record.capacity == 10


def test_close_without_an_end_lasts_until_reopened() -> None:
    record = close(stored(), now=NOW, reason="停电", until=None, by=None)
    assert (record.lifecycle, record.closed_until) == ("temporarily_closed", None)


def test_a_record_newer_than_the_stored_one_even_when_the_stored_one_is_ahead() -> None:
    ahead = (NOW + timedelta(seconds=5)).isoformat()
    record = close(stored(updated_at=ahead), now=NOW, reason="x", until=None, by=None)
    assert record.updated_at > NOW + timedelta(seconds=5)


def test_reopen_drops_the_end_and_the_reason() -> None:
    closed = stored(
        lifecycle="temporarily_closed",
        closed_until="2026-12-10T00:00:00+08:00",
        closure_reason="供暖检修",
    )
    record = reopen(closed, now=NOW, by="王芳")
    assert (record.lifecycle, record.closed_until, record.closure_reason) == ("active", None, None)
    assert record.changed_via == "stations reopen"


def test_decommission_keeps_its_reason() -> None:
    record = decommission(stored(), now=NOW, by="王芳", reason="场地拆迁")
    assert (record.lifecycle, record.closure_reason) == ("decommissioned", "场地拆迁")
    assert record.changed_via == "stations decommission"


@pytest.mark.parametrize(
    ("change", "lifecycle", "message"),
    [
        pytest.param("close", "decommissioned", "is decommissioned: it cannot be closed"),
        pytest.param("reopen", "active", "is already active"),
        pytest.param("reopen", "decommissioned", "register it again"),
        pytest.param("decommission", "decommissioned", "is already decommissioned"),
    ],
)
def test_changes_that_make_no_sense_are_refused(change: str, lifecycle: str, message: str) -> None:
    current = stored(lifecycle=lifecycle)
    changes = {
        "close": lambda: close(current, now=NOW, reason="x", until=None, by=None),
        "reopen": lambda: reopen(current, now=NOW, by=None),
        "decommission": lambda: decommission(current, now=NOW, by=None),
    }
    with pytest.raises(LifecycleError, match=message):
        changes[change]()


def test_a_closure_needs_a_reason() -> None:
    with pytest.raises(LifecycleError, match="--reason"):
        close(stored(), now=NOW, reason="  ", until=None, by=None)


def test_a_reason_too_long_for_the_registry_is_refused_before_publishing() -> None:
    with pytest.raises(LifecycleError, match="closure_reason"):
        close(stored(), now=NOW, reason="x" * 501, until=None, by=None)
