"""Folding inputs into a station's live state: the newest wins, a duplicate changes nothing, an
older message arriving late is ignored, and the state survives its JSON changelog."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from msgspec.structs import replace

from schemas import Heartbeat, Occupancy, StationProfile, StatusEvent
from streams.record import NO_RECORD, NULL, encode_record, facts_of, listing, record_of
from streams.state import (
    StationState,
    apply_heartbeat,
    apply_occupancy,
    apply_profile,
    apply_status,
    evolve,
    new_state,
)
from tests import factories

SID = "SY-0001"
SH = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 30, 8, 0, tzinfo=SH)
NOW = T0 + timedelta(hours=1)  # when the worker folds
S = timedelta(seconds=1)


def beat(sent_at: datetime, seq: int = 1, **overrides: Any) -> Heartbeat:
    return Heartbeat.model_validate_json(
        factories.dumps(factories.heartbeat(SID, sent_at, seq, **overrides))
    )


def count(observed_at: datetime, occupants: int, **overrides: Any) -> Occupancy:
    return Occupancy.model_validate_json(
        factories.dumps(factories.occupancy(SID, observed_at, occupants, **overrides))
    )


def status(at: datetime, state: str, **overrides: Any) -> StatusEvent:
    return StatusEvent.model_validate_json(
        factories.dumps(factories.status(SID, at, state, **overrides))
    )


def profile(updated_at: datetime, **overrides: Any) -> StationProfile:
    raw = factories.profile(SID, updated_at=updated_at.isoformat(), **overrides)
    return StationProfile.model_validate_json(factories.dumps(raw))


def fresh() -> StationState:
    return new_state(SID, T0 - timedelta(hours=1))


# -- newest wins, duplicates idempotent, older ignored --------------------------------------
@pytest.mark.parametrize(
    ("first_at", "second_at", "winner"),
    [
        pytest.param(T0, T0 + S, "second", id="newer-wins"),
        pytest.param(T0, T0, "first", id="duplicate-ignored"),
        pytest.param(T0, T0 - S, "first", id="older-ignored"),
    ],
)
def test_heartbeat_fold(first_at: datetime, second_at: datetime, winner: str) -> None:
    one = apply_heartbeat(fresh(), beat(first_at, seq=1, battery_pct=50.0), NOW)
    two = apply_heartbeat(one, beat(second_at, seq=2, battery_pct=60.0), NOW + S)
    if winner == "first":
        assert two == one
    else:
        assert (two.last_heartbeat_at, two.last_seq, two.battery_pct) == (second_at, 2, 60.0)
        assert two.updated_at == NOW + S
    assert one.device_id == f"gw-{SID}"
    assert one.on_mains is True


@pytest.mark.parametrize(
    ("first_at", "second_at", "winner"),
    [
        pytest.param(T0, T0 + S, "second", id="newer-wins"),
        pytest.param(T0, T0, "first", id="duplicate-ignored"),
        pytest.param(T0, T0 - S, "first", id="older-ignored"),
    ],
)
def test_occupancy_fold(first_at: datetime, second_at: datetime, winner: str) -> None:
    one = apply_occupancy(fresh(), count(first_at, 3, capacity=12), NOW)
    two = apply_occupancy(one, count(second_at, 7, capacity=None), NOW + S)
    if second_at == first_at:
        assert two == one
    if winner == "first":  # an older reading may only say when this side's run began
        assert (two.occupants, two.reported_capacity, two.occupancy_at) == (3, 12, first_at)
    else:
        assert (two.occupants, two.reported_capacity, two.occupancy_at) == (7, None, second_at)


@pytest.mark.parametrize(
    ("readings", "crossed_at"),
    [
        pytest.param([(0, 4)], 0, id="first-reading"),
        pytest.param([(0, 4), (5, 6)], 0, id="still-within"),
        pytest.param([(0, 4), (5, 12), (10, 13)], 5, id="over-since-the-first-over"),
        pytest.param([(0, 12), (5, 3), (10, 4)], 5, id="within-since-the-first-within"),
        pytest.param([(0, 12), (10, 3), (5, 4)], 5, id="an-older-reading-within-comes-first"),
        pytest.param([(10, 3), (0, 12), (5, 4)], 5, id="the-one-before-over-comes-last"),
        pytest.param([(10, 3), (5, 4), (7, 12)], 10, id="over-late-between-two-within"),
        pytest.param([(0, 10), (5, 11)], 5, id="full-is-within"),
    ],
)
def test_occupancy_keeps_when_it_last_crossed_capacity(
    readings: list[tuple[int, int]], crossed_at: int
) -> None:
    """Several readings folded before a judgement (a batch's part) leave when the occupancy
    crossed the capacity (10), which dates an over-capacity episode, not the latest reading."""
    state = apply_profile(fresh(), profile(T0 - timedelta(days=1), capacity=10), NOW)
    for seconds, occupants in readings:
        state = apply_occupancy(state, count(T0 + seconds * S, occupants, capacity=None), NOW)
    assert state.occupancy_crossed_at == T0 + crossed_at * S


@pytest.mark.parametrize(
    ("occupants", "capacity", "crossed_at"),
    [
        pytest.param(12, 20, T0 + 60 * S, id="raised-above-the-reading"),
        pytest.param(12, 12, T0 + 60 * S, id="raised-to-the-reading"),
        pytest.param(12, 11, T0, id="raised-still-below-the-reading"),
        pytest.param(4, 3, T0 + 60 * S, id="lowered-below-the-reading"),
        pytest.param(4, 5, T0, id="lowered-still-above-the-reading"),
    ],
)
def test_a_registry_capacity_moved_across_the_reading_is_a_crossing(
    occupants: int, capacity: int, crossed_at: datetime
) -> None:
    state = apply_profile(fresh(), profile(T0 - timedelta(days=1), capacity=10), NOW)
    state = apply_occupancy(state, count(T0, occupants, capacity=None), NOW)
    state = apply_profile(state, profile(T0 + 60 * S, capacity=capacity), NOW)
    assert state.occupancy_crossed_at == crossed_at


def test_a_reading_taken_in_before_the_station_s_record_is_judged_from_the_record() -> None:
    """Head counts folded before the registry record (Kafka keeps no order across topics): the
    newest is kept, and its side of the record's capacity counts from the record's time, or
    from the reading's when that is later. Readings over capacity before it are not kept."""
    state = fresh()
    for seconds, occupants in [(0, 4), (10, 13), (20, 12)]:
        state = apply_occupancy(state, count(T0 + seconds * S, occupants, capacity=None), NOW)
    registered = apply_profile(state, profile(T0 + 60 * S, capacity=10), NOW)
    assert (registered.occupants, registered.occupancy_crossed_at) == (12, T0 + 60 * S)
    early = apply_profile(state, profile(T0 + 5 * S, capacity=10), NOW)
    assert early.occupancy_crossed_at == T0 + 20 * S


@pytest.mark.parametrize(
    ("first_at", "second_at", "winner"),
    [
        pytest.param(T0, T0 + S, "second", id="newer-wins"),
        pytest.param(T0, T0, "first", id="duplicate-ignored"),
        pytest.param(T0, T0 - S, "first", id="older-ignored"),
    ],
)
def test_status_fold(first_at: datetime, second_at: datetime, winner: str) -> None:
    one = apply_status(fresh(), status(first_at, "open", reason="schedule"), NOW)
    two = apply_status(one, status(second_at, "closed", reason="weather"), NOW + S)
    if second_at == first_at:
        assert two == one
    if winner == "first":  # an older report of the other state is only kept as such
        assert (two.open_state, two.open_state_since, two.open_reason) == (
            "open",
            first_at,
            "schedule",
        )
    else:
        assert (two.open_state, two.open_state_since, two.open_reason) == (
            "closed",
            second_at,
            "weather",
        )


def test_a_report_repeating_the_state_keeps_when_the_station_came_to_it() -> None:
    """Closed at T0, closed again (another reason), then open: closed since T0 until the open
    report, whose time starts the next; a report older than the newest is ignored, even one
    newer than when the state began."""
    one = apply_status(fresh(), status(T0, "closed", reason="weather"), NOW)
    two = apply_status(one, status(T0 + 60 * S, "closed", reason="maintenance"), NOW + S)
    assert (two.open_state, two.open_state_since, two.open_reason) == (
        "closed",
        T0,
        "maintenance",
    )
    assert two.open_reported_at == T0 + 60 * S
    three = apply_status(two, status(T0 + 90 * S, "open"), NOW + 3 * S)
    assert (three.open_state, three.open_state_since) == ("open", T0 + 90 * S)
    assert three.open_other_at == T0 + 60 * S


def test_an_older_report_of_the_other_state_inside_the_run_ends_it() -> None:
    """Closed at T0 and T0 + 60 s, then an open report of T0 + 30 s comes late: closed since
    the report after it; an older closed report before it changes nothing then."""
    state = fresh()
    for at in (T0, T0 + 60 * S):
        state = apply_status(state, status(at, "closed"), NOW)
    late = apply_status(state, status(T0 + 30 * S, "open"), NOW + S)
    assert (late.open_state, late.open_state_since, late.open_other_at) == (
        "closed",
        T0 + 60 * S,
        T0 + 30 * S,
    )
    assert late.open_reported_at == T0 + 60 * S
    assert apply_status(late, status(T0 + 10 * S, "closed"), NOW + 2 * S) == late


REPORTS = [(0, "closed"), (60, "open"), (120, "closed"), (180, "open"), (240, "open")]
REPORTS += [(300, "open")]


@given(order=st.permutations(REPORTS))
@example(order=sorted(REPORTS))
@example(order=sorted(REPORTS, reverse=True))
def test_reports_in_any_order_end_in_the_newest_state_since_it_began(
    order: list[tuple[int, str]],
) -> None:
    """Whatever order the reports come in: the newest state and the last report of the other;
    since when it has held, never earlier than it began, and exactly then unless a report of
    the other state came late inside the run (its start is then a report not kept: the
    newest is taken)."""
    state = fresh()
    for seconds, reported in order:
        state = apply_status(state, status(T0 + seconds * S, reported), NOW)
    newest, began, other = factories.run_began(order)
    assert (state.open_state, state.open_reported_at) == (newest, T0 + 300 * S)
    assert state.open_other_at == (T0 + other * S if other is not None else None)
    assert state.open_state_since is not None
    assert T0 + began * S <= state.open_state_since <= T0 + 300 * S
    if order in (sorted(order), sorted(order, reverse=True)):
        assert state.open_state_since == T0 + began * S


def test_a_state_stored_before_reports_were_ordered_apart_is_ordered_by_its_since() -> None:
    earlier = evolve(fresh(), open_state="closed", open_state_since=T0)
    older = apply_status(earlier, status(T0 - S, "open"), NOW)
    assert (older.open_state, older.open_state_since, older.open_other_at) == (
        "closed",
        T0,
        T0 - S,
    )
    later = apply_status(earlier, status(T0 + S, "closed"), NOW)
    assert (later.open_state_since, later.open_reported_at) == (T0, T0 + S)


@pytest.mark.parametrize(
    ("first_at", "second_at", "winner"),
    [
        pytest.param(T0, T0 + S, "second", id="newer-wins"),
        pytest.param(T0, T0, "second", id="same-time-newest-delivered-wins"),
        pytest.param(T0, T0 - S, "first", id="older-ignored"),
    ],
)
def test_profile_fold(first_at: datetime, second_at: datetime, winner: str) -> None:
    one = apply_profile(fresh(), profile(first_at, name="一号驿站"), NOW)
    two = apply_profile(one, profile(second_at, name="二号驿站"), NOW + S)
    expected = "一号驿站" if winner == "first" else "二号驿站"
    assert two.record is not None
    assert two.record["name"] == expected
    if winner == "first":
        assert two == one


def test_profile_duplicate_is_idempotent() -> None:
    one = apply_profile(fresh(), profile(T0), NOW)
    assert apply_profile(one, profile(T0), NOW + S) == one


def test_a_record_written_otherwise_is_the_same_record() -> None:
    """A state whose registry record an earlier version wrote (other spacing and escapes): the
    same record delivered again changes nothing, and new opening hours are still seen."""
    one = apply_profile(fresh(), profile(T0), NOW)
    earlier = StationState.from_json(one.to_json())
    earlier = evolve(earlier, profile=msgspec.Raw(json.dumps(one.record).encode()))
    assert earlier.profile != one.profile  # not the same bytes
    assert apply_profile(earlier, profile(T0), NOW + S) is earlier
    hours = {"always_open": False, "weekly": {"mon": [["09:00", "17:00"]]}, "holidays_open": False}
    changed = apply_profile(earlier, profile(T0 + S, opening_hours=hours), NOW + S)
    assert changed.record is not None
    assert changed.record["opening_hours"] == hours
    assert record_of(changed.hours_before) == one.record["opening_hours"]  # type: ignore[index]


def test_what_judging_reads_of_a_record() -> None:
    closing = T0 + timedelta(days=1)
    state = apply_profile(
        fresh(),
        profile(
            T0,
            heartbeat_interval_s=45,
            capacity=7,
            lifecycle="temporarily_closed",
            closed_until=closing.isoformat(),
        ),
        NOW,
    )
    found = facts_of(state.profile)
    assert found == facts_of(msgspec.Raw(bytes(state.profile)))  # read again: the same
    assert (found.lifecycle, found.heartbeat_interval_s, found.capacity) == (
        "temporarily_closed",
        45,
        7,
    )
    assert found.closed_until == closing
    assert found.hours == state.record["opening_hours"]  # type: ignore[index]
    assert (state.lifecycle, state.heartbeat_interval_s, state.capacity) == (
        "temporarily_closed",
        45,
        7,
    )
    assert facts_of(NULL) == facts_of(None) == NO_RECORD
    assert not fresh().registered
    assert state.registered


def test_stations_with_the_same_hours_share_them() -> None:
    """One dict per distinct schedule, whichever station's record it was read from."""
    one = apply_profile(fresh(), profile(T0, name="一号驿站"), NOW)
    two = apply_profile(new_state("SY-0002", T0), profile(T0, name="二号驿站"), NOW)
    assert facts_of(one.profile).hours is facts_of(two.profile).hours


def test_what_views_show_of_a_record() -> None:
    state = apply_profile(fresh(), profile(T0, name="顺义驿站"), NOW)
    shown = listing(state.profile)
    record = state.record
    assert record is not None
    assert (shown.name, shown.district, shown.street, shown.category) == (
        "顺义驿站",
        record["district"],
        record["street"],
        record["category"],
    )
    assert (shown.location, shown.services) == (record["location"], record["services"])
    assert listing(NULL) == listing(None)
    assert listing(NULL).name is None
    assert listing(NULL).services == []
    # a hand-written record with a value of another type is read as it is
    odd = listing(encode_record({"name": 7, "services": ["water"]}))
    assert odd.name == 7  # type: ignore[comparison-overlap]
    assert odd.services == ["water"]


def test_what_judging_reads_follows_the_record() -> None:
    """Kept beside the record, it is what the record says after every change of it."""
    state = fresh()
    changes: list[tuple[datetime, dict[str, Any]]] = [
        (T0, {}),
        (T0 + S, {"heartbeat_interval_s": 60, "capacity": 3}),
        (T0 + 2 * S, {"heartbeat_interval_s": None, "lifecycle": "decommissioned"}),
    ]
    for at, overrides in changes:
        state = apply_profile(state, profile(at, **overrides), NOW)
        assert state.record_facts == facts_of(msgspec.Raw(bytes(state.profile)))


@pytest.mark.parametrize(
    ("before", "interval", "liveness", "since"),
    [
        pytest.param("unknown", None, "not_monitored", NOW, id="device-removed"),
        pytest.param("offline", None, "not_monitored", NOW, id="offline-device-removed"),
        pytest.param("not_monitored", None, "not_monitored", T0, id="still-no-device"),
        pytest.param("not_monitored", 30, "unknown", NOW, id="device-added"),
        pytest.param("online", 60, "online", T0, id="interval-changed"),
    ],
)
def test_profile_device_changes_liveness(
    before: str, interval: int | None, liveness: str, since: datetime
) -> None:
    state = replace(fresh(), liveness=before, liveness_since=T0)
    folded = apply_profile(state, profile(T0, heartbeat_interval_s=interval), NOW)
    assert (folded.liveness, folded.liveness_since) == (liveness, since)


# -- views ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("reported", "registered", "capacity"),
    [
        pytest.param(8, 12, 8, id="occupancy-message-wins"),
        pytest.param(None, 12, 12, id="registry-fallback"),
        pytest.param(None, None, None, id="unknown"),
        pytest.param(0, 12, 0, id="zero-is-a-capacity"),
    ],
)
def test_capacity(reported: int | None, registered: int | None, capacity: int | None) -> None:
    state = apply_profile(fresh(), profile(T0, capacity=registered), NOW)
    state = replace(state, reported_capacity=reported)
    assert state.capacity == capacity


