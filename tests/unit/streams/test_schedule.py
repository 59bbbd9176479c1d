"""Should a station be open now: weekly hours, overnight intervals, Chinese public holidays and
make-up working days (chinese-calendar), 24-hour stations, years the calendar does not cover."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import chinese_calendar
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.liveness import next_boundary
from streams.schedule import (
    day_kind,
    intervals_for,
    next_change,
    previous_change,
    scheduled_open,
    shared_hours,
)

SH = ZoneInfo("Asia/Shanghai")
WORKDAYS_8_20: dict[str, Any] = {
    d: [["08:00", "20:00"]] for d in ("mon", "tue", "wed", "thu", "fri")
}


def at(day: str, clock: str) -> datetime:
    """A Shanghai-local moment: ``at("2026-11-30", "08:00")``."""
    return datetime.fromisoformat(f"{day}T{clock}:00").replace(tzinfo=SH)


def hours(
    weekly: dict[str, Any] | None = None, *, always_open: bool = False, holidays_open: bool = False
) -> dict[str, Any]:
    return {"always_open": always_open, "weekly": weekly or {}, "holidays_open": holidays_open}


# -- the calendar facts the tables below rely on (fail loudly if the package changes them) ----
def test_calendar_facts_used_by_these_tables() -> None:
    assert chinese_calendar.get_holiday_detail(date(2026, 10, 1)) == (True, "National Day")
    assert chinese_calendar.get_holiday_detail(date(2026, 10, 3)) == (True, "National Day")
    assert date(2026, 10, 10).weekday() == 5  # a Saturday …
    assert chinese_calendar.is_workday(date(2026, 10, 10))  # … declared a working day
    assert date(2026, 9, 20).weekday() == 6  # a Sunday working day
    assert chinese_calendar.is_workday(date(2026, 9, 20))
    assert not chinese_calendar.is_workday(date(2026, 11, 28))  # an ordinary Saturday
    with pytest.raises(NotImplementedError):
        chinese_calendar.get_holiday_detail(date(2027, 1, 1))


@pytest.mark.parametrize(
    ("day", "kind"),
    [
        pytest.param(date(2026, 10, 1), "holiday", id="national-day"),
        pytest.param(date(2026, 10, 4), "holiday", id="national-day-on-a-sunday"),
        pytest.param(date(2026, 10, 10), "makeup_workday", id="makeup-saturday"),
        pytest.param(date(2026, 9, 20), "makeup_workday", id="makeup-sunday"),
        pytest.param(date(2026, 11, 28), "normal", id="ordinary-saturday"),
        pytest.param(date(2026, 11, 30), "normal", id="ordinary-monday"),
        pytest.param(date(2027, 1, 1), "normal", id="uncovered-year-new-years-day"),
        pytest.param(date(2027, 10, 1), "normal", id="uncovered-year-national-day"),
    ],
)
def test_day_kind(day: date, kind: str) -> None:
    assert day_kind(day) == kind


def test_an_uncovered_year_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    day_kind.cache_clear()
    caplog.set_level("WARNING", logger="streams.schedule")
    for offset in range(3):
        day_kind(date(2031, 3, 1) + timedelta(days=offset))
    warnings = [r for r in caplog.records if "2031" in r.getMessage()]
    assert len(warnings) == 1


OPEN_CASES = [
    # -- 24-hour stations --------------------------------------------------------------------
    pytest.param(hours(always_open=True), at("2026-11-30", "03:00"), True, id="always-open-night"),
    pytest.param(
        hours(always_open=True), at("2026-10-01", "03:00"), True, id="always-open-holiday"
    ),
    pytest.param(
        hours(always_open=True, holidays_open=False),
        at("2026-10-01", "12:00"),
        True,
        id="always-open-wins-over-holidays-closed",
    ),
    # -- plain weekly hours (2026-11-30 is an ordinary Monday) -------------------------------
    pytest.param(hours(WORKDAYS_8_20), at("2026-11-30", "07:59"), False, id="before-opening"),
    pytest.param(hours(WORKDAYS_8_20), at("2026-11-30", "08:00"), True, id="at-opening"),
    pytest.param(hours(WORKDAYS_8_20), at("2026-11-30", "19:59"), True, id="last-minute"),
    pytest.param(hours(WORKDAYS_8_20), at("2026-11-30", "20:00"), False, id="at-closing"),
    pytest.param(hours(WORKDAYS_8_20), at("2026-11-29", "12:00"), False, id="missing-day-closed"),
    pytest.param(hours(), at("2026-11-30", "12:00"), False, id="no-hours-at-all"),
    pytest.param(
        hours({"mon": [["08:00", "11:00"], ["14:00", "18:00"]]}),
        at("2026-11-30", "12:00"),
        False,
        id="lunch-break-closed",
    ),
    pytest.param(
        hours({"mon": [["08:00", "11:00"], ["14:00", "18:00"]]}),
        at("2026-11-30", "14:30"),
        True,
        id="second-interval-open",
    ),
    pytest.param(
        hours({"mon": [["08:00", "24:00"]]}), at("2026-11-30", "23:59"), True, id="until-24:00"
    ),
    pytest.param(
        hours({"mon": [["08:00", "24:00"]]}),
        at("2026-12-01", "00:00"),
        False,
        id="24:00-ends-at-midnight",
    ),
    pytest.param(
        hours(WORKDAYS_8_20),
        datetime(2026, 11, 30, 0, 30, tzinfo=UTC),
        True,
        id="utc-input-judged-in-shanghai",
    ),
    # -- across midnight: Friday 20:00-02:00 (2026-11-27 Fri, 2026-11-28 Sat) --------------
    pytest.param(
        hours({"fri": [["20:00", "02:00"]]}), at("2026-11-27", "19:59"), False, id="fri-before"
    ),
    pytest.param(
        hours({"fri": [["20:00", "02:00"]]}), at("2026-11-27", "20:00"), True, id="fri-evening"
    ),
    pytest.param(
        hours({"fri": [["20:00", "02:00"]]}), at("2026-11-28", "01:00"), True, id="sat-01:00"
    ),
    pytest.param(
        hours({"fri": [["20:00", "02:00"]]}), at("2026-11-28", "02:00"), False, id="sat-02:00"
    ),
    pytest.param(
        hours({"fri": [["20:00", "02:00"]]}), at("2026-11-28", "03:00"), False, id="sat-03:00"
    ),
    pytest.param(
        hours({"fri": [["20:00", "02:00"]]}),
        at("2026-11-27", "01:00"),
        False,
        id="fri-early-morning-belongs-to-thursday",
    ),
    # -- public holidays: 2026-10-01 (Thu) and 2026-10-03 (Sat) are National Day ------------
    pytest.param(hours(WORKDAYS_8_20), at("2026-10-01", "10:00"), False, id="holiday-closed"),
    pytest.param(
        hours(WORKDAYS_8_20, holidays_open=True),
        at("2026-10-01", "10:00"),
        True,
        id="holiday-open-own-hours",
    ),
    pytest.param(
        hours({"thu": [["12:00", "14:00"]], "mon": [["08:00", "20:00"]]}, holidays_open=True),
        at("2026-10-01", "10:00"),
        False,
        id="holiday-open-own-hours-not-workday-hours",
    ),
    pytest.param(
        hours({"tue": [["10:00", "16:00"]]}, holidays_open=True),
        at("2026-10-03", "11:00"),
        True,
        id="holiday-without-own-hours-uses-workday-hours",
    ),
    pytest.param(
        hours({"tue": [["10:00", "16:00"]]}, holidays_open=True),
        at("2026-10-03", "09:00"),
        False,
        id="holiday-workday-hours-before-opening",
    ),
    pytest.param(
        hours({"sat": [["10:00", "16:00"]]}, holidays_open=True),
        at("2026-10-01", "11:00"),
        False,
        id="holiday-open-but-no-workday-hours",
    ),
    pytest.param(
        hours({"wed": [["20:00", "02:00"]]}),
        at("2026-10-01", "01:00"),
        True,
        id="overnight-from-an-ordinary-eve-into-a-holiday",
    ),
    pytest.param(
        hours({"thu": [["20:00", "02:00"]]}),
        at("2026-10-02", "01:00"),
        False,
        id="overnight-from-a-closed-holiday",
    ),
    pytest.param(
        hours({"thu": [["20:00", "02:00"]]}, holidays_open=True),
        at("2026-10-02", "01:00"),
        True,
        id="overnight-from-an-open-holiday",
    ),
    # -- make-up working days: 2026-10-10 (Sat) and 2026-09-20 (Sun) ----------------------
    pytest.param(
        hours(WORKDAYS_8_20), at("2026-10-10", "10:00"), True, id="makeup-sat-workday-hours"
    ),
    pytest.param(
        hours(WORKDAYS_8_20), at("2026-09-20", "21:00"), False, id="makeup-sun-after-hours"
    ),
    pytest.param(
        hours({**WORKDAYS_8_20, "sat": [["12:00", "14:00"]]}),
        at("2026-10-10", "10:00"),
        False,
        id="makeup-day-own-hours-win",
    ),
    pytest.param(
        hours({**WORKDAYS_8_20, "sat": [["12:00", "14:00"]]}),
        at("2026-10-10", "13:00"),
        True,
        id="makeup-day-own-hours-open",
    ),
    pytest.param(
        hours(WORKDAYS_8_20), at("2026-11-28", "10:00"), False, id="ordinary-saturday-closed"
    ),
    # -- years the package does not cover: normal days -------------------------------------
    pytest.param(
        hours(WORKDAYS_8_20), at("2027-01-01", "10:00"), True, id="2027-new-year-as-friday"
    ),
    pytest.param(
        hours(WORKDAYS_8_20), at("2027-10-01", "10:00"), True, id="2027-national-day-as-friday"
    ),
    pytest.param(hours(WORKDAYS_8_20), at("2027-01-02", "10:00"), False, id="2027-saturday"),
]


@pytest.mark.parametrize(("opening", "moment", "expected"), OPEN_CASES)
def test_scheduled_open(opening: dict[str, Any], moment: datetime, expected: bool) -> None:
    assert scheduled_open(opening, moment, SH) is expected


@pytest.mark.parametrize(
    ("opening", "day", "intervals"),
    [
        pytest.param(hours(WORKDAYS_8_20), date(2026, 10, 1), [], id="holiday-closed"),
        pytest.param(
            hours({"tue": [["10:00", "16:00"]], "wed": [["09:00", "17:00"]]}, holidays_open=True),
            date(2026, 10, 3),
            [["10:00", "16:00"]],
            id="holiday-first-workday-with-hours",
        ),
        pytest.param(
            hours({"mon": [["07:00", "09:00"], ["17:00", "19:00"]]}),
            date(2026, 10, 10),
            [["07:00", "09:00"], ["17:00", "19:00"]],
            id="makeup-day-every-interval",
        ),
        pytest.param(hours(WORKDAYS_8_20), date(2026, 11, 28), [], id="missing-day"),
    ],
)
def test_intervals_for(opening: dict[str, Any], day: date, intervals: list[list[str]]) -> None:
    assert [list(i) for i in intervals_for(day, opening)] == intervals


@pytest.mark.parametrize(
    ("opening", "moment", "change"),
    [
        pytest.param(hours(always_open=True), at("2026-11-30", "08:00"), None, id="always-open"),
        pytest.param(hours(), at("2026-11-30", "08:00"), None, id="never-open"),
        pytest.param(
            hours(WORKDAYS_8_20), at("2026-11-30", "07:00"), at("2026-11-30", "08:00"), id="opens"
        ),
        pytest.param(
            hours(WORKDAYS_8_20),
            at("2026-11-30", "08:00"),
            at("2026-11-30", "20:00"),
            id="strictly-after-an-opening",
        ),
        pytest.param(
            hours(WORKDAYS_8_20),
            at("2026-11-30", "21:00"),
            at("2026-12-01", "08:00"),
            id="tomorrow-morning",
        ),
        pytest.param(
            hours(WORKDAYS_8_20),
            at("2026-11-27", "21:00"),
            at("2026-11-30", "08:00"),
            id="over-the-weekend",
        ),
        pytest.param(
            hours({"fri": [["20:00", "02:00"]]}),
            at("2026-11-28", "01:00"),
            at("2026-11-28", "02:00"),
            id="closing-of-yesterdays-overnight-interval",
        ),
        pytest.param(
            hours({"fri": [["20:00", "02:00"]]}),
            at("2026-11-27", "20:00"),
            at("2026-11-28", "02:00"),
            id="overnight-closing-is-next-day",
        ),
        pytest.param(
            hours(WORKDAYS_8_20),
            at("2026-10-09", "21:00"),
            at("2026-10-10", "08:00"),
            id="makeup-saturday-opens",
        ),
        pytest.param(
            hours(WORKDAYS_8_20),
            datetime(2026, 11, 30, 0, 0, tzinfo=UTC),
            at("2026-11-30", "20:00"),
            id="utc-input",
        ),
        pytest.param(
            hours(WORKDAYS_8_20),
            at("2026-09-30", "21:00"),
            None,
            id="golden-week-beyond-the-default-horizon",
        ),
    ],
)
def test_next_change(opening: dict[str, Any], moment: datetime, change: datetime | None) -> None:
    assert next_change(opening, moment, SH) == change


@pytest.mark.parametrize(
    ("opening", "moment", "change"),
    [
        pytest.param(hours(always_open=True), at("2026-11-30", "10:00"), None, id="always-open"),
        pytest.param(
            hours(WORKDAYS_8_20), at("2026-11-30", "10:00"), at("2026-11-30", "08:00"), id="opened"
        ),
        pytest.param(
            hours(WORKDAYS_8_20), at("2026-11-30", "08:00"), at("2026-11-30", "08:00"), id="at-it"
        ),
        pytest.param(
            hours(WORKDAYS_8_20),
            at("2026-11-30", "07:00"),
            at("2026-11-27", "20:00"),
            id="monday-morning-back-to-friday",
        ),
        pytest.param(
            hours({"fri": [["20:00", "02:00"]]}),
            at("2026-11-28", "05:00"),
            at("2026-11-28", "02:00"),
            id="overnight-close",
        ),
    ],
)
def test_previous_change(
    opening: dict[str, Any], moment: datetime, change: datetime | None
) -> None:
    assert previous_change(opening, moment, SH) == change


def test_next_change_skips_a_closed_holiday_week_with_a_longer_horizon() -> None:
    moment = at("2026-09-30", "21:00")
    assert next_change(hours(WORKDAYS_8_20), moment, SH, days=10) == at("2026-10-08", "08:00")
    assert next_change(hours(WORKDAYS_8_20, holidays_open=True), moment, SH) == at(
        "2026-10-01", "08:00"
    )


@pytest.mark.parametrize("days", [8, 10])  # the cached window, and a longer horizon
def test_openings_and_closings_are_given_in_utc(days: int) -> None:
    """The same instants as the schedule's local times, in UTC: a judgement compares them
    with its clock and its state's times, which are UTC, without asking zones for offsets."""
    moment = at("2026-11-30", "10:00")
    found = [
        next_change(hours(WORKDAYS_8_20), moment, SH, days=days),
        previous_change(hours(WORKDAYS_8_20), moment, SH, days=days),
    ]
    assert found == [at("2026-11-30", "20:00"), at("2026-11-30", "08:00")]
    assert [f.tzinfo for f in found if f is not None] == [UTC, UTC]


