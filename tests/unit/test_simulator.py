"""The simulated fleet: realistic proportions, reproducible, and valid on the wire."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from pydantic import ValidationError

from schemas import Alert, Heartbeat, Occupancy, StationProfile, StatusEvent, topics
from schemas.common import STATION_ID_PATTERN
from schemas.registry import BASIC_SERVICES, EXTENDED_SERVICES
from stationwatch.districts import layout
from stationwatch.fleet import CORE_SERVICES, seed_district
from stationwatch.settings import Settings
from stationwatch.simulator import MANUAL_REPORT_S, SCHEDULE_CHECK_S, Fleet, build_fleet
from stationwatch.telemetry_sim import (
    BUSY_PEAK,
    MAX_STEP,
    SENSOR_REPORT_S,
    SENSOR_STEP_S,
    StationState,
    daily_shape,
    expected_occupants,
    heartbeat,
    malformed,
    occupancy,
    status,
    step_occupants,
)
from streams.ingest import IngestConfig, Record, Tick, process_records
from streams.liveness import Clock
from streams.runtime import liveness_config

NOW = datetime(2026, 11, 30, 8, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
SEC = timedelta(seconds=1)


@pytest.fixture(scope="module")
def seed_fleet() -> list[StationProfile]:
    return build_fleet(1419, seed=1, now=NOW)


def test_categories_follow_the_seed_counts(seed_fleet: list[StationProfile]) -> None:
    counts = Counter(p.category for p in seed_fleet)
    assert counts == {
        "standard": 1397,
        "smart_24h": 18,
        "truck_driver": 3,
        "business_circle_24h": 1,
    }
    assert seed_fleet[0].name == "空港祥云工会驿站"
    assert seed_fleet[0].category == "business_circle_24h"


def test_services_hours_and_devices_in_realistic_shares(seed_fleet: list[StationProfile]) -> None:
    extended = [p for p in seed_fleet if set(p.services) & set(EXTENDED_SERVICES)]
    assert len(extended) == 371
    assert all(set(CORE_SERVICES) <= set(p.services) for p in seed_fleet)
    assert all(set(p.services) <= set(BASIC_SERVICES) | set(EXTENDED_SERVICES) for p in seed_fleet)
    assert sum(p.opening_hours.holidays_open for p in seed_fleet) == 223
    no_device = [p for p in seed_fleet if p.heartbeat_interval_s is None]
    assert 0.12 * 1419 < len(no_device) < 0.18 * 1419
    assert all(p.category == "standard" for p in no_device)
    closed = [p for p in seed_fleet if p.lifecycle == "temporarily_closed"]
    assert 5 < len(closed) < 60
    for p in seed_fleet:
        if p.category == "standard":
            assert not p.opening_hours.always_open
            assert {"mon", "tue", "wed", "thu", "fri"} <= set(p.opening_hours.weekly)
        else:
            assert p.opening_hours.always_open
            assert p.opening_hours.holidays_open


def test_ids_names_and_locations(seed_fleet: list[StationProfile]) -> None:
    district = seed_district()
    lat_min, lat_max, lon_min, lon_max = district.bbox
    assert [p.station_id for p in seed_fleet[:2]] == ["SY-0001", "SY-0002"]
    assert len({p.station_id for p in seed_fleet}) == 1419
    assert len({p.name for p in seed_fleet}) == 1419
    for p in seed_fleet:
        assert p.name.endswith("工会驿站")
        assert p.street in district.places
        assert p.district == "顺义区"
        assert lat_min <= p.location.lat <= lat_max
        assert lon_min <= p.location.lon <= lon_max
    # clustered: the busiest place holds far more than an even share
    busiest = Counter(p.street for p in seed_fleet).most_common(1)[0][1]
    assert busiest > 2 * 1419 / len(district.places)


def test_same_seed_same_fleet_other_seed_other_fleet() -> None:
    first = build_fleet(200, seed=5, now=NOW)
    assert first == build_fleet(200, seed=5, now=NOW)
    assert first != build_fleet(200, seed=6, now=NOW)


@pytest.mark.parametrize("n", [1, 2, 9, 10, 300, 5000])
def test_any_size_validates_on_the_wire(n: int) -> None:
    fleet = build_fleet(n, seed=2, now=NOW, heartbeat_interval_s=5)
    assert len(fleet) == n
    districts = {p.district for p in fleet}
    assert Counter(p.category for p in fleet)["business_circle_24h"] == len(districts)
    for profile in fleet:
        assert StationProfile.model_validate_json(profile.model_dump_json()) == profile
        assert profile.heartbeat_interval_s in (None, 5)
    if n >= 10:
        assert {p.category for p in fleet} == {
            "standard",
            "smart_24h",
            "truck_driver",
            "business_circle_24h",
        }


@pytest.mark.parametrize("n", [1, 1419, 1420, 150_000, 1_000_000])
def test_every_station_id_of_any_layout_matches_the_contract(n: int) -> None:
    import re

    plan = layout(n)
    assert sum(count for _, count in plan) == n
    assert len({district.code for district, _ in plan}) == len(plan)
    for district, count in plan:  # ids run from {code}-0001 to {code}-{count}, past 9999 too
        assert re.match(STATION_ID_PATTERN, f"{district.code}-{count:04d}")


def test_every_message_validates_and_seq_counts_up() -> None:
    rng = random.Random(4)
    fleet = build_fleet(60, seed=4, now=NOW)
    for n, profile in enumerate(fleet):
        state = StationState.create(profile, rng)
        opened = StatusEvent.model_validate_json(orjson.dumps(status(state, NOW, True)))
        assert opened.state == "open"
        for step in range(40):
            step_occupants(state, NOW + step * SENSOR_STEP_S * SEC, rng)
            count = Occupancy.model_validate_json(orjson.dumps(occupancy(state, NOW, n)))
            assert 0 <= count.occupants <= state.room
            assert count.capacity == profile.capacity
            assert count.source == ("sensor" if state.device_id else "manual")
        if state.device_id is None:
            continue
        beats = [
            Heartbeat.model_validate_json(orjson.dumps(heartbeat(state, NOW, rng)))
            for _ in range(3)
        ]
        seqs = [b.seq for b in beats if b.seq is not None]
        assert seqs == sorted(seqs)
        assert len(set(seqs)) == 3
        assert all(b.device_id == state.device_id for b in beats)
        closed = StatusEvent.model_validate_json(orjson.dumps(status(state, NOW, False)))
        assert closed.state == "closed"
        step_occupants(state, NOW + 41 * SENSOR_STEP_S * SEC, rng)
        assert Occupancy.model_validate_json(orjson.dumps(occupancy(state, NOW, 0))).occupants == 0


MODELS: dict[str, type[Heartbeat | Occupancy | StatusEvent]] = {
    topics.HEARTBEAT: Heartbeat,
    topics.OCCUPANCY: Occupancy,
    topics.STATUS: StatusEvent,
}


def test_malformed_messages_are_rejected_by_the_contract() -> None:
    rng = random.Random(9)
    state = StationState.create(build_fleet(1, seed=1, now=NOW)[0], rng)
    seen: set[tuple[str, str]] = set()
    for _ in range(100):
        topic, key, value = malformed(state, datetime.now(UTC), rng)
        try:
            message = MODELS[topic].model_validate_json(value)
        except ValidationError as exc:
            seen.add((topic, exc.errors()[0]["type"]))
            continue
        assert message.station_id != key.decode()  # valid body, but the key does not match
        seen.add((topic, "key_mismatch"))
    assert len(seen) >= 4


# -- occupancy: people arrive and leave ---------------------------------------------------------
WEDNESDAY = datetime(2026, 12, 2, 0, 0, tzinfo=ZoneInfo("Asia/Shanghai"))  # an ordinary one


def _counts(
    state: StationState, start: datetime, hours: float, step_s: float, rng: random.Random
) -> list[int]:
    """The station's count every ``step_s`` for ``hours`` from ``start``, open all along."""
    status(state, start, True)
    steps = round(hours * 3600 / step_s)
    return [step_occupants(state, start + k * step_s * SEC, rng) for k in range(steps)]