def test_unregistered_views() -> None:
    state = fresh()
    assert (state.lifecycle, state.heartbeat_interval_s, state.capacity) == ("unknown", None, None)


def test_registered_views() -> None:
    state = apply_profile(fresh(), profile(T0, lifecycle="temporarily_closed"), NOW)
    assert (state.lifecycle, state.heartbeat_interval_s) == ("temporarily_closed", 30)


# -- recovery counting (apply_heartbeat with gap_limit_s) -----------------------------------
@pytest.mark.parametrize(
    ("liveness", "beats_before", "gap_s", "gap_limit_s", "beats_after"),
    [
        pytest.param("offline", 0, 600, 90, 1, id="first-beat-after-silence"),
        pytest.param("offline", 1, 30, 90, 2, id="consecutive"),
        pytest.param("stale", 1, 90, 90, 2, id="at-the-gap-limit"),
        pytest.param("offline", 1, 91, 90, 1, id="gap-restarts-counting"),
        pytest.param("offline", 1, 30, None, 1, id="no-limit-never-consecutive"),
        pytest.param("online", 0, 30, 90, 0, id="online-does-not-count"),
        pytest.param("unknown", 0, 30, 90, 0, id="unknown-does-not-count"),
    ],
)
def test_recovery_beats(
    liveness: str, beats_before: int, gap_s: int, gap_limit_s: float | None, beats_after: int
) -> None:
    state = apply_heartbeat(fresh(), beat(T0), NOW)
    state = replace(state, liveness=liveness, recovery_beats=beats_before)
    folded = apply_heartbeat(
        state, beat(T0 + timedelta(seconds=gap_s), seq=2), NOW, gap_limit_s=gap_limit_s
    )
    assert folded.recovery_beats == beats_after