# -- property: the answer never changes between `at` and next_change(at) ---------------------
CLOCKS = [f"{h:02d}:{m:02d}" for h in range(24) for m in (0, 30)]
_interval = st.tuples(st.sampled_from(CLOCKS), st.sampled_from([*CLOCKS, "24:00"])).filter(
    lambda pair: pair[0] != pair[1]
)
_weekly = st.dictionaries(
    st.sampled_from(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]),
    st.lists(_interval, min_size=1, max_size=2),
    max_size=7,
)


_start = st.datetimes(
    min_value=datetime(2026, 9, 1),  # noqa: DTZ001 - made aware in the tests
    max_value=datetime(2027, 1, 31),  # noqa: DTZ001
)


def _opening(weekly: dict[str, Any], holidays_open: bool) -> dict[str, Any]:
    """Opening hours of drawn weekly intervals (tuples as the JSON's lists)."""
    return hours({d: [list(i) for i in v] for d, v in weekly.items()}, holidays_open=holidays_open)


@settings(max_examples=60, deadline=None)
@given(weekly=_weekly, holidays_open=st.booleans(), start=_start)
def test_scheduled_open_is_constant_until_next_change(
    weekly: dict[str, Any], holidays_open: bool, start: datetime
) -> None:
    opening = _opening(weekly, holidays_open)
    moment = start.replace(second=0, microsecond=0, tzinfo=SH)
    change = next_change(opening, moment, SH, days=3)
    horizon = change if change is not None else moment + timedelta(days=2)
    assert horizon > moment
    before = scheduled_open(opening, moment, SH)
    probe = moment
    while probe < horizon:
        assert scheduled_open(opening, probe, SH) is before, probe
        probe += timedelta(minutes=30)
    assert scheduled_open(opening, horizon - timedelta(seconds=1), SH) is before


