"""Liveness levels, who is expected alive, and the alert episodes, decided purely.

A ``Station`` drives one station the way the worker does: fold an input into the state, then
judge it at ``clock.judge``. With the defaults an interval of 30 s goes stale after 90 s of
silence and offline after 300 s.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import Heartbeat, Occupancy, StationProfile, StatusEvent
from schemas.alerts import Alert
from streams.liveness import (
    MAX_IDLE,
    Clock,
    Evaluation,
    LivenessConfig,
    alert_id,
    evaluate,
    evaluate_fully,
    judge_steady,
    resolve_all,
)
from streams.state import (
    apply_heartbeat,
    apply_occupancy,
    apply_profile,
    apply_status,
    new_state,
)
from streams.state_codec import decode_state, encode_state
from tests import factories

SID = "SY-0001"
SH = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 30, 10, 0, tzinfo=SH)  # an ordinary Monday, mid-morning
S = timedelta(seconds=1)
MIN = timedelta(minutes=1)
CFG = LivenessConfig()
INTERVAL = 30
STALE = 90 * S  # 3 intervals
OFFLINE = 300 * S  # 10 intervals
WORKDAYS_8_20 = {d: [["08:00", "20:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}
OFFICE_HOURS: dict[str, Any] = {
    "always_open": False,
    "weekly": WORKDAYS_8_20,
    "holidays_open": False,
}
ALWAYS: dict[str, Any] = {"always_open": True, "weekly": {}, "holidays_open": True}


class Station:
    """One station fed and judged like the worker does (each input, then ``evaluate``)."""

    def __init__(self, at: datetime, *, registered: bool = True, **profile: Any) -> None:
        self.state = new_state(SID, at)
        self.alerts: list[Alert] = []
        self.seq = 0
        self.last: Evaluation | None = None
        if registered:
            self.profile(at, **profile)

    # -- inputs ---------------------------------------------------------------------------
    def profile(self, at: datetime, **overrides: Any) -> Evaluation:
        overrides.setdefault("opening_hours", ALWAYS)
        raw = factories.profile(SID, updated_at=at.isoformat(), **overrides)
        model = StationProfile.model_validate_json(factories.dumps(raw))
        self.state = apply_profile(self.state, model, at)
        return self.judge(at)

    def beat(self, at: datetime) -> Evaluation:
        self.seq += 1
        raw = factories.heartbeat(SID, at, self.seq)
        interval = self.state.heartbeat_interval_s
        self.state = apply_heartbeat(
            self.state,
            Heartbeat.model_validate_json(factories.dumps(raw)),
            at,
            gap_limit_s=interval * CFG.stale_after if interval else None,
        )
        return self.judge(at)

    def beats(self, start: datetime, count: int, every: timedelta = INTERVAL * S) -> Evaluation:
        for n in range(count):
            self.beat(start + n * every)
        assert self.last is not None
        return self.last

    def status(self, at: datetime, state: str) -> Evaluation:
        raw = factories.status(SID, at, state)
        self.state = apply_status(
            self.state, StatusEvent.model_validate_json(factories.dumps(raw)), at
        )
        return self.judge(at)

    def count(self, at: datetime, occupants: int, capacity: int | None = None) -> Evaluation:
        raw = factories.occupancy(SID, at, occupants, capacity=capacity)
        self.state = apply_occupancy(
            self.state, Occupancy.model_validate_json(factories.dumps(raw)), at
        )
        return self.judge(at)

    # -- judging --------------------------------------------------------------------------
    def judge(self, at: datetime, *, wall: datetime | None = None) -> Evaluation:
        result = evaluate(self.state, Clock(judge=at, wall=wall or at), CFG)
        self.state = result.state
        self.alerts.extend(result.alerts)
        self.last = result
        return result

    def walk(self, start: datetime, until: datetime, step: timedelta = 10 * S) -> None:
        """Judge every ``step`` from ``start`` up to ``until`` (the worker's timer)."""
        moment = start
        while moment < until:
            moment = min(moment + step, until)
            self.judge(moment)

    def firing(self) -> set[str]:
        return set(self.state.episodes)


def sent(alerts: list[Alert]) -> list[tuple[str, str]]:
    return [(a.kind, a.state) for a in alerts]


def online_at(at: datetime, **profile: Any) -> Station:
    station = Station(at - MIN, **profile)
    station.beat(at - 30 * S)
    station.beat(at)
    assert station.state.liveness == "online"
    return station


def offline_at(at: datetime, **profile: Any) -> Station:
    """Online until ``at - OFFLINE``, offline (with its alert firing) from ``at``."""
    station = online_at(at - OFFLINE, **profile)
    station.judge(at + S)
    assert station.state.liveness == "offline"
    return station


# -- thresholds ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("silence", "liveness", "since", "alerts"),
    [
        pytest.param(timedelta(0), "online", T0 - 30 * S, [], id="fresh"),
        pytest.param(STALE, "online", T0 - 30 * S, [], id="at-stale-threshold-still-online"),
        pytest.param(STALE + S, "stale", T0 + STALE, [("stale", "firing")], id="stale"),
        pytest.param(
            OFFLINE, "stale", T0 + STALE, [("stale", "firing")], id="at-offline-threshold"
        ),
        pytest.param(
            OFFLINE + S, "offline", T0 + OFFLINE, [("offline", "firing")], id="straight-to-offline"
        ),
        pytest.param(
            timedelta(days=2), "offline", T0 + OFFLINE, [("offline", "firing")], id="long-gone"
        ),
    ],
)
def test_thresholds_and_crossing_times(
    silence: timedelta, liveness: str, since: datetime, alerts: list[tuple[str, str]]
) -> None:
    station = online_at(T0)
    result = station.judge(T0 + silence)
    assert (result.state.liveness, result.state.liveness_since) == (liveness, since)
    assert sent(result.alerts) == alerts
    for alert in result.alerts:
        assert alert.starts_at == since
        assert alert.detected_at == T0 + silence
        assert alert.last_heartbeat_at == T0
        assert alert.severity == {"stale": "warning", "offline": "critical"}[alert.kind]
    if result.changes:
        (change,) = result.changes
        assert (change.time, change.from_liveness, change.to_liveness) == (
            since,
            "online",
            liveness,
        )


