"""A realistic simulated fleet of stations: the seed district (data/shunyi.json) and, beyond
its 1,419 stations, further districts (``stationwatch.districts``).

Pure: the same ``(n, seed, now)`` gives the same fleet, and the seed district's stations are the
same whatever ``n`` beyond it. Every district follows the seed's proportions (1,419 stations:
371 with extended services, 223 open on holidays, 18 smart 24-hour stations, 3 for truck drivers,
1 business-circle 24-hour station), scaled to the stations it holds. :func:`iter_fleet` makes
one district at a time, so memory stays bounded by the largest district, whatever ``n``.
"""

from __future__ import annotations

import gc
import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache
from itertools import accumulate
from typing import Any

from pydantic import TypeAdapter

from schemas.common import WireTime
from schemas.registry import BASIC_SERVICES, EXTENDED_SERVICES, OpeningHours, StationProfile
from stationwatch.districts import CENTRES, DENSE, District, layout, seed_district

__all__ = [
    "CENTRES",
    "CORE_SERVICES",
    "DENSE",
    "District",
    "build_fleet",
    "iter_fleet",
    "seed_district",
]

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


def _share(n: int, part: int, whole: int, *, at_least: int = 0) -> int:
    return min(n, max(at_least, round(n * part / whole)))


def _centre(place: str, district: District) -> tuple[float, float]:
    if place in district.centres:
        return district.centres[place]
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


LUNCH_BREAK = (("08:30", "12:00"), ("13:30", "17:30"))  # party service centres close over lunch
SATURDAY = (("09:00", "17:00"),)


def _week(rng: random.Random, host: str) -> tuple[tuple[tuple[str, str], ...], str]:
    """A standard station's weekday hours, and its weekend: ``both``, ``sat`` or ``none``."""
    if host == "party_service_center" and rng.random() < 0.3:
        day: tuple[tuple[str, str], ...] = LUNCH_BREAK
    else:
        day = (rng.choice(WEEKDAY_HOURS),)
    weekend = rng.random()
    return day, "both" if weekend < 0.35 else "sat" if weekend < 0.5 else "none"


@lru_cache(maxsize=256)
def _opening_hours(
    always: bool, holidays: bool, day: tuple[tuple[str, str], ...] = (), weekend: str = "none"
) -> OpeningHours:
    """Validated once per pattern and shared (the model is immutable): a few dozen patterns
    serve any number of stations."""
    weekly: dict[str, list[tuple[str, str]]] = {}
    if not always:
        weekly = {d: list(day) for d in ("mon", "tue", "wed", "thu", "fri")}
        if weekend == "both":
            weekly |= {"sat": list(day), "sun": list(day)}
        elif weekend == "sat":
            weekly["sat"] = list(SATURDAY)
    return OpeningHours.model_validate(
        {"always_open": always, "weekly": weekly, "holidays_open": holidays}, strict=False
    )


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


_UPDATED_AT: TypeAdapter[datetime] = TypeAdapter(WireTime)
_HOST_CUM = list(accumulate(w for _, w in STANDARD_HOSTS))
_HOST_NAMES = [h for h, _ in STANDARD_HOSTS]


def build_fleet(
    n: int, seed: int, now: datetime, *, heartbeat_interval_s: int = 30
) -> list[StationProfile]:
    """``n`` station profiles (``SY-0001``…, then further districts' ``CY-0001``…), the same
    for the same ``seed``; every one is stamped ``updated_at`` ``now``."""
    with collector_paused():
        return list(iter_fleet(n, seed, now, heartbeat_interval_s=heartbeat_interval_s))


