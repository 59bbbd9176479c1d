"""The simulated fleet with faults on, on a simulated clock: what each fault does to what the
stations say, that a seed and a start reproduce a run, and what a worker makes of a fast clock."""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from schemas import topics
from stationwatch.fault_injection import FLAP_QUIET, LATE_CLOSE_S, FaultRates
from stationwatch.settings import Settings
from stationwatch.sim_clock import accepted_for_s, clock_notes
from stationwatch.simulator import SCHEDULE_CHECK_S, TICK_S, Fleet

ZONE = ZoneInfo("Asia/Shanghai")
NOON = datetime(2026, 12, 2, 12, 0, tzinfo=ZONE)  # an ordinary Wednesday
QUIET = FaultRates(outage=0, manual_close=0, malformed=0)  # nothing but the fault under test


@dataclass(frozen=True)
class Said:
    second: int  # simulated seconds from the start
    topic: str
    key: bytes
    value: bytes | None

    def body(self) -> dict[str, Any]:
        loaded: dict[str, Any] = orjson.loads(self.value or b"")
        return loaded


def run(fleet: Fleet, start: datetime, seconds: int, step_s: float = TICK_S) -> list[Said]:
    """Everything ``fleet`` says, step by step of its clock, for ``seconds``."""
    origin = start.timestamp()
    said: list[Said] = []
    for step in range(int(seconds / step_s) + 1):
        sim = step * step_s
        for topic, key, value in fleet.tick(origin + sim, start + timedelta(seconds=sim)):
            said.append(Said(int(sim), topic, key, value))
    return said


def fleet_of(n: int, rates: FaultRates, start: datetime, seed: int = 1) -> Fleet:
    return Fleet(Settings(), n, seed, 30, start=start.timestamp(), now=start, faults=rates)


def beats_by_station(said: list[Said]) -> dict[bytes, list[int]]:
    beats: dict[bytes, list[int]] = defaultdict(list)
    for s in said:
        if s.topic == topics.HEARTBEAT:
            beats[s.key].append(s.second)
    return beats


def test_a_dead_device_never_speaks_again() -> None:
    fleet = fleet_of(40, replace(QUIET, death=1.0), NOON)
    said = run(fleet, NOON, 2 * 3600)
    devices = {s.key: s for s in fleet.states if s.device_id and s.profile.lifecycle == "active"}
    dead = {key for key, state in devices.items() if state.dead}
    assert 0.6 * len(devices) < len(dead) < len(devices)  # 1 - e^-2 of them
    beats = beats_by_station(said)
    last = max(max(seconds) for seconds in beats.values())
    for key in devices:
        if key not in dead:
            assert max(beats[key]) >= last - 30
            continue
        died = max(beats.get(key, [0]))
        assert died < last - 60  # gone well before the end, and its sensor with it
        sensed = [
            s for s in said if s.key == key and s.topic == topics.OCCUPANCY and s.second > died + 30
        ]
        assert not sensed


def test_a_flapping_device_goes_quiet_past_stale_and_back_again_and_again() -> None:
    rates = replace(QUIET, flapping=3.0)
    fleet = fleet_of(30, rates, NOON)
    said = run(fleet, NOON, 3600)
    flapped = 0
    for seconds in beats_by_station(said).values():
        gaps = [b - a for a, b in itertools.pairwise(seconds)]
        long_gaps = [g for g in gaps if g >= FLAP_QUIET[0] * 30]
        if len(long_gaps) >= 3:  # off and on, several times within the hour
            flapped += 1
            # the beat it went quiet at, the quiet spell, and the wait for its next turn
            assert all(g <= FLAP_QUIET[1] * 30 + 60 for g in long_gaps)
    assert flapped >= 5


def test_a_street_without_power_falls_silent_together_then_comes_back() -> None:
    rates = replace(QUIET, power_cut=0.5)
    fleet = fleet_of(150, rates, NOON)
    origin = NOON.timestamp()
    cuts: list[tuple[int, float, float]] = []  # (street, from, until) as decided
    said: list[Said] = []
    for second in range(0, 2 * 3600, 5):
        wall = origin + second
        dark_before = list(fleet.dark)
        for topic, key, value in fleet.tick(wall, NOON + timedelta(seconds=second)):
            said.append(Said(second, topic, key, value))
        cuts += [
            (n, wall - origin, back - origin)
            for n, back in enumerate(fleet.dark)
            if back != dark_before[n] and back > wall
        ]
    assert cuts
    beats = beats_by_station(said)
    checked = 0
    for street, begins, ends in cuts:
        devices = [
            s.key for s in fleet.states if s.street_no == street and s.key in beats and s.device_id
        ]
        for key in devices:
            assert not [t for t in beats[key] if begins <= t < ends]
            if ends < 2 * 3600 - 65:
                assert [t for t in beats[key] if ends <= t < ends + 65]  # back within a beat
        checked += len(devices) >= 2
    assert checked  # a street of several devices, all silent together


