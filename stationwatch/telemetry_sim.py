"""What one simulated station says: heartbeats, occupancy counts, open/closed events, and the
occasional malformed message. Pure: state in, dicts (or raw bytes) out; no broker here."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from schemas import topics
from schemas.registry import StationProfile

FIRMWARE = ("1.4.2", "1.4.2", "1.4.2", "1.5.0", "1.3.9")
SILENCE_CHANCE = 0.0015  # per heartbeat: a device goes quiet for a while (stale/offline alerts)
MANUAL_CLOSE_CHANCE = 0.0005  # per occupancy report while open: staff close (closed_during_hours)
OVER_CAPACITY_CHANCE = 0.01  # per occupancy report: a crowd arrives
MALFORMED_RATE = 0.001  # share of sent messages that are broken on purpose (dead letters)


def stamp(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds")


@dataclass
class StationState:
    """The moving parts of one simulated station."""

    profile: StationProfile
    device_id: str | None
    seq: int = 0
    uptime_s: int = 0
    battery_pct: float = 100.0
    on_mains: bool = True
    temperature_c: float = 20.0
    firmware: str = "1.4.2"
    occupants: int = 0
    open_state: str | None = None  # what it last reported
    manual_until: float = 0.0  # a manual closure lasts until this wall time
    silent_until: float = 0.0  # the device sends nothing until this wall time

    @classmethod
    def create(cls, profile: StationProfile, rng: random.Random) -> StationState:
        number = profile.station_id.split("-", 1)[1].lower()
        has_device = profile.heartbeat_interval_s is not None
        return cls(
            profile=profile,
            device_id=f"gw-{number}" if has_device else None,
            seq=rng.randrange(0, 5_000) if has_device else 0,
            uptime_s=rng.randrange(600, 30 * 86_400),
            battery_pct=round(rng.uniform(60, 100), 1),
            on_mains=rng.random() < 0.9,
            temperature_c=round(rng.uniform(14, 26), 1),
            firmware=rng.choice(FIRMWARE),
        )

    @property
    def key(self) -> bytes:
        return self.profile.station_id.encode()


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


def occupancy(state: StationState, at: datetime, rng: random.Random) -> dict[str, Any]:
    capacity = state.profile.capacity or 10
    if state.open_state != "open":
        state.occupants = 0
    elif rng.random() < OVER_CAPACITY_CHANCE:
        state.occupants = capacity + rng.randint(1, 3)
    else:
        step = rng.choice((-2, -1, -1, 0, 0, 0, 1, 1, 2))
        state.occupants = min(capacity, max(0, state.occupants + step))
    return {
        "station_id": state.profile.station_id,
        "observed_at": stamp(at),
        "occupants": state.occupants,
        "capacity": capacity,
        "source": "sensor" if state.device_id else "manual",
    }


def status(
    state: StationState, at: datetime, open_now: bool, reason: str = "schedule"
) -> dict[str, Any]:
    state.open_state = "open" if open_now else "closed"
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
    """One broken message, as the worker must dead-letter it: (topic, key, value)."""
    sid = state.profile.station_id
    kind = rng.randrange(5)
    if kind == 0:  # truncated JSON
        return topics.OCCUPANCY, state.key, b'{"station_id": "' + sid.encode() + b'", "occupants": '
    if kind == 1:  # negative count
        value = {"station_id": sid, "observed_at": stamp(at), "occupants": -rng.randint(1, 5)}
        return topics.OCCUPANCY, state.key, orjson.dumps(value)
    if kind == 2:  # key differs from station_id
        value = {"station_id": sid, "sent_at": stamp(at), "seq": 0}
        return topics.HEARTBEAT, b"SY-XXXX", orjson.dumps(value)
    if kind == 3:  # time without an offset
        value = {"station_id": sid, "at": at.replace(tzinfo=None).isoformat(), "state": "open"}
        return topics.STATUS, state.key, orjson.dumps(value)
    return topics.HEARTBEAT, state.key, b"\xff\xfe not json at all"