DAY_STEP_S = 60.0  # the days below are sampled each minute (the sensors count every 15 s)


@pytest.fixture(scope="module")
def crowd_days() -> list[tuple[StationState, list[int]]]:
    """A day of 40 stations (the busy business-circle showcase among them)."""
    rng = random.Random(11)
    states = [StationState.create(p, rng) for p in build_fleet(40, seed=11, now=WEDNESDAY)]
    return [(state, _counts(state, WEDNESDAY, 24, DAY_STEP_S, rng)) for state in states]


def test_counts_are_bounded_and_change_by_small_steps() -> None:
    rng = random.Random(5)
    lunch = WEDNESDAY.replace(hour=11)
    for profile in build_fleet(20, seed=5, now=WEDNESDAY):
        state = StationState.create(profile, rng)
        counts = _counts(state, lunch, 3, SENSOR_STEP_S, rng)  # the busiest hours
        assert min(counts) >= 0
        assert max(counts) <= state.room <= 1.5 * state.capacity + 1
        if state.peak_load < BUSY_PEAK[0]:  # an ordinary station turns people away when full
            assert max(counts) <= state.capacity
        steps = [b - a for a, b in itertools.pairwise(counts)]
        assert max(abs(step) for step in steps) <= MAX_STEP
        assert sum(step != 0 for step in steps) < 0.5 * len(steps)  # mostly unchanged


