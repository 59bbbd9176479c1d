"""The simulated fleet: realistic proportions, reproducible, and valid on the wire."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import orjson
import pytest
from pydantic import ValidationError

from schemas import Heartbeat, Occupancy, StationProfile, StatusEvent, topics
from schemas.common import STATION_ID_PATTERN
from schemas.registry import BASIC_SERVICES, EXTENDED_SERVICES
from stationwatch.fleet import CORE_SERVICES, seed_district
from stationwatch.simulator import build_fleet
from stationwatch.telemetry_sim import StationState, heartbeat, malformed, occupancy, status

NOW = datetime(2026, 11, 30, 8, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


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
    assert Counter(p.category for p in fleet)["business_circle_24h"] == 1
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


def test_station_ids_match_the_contract_beyond_9999() -> None:
    import re

    fleet = build_fleet(10_001, seed=1, now=NOW)
    assert fleet[-1].station_id == "SY-10001"
    assert re.match(STATION_ID_PATTERN, fleet[-1].station_id)


def test_every_message_validates_and_seq_counts_up() -> None:
    rng = random.Random(4)
    fleet = build_fleet(60, seed=4, now=NOW)
    over = 0
    for profile in fleet:
        state = StationState.create(profile, rng)
        opened = StatusEvent.model_validate_json(orjson.dumps(status(state, NOW, True)))
        assert opened.state == "open"
        capacity = profile.capacity or 0
        for _ in range(300):
            count = Occupancy.model_validate_json(orjson.dumps(occupancy(state, NOW, rng)))
            assert 0 <= count.occupants <= capacity + 3
            over += count.occupants > capacity
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
        assert (
            Occupancy.model_validate_json(orjson.dumps(occupancy(state, NOW, rng))).occupants == 0
        )


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