def test_stale_then_offline_resolves_stale_at_the_offline_start() -> None:
    station = online_at(T0)
    (stale,) = station.judge(T0 + STALE + 5 * S).alerts
    resolved, offline = station.judge(T0 + OFFLINE + 5 * S).alerts
    assert (stale.kind, stale.state, stale.starts_at) == ("stale", "firing", T0 + STALE)
    assert (resolved.kind, resolved.state) == ("stale", "resolved")
    assert (offline.kind, offline.state, offline.starts_at) == ("offline", "firing", T0 + OFFLINE)
    assert resolved.alert_id == stale.alert_id
    assert resolved.fingerprint == stale.fingerprint == f"{SID}:stale"
    assert offline.fingerprint == f"{SID}:offline"
    assert resolved.ends_at == offline.starts_at
    assert stale.ends_at is None
    assert station.firing() == {"offline"}


def test_alert_message_fields() -> None:
    station = online_at(T0)
    (alert,) = station.judge(T0 + OFFLINE + S).alerts
    assert alert.station_id == SID
    assert alert.labels == {
        "district": "顺义区",
        "street": "空港街道",
        "category": "standard",
        "name": f"测试工会驿站 {SID}",
    }
    assert alert.summary == f"测试工会驿站 {SID} ({SID}) has sent no heartbeat for 5 min"


def test_never_heard_station_is_judged_from_when_watching_began() -> None:
    station = Station(T0)
    assert station.state.liveness == "unknown"
    assert station.judge(T0 + STALE).state.liveness == "unknown"
    result = station.judge(T0 + STALE + S)
    assert (result.state.liveness, result.state.liveness_since) == ("stale", T0 + STALE)
    assert sent(result.alerts) == [("stale", "firing")]
    assert result.alerts[0].last_heartbeat_at is None


def test_a_station_registered_while_heartbeats_wait_is_watched_from_the_wall_clock() -> None:
    """Judged first while the judging clock trails the wall (heartbeats not processed yet),
    a never-heard station is watched from the wall clock: never stale before STALE_AFTER
    intervals after the worker learned of it."""
    station = Station(T0, registered=False)
    lag = 2 * S
    raw = factories.profile(SID, updated_at=T0.isoformat(), opening_hours=ALWAYS)
    model = StationProfile.model_validate_json(factories.dumps(raw))
    station.state = apply_profile(station.state, model, T0 + lag)
    first = station.judge(T0, wall=T0 + lag)
    assert first.state.watch_since == T0 + lag
    assert station.judge(T0 + STALE + S, wall=T0 + STALE + S).state.liveness == "unknown"
    assert station.judge(T0 + lag + STALE + S).state.liveness == "stale"


NEVER_HEARD_OFFLINE = [("stale", "firing"), ("stale", "resolved"), ("offline", "firing")]


@pytest.mark.parametrize(
    ("after", "liveness", "since", "alerts"),
    [
        pytest.param(timedelta(0), "unknown", T0, [], id="just-registered"),
        pytest.param(STALE, "unknown", T0, [], id="at-the-stale-threshold"),
        pytest.param(STALE + S, "stale", T0 + STALE, [("stale", "firing")], id="stale"),
        pytest.param(OFFLINE, "stale", T0 + STALE, [("stale", "firing")], id="at-offline"),
        pytest.param(OFFLINE + S, "offline", T0 + OFFLINE, NEVER_HEARD_OFFLINE, id="offline"),
        pytest.param(timedelta(hours=6), "offline", T0 + OFFLINE, NEVER_HEARD_OFFLINE, id="later"),
    ],
)
def test_a_station_never_heard_from_is_unknown_then_stale_then_offline(
    after: timedelta, liveness: str, since: datetime, alerts: list[tuple[str, str]]
) -> None:
    """Registered at T0 (active, always open, a device every 30 s), not one heartbeat: judged
    from its registration like any silent station, so a device never connected is found."""
    station = Station(T0)
    station.walk(T0, T0 + after)
    assert (station.state.liveness, station.state.liveness_since) == (liveness, since)
    assert station.state.last_heartbeat_at is None
    assert sent(station.alerts) == alerts
    firing = [a for a in station.alerts if a.state == "firing"]
    assert [a.starts_at for a in firing] == [T0 + STALE, T0 + OFFLINE][: len(firing)]
    assert {a.last_heartbeat_at for a in station.alerts} <= {None}


