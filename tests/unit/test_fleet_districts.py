"""Fleets beyond the seed district: further districts with their own names, codes, centres and
streets, laid out the same for every seed, each with the seed's proportions."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from schemas import StationProfile
from schemas.registry import EXTENDED_SERVICES
from stationwatch.districts import (
    SIZE_RANGE,
    further_count,
    further_district,
    layout,
    seed_district,
)
from stationwatch.fleet import build_fleet, iter_fleet

NOW = datetime(2026, 11, 30, 8, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
CHINA = (18.0, 54.0, 73.0, 135.0)  # lat_min, lat_max, lon_min, lon_max


@pytest.fixture(scope="module")
def fleet() -> list[StationProfile]:
    return build_fleet(6000, seed=3, now=NOW)


def test_the_seed_district_comes_first_and_unchanged(fleet: list[StationProfile]) -> None:
    assert fleet[:1419] == build_fleet(1419, seed=3, now=NOW)
    assert {p.district for p in fleet[:1419]} == {"顺义区"}
    assert fleet[1419].station_id == "CY-0001"
    assert fleet[1419].district == "朝阳区"


def test_further_districts_have_their_own_names_streets_and_places(
    fleet: list[StationProfile],
) -> None:
    by_district: dict[str, list[StationProfile]] = defaultdict(list)
    for profile in fleet:
        by_district[profile.district].append(profile)
    first = ["顺义区", "朝阳区", "海淀区", "丰台区", "东城区", "西城区"]
    assert len(by_district) >= 4
    assert list(by_district) == first[: len(by_district)]
    assert len({p.station_id for p in fleet}) == len(fleet)
    for k, (name, stations) in enumerate(list(by_district.items())[1:]):
        district = further_district(k)
        assert district.name == name
        assert {p.station_id.split("-")[0] for p in stations} == {district.code}
        assert len({p.name for p in stations}) == len(stations)  # unique within a district
        assert {p.street for p in stations} <= set(district.places)
        assert not set(district.places) & set(seed_district().places)
        lat_min, lat_max, lon_min, lon_max = district.bbox
        assert CHINA[0] < lat_min < lat_max < CHINA[1]
        assert CHINA[2] < lon_min < lon_max < CHINA[3]
        for p in stations:
            assert lat_min <= p.location.lat <= lat_max
            assert lon_min <= p.location.lon <= lon_max
            assert p.name.endswith("工会驿站")
            assert p.contact_phone is not None
            assert p.contact_phone.startswith(f"{district.area_code}-")
        assert stations[0].category == "business_circle_24h"
        streets = Counter(p.street for p in stations)
        assert streets.most_common(1)[0][1] > 1.3 * len(stations) / len(district.places)


def test_every_full_district_keeps_the_seed_proportions(fleet: list[StationProfile]) -> None:
    size = further_district(0).size
    stations = [p for p in fleet if p.district == "朝阳区"]
    assert len(stations) == size
    share = size / 1419
    extended = [p for p in stations if set(p.services) & set(EXTENDED_SERVICES)]
    assert len(extended) == round(371 * share)
    assert sum(p.opening_hours.holidays_open for p in stations) == round(223 * share)
    categories = Counter(p.category for p in stations)
    assert categories["truck_driver"] == max(1, round(3 * share))
    assert categories["smart_24h"] == round(18 * share)
    assert categories["business_circle_24h"] == 1


def test_the_map_is_the_same_for_every_seed_and_the_stations_differ() -> None:
    one, other = build_fleet(2000, seed=1, now=NOW), build_fleet(2000, seed=2, now=NOW)
    assert [p.station_id for p in one] == [p.station_id for p in other]
    assert one[1419:] != other[1419:]
    assert build_fleet(2000, seed=1, now=NOW) == one
    assert further_district(7) == further_district(7)


def test_layout_fills_districts_in_order_then_makes_them_denser() -> None:
    assert layout(0) == []
    assert [(d.code, n) for d, n in layout(1000)] == [("SY", 1000)]
    plan = layout(150_000)
    assert plan[0][0].code == "SY"
    assert all(SIZE_RANGE[0] <= n <= SIZE_RANGE[1] for _, n in plan[1:-1])
    total = 1419 + sum(further_district(k).size for k in range(further_count()))
    beyond = layout(2 * total)
    assert len(beyond) == 1 + further_count()
    assert all(n > further_district(k).size for k, (_, n) in enumerate(beyond[1:-1]))


def test_iterating_makes_the_same_fleet_as_building() -> None:
    assert list(iter_fleet(1600, seed=4, now=NOW)) == build_fleet(1600, seed=4, now=NOW)