def test_a_skewed_clock_stamps_every_heartbeat_off_by_the_same_amount() -> None:
    rates = replace(QUIET, clock_skew=2.0, clock_skew_s=600)
    fleet = fleet_of(30, rates, NOON)
    said = run(fleet, NOON, 1800)
    offsets: dict[bytes, set[int]] = defaultdict(set)
    for s in said:
        if s.topic == topics.HEARTBEAT:
            sent = datetime.fromisoformat(s.body()["sent_at"])
            offsets[s.key].add(round((sent - NOON).total_seconds() - s.second))
    skewed = [key for key, seen in offsets.items() if {600, -600} & seen]
    assert skewed
    for key in skewed:  # on time until the clock went wrong, then off by 600 s for good
        assert offsets[key] <= {0, -1, 600, -600, 599, -601}
    assert any(offsets[k] <= {0, -1} for k in offsets)


def test_staff_close_late_after_the_scheduled_closing() -> None:
    evening = NOON.replace(hour=16, minute=55)
    closings = {"17:30": 0, "19:00": 0, "20:00": 0, "21:00": 0}

    def closed(rates: FaultRates) -> list[tuple[Said, int]]:
        """Closed events on schedule, each with seconds past its station's closing time."""
        fleet = fleet_of(120, rates, evening)
        hours = {s.key: h for s, h in zip(fleet.states, fleet.hours, strict=True)}
        out = []
        for s in run(fleet, evening, 4 * 3600 + 1800, step_s=SCHEDULE_CHECK_S):
            body = s.body() if s.topic == topics.STATUS else {}
            if body.get("state") != "closed" or body.get("reason") != "schedule" or not s.second:
                continue
            weekly: Any = hours[s.key]["weekly"]
            ends = weekly["wed"][-1][1]
            closings[ends] = closings.get(ends, 0) + 1
            at = datetime.fromisoformat(body["at"])
            scheduled = evening.replace(hour=int(ends[:2]), minute=int(ends[3:]))
            out.append((s, round((at - scheduled).total_seconds())))
        return out

    on_time = closed(QUIET)
    assert len(on_time) > 50
    assert all(0 <= late < SCHEDULE_CHECK_S for _, late in on_time)
    assert all(s.body()["actor"] in ("device", "staff") for s, _ in on_time)
    late_rates = replace(QUIET, late_close=0.5)
    with_late = closed(late_rates)
    late = [(s, d) for s, d in with_late if d >= LATE_CLOSE_S[0]]
    assert 0.3 * len(with_late) < len(late) < 0.7 * len(with_late)
    for s, delay in late:
        assert delay <= LATE_CLOSE_S[1] + SCHEDULE_CHECK_S
        assert s.body()["actor"] == "staff"


def test_the_same_seed_and_start_say_the_same_and_faults_add_to_the_traffic() -> None:
    rates = FaultRates(death=1, flapping=1, power_cut=0.5, clock_skew=1, reorder=0.02)
    first = run(fleet_of(60, rates, NOON, seed=3), NOON, 900)
    assert first == run(fleet_of(60, rates, NOON, seed=3), NOON, 900)
    assert first != run(fleet_of(60, rates, NOON, seed=4), NOON, 900)
    # duplicates come on top of the same traffic: drop the repeats and it is as without
    base = run(fleet_of(60, QUIET, NOON, seed=3), NOON, 900)
    doubled_rates = replace(QUIET, duplicate=0.1)
    doubled = run(fleet_of(60, doubled_rates, NOON, seed=3), NOON, 900)
    assert len(doubled) > 1.05 * len(base)
    assert [s for s, previous in zip(doubled, [None, *doubled], strict=False) if s != previous] == (
        base
    )


NOW = datetime(2026, 12, 2, 12, 0, tzinfo=ZONE)


@pytest.mark.parametrize(
    ("start", "speed", "duration", "expected"),
    [
        (NOW, 1.0, None, []),  # real time: never ahead
        (NOW, 10.0, 10.0, []),  # 90 s ahead at the end: accepted
        (NOW, 10.0, 100.0, ["after 33 s"]),  # 300 s ahead after 33 s
        (NOW, 10.0, None, ["after 33 s"]),
        (NOW - timedelta(hours=1), 10.0, 500.0, ["after 433 s"]),  # starts behind: catches up
        (NOW + timedelta(minutes=10), 1.0, None, ["starts 600 s ahead"]),
        (NOW - timedelta(days=40), 1.0, None, ["3456000 s behind"]),
    ],
)
def test_what_a_worker_makes_of_the_simulated_clock(
    start: datetime, speed: float, duration: float | None, expected: list[str]
) -> None:
    notes = clock_notes(start, NOW, speed, duration, Settings())
    assert len(notes) == len(expected)
    for note, words in zip(notes, expected, strict=True):
        assert words in note


def test_accepted_for() -> None:
    assert accepted_for_s(NOW, NOW, 1.0, 300) == float("inf")
    assert accepted_for_s(NOW, NOW, 61.0, 300) == pytest.approx(5.0)
    assert accepted_for_s(NOW + timedelta(seconds=301), NOW, 1.0, 300) == 0.0