SATURDAY = T0 + timedelta(days=5)  # 2026-12-05 10:00, an ordinary Saturday: office hours closed


@pytest.mark.parametrize(
    ("at", "registered", "profile", "liveness"),
    [
        pytest.param(T0, False, {}, "unknown", id="missing-from-the-registry"),
        pytest.param(T0, True, {"heartbeat_interval_s": None}, "not_monitored", id="no-device"),
        pytest.param(
            T0, True, {"lifecycle": "temporarily_closed"}, "offline", id="temporarily-closed"
        ),
        pytest.param(
            SATURDAY, True, {"opening_hours": OFFICE_HOURS}, "offline", id="outside-its-hours"
        ),
    ],
)
def test_a_station_never_heard_from_raises_alerts_only_when_expected_alive(
    at: datetime, registered: bool, profile: dict[str, Any], liveness: str
) -> None:
    station = Station(at, registered=registered, **profile)
    station.walk(at, at + OFFLINE + S)
    assert station.state.liveness == liveness
    assert station.alerts == []


def test_first_heartbeat_makes_an_unknown_station_online() -> None:
    station = Station(T0)
    result = station.beat(T0 + 10 * S)
    assert (result.state.liveness, result.state.liveness_since) == ("online", T0 + 10 * S)
    assert [(c.from_liveness, c.to_liveness) for c in result.changes] == [("unknown", "online")]


# -- who is monitored, who is expected -------------------------------------------------------
def test_no_device_is_not_monitored() -> None:
    station = Station(T0, heartbeat_interval_s=None)
    station.judge(T0 + timedelta(days=1))
    assert station.state.liveness == "not_monitored"
    assert station.alerts == []


def test_unregistered_station_is_unknown_and_raises_nothing() -> None:
    station = Station(T0, registered=False)
    station.beat(T0)
    result = station.judge(T0 + timedelta(hours=3))
    assert (result.state.liveness, result.state.lifecycle) == ("unknown", "unknown")
    assert station.alerts == []
    assert result.next_due == T0 + timedelta(hours=3) + MAX_IDLE
    assert result.state.last_heartbeat_at == T0


def test_decommissioned_is_not_monitored_and_its_alerts_resolve() -> None:
    station = offline_at(T0)
    result = station.profile(T0 + MIN, lifecycle="decommissioned")
    assert result.state.liveness == "not_monitored"
    assert sent(result.alerts) == [("offline", "resolved")]
    assert result.alerts[0].ends_at == T0 + MIN
    station.judge(T0 + timedelta(hours=5))
    assert len(station.alerts) == 2


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"lifecycle": "temporarily_closed"}, id="temporarily-closed"),
        pytest.param({"lifecycle": "decommissioned"}, id="decommissioned"),
        pytest.param({"heartbeat_interval_s": None}, id="device-removed"),
        pytest.param(
            {"opening_hours": {"always_open": False, "weekly": {"sun": [["08:00", "20:00"]]}}},
            id="new-hours-closed-now",
        ),
    ],
)
def test_registry_change_takes_effect_immediately(change: dict[str, Any]) -> None:
    station = offline_at(T0)
    (firing,) = [a for a in station.alerts if a.state == "firing"]
    result = station.profile(T0 + MIN, **change)
    (resolved,) = result.alerts
    assert (resolved.kind, resolved.state, resolved.alert_id) == (
        "offline",
        "resolved",
        firing.alert_id,
    )
    assert resolved.ends_at == T0 + MIN
    station.judge(T0 + timedelta(hours=2))
    assert station.firing() == set()
    assert len(station.alerts) == 2


def test_temporarily_closed_keeps_judging_liveness_without_alerts() -> None:
    station = online_at(T0, lifecycle="temporarily_closed")
    result = station.judge(T0 + OFFLINE + S)
    assert result.state.liveness == "offline"
    assert station.alerts == []


def test_outside_hours_no_alerts_and_open_ones_resolve_at_closing() -> None:
    closing = T0.replace(hour=20)
    station = online_at(closing - 10 * MIN, opening_hours=OFFICE_HOURS)
    station.judge(closing - S)
    assert station.firing() == {"offline"}
    result = station.judge(closing)
    assert sent(result.alerts) == [("offline", "resolved")]
    assert result.alerts[0].ends_at == closing
    night = station.judge(closing + timedelta(hours=3))
    assert night.state.liveness == "offline"
    assert night.alerts == []
    assert station.firing() == set()


