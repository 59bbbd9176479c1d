"""Changes of "expected alive" as ``evaluate`` reports them: what changes, when it is dated,
and that nothing is reported twice (replays, restarts, two judgements at one instant)."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from schemas import StationProfile
from streams.expected import ExpectedChange, removed
from streams.liveness import Clock, LivenessConfig, evaluate
from streams.record import absent
from streams.schedule import scheduled_open
from streams.state import StationState, apply_profile, new_state
from streams.state_codec import decode_state, encode_state
from tests import factories

SID = "SY-0001"
SH = ZoneInfo("Asia/Shanghai")
MON = datetime(2026, 9, 21, tzinfo=SH)  # Monday; Friday 2026-09-25 is Mid-autumn Festival
LATER_MON = datetime(2026, 10, 12, tzinfo=SH)  # no holiday in the three weeks from here
S = timedelta(seconds=1)
H = timedelta(hours=1)
LATE = timedelta(milliseconds=300)  # the worker's tick comes a little after a boundary
CFG = LivenessConfig()
WORKDAYS = ("mon", "tue", "wed", "thu", "fri")
OFFICE: dict[str, Any] = {
    "always_open": False,
    "weekly": {d: [["08:00", "20:00"]] for d in WORKDAYS},
    "holidays_open": False,
}
SPLIT: dict[str, Any] = {  # two spans a day, closed at lunch
    "always_open": False,
    "weekly": {d: [["08:00", "12:00"], ["13:00", "18:00"]] for d in WORKDAYS},
    "holidays_open": False,
}
MONDAYS: dict[str, Any] = {
    "always_open": False,
    "weekly": {"mon": [["09:00", "10:00"]]},
    "holidays_open": False,
}
ALWAYS: dict[str, Any] = {"always_open": True, "weekly": {}, "holidays_open": True}


class Station:
    """One station: registry records folded in and judged as the worker does."""

    def __init__(self) -> None:
        self.state: StationState = new_state(SID, MON)
        self.changes: list[tuple[datetime, bool, str]] = []

    def register(self, at: datetime, **overrides: Any) -> list[tuple[datetime, bool, str]]:
        overrides.setdefault("opening_hours", ALWAYS)
        raw = factories.profile(SID, updated_at=at.isoformat(), **overrides)
        model = StationProfile.model_validate_json(factories.dumps(raw))
        self.state = apply_profile(self.state, model, at)
        return self.judge(at)

    def judge(self, at: datetime) -> list[tuple[datetime, bool, str]]:
        result = evaluate(self.state, Clock(at, at), CFG)
        self.state = result.state
        found = [(c.time, c.expected, c.reason) for c in result.expected_changes]
        assert all(c.station_id == SID for c in result.expected_changes)
        self.changes.extend(found)
        return found


def at(day: datetime, hhmm: str) -> datetime:
    hour, minute = hhmm.split(":")
    return day.replace(hour=int(hour), minute=int(minute))


# -- what changes, dated when ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("profile", "first_seen", "judged", "changes"),
    [
        pytest.param(
            {"opening_hours": ALWAYS},
            at(MON, "03:00"),
            [at(MON, "23:00")],
            [(at(MON, "03:00"), True, "first_seen")],
            id="always-open-from-first-sight",
        ),
        pytest.param(
            {"opening_hours": OFFICE},
            at(MON, "10:00"),
            [at(MON, "20:00") + LATE],
            [(at(MON, "10:00"), True, "first_seen"), (at(MON, "20:00"), False, "schedule")],
            id="closing-dated-at-the-boundary-though-judged-later",
        ),
        pytest.param(
            {"opening_hours": OFFICE},
            at(MON, "06:00"),
            [at(MON, "08:00") + LATE],
            [(at(MON, "08:00"), True, "schedule")],
            id="opening-dated-at-the-boundary",
        ),
        pytest.param(
            {"opening_hours": SPLIT},
            at(MON, "09:00"),
            [at(MON, "13:30")],
            [
                (at(MON, "09:00"), True, "first_seen"),
                (at(MON, "12:00"), False, "schedule"),
                (at(MON, "13:00"), True, "schedule"),
            ],
            id="boundaries-passed-unjudged-are-each-reported",
        ),
        pytest.param(
            {"opening_hours": OFFICE},
            at(MON + 3 * 24 * H, "19:00"),  # Thursday
            [at(MON + 4 * 24 * H, "12:00"), at(MON + 7 * 24 * H, "08:00") + LATE],
            [
                (at(MON + 3 * 24 * H, "19:00"), True, "first_seen"),
                (at(MON + 3 * 24 * H, "20:00"), False, "schedule"),
                # Friday is a public holiday and the station does not open on holidays
                (at(MON + 7 * 24 * H, "08:00"), True, "schedule"),
            ],
            id="closed-on-a-public-holiday",
        ),
        pytest.param(
            {"opening_hours": {**OFFICE, "holidays_open": True}},
            at(MON + 3 * 24 * H, "19:00"),
            [at(MON + 4 * 24 * H, "08:00") + LATE],
            [
                (at(MON + 3 * 24 * H, "19:00"), True, "first_seen"),
                (at(MON + 3 * 24 * H, "20:00"), False, "schedule"),
                (at(MON + 4 * 24 * H, "08:00"), True, "schedule"),
            ],
            id="open-on-a-public-holiday-when-holidays-open",
        ),
        pytest.param(
            {"opening_hours": MONDAYS},
            at(LATER_MON, "11:00"),
            [at(LATER_MON + 15 * 24 * H, "12:00")],  # two weeks and a day unjudged
            [
                (at(LATER_MON + 7 * 24 * H, "09:00"), True, "schedule"),
                (at(LATER_MON + 7 * 24 * H, "10:00"), False, "schedule"),
                (at(LATER_MON + 14 * 24 * H, "09:00"), True, "schedule"),
                (at(LATER_MON + 14 * 24 * H, "10:00"), False, "schedule"),
            ],
            id="a-long-pause-is-walked-week-by-week",
        ),
        pytest.param(
            {"opening_hours": ALWAYS, "lifecycle": "temporarily_closed"},
            at(MON, "09:00"),
            [at(MON, "23:00")],
            [],
            id="temporarily-closed-never-expected",
        ),
        pytest.param(
            {"opening_hours": ALWAYS, "heartbeat_interval_s": None},
            at(MON, "09:00"),
            [at(MON, "23:00")],
            [],
            id="no-device-never-expected",
        ),
    ],
)
def test_changes_are_dated_when_they_happened(
    profile: dict[str, Any],
    first_seen: datetime,
    judged: list[datetime],
    changes: list[tuple[datetime, bool, str]],
) -> None:
    station = Station()
    station.register(first_seen, **profile)
    for moment in judged:
        station.judge(moment)
    assert station.changes == changes


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        pytest.param({"lifecycle": "temporarily_closed"}, "lifecycle", id="temporary-closure"),
        pytest.param({"lifecycle": "decommissioned"}, "lifecycle", id="decommissioned"),
        pytest.param({"heartbeat_interval_s": None}, "registry", id="device-removed"),
        pytest.param({"opening_hours": MONDAYS}, "registry", id="hours-now-closed"),
    ],
)
def test_a_registry_change_is_dated_when_processed_and_undone_likewise(
    change: dict[str, Any], reason: str
) -> None:
    station = Station()
    station.register(at(MON, "10:00"), opening_hours=OFFICE)
    processed = at(MON, "11:17") + LATE
    assert station.register(processed, **{"opening_hours": OFFICE, **change}) == [
        (processed, False, reason)
    ]
    back = at(MON, "15:42")
    assert station.register(back, opening_hours=OFFICE) == [(back, True, reason)]


def test_new_hours_are_not_walked_into_the_past() -> None:
    """Hours changed by the registry apply from when the record was processed: the new hours'
    boundaries before that never happened."""
    station = Station()
    station.register(at(MON, "21:00"), opening_hours=OFFICE)  # closed for the night
    processed = at(MON, "23:30")
    night = {"always_open": False, "weekly": {"mon": [["22:00", "23:59"]]}}
    assert station.register(processed, opening_hours=night) == [(processed, True, "registry")]
    assert station.judge(at(MON, "23:59") + LATE) == [(at(MON, "23:59"), False, "schedule")]


def test_the_old_hours_closing_passed_unjudged_is_dated_at_its_time() -> None:
    """New hours arrive just after the old hours closed, before that closing was judged: the
    closing is dated at the old hours' time, the new hours' verdict from when processed."""
    station = Station()
    station.register(at(MON, "19:00"), opening_hours=OFFICE)
    processed = at(MON, "20:00") + LATE
    late_hours = {"always_open": False, "weekly": {"mon": [["21:00", "23:00"]]}}
    assert station.register(processed, opening_hours=late_hours) == [
        (at(MON, "20:00"), False, "schedule")
    ]
    assert absent(station.state.hours_before)
    assert station.judge(at(MON, "21:00") + LATE) == [(at(MON, "21:00"), True, "schedule")]
    station.register(at(MON, "21:30"), opening_hours=ALWAYS)
    assert station.register(at(MON, "21:31"), opening_hours=ALWAYS) == []


def test_a_boundary_passed_unjudged_uses_the_record_of_then() -> None:
    """Reactivated by the registry just after the opening, before the opening was judged: it
    was not expected at the opening (still closed then), but from the reactivation."""
    station = Station()
    station.register(at(MON, "06:00"), opening_hours=OFFICE, lifecycle="temporarily_closed")
    reactivated = at(MON, "08:00") + LATE
    assert station.register(reactivated, opening_hours=OFFICE) == [(reactivated, True, "lifecycle")]


def test_changes_that_cancel_at_one_instant_are_no_change() -> None:
    station = Station()
    station.register(at(MON, "06:00"), opening_hours=OFFICE)
    opening = at(MON, "08:00")
    closed = station.register(opening, opening_hours=OFFICE, lifecycle="temporarily_closed")
    assert closed == []
    assert station.state.expected_since is None


def test_a_station_changes_strictly_increasing_even_at_one_judge_time() -> None:
    """Two batches judged by the same stream time (a backlog): each change keeps its own key."""
    station = Station()
    moment = at(MON, "10:00")
    station.register(moment, opening_hours=ALWAYS)
    station.register(moment, opening_hours=ALWAYS, lifecycle="temporarily_closed")
    times = [t for t, _, _ in station.changes]
    assert [e for _, e, _ in station.changes] == [True, False]
    assert times == [moment, moment + timedelta(microseconds=1)]


# -- nothing twice -----------------------------------------------------------------------------
def test_judging_again_reports_nothing() -> None:
    station = Station()
    station.register(at(MON, "10:00"), opening_hours=SPLIT)
    station.judge(at(MON, "12:00") + LATE)
    for moment in (at(MON, "12:00") + LATE, at(MON, "12:30"), at(MON, "12:59")):
        assert station.judge(moment) == []


def test_state_restored_from_the_changelog_reports_nothing_new() -> None:
    station = Station()
    station.register(at(MON, "10:00"), opening_hours=SPLIT)
    station.judge(at(MON, "12:00") + LATE)
    restored = decode_state(encode_state(station.state))  # as the live table stores it
    assert restored == station.state
    result = evaluate(restored, Clock(at(MON, "12:40"), at(MON, "12:40")), CFG)
    assert result.expected_changes == []
    later = evaluate(restored, Clock(at(MON, "13:00") + LATE, at(MON, "14:00")), CFG)
    assert [(c.time, c.expected) for c in later.expected_changes] == [(at(MON, "13:00"), True)]


def test_a_replay_from_an_earlier_state_reports_the_same_schedule_changes() -> None:
    station = Station()
    station.register(at(MON, "10:00"), opening_hours=SPLIT)
    earlier = station.state
    first = evaluate(earlier, Clock(at(MON, "12:00") + LATE, at(MON, "12:00")), CFG)
    again = evaluate(earlier, Clock(at(MON, "12:07"), at(MON, "12:07")), CFG)
    assert first.expected_changes == again.expected_changes


def test_a_state_of_an_earlier_version_carries_its_verdict() -> None:
    """A state judged before the changes were reported: its current expectation is reported
    once, from when it began."""
    station = Station()
    station.register(at(MON, "10:00"), opening_hours=OFFICE)
    old = replace(
        station.state,
        expect_basis=None,
        expected_changed_at=None,
        expected_since=at(MON, "10:05"),
    )
    result = evaluate(old, Clock(at(MON, "11:00"), at(MON, "11:00")), CFG)
    assert result.expected_changes == [ExpectedChange(at(MON, "10:05"), SID, True, "first_seen")]
    again = evaluate(result.state, Clock(at(MON, "11:01"), at(MON, "11:01")), CFG)
    assert again.expected_changes == []


def test_removed_from_the_registry() -> None:
    station = Station()
    station.register(at(MON, "10:00"), opening_hours=ALWAYS)
    gone = at(MON, "11:00")
    assert removed(station.state, gone) == [ExpectedChange(gone, SID, False, "registry")]
    station.register(gone, opening_hours=ALWAYS, lifecycle="temporarily_closed")
    assert removed(station.state, gone + H) == []


def test_silence_counts_from_the_exact_opening() -> None:
    """The alerts use the same dating: a station silent since before the opening is late from
    the opening, though the opening was judged later."""
    station = Station()
    station.register(at(MON, "07:00"), opening_hours=OFFICE, heartbeat_interval_s=30)
    station.judge(at(MON, "08:00") + 20 * S)
    assert station.state.expected_since == at(MON, "08:00")


# -- properties over random registry changes and judgements ------------------------------------
_HOURS = {"always": ALWAYS, "office": OFFICE, "split": SPLIT, "mondays": MONDAYS}
_step = st.one_of(
    st.tuples(st.just("wait"), st.integers(1, 3 * 86400)),
    st.tuples(st.just("lifecycle"), st.sampled_from(["active", "temporarily_closed"])),
    st.tuples(st.just("device"), st.sampled_from([None, 30])),
    st.tuples(st.just("hours"), st.sampled_from(sorted(_HOURS))),
)


@settings(max_examples=150, deadline=None)
@given(steps=st.lists(_step, max_size=30))
def test_changes_alternate_increase_and_agree_with_the_verdict_at_every_judgement(
    steps: list[tuple[str, Any]],
) -> None:
    station = Station()
    record: dict[str, Any] = {"opening_hours": OFFICE}
    moment = at(MON, "07:30")
    station.register(moment, **record)
    for kind, value in steps:
        moment += 13 * S
        if kind == "wait":
            moment += value * S
            station.judge(moment)
        else:
            key = {"lifecycle": "lifecycle", "device": "heartbeat_interval_s"}.get(kind)
            record[key or "opening_hours"] = _HOURS[value] if kind == "hours" else value
            station.register(moment, **record)
        verdict = (
            record.get("lifecycle", "active") == "active"
            and record.get("heartbeat_interval_s", 30) is not None
            and scheduled_open(record["opening_hours"], moment, SH)
        )
        running = station.changes[-1][1] if station.changes else False
        assert running == verdict, (moment, station.changes[-3:])
        assert (station.state.expected_since is not None) == verdict
    times = [t for t, _, _ in station.changes]
    assert times == sorted(set(times))
    flags = [e for _, e, _ in station.changes]
    assert all(a != b for a, b in itertools.pairwise([False, *flags]))
