"""Where simulated stations stand: the seed district (data/shunyi.json) and, for fleets larger
than it, further districts from data/districts.json in their listed order — each with its own
name, station-id prefix, centre, telephone area code and streets and towns.

The further districts' streets and towns, their centres and how many stations each district
holds are derived from the district's code alone (never from the run's seed), so every seed
lays out the same map and a fleet of ``n`` stations always covers the same districts. Pure and
cached; no more than a few hundred small objects whatever the fleet's size.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

# Approximate centres (lat, lon) of the seed district's streets and towns; names missing here
# get a deterministic spot inside the bounding box.
CENTRES: dict[str, tuple[float, float]] = {
    "胜利街道": (40.128, 116.655), "光明街道": (40.134, 116.645), "石园街道": (40.121, 116.642),
    "空港街道": (40.080, 116.584), "双丰街道": (40.142, 116.668), "旺泉街道": (40.112, 116.667),
    "仁和镇": (40.118, 116.685), "后沙峪镇": (40.108, 116.531), "天竺镇": (40.060, 116.582),
    "杨镇": (40.165, 116.832), "牛栏山镇": (40.220, 116.665), "南法信镇": (40.125, 116.606),
    "马坡镇": (40.168, 116.640), "高丽营镇": (40.160, 116.500), "李桥镇": (40.070, 116.680),
    "李遂镇": (40.068, 116.770), "南彩镇": (40.118, 116.728), "北务镇": (40.085, 116.850),
    "大孙各庄镇": (40.100, 116.930), "张镇": (40.180, 116.900), "龙湾屯镇": (40.232, 116.892),
    "木林镇": (40.250, 116.815), "北小营镇": (40.200, 116.740), "北石槽镇": (40.250, 116.600),
    "赵全营镇": (40.220, 116.530),
}  # fmt: skip
# Denser near the airport and the district seat (the six streets).
DENSE = {"空港街道": 5.0, "天竺镇": 3.0, "后沙峪镇": 3.0, "南法信镇": 2.5, "仁和镇": 3.0}
# Syllables of generated street and town names (二字 names as most are: 安贞, 望京, 龙泉, …)
FIRST = "东西南北新长永安和兴德福龙金华清青宁平建朝胜光明双城江河湖山桥沙柳杨梅花石马高大古凤望云天"
SECOND = "安宁和平兴华明光阳山河桥园门庄口湾林泉溪源坊苑店营坝台塘亭里甸"
# A further district holds this many stations before any scaling (the seed holds 1,419).
SIZE_RANGE = (900, 1900)


@dataclass(frozen=True)
class District:
    name: str
    places: tuple[str, ...]  # streets first, then towns
    streets: frozenset[str]  # the 街道 among the places (more stations than towns)
    bbox: tuple[float, float, float, float]  # lat_min, lat_max, lon_min, lon_max
    counts: dict[str, int]  # the seed's counts: every district keeps its proportions
    extended: tuple[str, ...]
    code: str = "SY"  # station ids are ``{code}-0001`` …
    city: str = "北京市"
    area_code: str = "010"
    phone_prefix: str = "69"  # the first digits of its eight-digit local numbers
    size: int = 1419  # stations it holds in a large fleet
    centres: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    dense: Mapping[str, float] = field(default_factory=dict)
    showcase: tuple[str, str | None] = ("", None)  # the business-circle station: place, name
    truck_name: str | None = None  # the first truck-driver station's name, when known

    def weight(self, place: str) -> float:
        """How many stations a place holds, relative to a town's."""
        return self.dense.get(place, 3.0 if place in self.streets else 1.0)


def _data(name: str) -> dict[str, Any]:
    text = resources.files("stationwatch").joinpath(f"data/{name}").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@lru_cache(maxsize=1)
def seed_district() -> District:
    raw = _data("shunyi.json")
    box = raw["bbox"]
    examples = {e["category"]: e for e in raw.get("named_examples", ())}
    showcase = examples.get("business_circle_24h", {})
    return District(
        name=raw["district"],
        places=(*raw["streets"], *raw["towns"]),
        streets=frozenset(raw["streets"]),
        bbox=(box["lat_min"], box["lat_max"], box["lon_min"], box["lon_max"]),
        counts=dict(raw["seed_counts"]),
        extended=tuple(raw.get("extended_services", ())),
        size=int(raw["seed_counts"].get("stations_running", 1419)),
        centres=CENTRES,
        dense=DENSE,
        showcase=(showcase.get("street", raw["streets"][0]), showcase.get("name")),
        truck_name=examples.get("truck_driver", {}).get("name"),
    )


@lru_cache(maxsize=1)
def _table() -> tuple[tuple[Any, ...], ...]:
    return tuple(tuple(row) for row in _data("districts.json")["districts"])


def further_count() -> int:
    """How many further districts there are (data/districts.json)."""
    return len(_table())


def _place_names(rng: random.Random, streets: int, towns: int) -> list[str]:
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < streets + towns:
        stem = rng.choice(FIRST) + rng.choice(SECOND)
        if stem in seen or stem[0] == stem[1]:
            continue
        seen.add(stem)
        names.append(stem + ("街道" if len(names) < streets else "镇"))
    return names


@lru_cache(maxsize=256)
def further_district(k: int) -> District:
    """The ``k``-th further district (0-based), laid out from its row alone."""
    name, city, code, lat, lon, area_code, radius = _table()[k]
    rng = random.Random(f"district:{code}")  # noqa: S311 - a deterministic map, not security
    half_lon = radius * 1.25
    # small central districts are all streets; large outer ones mostly towns
    streets = rng.randint(6, 12) if radius <= 0.05 else rng.randint(3, 7)
    towns = 0 if radius <= 0.05 else rng.randint(6, 14)
    places = _place_names(rng, streets, towns)
    centres = {
        place: (
            round(lat + rng.uniform(-0.75, 0.75) * radius, 3),
            round(lon + rng.uniform(-0.75, 0.75) * half_lon, 3),
        )
        for place in places
    }
    seed = seed_district()
    return District(
        name=name,
        places=tuple(places),
        streets=frozenset(places[:streets]),
        bbox=(lat - radius, lat + radius, lon - half_lon, lon + half_lon),
        counts=seed.counts,
        extended=seed.extended,
        code=code,
        city=city,
        area_code=area_code,
        phone_prefix=str(rng.randint(5, 8)),
        size=rng.randint(*SIZE_RANGE),
        centres=centres,
        dense={places[0]: 5.0, places[1]: 4.0},  # the district seat and its neighbour
        showcase=(places[0], None),
    )


def layout(n: int) -> list[tuple[District, int]]:
    """The districts a fleet of ``n`` stations covers, with how many stations each holds: the
    seed district first (up to its size), then the further districts at their sizes, the last
    one taking what is left. Beyond the sum of every district's size, the further districts
    are scaled up alike (the same districts, denser)."""
    if n < 1:
        return []
    seed = seed_district()
    plan = [(seed, min(n, seed.size))]
    left = n - plan[0][1]
    if left <= 0:
        return plan
    sizes = [further_district(k).size for k in range(further_count())]
    scale = max(1.0, left / sum(sizes))
    for k, size in enumerate(sizes):
        take = min(left, math.ceil(size * scale))
        plan.append((further_district(k), take))
        left -= take
        if left == 0:
            break
    return plan