def test_device_switched_on_at_opening_gets_its_grace() -> None:
    evening = T0.replace(hour=19, minute=55) - timedelta(days=3)  # the Friday before
    station = online_at(evening, opening_hours=OFFICE_HOURS)
    station.judge(T0.replace(hour=7, minute=59))  # silent all weekend, nobody expects it
    assert station.state.liveness == "offline"
    opening = T0.replace(hour=8, minute=0)
    assert station.judge(opening).alerts == []
    first = station.beat(opening + 20 * S)
    assert first.alerts == []
    assert first.state.liveness == "offline"  # one beat is not yet a recovery
    assert station.beat(opening + 50 * S).state.liveness == "online"
    assert station.alerts == []


def test_a_silent_device_after_opening_is_late_from_opening_time() -> None:
    station = Station(T0.replace(hour=7), opening_hours=OFFICE_HOURS)
    station.judge(T0.replace(hour=7, minute=59))
    opening = T0.replace(hour=8)
    assert station.judge(opening).alerts == []  # the worker looks at the opening boundary
    assert station.judge(opening + STALE).alerts == []
    (stale,) = station.judge(opening + STALE + S).alerts
    assert stale.starts_at == opening + STALE
    resolved, offline = station.judge(opening + OFFLINE + S).alerts
    assert offline.starts_at == opening + OFFLINE
    assert resolved.ends_at == opening + OFFLINE


# -- recovery needs consecutive heartbeats ----------------------------------------------------
def test_one_beat_is_not_a_recovery() -> None:
    station = offline_at(T0)
    result = station.beat(T0 + MIN)
    assert result.state.liveness == "offline"
    assert result.state.recovery_beats == 1
    assert result.changes == []
    assert station.firing() == {"offline"}
    assert result.alerts == []


def test_a_lone_beat_then_silence_keeps_the_offline_episode() -> None:
    station = offline_at(T0)
    (firing,) = station.alerts
    station.beat(T0 + MIN)
    station.walk(T0 + MIN, T0 + MIN + OFFLINE + MIN)
    assert station.state.liveness == "offline"
    assert station.alerts == [firing]  # no resolve, no stale, no second offline


def test_two_consecutive_beats_recover_and_resolve() -> None:
    station = offline_at(T0)
    station.beat(T0 + MIN)
    result = station.beat(T0 + MIN + 30 * S)
    assert (result.state.liveness, result.state.liveness_since) == ("online", T0 + MIN + 30 * S)
    assert sent(result.alerts) == [("offline", "resolved")]
    assert result.alerts[0].ends_at == T0 + MIN + 30 * S
    assert [(c.from_liveness, c.to_liveness) for c in result.changes] == [("offline", "online")]


def test_a_gap_between_beats_restarts_the_count() -> None:
    station = offline_at(T0)
    station.beat(T0 + MIN)
    gap = T0 + MIN + STALE + 10 * S  # further apart than the gap limit (stale_after intervals)
    result = station.beat(gap)
    assert result.state.recovery_beats == 1
    assert result.state.liveness == "offline"
    result = station.beat(gap + 30 * S)
    assert result.state.liveness == "online"


def test_stale_recovers_with_two_beats_too() -> None:
    station = online_at(T0)
    station.judge(T0 + STALE + S)
    assert station.beat(T0 + STALE + 5 * S).state.liveness == "stale"
    result = station.beat(T0 + STALE + 35 * S)
    assert result.state.liveness == "online"
    assert sent(result.alerts) == [("stale", "resolved")]


def test_recovery_setting_is_configurable() -> None:
    config = replace(CFG, recovery_beats=1)
    station = offline_at(T0)
    station.state = apply_heartbeat(
        station.state,
        Heartbeat.model_validate_json(factories.dumps(factories.heartbeat(SID, T0 + MIN, 99))),
        T0 + MIN,
        gap_limit_s=90,
    )
    result = evaluate(station.state, Clock(T0 + MIN, T0 + MIN), config)
    assert result.state.liveness == "online"


# -- flapping ----------------------------------------------------------------------------------
def flap(station: Station, start: datetime, cycles: int) -> datetime:
    """Each cycle: silent past the stale threshold, then two beats (a recovery). Returns the end."""
    moment = start
    for _ in range(cycles):
        moment += STALE + 10 * S
        station.judge(moment)
        moment += 5 * S
        station.beat(moment)
        moment += 30 * S
        station.beat(moment)
    return moment


def test_flapping_gives_one_alert_instead_of_a_stream() -> None:
    station = online_at(T0)
    end = flap(station, T0, cycles=2)  # 4 changes: not yet flapping
    assert station.state.flapping_since is None
    assert sent(station.alerts) == [("stale", "firing"), ("stale", "resolved")] * 2
    before = len(station.alerts)
    fifth = end + STALE + 10 * S  # the evaluation that sees change number 5
    end = flap(station, end, cycles=4)
    assert sent(station.alerts[before:]) == [("flapping", "firing")]  # in place of a stale
    (flapping,) = station.alerts[before:]
    assert (flapping.starts_at, flapping.severity) == (fifth, "warning")
    assert station.state.flapping_since is not None
    # silence while flapping: no stale/offline either
    station.judge(end + OFFLINE + MIN)
    assert station.state.liveness == "offline"
    assert station.firing() == {"flapping"}


