"""What one simulated station says: heartbeats, occupancy counts, open/closed events, and the
occasional malformed message. Pure: state in, dicts (or raw bytes) out; no broker here.

Occupancy follows people, not noise: they arrive at a rate that follows the time of day (meal
peaks about 11:30–13:00 and 17:30–19:00 local time, few at night, truck stops busiest at night)
and stay for a while (``DWELL_S``), so counts change by small steps and a crowd lasts as long as
a meal.
Each station has its own ``peak_load`` (its mean lunch crowd as a share of its seats). Most stay
below capacity, and when full they turn newcomers away. A few busy ones (``BUSY_SHARE``, and the
business-circle showcase) draw more than their seats at lunch and let people squeeze in: they go
over capacity for most of the lunch hour — a sustained crowd, not a flicker. Nobody is counted in
a closed station.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson

from schemas import topics
from schemas.registry import StationProfile
from streams.schedule import day_kind

FIRMWARE = ("1.4.2", "1.4.2", "1.4.2", "1.5.0", "1.3.9")
# How often devices fail, staff close and messages break: stationwatch.fault_injection
# Occupancy
SENSOR_STEP_S = 15.0  # a sensor counts this often and reports a change at once …
SENSOR_REPORT_S = 60.0  # … and the count at least this often
MAX_STEP = 2  # people through the door per sensor step, either way
DWELL_S = {"truck_driver": 40 * 60.0}  # how long people stay, by category
DEFAULT_DWELL_S = 25 * 60.0
BUSY_SHARE = 0.04  # stations whose lunch crowd outgrows their seats
BUSY_PEAK = (1.4, 1.7)  # their peak_load
TURNED_AWAY = 0.15  # at a busy station, share of newcomers who leave when it is full
CROWD_LIMIT = 1.5  # nobody more gets in beyond this many times the capacity
DAY_FACTOR = {"holiday": 0.6, "weekend": 0.75, "makeup_workday": 1.0, "normal": 1.0}


def stamp(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds")


@dataclass(slots=True)
class StationState:
    """The moving parts of one simulated station (slots: a fleet may hold 150,000)."""

    profile: StationProfile
    device_id: str | None
    seq: int = 0
    uptime_s: int = 0
    battery_pct: float = 100.0
    on_mains: bool = True
    temperature_c: float = 20.0
    firmware: str = "1.4.2"
    occupants: int = 0
    peak_load: float = 0.5  # the mean lunch crowd as a share of capacity
    counted_at: datetime | None = None  # the occupancy model's last step
    reported: int | None = None  # the count last sent …
    reported_at: float = 0.0  # … at this wall time
    open_state: str | None = None  # what it last reported
    manual_until: float = 0.0  # a manual closure lasts until this wall time
    silent_until: float = 0.0  # the device sends nothing until this wall time
    # faults (stationwatch.fault_injection)
    dead: bool = False  # the device stopped for good
    skew_s: float = 0.0  # the device's clock is off by this much
    flap_until: float = 0.0  # the device flaps until this wall time …
    flap_beats: int = 0  # … sending this many more heartbeats before its next quiet spell
    late_until: float = 0.0  # staff close late, at this wall time
    street_no: int = -1  # the station's street, as its fleet numbers them (power cuts)

    @classmethod
    def create(cls, profile: StationProfile, rng: random.Random) -> StationState:
        number = profile.station_id.split("-", 1)[1].lower()
        has_device = profile.heartbeat_interval_s is not None
        if profile.category == "business_circle_24h":
            peak = 1.5  # the showcase at the airport: crowded at lunch
        elif rng.random() < BUSY_SHARE:
            peak = rng.uniform(*BUSY_PEAK)
        else:
            peak = rng.uniform(0.15, 0.7)
        return cls(
            profile=profile,
            device_id=f"gw-{number}" if has_device else None,
            seq=rng.randrange(0, 5_000) if has_device else 0,
            uptime_s=rng.randrange(600, 30 * 86_400),
            battery_pct=round(rng.uniform(60, 100), 1),
            on_mains=rng.random() < 0.9,
            temperature_c=round(rng.uniform(14, 26), 1),
            firmware=rng.choice(FIRMWARE),
            peak_load=peak,
        )

    @property
    def key(self) -> bytes:
        return self.profile.station_id.encode()

    @property
    def capacity(self) -> int:
        return self.profile.capacity or 10

    @property
    def room(self) -> int:
        """Most people ever inside: a busy station squeezes more in than it has seats."""
        limit = CROWD_LIMIT if self.peak_load >= BUSY_PEAK[0] else 1.0
        return math.ceil(self.capacity * limit)


def heartbeat(state: StationState, at: datetime, rng: random.Random) -> dict[str, Any]:
    interval = state.profile.heartbeat_interval_s or 30
    state.seq += 1
    state.uptime_s += interval
    if state.on_mains:
        state.battery_pct = min(100.0, state.battery_pct + 0.05)
    else:
        state.battery_pct = max(5.0, state.battery_pct - rng.uniform(0.0, 0.05))
    state.temperature_c = min(45.0, max(-10.0, state.temperature_c + rng.gauss(0, 0.2)))
    return {
        "station_id": state.profile.station_id,
        "sent_at": stamp(at),
        "device_id": state.device_id,
        "seq": state.seq,
        "uptime_s": state.uptime_s,
        "battery_pct": round(state.battery_pct, 1),
        "on_mains": state.on_mains,
        "temperature_c": round(state.temperature_c, 1),
        "firmware": state.firmware,
    }


def _bump(hour: float, centre: float, width: float) -> float:
    return math.exp(-0.5 * ((hour - centre) / width) ** 2)


def _ramp(hour: float, start: float, end: float) -> float:
    """0 before ``start``, 1 after ``end``, smooth between."""
    x = min(1.0, max(0.0, (hour - start) / (end - start)))
    return x * x * (3 - 2 * x)


@lru_cache(maxsize=8192)
def _shape_at_minute(category: str, minute: int) -> float:
    return daily_shape(category, minute / 60)


def daily_shape(category: str, hour: float) -> float:
    """How busy a station is at local ``hour`` (0–24), as a share of its lunch peak: lunch
    11:40–12:50 and dinner 17:50–18:50 at the full height, rising and falling over ~40 min."""
    lunch = _ramp(hour, 11.0, 11.67) - _ramp(hour, 12.83, 13.5)
    dinner = _ramp(hour, 17.25, 17.83) - _ramp(hour, 18.83, 19.42)
    meals = 0.65 * lunch + 0.5 * dinner
    if category == "truck_driver":  # lorries may enter the city only at night
        night = _bump(hour, 2.0, 2.2) + _bump(hour, 26.0, 2.2)
        return 0.15 + 0.8 * night + 0.6 * meals
    day = _ramp(hour, 6.5, 8.5) - _ramp(hour, 20.0, 22.5)
    return 0.06 + 0.29 * day + 0.15 * _bump(hour, 7.75, 0.5) + meals


def expected_occupants(state: StationState, local: datetime) -> float:
    """The mean count at ``local`` (station-local time) while open."""
    kind = day_kind(local.date())
    if kind == "normal" and local.weekday() >= 5:
        kind = "weekend"
    factor = 1.0 if state.profile.category == "truck_driver" else DAY_FACTOR[kind]
    shape = _shape_at_minute(state.profile.category, local.hour * 60 + local.minute)
    return state.capacity * state.peak_load * factor * shape


def _poisson(mean: float, rng: random.Random) -> int:
    if mean <= 0:
        return 0
    if mean > 30:  # a whole crowd at once (the first count): near enough
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def step_occupants(state: StationState, at: datetime, rng: random.Random) -> int:
    """Move the count on to ``at`` (aware, station-local): people arrive and leave."""
    if state.open_state != "open":
        state.occupants, state.counted_at = 0, at
        return 0
    mean = expected_occupants(state, at)
    capacity = state.capacity
    if state.counted_at is None:  # first sight of a station already open: as it is now
        state.occupants = min(_poisson(mean, rng), state.room)
        state.counted_at = at
        return state.occupants
    dt = max(0.0, (at - state.counted_at).total_seconds())
    state.counted_at = at
    dwell = DWELL_S.get(state.profile.category, DEFAULT_DWELL_S)
    leave = 1 - math.exp(-dt / dwell)
    gone = sum(rng.random() < leave for _ in range(state.occupants))
    come = 0
    for _ in range(_poisson(mean / dwell * dt, rng)):
        inside = state.occupants - gone + come
        if inside >= state.room or (inside >= capacity and rng.random() < TURNED_AWAY):
            continue
        come += 1
    most = MAX_STEP * max(1, math.ceil(dt / SENSOR_STEP_S))
    change = max(-most, min(most, come - gone))
    state.occupants = max(0, state.occupants + change)
    return state.occupants


def occupancy(state: StationState, at: datetime, wall: float) -> dict[str, Any]:
    """The count as the sensor (or staff) reports it now."""
    state.reported, state.reported_at = state.occupants, wall
    return {
        "station_id": state.profile.station_id,
        "observed_at": stamp(at),
        "occupants": state.occupants,
        "capacity": state.capacity,
        "source": "sensor" if state.device_id else "manual",
    }


def status(
    state: StationState,
    at: datetime,
    open_now: bool,
    reason: str = "schedule",
    actor: str | None = None,
) -> dict[str, Any]:
    """``actor`` by default: the device on schedule (staff without one), staff for a manual
    closure, a supervisor for maintenance and emergencies."""
    state.open_state = "open" if open_now else "closed"
    if actor is None:
        actor = "device" if state.device_id else "staff"
        if reason in ("maintenance", "emergency"):
            actor = "supervisor"
        elif reason != "schedule":
            actor = "staff"
    return {
        "station_id": state.profile.station_id,
        "at": stamp(at),
        "state": state.open_state,
        "reason": reason,
        "actor": actor,
    }


def malformed(state: StationState, at: datetime, rng: random.Random) -> tuple[str, bytes, bytes]:
    """One broken message from ``state``'s station, as the worker must dead-letter it."""
    return malformed_message(state.profile.station_id, at, rng)


def malformed_message(
    station_id: str, at: datetime, rng: random.Random
) -> tuple[str, bytes, bytes]:
    """One broken message, as the worker must dead-letter it: (topic, key, value)."""
    sid, key = station_id, station_id.encode()
    kind = rng.randrange(5)
    if kind == 0:  # truncated JSON
        return topics.OCCUPANCY, key, b'{"station_id": "' + key + b'", "occupants": '
    if kind == 1:  # negative count
        value = {"station_id": sid, "observed_at": stamp(at), "occupants": -rng.randint(1, 5)}
        return topics.OCCUPANCY, key, orjson.dumps(value)
    if kind == 2:  # key differs from station_id
        value = {"station_id": sid, "sent_at": stamp(at), "seq": 0}
        return topics.HEARTBEAT, f"{sid.split('-', 1)[0]}-XXXX".encode(), orjson.dumps(value)
    if kind == 3:  # time without an offset
        value = {"station_id": sid, "at": at.replace(tzinfo=None).isoformat(), "state": "open"}
        return topics.STATUS, key, orjson.dumps(value)
    return topics.HEARTBEAT, key, b"\xff\xfe not json at all"