def test_first_beat_ever_while_offline_counts_one() -> None:
    state = replace(fresh(), liveness="offline")
    assert apply_heartbeat(state, beat(T0), NOW, gap_limit_s=90).recovery_beats == 1


def test_duplicate_beat_does_not_count_twice() -> None:
    state = replace(apply_heartbeat(fresh(), beat(T0), NOW), liveness="offline")
    once = apply_heartbeat(state, beat(T0 + 30 * S, seq=2), NOW, gap_limit_s=90)
    assert apply_heartbeat(once, beat(T0 + 30 * S, seq=2), NOW, gap_limit_s=90) == once


# -- the JSON changelog --------------------------------------------------------------------
def full_state() -> StationState:
    state = apply_profile(fresh(), profile(T0), NOW)
    state = apply_heartbeat(state, beat(T0), NOW)
    state = apply_occupancy(state, count(T0, 4, capacity=12), NOW)
    state = apply_status(state, status(T0, "closed", reason="weather", actor="staff"), NOW)
    return replace(
        state,
        liveness="stale",
        liveness_since=T0 + 90 * S,
        watch_since=T0 - S,
        recovery_beats=1,
        flips=(T0 + 90 * S, T0 + 120 * S),
        flapping_since=T0 + 120 * S,
        scheduled=True,
        scheduled_since=T0 - timedelta(hours=2),
        expected_since=T0 - timedelta(hours=2),
        episodes={"stale": {"alert_id": "x", "starts_at": (T0 + 90 * S).isoformat()}},
        resolved_episodes={"offline": {"alert_id": "y", "ends_at": T0.isoformat()}},
    )


