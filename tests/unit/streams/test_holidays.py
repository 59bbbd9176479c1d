"""The operator's holidays file merged over chinese-calendar: the merge rules, how far the
calendar is known, files refused with their line, reloading on change, the warnings, and a
station closed on a declared 2027 holiday raising no false alarm.

The 2027 dates below are test data (what an operator might declare), not the official calendar.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry, Gauge

from schemas import Heartbeat, StationProfile, StatusEvent
from stationwatch.errors import ConfigurationError
from stationwatch.settings import Settings
from streams.holidays import (
    LIBRARY_LAST_DAY,
    HolidayCalendar,
    HolidayWatch,
    calendar_warnings,
    days_left,
    holiday_health,
    install_holiday_reload,
    load_holidays,
    parse_holidays,
)
from streams.liveness import Clock, LivenessConfig, evaluate
from streams.schedule import active_calendar, day_kind, scheduled_open, use_calendar
from streams.state import StationState, apply_heartbeat, apply_profile, apply_status, new_state
from tests import factories

SH = ZoneInfo("Asia/Shanghai")
ROOT = Path(__file__).resolve().parents[3]
DAY_S = 86_400
OFFICE: dict[str, Any] = {
    "always_open": False,
    "weekly": {d: [["08:00", "20:00"]] for d in ("mon", "tue", "wed", "thu", "fri")},
    "holidays_open": False,
}
FILE = """\
holidays:
  2026-11-30: 区级停工日       # a Monday the package calls a working day
  2027-02-08: 春节             # a Monday beyond the package
workdays:
  2026-10-01: 取消假日         # a weekday the package calls a holiday: worked instead
  2027-02-20: 春节调休         # a Saturday worked
"""


@pytest.fixture(autouse=True)
def package_calendar() -> Iterator[None]:
    """Every test starts and ends with the package's calendar alone in use."""
    use_calendar(HolidayCalendar())
    yield
    use_calendar(HolidayCalendar())


def at(day: str, clock: str) -> datetime:
    return datetime.fromisoformat(f"{day}T{clock}:00").replace(tzinfo=SH)


def write(path: Path, text: str, *, bump: int = 0) -> Path:
    """Write ``text``; ``bump`` seconds later than the file's current time (a clear change)."""
    old = path.stat().st_mtime if path.exists() else 0.0
    path.write_text(text, encoding="utf-8")
    if bump:
        os.utime(path, (old + bump, old + bump))
    return path


# -- merge rules -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("day", "kind"),
    [
        pytest.param(date(2026, 11, 30), "holiday", id="file-holiday-over-package-workday"),
        pytest.param(date(2027, 2, 8), "holiday", id="file-holiday-beyond-package"),
        pytest.param(date(2026, 10, 1), "normal", id="file-workday-cancels-package-holiday"),
        pytest.param(date(2027, 2, 20), "makeup_workday", id="file-saturday-worked"),
        pytest.param(date(2026, 10, 2), "holiday", id="package-holiday-not-named"),
        pytest.param(date(2026, 10, 10), "makeup_workday", id="package-makeup-not-named"),
        pytest.param(date(2027, 2, 9), "normal", id="unknown-weekday-is-ordinary"),
        pytest.param(date(2027, 2, 13), "normal", id="unknown-saturday-is-ordinary"),
    ],
)
def test_file_entries_win_for_their_dates(day: date, kind: str) -> None:
    calendar = parse_holidays(FILE, "holidays.yaml")
    assert calendar.day_kind(day) == kind
    use_calendar(calendar)
    assert day_kind(day) == kind


@pytest.mark.parametrize(
    ("text", "known_until"),
    [
        pytest.param("", LIBRARY_LAST_DAY, id="empty-file"),
        pytest.param(FILE, date(2027, 2, 20), id="last-listed-date"),
        pytest.param(FILE + "covers_until: 2027-12-31\n", date(2027, 12, 31), id="covers-until"),
        pytest.param(
            FILE + "covers_until: 2027-01-31\n", date(2027, 1, 31), id="covers-until-wins"
        ),
        pytest.param("holidays: {2026-11-30: x}\n", LIBRARY_LAST_DAY, id="inside-package-years"),
        pytest.param("covers_until: 2020-01-01\n", LIBRARY_LAST_DAY, id="package-is-later"),
    ],
)
def test_known_until_is_the_later_of_package_and_file(text: str, known_until: date) -> None:
    assert parse_holidays(text, "f.yaml").known_until == known_until
    assert HolidayCalendar().known_until == LIBRARY_LAST_DAY == date(2026, 12, 31)


