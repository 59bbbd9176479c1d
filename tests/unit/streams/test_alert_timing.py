"""Pending and keep-firing times per alert kind (Prometheus' ``for`` / ``keep_firing_for``): an
occupancy hovering around capacity is one long episode or none, never a flood of short ones."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import Occupancy, StationProfile
from schemas.alerts import Alert
from streams.liveness import Clock, LivenessConfig, evaluate
from streams.state import StationState, apply_occupancy, apply_profile, new_state
from tests import factories

SID = "SY-0002"
T0 = datetime(2026, 11, 30, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
MIN = timedelta(minutes=1)
PENDING, KEEP = 10 * MIN, 5 * MIN
CFG = LivenessConfig(pending={"over_capacity": PENDING}, keep_firing={"over_capacity": KEEP})


class Room:
    """A registered station (capacity 10, no device) whose head count is reported."""

    def __init__(self, config: LivenessConfig = CFG) -> None:
        self.config = config
        raw = factories.profile(
            SID, updated_at=(T0 - MIN).isoformat(), capacity=10, heartbeat_interval_s=None
        )
        profile = StationProfile.model_validate_json(factories.dumps(raw))
        self.state: StationState = apply_profile(new_state(SID, T0 - MIN), profile, T0 - MIN)
        self.alerts: list[Alert] = []
        self.next_due = T0

    def count(self, at: datetime, occupants: int) -> None:
        raw = factories.occupancy(SID, at, occupants, capacity=None)
        message = Occupancy.model_validate_json(factories.dumps(raw))
        self.state = apply_occupancy(self.state, message, at)
        self.judge(at)

    def judge(self, at: datetime) -> None:
        result = evaluate(self.state, Clock(judge=at, wall=at), self.config)
        self.state, self.next_due = result.state, result.next_due
        self.alerts.extend(a for a in result.alerts if a.kind == "over_capacity")

    def until(self, at: datetime) -> None:
        """Judge whenever the station is due, up to ``at`` (the worker's timer)."""
        while self.next_due <= at:
            self.judge(self.next_due)

    def episodes(self) -> list[tuple[datetime, datetime | None]]:
        ends = {a.alert_id: a.ends_at for a in self.alerts if a.state == "resolved"}
        return [(a.starts_at, ends.get(a.alert_id)) for a in self.alerts if a.state == "firing"]


def test_a_condition_shorter_than_its_pending_time_never_fires() -> None:
    room = Room()
    room.count(T0, 12)
    room.until(T0 + PENDING - MIN)
    room.count(T0 + PENDING - MIN, 8)
    room.until(T0 + 3 * PENDING)
    assert room.alerts == []


def test_it_fires_when_held_for_the_pending_time_dated_from_its_start() -> None:
    room = Room()
    room.count(T0, 12)
    assert room.next_due == T0 + PENDING  # the worker looks again exactly then
    room.count(T0 + 3 * MIN, 13)  # still over: the condition has held since T0
    room.until(T0 + PENDING)
    (firing,) = room.alerts
    assert (firing.state, firing.starts_at, firing.detected_at) == ("firing", T0, T0 + PENDING)


def test_dips_shorter_than_keep_firing_continue_the_episode() -> None:
    room = Room()
    room.count(T0, 12)
    room.until(T0 + PENDING)
    for minute in range(11, 40, 2):  # hovering: under for a minute, over for a minute
        room.count(T0 + minute * MIN, 9)
        room.until(T0 + (minute + 1) * MIN)
        room.count(T0 + (minute + 1) * MIN, 11)
    assert [a.state for a in room.alerts] == ["firing"]
    room.count(T0 + 41 * MIN, 7)  # clear for good
    room.until(T0 + 41 * MIN + KEEP - MIN)
    assert [a.state for a in room.alerts] == ["firing"]
    room.until(T0 + 41 * MIN + KEEP)
    firing, resolved = room.alerts
    assert (resolved.state, resolved.alert_id) == ("resolved", firing.alert_id)
    assert resolved.ends_at == T0 + 41 * MIN  # when it cleared, not when that was confirmed
    assert resolved.detected_at == T0 + 41 * MIN + KEEP


def test_without_times_a_kind_fires_and_resolves_at_once() -> None:
    room = Room(LivenessConfig())
    room.count(T0, 12)
    room.count(T0 + MIN, 9)
    assert [(a.state, a.starts_at, a.ends_at) for a in room.alerts] == [
        ("firing", T0, None),
        ("resolved", T0, T0 + MIN),
    ]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 240), st.integers(0, 20)), min_size=1, max_size=60))
def test_no_episode_is_shorter_than_the_pending_time(counts: list[tuple[int, int]]) -> None:
    """Whatever the head counts (seconds apart, occupants), every episode lasts at least the
    pending time, and episodes never overlap."""
    room = Room()
    at = T0
    for gap_s, occupants in counts:
        at += timedelta(seconds=gap_s)
        room.until(at)
        room.count(at, occupants)
    room.count(at + timedelta(seconds=1), 0)
    room.until(at + 2 * (PENDING + KEEP))
    episodes = room.episodes()
    for starts, ends in episodes:
        assert ends is not None
        assert ends - starts >= PENDING
    for (_, earlier_end), (later_start, _) in itertools.pairwise(episodes):
        assert earlier_end is not None
        assert later_start >= earlier_end