def test_the_day_has_meal_peaks_and_quiet_nights(
    crowd_days: list[tuple[StationState, list[int]]],
) -> None:
    def share(category: str, hour: float) -> float:
        """The mean count at ``hour`` over the day's stations of ``category``, per seat."""
        k = round(hour * 3600 / DAY_STEP_S)
        rows = [
            (c[k - 5 : k + 5], s.capacity) for s, c in crowd_days if s.profile.category == category
        ]
        return sum(sum(counts) / len(counts) for counts, _ in rows) / sum(cap for _, cap in rows)

    standard = {hour: share("standard", hour) for hour in (3, 10, 12.5, 15.5, 18.5, 23)}
    assert standard[12.5] > 1.7 * standard[10]  # lunch
    assert standard[18.5] > 1.4 * standard[15.5]  # dinner
    assert standard[3] < 0.3 * standard[10]  # night
    assert standard[23] < 0.5 * standard[10]
    assert daily_shape("truck_driver", 2) > daily_shape("truck_driver", 10)  # lorries at night
    assert daily_shape("standard", 12.25) == pytest.approx(1.0, abs=0.02)


def test_weekends_and_holidays_are_quieter() -> None:
    state = StationState.create(build_fleet(12, seed=3, now=WEDNESDAY)[5], random.Random(1))
    assert state.profile.category == "standard"
    noon = WEDNESDAY.replace(hour=12)
    workday = expected_occupants(state, noon)
    saturday = expected_occupants(state, noon.replace(day=5))
    holiday = expected_occupants(state, noon.replace(month=10, day=1))  # National Day
    assert holiday < saturday < workday