def test_flapping_released_after_a_quiet_window() -> None:
    station = online_at(T0)
    end = flap(station, T0, cycles=3)  # 6 changes
    assert station.firing() == {"flapping"}
    started = len(station.alerts)
    # steady and online: beats every interval for the whole window
    moment = end
    while moment < end + CFG.flap_window + MIN:
        moment += 30 * S
        station.beat(moment)
    released = station.alerts[started:]
    assert sent(released) == [("flapping", "resolved")]
    assert station.state.flapping_since is None
    assert station.state.flips == ()
    assert released[0].ends_at is not None
    assert released[0].ends_at <= end + CFG.flap_window + 30 * S


def test_flapping_release_time_is_due() -> None:
    station = online_at(T0)
    end = flap(station, T0, cycles=3)
    first_flip = min(station.state.flips)
    assert station.last is not None
    assert station.last.next_due <= first_flip + CFG.flap_window
    assert end < first_flip + CFG.flap_window


# -- closed during opening hours -------------------------------------------------------------
def test_closed_during_hours_after_its_grace() -> None:
    station = Station(T0, opening_hours=OFFICE_HOURS, heartbeat_interval_s=None)
    closed = T0 + MIN
    assert station.status(closed, "closed").next_due == closed + CFG.closed_grace
    assert station.judge(closed + CFG.closed_grace - S).alerts == []
    (firing,) = station.judge(closed + CFG.closed_grace).alerts
    assert (firing.kind, firing.state, firing.starts_at) == (
        "closed_during_hours",
        "firing",
        closed,
    )
    assert firing.severity == "warning"
    (resolved,) = station.status(closed + 20 * MIN, "open").alerts
    assert (resolved.state, resolved.alert_id, resolved.ends_at) == (
        "resolved",
        firing.alert_id,
        closed + 20 * MIN,
    )


def test_closed_during_hours_resolves_when_the_schedule_closes() -> None:
    closing = T0.replace(hour=20)
    station = Station(
        closing - timedelta(hours=1), opening_hours=OFFICE_HOURS, heartbeat_interval_s=None
    )
    station.status(closing - timedelta(hours=1), "closed")
    station.judge(closing - S)
    assert station.firing() == {"closed_during_hours"}
    (resolved,) = station.judge(closing).alerts
    assert (resolved.kind, resolved.state, resolved.ends_at) == (
        "closed_during_hours",
        "resolved",
        closing,
    )


def test_first_sight_counts_the_closure_from_when_it_was_reported() -> None:
    """A station first seen while already reported closed during its hours: the schedule has
    been open since its opening time, so the grace counts from the report, not from when the
    worker first looked."""
    opening = T0.replace(hour=8)
    reported = opening + timedelta(hours=1)
    station = Station(T0, registered=False)
    raw = factories.status(SID, reported, "closed")
    station.state = apply_status(
        station.state, StatusEvent.model_validate_json(factories.dumps(raw)), T0
    )
    judged = station.profile(T0, opening_hours=OFFICE_HOURS, heartbeat_interval_s=None)
    (firing,) = judged.alerts  # T0 is an hour past the report: the grace is over
    assert (firing.kind, firing.starts_at) == ("closed_during_hours", reported)
    assert station.state.scheduled_since == opening


def test_closed_before_opening_gets_its_grace_from_opening() -> None:
    opening = T0.replace(hour=8)
    station = Station(
        opening - timedelta(hours=2), opening_hours=OFFICE_HOURS, heartbeat_interval_s=None
    )
    station.status(opening - timedelta(hours=1), "closed")
    station.judge(opening)
    assert station.judge(opening + CFG.closed_grace - S).alerts == []
    (firing,) = station.judge(opening + CFG.closed_grace).alerts
    assert firing.starts_at == opening


@pytest.mark.parametrize(
    "lifecycle", [pytest.param("temporarily_closed", id="temporarily-closed"), "decommissioned"]
)
def test_closed_raises_nothing_when_not_active(lifecycle: str) -> None:
    station = Station(T0, lifecycle=lifecycle)
    station.status(T0, "closed")
    station.judge(T0 + timedelta(hours=2))
    assert station.alerts == []


# -- over capacity -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("registered", "reported", "occupants", "fires"),
    [
        pytest.param(10, None, 11, True, id="over-registered-capacity"),
        pytest.param(10, None, 10, False, id="full-is-not-over"),
        pytest.param(10, 12, 11, False, id="message-capacity-wins-higher"),
        pytest.param(20, 10, 11, True, id="message-capacity-wins-lower"),
        pytest.param(None, None, 500, False, id="capacity-unknown"),
    ],
)
def test_over_capacity_fires(
    registered: int | None, reported: int | None, occupants: int, fires: bool
) -> None:
    station = online_at(T0, capacity=registered)
    result = station.count(T0 + S, occupants, capacity=reported)
    assert sent(result.alerts) == ([("over_capacity", "firing")] if fires else [])
    if fires:
        assert result.alerts[0].starts_at == T0 + S
        assert result.alerts[0].severity == "info"
        assert "11 people for 10 seats" in result.alerts[0].summary


