"""Builders of valid wire messages for tests (dicts; callers serialize or break them)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, TypeVar


def iso(moment: datetime) -> str:
    return moment.isoformat()


def profile(station_id: str, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "station_id": station_id,
        "name": f"测试工会驿站 {station_id}",
        "district": "顺义区",
        "street": "空港街道",
        "category": "standard",
        "host": "restaurant",
        "location": {"lat": 40.08, "lon": 116.58},
        "services": ["water", "charging", "rest"],
        "capacity": 10,
        "opening_hours": {"always_open": True, "weekly": {}, "holidays_open": True},
        "heartbeat_interval_s": 30,
        "contact_phone": "010-00000000",
        "lifecycle": "active",
        "updated_at": iso(datetime(2026, 11, 1, tzinfo=UTC)),
    }
    base.update(overrides)
    return base


def heartbeat(station_id: str, sent_at: datetime, seq: int, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "station_id": station_id,
        "sent_at": iso(sent_at),
        "device_id": f"gw-{station_id}",
        "seq": seq,
        "uptime_s": 1000 + seq,
        "battery_pct": 90.5,
        "on_mains": True,
        "temperature_c": 21.0,
        "firmware": "1.4.2",
    }
    base.update(overrides)
    return base


def occupancy(
    station_id: str, observed_at: datetime, occupants: int, **overrides: Any
) -> dict[str, Any]:
    base: dict[str, Any] = {
        "station_id": station_id,
        "observed_at": iso(observed_at),
        "occupants": occupants,
        "capacity": 10,
        "source": "sensor",
    }
    base.update(overrides)
    return base


def status(station_id: str, at: datetime, state: str, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "station_id": station_id,
        "at": iso(at),
        "state": state,
        "reason": "schedule",
        "actor": "device",
    }
    base.update(overrides)
    return base


def dumps(message: dict[str, Any]) -> bytes:
    return json.dumps(message, ensure_ascii=False).encode("utf-8")


Moment = TypeVar("Moment", int, datetime)


def run_began(reports: list[tuple[Moment, str]]) -> tuple[str, Moment, Moment | None]:
    """From every open/closed report (time, state), in any order: the newest state, the first
    report of it after the last of the other state (when the station came to it), and that
    last one."""
    ordered = sorted(reports)
    newest = ordered[-1][1]
    other = max((t for t, reported in ordered if reported != newest), default=None)
    began = min(t for t, reported in ordered if reported == newest and (other is None or t > other))
    return newest, began, other