@contextmanager
def collector_paused() -> Iterator[None]:
    """While many long-lived objects are made: the cycle collector would walk the growing
    collection over and over (half the time of 150,000 stations), and they hold no cycles."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def iter_fleet(
    n: int, seed: int, now: datetime, *, heartbeat_interval_s: int = 30
) -> Iterator[StationProfile]:
    """The profiles of :func:`build_fleet`, made one district at a time."""
    updated_at = _UPDATED_AT.validate_python(now.isoformat(), strict=False)
    for k, (district, count) in enumerate(layout(n)):
        # the seed district keeps its historical stream; each further one has its own
        rng = random.Random(seed if k == 0 else f"{seed}:{district.code}")  # noqa: S311 - simulation
        yield from _district_fleet(district, count, rng, updated_at, heartbeat_interval_s)


def _district_fleet(
    district: District,
    n: int,
    rng: random.Random,
    updated_at: datetime,
    heartbeat_interval_s: int,
) -> Iterator[StationProfile]:
    """``n`` stations of ``district`` (``{code}-0001``…), the business-circle one first."""
    categories = _categories(n, district)[:n]
    order = [0, *rng.sample(range(1, n), n - 1)]  # station 0001 is the business-circle station
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
    places = list(district.places)
    place_cum = list(accumulate(district.weight(p) for p in places))
    showcase_place, showcase_name = district.showcase
    pool = list(district.extended) or list(EXTENDED_SERVICES)
    names: dict[str, int] = {}  # name stem → the next number for a namesake
    for i in ids:
        category = categories[i]
        place = showcase_place if i == 0 else rng.choices(places, cum_weights=place_cum)[0]
        if category == "business_circle_24h":
            host = "business_circle"
        elif category == "truck_driver":
            host = "market"
        else:
            host = rng.choices(_HOST_NAMES, cum_weights=_HOST_CUM)[0]
        if i == 0 and showcase_name:
            name = showcase_name
        elif category == "truck_driver" and i == trucks[0] and district.truck_name:
            name = district.truck_name
        else:
            extra = "24小时货车司机" if category == "truck_driver" else ""
            base = f"{place}{rng.choice(LOCALITIES)}{HOST_WORDS[host]}{extra}"
            k = names.get(base)
            name = f"{base}工会驿站" if k is None else f"{base}{k}号工会驿站"
            names[base] = 2 if k is None else k + 1
        services = list(CORE_SERVICES)
        if category != "standard" or rng.random() < 0.6:
            services.append("hot_meal")
        if category != "standard" or rng.random() < 0.75:
            services.append("toilet")
        services.sort(key=BASIC_SERVICES.index)
        if category == "truck_driver":
            services += TRUCK_SERVICES
        elif i in extended:
            picks = rng.sample(pool, rng.randint(1, len(pool)))
            picks += [s for s in EXTENDED_SERVICES if s not in pool and rng.random() < 0.15]
            services += sorted(picks, key=EXTENDED_SERVICES.index)
        truck_capacity = rng.randint(20, 40)  # both drawn for every station (a stable stream)
        standard_capacity = rng.randint(6, 20)
        capacity = {"truck_driver": truck_capacity, "business_circle_24h": 12}.get(
            category, standard_capacity
        )
        always = category != "standard"
        profile: dict[str, Any] = {
            "station_id": f"{district.code}-{i + 1:04d}",
            "name": name,
            "district": district.name,
            "street": place,
            "category": category,
            "host": host,
            "location": _location(rng, place, district),
            "services": services,
            "capacity": capacity,
            "opening_hours": _opening_hours(always, i in holidays, *_week(rng, host))
            if not always
            else _opening_hours(always, i in holidays),
            "heartbeat_interval_s": None if i in no_device else heartbeat_interval_s,
            "contact_phone": _phone(rng, district),
            "lifecycle": "temporarily_closed" if i in closed else "active",
            "updated_at": updated_at,
        }
        yield StationProfile.model_validate(profile, strict=False)


def _phone(rng: random.Random, district: District) -> str:
    """A local number with the district's area code and first digits (Shunyi: 010-69…)."""
    digits = 8 - len(district.phone_prefix)
    return f"{district.area_code}-{district.phone_prefix}{rng.randrange(10**digits):0{digits}d}"
