"""The public shape of a station's live state (contract: "A live state holds at least …")."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from stationwatch.settings import Settings
from streams.ingest import utcnow
from streams.schedule import scheduled_open
from streams.state import StationState, effective_lifecycle


@lru_cache(maxsize=8)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def live_state(state: StationState, zone: ZoneInfo, now: datetime) -> dict[str, Any]:
    profile = state.profile or {}
    hours = profile.get("opening_hours")
    return {
        "station_id": state.station_id,
        "name": profile.get("name"),
        "district": profile.get("district"),
        "category": profile.get("category"),
        "street": profile.get("street"),
        "location": profile.get("location"),
        "services": profile.get("services", []),
        "lifecycle": effective_lifecycle(state.profile, now),
        "heartbeat_interval_s": state.heartbeat_interval_s,
        "liveness": state.liveness,
        "liveness_since": _iso(state.liveness_since),
        "last_heartbeat_at": _iso(state.last_heartbeat_at),
        "last_seq": state.last_seq,
        "open_state": state.open_state,
        "open_state_since": _iso(state.open_state_since),
        "scheduled_open": scheduled_open(hours, now, zone) if hours else None,
        "occupants": state.occupants,
        "capacity": state.capacity,
        "occupancy_at": _iso(state.occupancy_at),
        "updated_at": _iso(state.updated_at),
    }


def stored_view(raw: dict[str, Any], zone: ZoneInfo, now: datetime) -> dict[str, Any]:
    """The public live state of a station as the table stores it (JSON)."""
    return live_state(StationState.from_json(raw), zone, now)


def station_view(raw: dict[str, Any], settings: Settings) -> dict[str, Any]:
    return stored_view(raw, _zone(settings.timezone), utcnow())