@settings(max_examples=60, deadline=None)
@given(
    weekly=_weekly,
    holidays_open=st.booleans(),
    start=_start,
    later=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3)),
)
def test_shared_hours_answer_as_their_own_json(
    weekly: dict[str, Any], holidays_open: bool, start: datetime, later: timedelta
) -> None:
    """Hours shared between stations (read once from their JSON, next changes cached) give
    the answers the hours themselves give; the next change after a station's last one is
    the next change after now while it lies ahead."""
    opening = _opening(weekly, holidays_open)
    shared = shared_hours(orjson.dumps(opening))
    since = start.replace(tzinfo=SH)
    now = since + later
    if not weekly:
        assert shared is None or next_change(shared, now, SH) is None
        return
    assert shared == opening
    assert shared is shared_hours(orjson.dumps(opening))  # one per distinct schedule
    for moment in (since, now):
        assert next_change(shared, moment, SH) == next_change(opening, moment, SH)
        assert scheduled_open(shared, moment, SH) == scheduled_open(opening, moment, SH)
    assert next_boundary(shared, since, now, SH) == next_change(opening, now, SH)
    assert next_boundary(shared, now + timedelta(hours=1), now, SH) == next_change(opening, now, SH)


def test_no_hours_are_none() -> None:
    assert shared_hours(None) is None
    assert shared_hours(b"null") is None
    assert shared_hours(b"{}") is None