def test_the_shipped_file_holds_new_years_day_2027_and_claims_no_more() -> None:
    calendar = load_holidays(ROOT / "deploy" / "holidays.yaml")
    assert dict(calendar.holidays) == {date(2027, 1, 1): "元旦"}
    assert dict(calendar.workdays) == {}
    assert calendar.covers_until is None  # the rest of 2027 is for operators to fill in
    assert calendar.known_until == date(2027, 1, 1)


# -- refused files -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "holidays:\n  2027-13-01: x\n", "line 2: '2027-13-01' is not a date", id="m13"
        ),
        pytest.param(
            "holidays:\n  2027-02-30: x\n", "line 2: '2027-02-30' is not a date", id="d30"
        ),
        pytest.param("workdays:\n  next monday: x\n", "line 2: 'next monday' is not", id="words"),
        pytest.param(
            "holidays:\n  2027-01-01: a\n  2027-01-01: b\n", "line 3: 2027-01-01 is listed twice"
        ),
        pytest.param(
            "holidays:\n  2027-01-01: a\nworkdays:\n  2027-01-01: b\n",
            "line 4: 2027-01-01 is both a holiday and a working day",
            id="both",
        ),
        pytest.param("holiday:\n  2027-01-01: a\n", "line 1: unknown key 'holiday'", id="typo"),
        pytest.param("holidays:\n  - 2027-01-01\n", "line 2: holidays must map dates", id="list"),
        pytest.param("covers_until: soon\n", "line 1: 'soon' is not a date", id="covers-until"),
        pytest.param("holidays: {2027-01-01: [a]}\n", "line 1: the name of 2027-01-01", id="name"),
        pytest.param("holidays:\n  2027-01-01: a\n b: [\n", "line 3", id="yaml-syntax"),
        pytest.param("- 2027-01-01\n", "line 1: expected holidays:", id="top-level-list"),
        pytest.param("holidays: {}\nholidays: {}\n", "line 2: holidays appears twice", id="2x"),
    ],
)
def test_an_invalid_file_is_refused_naming_file_and_line(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=r"holidays file /etc/h\.yaml, ") as caught:
        parse_holidays(text, "/etc/h.yaml")
    assert message in str(caught.value)


def test_an_unreadable_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"missing\.yaml: cannot be read"):
        load_holidays(tmp_path / "missing.yaml")


def test_an_invalid_file_at_start_stops_the_worker(tmp_path: Path) -> None:
    path = write(tmp_path / "h.yaml", "holidays:\n  2027-01-01: 元旦\n  2027-02-31: x\n")
    with pytest.raises(ConfigurationError, match=rf"{path}, line 3: '2027-02-31'"):
        HolidayWatch.start(Settings(holidays_file=path))
    assert active_calendar().source is None  # nothing half-installed


# -- reloading ---------------------------------------------------------------------------------
def test_a_changed_file_is_used_without_a_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path / "h.yaml", "holidays: {2027-01-01: 元旦}\n")
    watch = HolidayWatch.start(Settings(holidays_file=path))
    monday = at("2027-02-08", "10:00")
    assert scheduled_open(OFFICE, monday, SH)  # cached: the reload must forget it
    watch.check()
    assert active_calendar() is watch.calendar  # unchanged file: the same calendar

    write(path, FILE, bump=2)
    watch.check()
    assert not scheduled_open(OFFICE, monday, SH)
    assert active_calendar().known_until == date(2027, 2, 20)

    caplog.set_level(logging.ERROR, logger="streams.holidays")
    write(path, FILE + "  2027-02-31: typo\n", bump=2)
    watch.check()
    watch.check()  # the same bad version: reported once
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert f"{path}, line 7: '2027-02-31' is not a date" in errors[0]
    assert "still using the previous calendar" in errors[0]
    assert not scheduled_open(OFFICE, monday, SH)  # the previous calendar stays

    path.unlink()
    watch.check()
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 2
    assert not scheduled_open(OFFICE, monday, SH)

    write(path, "holidays: {}\n", bump=4)
    watch.check()
    assert scheduled_open(OFFICE, monday, SH)


def test_the_worker_follows_the_file_on_a_timer(tmp_path: Path) -> None:
    path = write(tmp_path / "h.yaml", "")

    timers: list[Any] = []

    class App:
        def timer(self, interval: float) -> Any:
            assert interval <= 60
            return timers.append

    class Runtime:
        settings = Settings(holidays_file=path)
        app = App()
        metrics = type("M", (), {"holiday_left": Gauge("d", "d", registry=None)})()

    install_holiday_reload(Runtime())  # type: ignore[arg-type]
    assert active_calendar().source == str(path)
    write(path, FILE, bump=2)
    asyncio.run(timers[0]())
    assert day_kind(date(2027, 2, 8)) == "holiday"