@pytest.mark.parametrize(
    "state",
    [
        pytest.param(new_state(SID, T0), id="new"),
        pytest.param(full_state(), id="every-field"),
    ],
)
def test_json_round_trip(state: StationState) -> None:
    data = state.to_json()
    restored = StationState.from_json(json.loads(json.dumps(data)))
    assert restored == state
    assert restored.to_json() == data


def test_from_json_ignores_unknown_and_fills_missing_fields() -> None:
    data = new_state(SID, T0).to_json()
    data["extra"] = {"from": "an older version"}
    for name in ("flips", "episodes", "resolved_episodes", "watch_since", "recovery_beats"):
        del data[name]
    restored = StationState.from_json(data)
    assert restored == new_state(SID, T0)


@pytest.mark.parametrize(
    ("ahead", "heard_at"),
    [
        pytest.param(timedelta(0), NOW, id="on-time"),
        pytest.param(timedelta(minutes=4), NOW, id="clock-ahead-counts-as-received"),
        pytest.param(-timedelta(minutes=2), NOW - timedelta(minutes=2), id="late-keeps-sent-time"),
    ],
)
def test_a_heartbeat_counts_as_heard_no_later_than_its_receipt(
    ahead: timedelta, heard_at: datetime
) -> None:
    """A device clock running ahead (within the accepted skew) cannot keep a silent station
    online past the moment it was last heard from."""
    folded = apply_heartbeat(fresh(), beat(NOW + ahead), NOW)
    assert folded.last_heartbeat_at == heard_at
    later = apply_heartbeat(folded, beat(NOW + S), NOW + S)
    assert later.last_heartbeat_at == NOW + S


