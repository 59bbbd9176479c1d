"""A realistic simulated fleet of stations, generated from the seed district (data/shunyi.json).

Pure: the same ``(n, seed, now)`` gives the same fleet. Proportions follow the seed's counts
(1,419 stations: 371 with extended services, 223 open on holidays, 18 smart 24-hour stations,
3 for truck drivers, 1 business-circle 24-hour station), scaled to ``n``.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from importlib import resources
from typing import Any

from schemas.registry import BASIC_SERVICES, EXTENDED_SERVICES, StationProfile

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
LOCALITIES = (
    "祥云", "裕祥", "花园", "新城", "幸福里", "建新", "怡馨", "双兴", "站前", "金港", "前进",
    "西辛", "东兴", "光明", "碧桂", "澜西", "天博", "龙湖", "望泉", "河南村", "北街", "南街",
)  # fmt: skip
HOST_WORDS = {
    "party_service_center": "党群服务中心",
    "restaurant": "餐饮",
    "courier_station": "快递",
    "supermarket": "超市",
    "market": "市场",
    "business_circle": "商圈",
    "other": "",
}
STANDARD_HOSTS = (
    ("party_service_center", 35),
    ("restaurant", 15),
    ("courier_station", 15),
    ("supermarket", 15),
    ("market", 5),
    ("business_circle", 5),
    ("other", 10),
)
WEEKDAY_HOURS = (("08:00", "20:00"), ("07:00", "19:00"), ("08:30", "17:30"), ("09:00", "21:00"))
CORE_SERVICES = ("water", "charging", "rest", "rain_shelter", "warming", "cooling")
TRUCK_SERVICES = ("washing", "dining_area", "medicine", "wifi", "reading")
NO_DEVICE_SHARE = 0.15
TEMPORARILY_CLOSED_SHARE = 0.02


@dataclass(frozen=True)
class District:
    name: str
    places: tuple[str, ...]
    streets: frozenset[str]
    bbox: tuple[float, float, float, float]  # lat_min, lat_max, lon_min, lon_max
    counts: dict[str, int]
    extended: tuple[str, ...]


@lru_cache(maxsize=1)
def seed_district() -> District:
    raw: dict[str, Any] = json.loads(
        resources.files("stationwatch").joinpath("data/shunyi.json").read_text("utf-8")
    )
    box = raw["bbox"]
    return District(
        name=raw["district"],
        places=(*raw["streets"], *raw["towns"]),
        streets=frozenset(raw["streets"]),
        bbox=(box["lat_min"], box["lat_max"], box["lon_min"], box["lon_max"]),
        counts=dict(raw["seed_counts"]),
        extended=tuple(raw.get("extended_services", ())),
    )


def _share(n: int, part: int, whole: int, *, at_least: int = 0) -> int:
    return min(n, max(at_least, round(n * part / whole)))


def _centre(place: str, district: District) -> tuple[float, float]:
    if place in CENTRES:
        return CENTRES[place]
    spot = random.Random(place)  # noqa: S311 - deterministic placement, not security
    lat_min, lat_max, lon_min, lon_max = district.bbox
    return spot.uniform(lat_min, lat_max), spot.uniform(lon_min, lon_max)


def _location(rng: random.Random, place: str, district: District) -> dict[str, float]:
    lat_min, lat_max, lon_min, lon_max = district.bbox
    lat0, lon0 = _centre(place, district)
    for _ in range(20):
        lat, lon = rng.gauss(lat0, 0.012), rng.gauss(lon0, 0.016)
        if lat_min <= lat <= lat_max and lon_min <= lon <= lon_max:
            break
    lat, lon = min(max(lat, lat_min), lat_max), min(max(lon, lon_min), lon_max)
    return {"lat": round(lat, 5), "lon": round(lon, 5)}


def _weekly(rng: random.Random, host: str) -> dict[str, list[list[str]]]:
    if host == "party_service_center" and rng.random() < 0.3:
        day = [["08:30", "12:00"], ["13:30", "17:30"]]  # closed over lunch
    else:
        day = [list(rng.choice(WEEKDAY_HOURS))]
    weekly = {d: day for d in ("mon", "tue", "wed", "thu", "fri")}
    weekend = rng.random()
    if weekend < 0.35:
        weekly |= {"sat": day, "sun": day}
    elif weekend < 0.5:
        weekly["sat"] = [["09:00", "17:00"]]
    return weekly


def _categories(n: int, district: District) -> list[str]:
    total = district.counts.get("stations_running", 1419)
    big = n >= 10  # below that the fleet is too small to show every kind
    truck = _share(n, district.counts.get("truck_driver_stations", 3), total, at_least=int(big))
    smart = _share(
        n, district.counts.get("upgraded_to_24h_smart_in_2024", 18), total, at_least=2 * big
    )
    truck, smart = (truck, smart) if big else (0, 0)
    standard = max(0, n - 1 - truck - smart)
    return (
        ["business_circle_24h"]
        + ["truck_driver"] * truck
        + ["smart_24h"] * smart
        + ["standard"] * standard
    )


def build_fleet(
    n: int, seed: int, now: datetime, *, heartbeat_interval_s: int = 30
) -> list[StationProfile]:
    """``n`` station profiles (``SY-0001``…), the same for the same ``seed``."""
    if n < 1:
        return []
    district = seed_district()
    rng = random.Random(seed)  # noqa: S311 - simulation, not security
    categories = _categories(n, district)[:n]
    order = [0, *rng.sample(range(1, n), n - 1)]  # SY-0001 is the business-circle station
    categories = [categories[i] for i in order]
    total = district.counts.get("stations_running", 1419)
    ids = range(n)
    extended_n = _share(n, district.counts.get("with_extended_services", 371), total)
    trucks = [i for i in ids if categories[i] == "truck_driver"]
    others = [i for i in ids if categories[i] != "truck_driver"]
    extended = set(trucks) | set(
        rng.sample(others, max(0, min(len(others), extended_n - len(trucks))))
    )
    all_day = {i for i in ids if categories[i] != "standard"}
    holidays_n = _share(n, district.counts.get("open_on_holidays", 223), total)
    standard = [i for i in ids if i not in all_day]
    holidays = all_day | set(
        rng.sample(standard, max(0, min(len(standard), holidays_n - len(all_day))))
    )
    no_device = set(rng.sample(standard, round(len(standard) * NO_DEVICE_SHARE)))
    closed = set(rng.sample(standard, round(len(standard) * TEMPORARILY_CLOSED_SHARE)))
    weights = [DENSE.get(p, 3.0 if p in district.streets else 1.0) for p in district.places]
    names: set[str] = set()
    fleet: list[StationProfile] = []
    for i in ids:
        category = categories[i]
        place = "空港街道" if i == 0 else rng.choices(district.places, weights)[0]
        if category == "business_circle_24h":
            host = "business_circle"
        elif category == "truck_driver":
            host = "market"
        else:
            host = rng.choices([h for h, _ in STANDARD_HOSTS], [w for _, w in STANDARD_HOSTS])[0]
        if i == 0:
            name = "空港祥云工会驿站"
        elif category == "truck_driver" and i == trucks[0]:
            name = "顺鑫石门市场果市管理部24小时货车司机工会驿站"
        else:
            extra = "24小时货车司机" if category == "truck_driver" else ""
            base = f"{place}{rng.choice(LOCALITIES)}{HOST_WORDS[host]}{extra}"
            name, k = f"{base}工会驿站", 2
            while name in names:
                name, k = f"{base}{k}号工会驿站", k + 1
        names.add(name)
        services = list(CORE_SERVICES)
        if category != "standard" or rng.random() < 0.6:
            services.append("hot_meal")
        if category != "standard" or rng.random() < 0.75:
            services.append("toilet")
        services.sort(key=BASIC_SERVICES.index)
        if category == "truck_driver":
            services += TRUCK_SERVICES
        elif i in extended:
            pool = list(district.extended) or list(EXTENDED_SERVICES)
            picks = rng.sample(pool, rng.randint(1, len(pool)))
            picks += [s for s in EXTENDED_SERVICES if s not in pool and rng.random() < 0.15]
            services += sorted(picks, key=EXTENDED_SERVICES.index)
        capacity = {"truck_driver": rng.randint(20, 40), "business_circle_24h": 12}.get(
            category, rng.randint(6, 20)
        )
        always = category != "standard"
        profile = {
            "station_id": f"SY-{i + 1:04d}",
            "name": name,
            "district": district.name,
            "street": place,
            "category": category,
            "host": host,
            "location": _location(rng, place, district),
            "services": services,
            "capacity": capacity,
            "opening_hours": {
                "always_open": always,
                "weekly": {} if always else _weekly(rng, host),
                "holidays_open": i in holidays,
            },
            "heartbeat_interval_s": None if i in no_device else heartbeat_interval_s,
            "contact_phone": f"010-69{rng.randrange(10**6):06d}",
            "lifecycle": "temporarily_closed" if i in closed else "active",
            "updated_at": now.isoformat(),
        }
        fleet.append(StationProfile.model_validate(profile, strict=False))
    return fleet