def test_over_capacity_resolves_when_back_under() -> None:
    station = online_at(T0)
    (firing,) = station.count(T0 + S, 12).alerts
    assert station.count(T0 + 2 * S, 13).alerts == []  # still the same episode
    (resolved,) = station.count(T0 + MIN, 9).alerts
    assert (resolved.state, resolved.alert_id, resolved.ends_at) == (
        "resolved",
        firing.alert_id,
        T0 + MIN,
    )


# -- episodes, ids and clocks ------------------------------------------------------------------
def test_alert_id_is_deterministic() -> None:
    # Pinned: ids already stored and sent must stay the ids of their episodes, so a change of
    # the derivation has to fail here.
    assert alert_id(f"{SID}:offline", T0) == "ea9db30e-e4d1-5cde-91f5-119b2c2811e0"
    # from the instant in UTC: the id a start worked out in UTC always had, whatever offset
    # (before, "773ff0a7-…" from the start in +08:00)
    assert alert_id(f"{SID}:offline", T0.astimezone(UTC)) == alert_id(f"{SID}:offline", T0)
    assert alert_id(f"{SID}:offline", T0) != alert_id(f"{SID}:offline", T0 + S)
    assert alert_id(f"{SID}:offline", T0) != alert_id(f"{SID}:stale", T0)


def test_replay_gives_the_same_alerts() -> None:
    def run(wall_offset: timedelta) -> list[Alert]:
        station = online_at(T0)
        station.judge(T0 + STALE + S, wall=T0 + STALE + S + wall_offset)
        station.judge(T0 + OFFLINE + S, wall=T0 + OFFLINE + S + wall_offset)
        station.beats(T0 + OFFLINE + MIN, 2)
        return station.alerts

    first, again = run(timedelta(0)), run(timedelta(0))
    assert first == again
    later = run(timedelta(hours=1))  # replayed an hour later: same episodes, same ids
    assert [(a.alert_id, a.state, a.starts_at, a.ends_at) for a in later] == [
        (a.alert_id, a.state, a.starts_at, a.ends_at) for a in first
    ]


def _over_capacity(station: Station, at: datetime) -> None:
    station.count(at, 11)


def _closed(station: Station, at: datetime) -> None:
    station.status(at, "closed")
    station.judge(at + CFG.closed_grace)


@pytest.mark.parametrize(
    ("kind", "start", "pause", "again"),
    [
        pytest.param(
            "over_capacity",
            _over_capacity,
            {"lifecycle": "temporarily_closed"},
            True,
            id="over-capacity-after-temporary-closure",
        ),
        pytest.param(
            "over_capacity",
            _over_capacity,
            {"capacity": 50},
            True,
            id="over-capacity-after-registry-capacity-raised",
        ),
        pytest.param(
            "closed_during_hours",
            _closed,
            {"lifecycle": "temporarily_closed"},
            True,
            id="closed-during-hours-after-temporary-closure",
        ),
        pytest.param(
            "closed_during_hours",
            _closed,
            {"capacity": 50},
            False,
            id="closed-during-hours-unaffected-by-capacity",
        ),
    ],
)
def test_a_condition_that_comes_back_is_a_new_episode(
    kind: str, start: Any, pause: dict[str, Any], again: bool
) -> None:
    station = Station(T0, heartbeat_interval_s=None, opening_hours=OFFICE_HOURS)
    start(station, T0)
    (first,) = station.alerts
    station.profile(T0 + timedelta(hours=1), **pause)
    back = T0 + timedelta(hours=2)
    station.profile(back)  # the registry record as it was: the old reading holds again
    episodes = [a for a in station.alerts if a.kind == kind]
    if not again:
        assert episodes == [first]
        return
    assert [a.state for a in episodes] == ["firing", "resolved", "firing"]
    resolved, second = episodes[1:]
    assert second.alert_id != first.alert_id
    assert resolved.ends_at == T0 + timedelta(hours=1)
    assert second.starts_at == back


def test_flapping_that_outlives_a_closure_reopens_as_a_new_episode() -> None:
    closing = T0.replace(hour=20)
    station = online_at(closing - 12 * MIN, opening_hours=OFFICE_HOURS)
    flap(station, closing - 12 * MIN, cycles=3)
    assert station.firing() == {"flapping"}
    flapping_since = station.state.flapping_since
    station.judge(closing)  # closed: resolved, though the station is still flapping
    station.status(closing + S, "closed")
    # the hours change to open now while the flips are still in the window
    reopened = closing + 5 * MIN
    station.profile(reopened, opening_hours=ALWAYS)
    assert station.state.flapping_since == flapping_since
    flapping = [a for a in station.alerts if a.kind == "flapping"]
    assert [a.state for a in flapping] == ["firing", "resolved", "firing"]
    assert flapping[2].alert_id != flapping[0].alert_id
    assert flapping[2].starts_at == reopened