def test_nobody_is_counted_in_a_closed_station() -> None:
    rng = random.Random(2)
    state = StationState.create(build_fleet(1, seed=1, now=WEDNESDAY)[0], rng)
    counts = _counts(state, WEDNESDAY.replace(hour=11), 2, DAY_STEP_S, rng)
    assert max(counts) > state.capacity  # the showcase is crowded at lunch …
    status(state, WEDNESDAY + timedelta(hours=24), False)
    assert step_occupants(state, WEDNESDAY + timedelta(hours=24, seconds=15), rng) == 0
    assert step_occupants(state, WEDNESDAY + timedelta(hours=25), rng) == 0
    status(state, WEDNESDAY + timedelta(hours=26), True)  # … and fills up again from nobody
    assert step_occupants(state, WEDNESDAY + timedelta(hours=26, seconds=15), rng) <= MAX_STEP


def test_over_capacity_only_at_busy_stations_and_mostly_for_a_sustained_while(
    crowd_days: list[tuple[StationState, list[int]]],
) -> None:
    over = [(s, c) for s, c in crowd_days if max(c) > s.capacity]
    assert 1 <= len(over) <= 0.1 * len(crowd_days)  # some stations, not a flood
    stretches: list[float] = []  # minutes over capacity without a break
    for state, counts in over:
        assert state.peak_load >= BUSY_PEAK[0]
        for above, run in itertools.groupby(n > state.capacity for n in counts):
            if above:
                stretches.append(len(list(run)) * DAY_STEP_S / 60)
        hours = [k * DAY_STEP_S / 3600 for k, n in enumerate(counts) if n > state.capacity]
        if state.profile.category != "truck_driver":
            assert all(10 <= h <= 20.5 for h in hours)  # meal times
    sustained = sum(m for m in stretches if m >= 10)  # as long as the pending time, or longer
    assert sustained >= 0.5 * sum(stretches)


def test_sensors_report_changes_and_every_minute_staff_every_few_while_open() -> None:
    fleet = Fleet(Settings(), 20, seed=3, interval=30, start=0.0, now=WEDNESDAY.replace(hour=11))
    reports: dict[str, list[tuple[float, int, str]]] = {}
    for second in range(0, 1800, 5):
        at = WEDNESDAY.replace(hour=11) + second * SEC
        messages = fleet.schedule_pass(second, at) if second % 15 == 0 else []
        for topic, _key, value in messages + fleet.due_reports(second, at):
            if topic != topics.OCCUPANCY or not value:
                continue
            try:
                body = orjson.loads(value)
            except orjson.JSONDecodeError:
                continue  # one of the deliberately malformed messages
            if isinstance(body, dict) and body.get("source") and body.get("occupants", -1) >= 0:
                entry = (float(second), body["occupants"], body["source"])
                reports.setdefault(body["station_id"], []).append(entry)
    assert len(reports) >= 15
    for station_id, entries in reports.items():
        state = next(s for s in fleet.states if s.profile.station_id == station_id)
        gaps = [b[0] - a[0] for a, b in itertools.pairwise(entries)]
        if entries[0][2] == "manual":
            assert all(gap >= MANUAL_REPORT_S - 5 for gap in gaps)
        elif state.silent_until == 0:  # a device that never went quiet
            assert max(gaps) <= SENSOR_REPORT_S + SENSOR_STEP_S
            for (_, before, _), (_, after, _), gap in zip(entries, entries[1:], gaps, strict=False):
                assert after != before or gap >= SENSOR_REPORT_S - SENSOR_STEP_S


# -- the demo, judged by the worker's own decisions (no broker) ---------------------------------
DEMO = Settings()  # the pending and keep-firing times `stationwatch dev` runs with
DEMO_HEARTBEAT_S = 5  # stationwatch.dev.DEV_HEARTBEAT_S
INGEST = IngestConfig(
    topic_prefix="",
    max_bytes=DEMO.max_message_bytes,
    max_skew=timedelta(seconds=DEMO.max_clock_skew_s),
    liveness=liveness_config(DEMO),
    partitions=1,
)