def test_a_heartbeat_is_heard_in_utc_whatever_offset_it_was_sent_with() -> None:
    """The same instant as sent (+08:00 here), kept in UTC: judging compares it with UTC
    times, which is slow across zones."""
    sent = beat(T0)
    assert sent.sent_at.utcoffset() == timedelta(hours=8)
    heard = apply_heartbeat(fresh(), sent, NOW.astimezone(UTC)).last_heartbeat_at
    assert heard == T0
    assert heard is not None
    assert heard.tzinfo is UTC


# -- evolve: dataclasses.replace, faster -------------------------------------------------------
@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({}, id="nothing"),
        pytest.param({"liveness": "stale", "liveness_since": NOW}, id="two"),
        pytest.param({"flips": (T0, NOW), "episodes": {"offline": {"alert_id": "a"}}}, id="nested"),
        pytest.param(dict.fromkeys(("device_id", "battery_pct", "profile")), id="to-none"),
    ],
)
def test_evolve_gives_what_replace_gives(changes: dict[str, Any]) -> None:
    fields: dict[str, Any] = {"last_heartbeat_at": T0, "last_seq": 7, "pending": {"x": "y"}}
    state = replace(new_state(SID, NOW), **fields)
    evolved = evolve(state, **changes)
    assert evolved == StationState(**(msgspec.structs.asdict(state) | changes))
    assert type(evolved) is StationState
    assert state == replace(new_state(SID, NOW), **fields)  # left as it was
    with pytest.raises(AttributeError):  # still frozen
        evolved.liveness = "online"  # type: ignore[misc]


def test_evolve_refuses_a_field_the_state_does_not_have() -> None:
    with pytest.raises(TypeError, match="livenes"):
        evolve(new_state(SID, NOW), livenes="online")