def test_judged_by_the_stream_not_the_wall_clock() -> None:
    station = online_at(T0)
    # The worker was down for an hour and is catching up: records processed so far reach T0+60s.
    result = station.judge(T0 + MIN, wall=T0 + timedelta(hours=1))
    assert result.state.liveness == "online"
    assert result.alerts == []
    result = station.judge(T0 + OFFLINE + S, wall=T0 + timedelta(hours=1, seconds=5))
    (alert,) = result.alerts
    assert alert.starts_at == T0 + OFFLINE
    assert alert.detected_at == T0 + timedelta(hours=1, seconds=5)


@pytest.mark.parametrize(
    ("build", "judged_at", "due"),
    [
        pytest.param(lambda: online_at(T0), T0, T0 + STALE, id="online-next-stale"),
        pytest.param(lambda: online_at(T0), T0 + STALE + S, T0 + OFFLINE, id="stale-next-offline"),
        pytest.param(
            lambda: online_at(T0),
            T0 + OFFLINE + S,
            T0 + OFFLINE + CFG.flap_window,
            id="offline-next-flip-expiry",
        ),
        pytest.param(
            lambda: online_at(T0.replace(hour=19, minute=59), opening_hours=OFFICE_HOURS),
            T0.replace(hour=19, minute=59),
            T0.replace(hour=20),
            id="closing-time-first",
        ),
        pytest.param(
            lambda: Station(T0, heartbeat_interval_s=None),
            T0,
            T0 + MAX_IDLE,
            id="not-monitored-idle-look",
        ),
    ],
)
def test_next_due(build: Any, judged_at: datetime, due: datetime) -> None:
    station = build()
    assert station.judge(judged_at).next_due == due


def test_resolve_all_closes_every_episode() -> None:
    station = offline_at(T0)
    station.count(T0 + S, 50)
    assert station.firing() == {"offline", "over_capacity"}
    result = resolve_all(station.state, Clock(T0 + MIN, T0 + 2 * MIN))
    assert sorted(sent(result.alerts)) == [("offline", "resolved"), ("over_capacity", "resolved")]
    assert {a.ends_at for a in result.alerts} == {T0 + MIN}
    assert {a.detected_at for a in result.alerts} == {T0 + 2 * MIN}
    assert result.state.episodes == {}


def test_state_survives_the_changelog_between_evaluations() -> None:
    station = offline_at(T0)
    restored = decode_state(encode_state(station.state))  # as the live table stores it
    assert restored == station.state
    result = evaluate(restored, Clock(T0 + MIN, T0 + MIN), CFG)
    assert result.alerts == []
    assert result.state.episodes == station.state.episodes


# -- properties over random event sequences ------------------------------------------------
_event = st.one_of(
    st.tuples(st.just("beat"), st.integers(1, 120)),
    st.tuples(st.just("beats"), st.integers(2, 4)),
    st.tuples(st.just("wait"), st.integers(1, 3600)),
    st.tuples(st.just("status"), st.sampled_from(["open", "closed"])),
    st.tuples(st.just("count"), st.integers(0, 15)),
    st.tuples(
        st.just("lifecycle"), st.sampled_from(["active", "temporarily_closed", "decommissioned"])
    ),
    st.tuples(st.just("device"), st.sampled_from([None, 30, 60])),
    st.tuples(st.just("hours"), st.sampled_from(["always", "office", "night"])),
)
_HOURS = {
    "always": ALWAYS,
    "office": OFFICE_HOURS,
    "night": {
        "always_open": False,
        "weekly": {"mon": [["10:30", "02:00"]], "tue": [["20:00", "09:00"]]},
    },
}


def replay(events: list[tuple[str, Any]], judged: type[Station] = Station) -> list[Alert]:
    moment = T0.replace(hour=7, minute=50)
    station = judged(moment, opening_hours=OFFICE_HOURS)
    profile: dict[str, Any] = {"opening_hours": OFFICE_HOURS}
    for kind, value in events:
        moment += 7 * S
        if kind == "beat":
            moment += value * S
            station.beat(moment)
        elif kind == "beats":
            for _ in range(value):
                moment += INTERVAL * S
                station.beat(moment)
        elif kind == "wait":
            station.judge(moment + value * S / 2)
            moment += value * S
            station.judge(moment)
        elif kind == "status":
            station.status(moment, value)
        elif kind == "count":
            station.count(moment, value)
        else:
            key = {
                "lifecycle": "lifecycle",
                "device": "heartbeat_interval_s",
                "hours": "opening_hours",
            }[kind]
            profile[key] = _HOURS[value] if kind == "hours" else value
            station.profile(moment, **profile)
        assert set(station.state.episodes) == {
            k for k, v in open_episodes(station.alerts).items() if v is not None
        }
    return station.alerts