def replay(fleet: Fleet, start: datetime, seconds: int) -> list[Alert]:
    """Run ``fleet`` (created at ``start``, wall 0) on a simulated clock for ``seconds``, and
    pass everything it says, second by second, through the worker's ingest step (decode, fold,
    `streams.liveness.evaluate`), judging stations when due as the worker's timer does."""
    states: dict[str, Any] = {}
    due: dict[str, datetime] = {}
    alerts: list[Alert] = []
    messages = fleet.registry()
    offset = 0
    for second in range(seconds + 1):
        at = start + second * SEC
        if second % SCHEDULE_CHECK_S == 0:
            messages += fleet.schedule_pass(second, at)
        messages += fleet.due_reports(second, at)
        records = [
            Record(topic, 0, offset + n, key, value)
            for n, (topic, key, value) in enumerate(messages)
        ]
        offset, messages = offset + len(records), []
        ticks = [Tick(0, [sid for sid, when in due.items() if when <= at])]
        if not records and not ticks[0].station_ids:
            continue
        out = process_records(
            records, states, now=at, clocks={0: Clock(at, at)}, config=INGEST, ticks=ticks
        )
        for station_id, write in out.state_writes.items():
            if write.value is not None:
                states[station_id] = write.value
            if write.next_due is not None:
                due[station_id] = write.next_due
        alerts += out.alerts
    return alerts


def episode_lengths(alerts: list[Alert], end: datetime) -> list[tuple[str, timedelta]]:
    """(kind, length) of every episode that fired: to its end, or to ``end`` if still open."""
    ends = {a.alert_id: a.ends_at for a in alerts if a.state == "resolved"}
    return [
        (a.kind, (ends.get(a.alert_id) or end) - a.starts_at) for a in alerts if a.state == "firing"
    ]


def test_ten_minutes_of_the_demo_have_no_episode_shorter_than_its_pending_time() -> None:
    start = WEDNESDAY.replace(hour=11, minute=55)  # into the lunch crowd
    fleet = Fleet(DEMO, 30, seed=1, interval=DEMO_HEARTBEAT_S, start=0.0, now=start)
    alerts = replay(fleet, start, 600)
    for kind, length in episode_lengths(alerts, start + 600 * SEC):
        assert length >= INGEST.liveness.pending_for(kind), (kind, length)
    assert Counter(a.kind for a in alerts if a.state == "firing").keys() <= {"stale", "offline"}


def test_a_lunch_crowd_fires_over_capacity_once_for_a_long_while() -> None:
    start = WEDNESDAY.replace(hour=11)
    fleet = Fleet(DEMO, 1, seed=1, interval=DEMO_HEARTBEAT_S, start=0.0, now=start)
    assert fleet.states[0].profile.category == "business_circle_24h"  # the busy showcase
    alerts = replay(fleet, start, int(3.5 * 3600))
    lengths = episode_lengths(alerts, start + 3.5 * 3600 * SEC)
    crowds = [length for kind, length in lengths if kind == "over_capacity"]
    assert 1 <= len(crowds) <= 3
    assert all(length >= timedelta(minutes=10) for length in crowds)
    for kind, length in lengths:
        assert length >= INGEST.liveness.pending_for(kind), (kind, length)


def test_the_demo_outage_silences_one_open_station_for_its_time_only() -> None:
    noon = WEDNESDAY.replace(hour=12)
    fleet = Fleet(Settings(), 40, seed=1, interval=5, start=0.0, now=noon, demo_outage=(40, 180))
    assert fleet.planned is not None
    quiet, begins, ends = fleet.planned
    assert (begins, ends) == (40.0, 220.0)
    assert quiet.profile.lifecycle == "active"
    beats: list[float] = []
    for second in range(0, 300):
        at = noon + second * SEC
        for topic, key, _value in fleet.due_reports(float(second), at):
            if topic == topics.HEARTBEAT and key == quiet.key:
                beats.append(float(second))
    assert any(b < 40 for b in beats)
    assert not [b for b in beats if 40 <= b < 220]
    assert any(b >= 220 for b in beats)