# -- telling operators -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("today", "left", "warned"),
    [
        pytest.param(date(2026, 10, 1), 91, False, id="three-months-left"),
        pytest.param(date(2026, 11, 1), 60, False, id="exactly-the-warning-days"),
        pytest.param(date(2026, 11, 2), 59, True, id="inside-the-warning-days"),
        pytest.param(date(2026, 12, 31), 0, True, id="last-known-day"),
        pytest.param(date(2027, 1, 5), -5, True, id="past-it"),
    ],
)
def test_days_left_and_warnings(today: date, left: int, warned: bool) -> None:
    calendar = HolidayCalendar()
    assert days_left(calendar, today) == left
    warnings = calendar_warnings(calendar, today, 60)
    assert bool(warnings) is warned
    if warned:
        assert "2026-12-31" in warnings[0]
        assert "STATIONWATCH_HOLIDAYS_FILE" in warnings[0]


def test_health_shows_the_last_known_day_and_warns_without_failing() -> None:
    settings = Settings()
    assert holiday_health(settings, date(2026, 12, 2)) == {
        "holidays_known_until": "2026-12-31",
        "warnings": [calendar_warnings(HolidayCalendar(), date(2026, 12, 2), 60)[0]],
    }
    use_calendar(parse_holidays("covers_until: 2027-12-31\n", "h.yaml"))
    assert holiday_health(settings, date(2026, 12, 2)) == {
        "holidays_known_until": "2027-12-31",
        "warnings": [],
    }


def test_gauge_and_a_warning_once_a_day(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry()
    gauge = Gauge("stationwatch_holiday_calendar_left_seconds", "d", registry=registry)
    caplog.set_level(logging.WARNING, logger="streams.holidays")
    settings = Settings(holidays_file=write(tmp_path / "h.yaml", ""))
    day = date(2026, 12, 2)
    watch = HolidayWatch.start(settings, gauge, today=day - timedelta(days=1))
    for _ in range(3):  # the timer, many times a day
        watch.check(day)
        assert registry.get_sample_value("stationwatch_holiday_calendar_left_seconds") == 29 * DAY_S
    watch.check(day + timedelta(days=1))
    assert registry.get_sample_value("stationwatch_holiday_calendar_left_seconds") == 28 * DAY_S
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    # at start (2026-12-01), then once on 2026-12-02 and once on 2026-12-03
    assert sum("known only until 2026-12-31 (30 days left)" in w for w in warnings) == 1
    assert sum("(29 days left)" in w for w in warnings) == 1
    assert sum("(28 days left)" in w for w in warnings) == 1
    assert len(warnings) == 3


# -- what it is for: no false alarm on a declared holiday --------------------------------------
def _judge_closed_silent_station(moment: datetime) -> list[str]:
    """A weekday 08:00-20:00 station, closed on holidays, that reported closed at 07:00 and
    whose device has been silent since: the alerts it raises by ``moment``."""
    sid = "SY-0001"
    raw = factories.profile(
        sid, opening_hours=OFFICE, updated_at=(moment - timedelta(days=1)).isoformat()
    )
    state: StationState = new_state(sid, moment - timedelta(days=1))
    state = apply_profile(state, StationProfile.model_validate_json(factories.dumps(raw)), moment)
    beat = factories.heartbeat(sid, moment - timedelta(hours=4), 1)
    state = apply_heartbeat(state, Heartbeat.model_validate_json(factories.dumps(beat)), moment)
    closed = factories.status(sid, moment.replace(hour=7), "closed")
    state = apply_status(state, StatusEvent.model_validate_json(factories.dumps(closed)), moment)
    config = LivenessConfig(zone=SH)
    kinds: list[str] = []
    step = moment.replace(hour=7)
    while step <= moment:
        result = evaluate(state, Clock(step, step), config)
        state = result.state
        kinds += [a.kind for a in result.alerts if a.state == "firing"]
        step += timedelta(minutes=5)
    return kinds


def test_a_station_closed_on_a_declared_2027_holiday_is_not_expected_open() -> None:
    moment = at("2027-02-08", "12:00")  # a Monday the package knows nothing about
    assert scheduled_open(OFFICE, moment, SH)
    assert set(_judge_closed_silent_station(moment)) == {"stale", "offline", "closed_during_hours"}

    use_calendar(parse_holidays(FILE, "holidays.yaml"))
    assert not scheduled_open(OFFICE, moment, SH)
    assert _judge_closed_silent_station(moment) == []