def open_episodes(alerts: list[Alert]) -> dict[str, Alert | None]:
    """Check the episode rules over a stream of messages; the open firing per kind."""
    open_: dict[str, Alert | None] = {}
    seen_ids: set[str] = set()
    for alert in alerts:
        assert alert.fingerprint == f"{SID}:{alert.kind}"
        current = open_.get(alert.kind)
        if alert.state == "firing":
            assert current is None, f"{alert.kind} fired twice without a resolve"
            assert alert.alert_id not in seen_ids, "a new episode reused an alert_id"
            assert alert.ends_at is None
            seen_ids.add(alert.alert_id)
            open_[alert.kind] = alert
        else:
            assert current is not None, f"{alert.kind} resolved without firing"
            assert alert.alert_id == current.alert_id
            assert alert.starts_at == current.starts_at
            assert alert.ends_at is not None
            assert alert.ends_at >= alert.starts_at
            open_[alert.kind] = None
    return open_


@settings(max_examples=120, deadline=None)
@given(events=st.lists(_event, max_size=40))
def test_episodes_are_well_formed_and_replay_identically(events: list[tuple[str, Any]]) -> None:
    alerts = replay(events)
    open_episodes(alerts)
    assert replay(events) == alerts


class CheckedStation(Station):
    """Judged both ways at every judgement: the short way, wherever it applies, gives what
    every step gives."""

    steady = 0  # judgements the short way applied to, over every example

    def judge(self, at: datetime, *, wall: datetime | None = None) -> Evaluation:
        clock = Clock(judge=at, wall=wall or at)
        full = evaluate_fully(self.state, clock, CFG)
        quick = judge_steady(self.state, clock, CFG)
        if quick is not None:
            CheckedStation.steady += 1
            assert quick == full
            assert quick.next_due.timestamp() == full.next_due.timestamp()
        self.state = full.state
        self.alerts.extend(full.alerts)
        self.last = full
        return full


@settings(max_examples=400, deadline=None)
@given(events=st.lists(_event, max_size=40))
def test_a_steady_station_judged_the_short_way_is_judged_alike(
    events: list[tuple[str, Any]],
) -> None:
    replay(events, CheckedStation)


def test_the_short_way_applies_to_a_station_that_is_fine_and_not_to_one_that_is_not() -> None:
    for hours in (OFFICE_HOURS, ALWAYS):
        station = CheckedStation(T0, opening_hours=hours)
        station.beats(T0, 3)
        before = CheckedStation.steady
        heard = T0 + 2 * INTERVAL * S
        quick = judge_steady(station.state, Clock(heard + S, heard + S), CFG)
        assert quick is not None
        assert quick.state is station.state
        # its next look: when it would turn stale
        assert quick.next_due == heard + CFG.stale_after * INTERVAL * S
        station.judge(heard + S)
        assert CheckedStation.steady == before + 1
        late = heard + (CFG.stale_after * INTERVAL + 1) * S
        assert judge_steady(station.state, Clock(late, late), CFG) is None
    closed = CheckedStation(T0, opening_hours=OFFICE_HOURS)
    closed.beats(T0, 3)
    evening = T0.replace(hour=21)  # the office closed at 20:00: a boundary passed since
    assert judge_steady(closed.state, Clock(evening, evening), CFG) is None


def _fold_count(station: Station, at: datetime, occupants: int) -> None:
    """A reading folded without a judgement (a batch's later part judges it)."""
    raw = factories.occupancy(SID, at, occupants)
    station.state = apply_occupancy(
        station.state, Occupancy.model_validate_json(factories.dumps(raw)), at
    )


def _fold_status(station: Station, at: datetime, state: str) -> None:
    raw = factories.status(SID, at, state)
    station.state = apply_status(
        station.state, StatusEvent.model_validate_json(factories.dumps(raw)), at
    )


@pytest.mark.parametrize(
    ("kind", "fire", "clear"),
    [
        pytest.param(
            "over_capacity",
            lambda st, at: st.count(at, 12),
            lambda st, at: _fold_count(st, at, 9),
            id="over-capacity-ends-at-the-reading",
        ),
        pytest.param(
            "closed_during_hours",
            _closed,
            lambda st, at: _fold_status(st, at, "open"),
            id="closed-during-hours-ends-at-the-opening",
        ),
    ],
)
def test_an_episode_judged_late_ends_when_its_input_says(kind: str, fire: Any, clear: Any) -> None:
    """A backlog or a replay after a crash judges the input that ended a condition later than
    it happened: the episode still ends at the input's time, as in a live run."""
    start = T0.replace(hour=10)
    station = Station(start, heartbeat_interval_s=None, opening_hours=OFFICE_HOURS)
    fire(station, start)
    (firing,) = [a for a in station.alerts if a.kind == kind]
    ended = start + timedelta(minutes=20)
    clear(station, ended)
    (resolved,) = station.judge(ended + timedelta(minutes=30)).alerts
    assert (resolved.state, resolved.alert_id, resolved.ends_at) == (
        "resolved",
        firing.alert_id,
        ended,
    )
