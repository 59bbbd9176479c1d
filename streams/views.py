"""The public shape of a station's live state (contract: "A live state holds at least …")."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from stationwatch.settings import Settings
from stationwatch.zone import display_zone, iso
from streams.ingest import utcnow
from streams.record import listing
from streams.schedule import scheduled_open
from streams.state import StationState, effective_lifecycle


def live_state(state: StationState, zone: ZoneInfo, now: datetime) -> dict[str, Any]:
    """Every time in ``zone`` (the display zone, which is also the schedules' zone)."""
    shown = listing(state.profile)
    found = state.facts
    return {
        "station_id": state.station_id,
        "name": shown.name,
        "district": shown.district,
        "category": shown.category,
        "street": shown.street,
        "location": shown.location,
        "services": shown.services,
        "lifecycle": effective_lifecycle(found, now),
        "heartbeat_interval_s": state.heartbeat_interval_s,
        "liveness": state.liveness,
        "liveness_since": iso(state.liveness_since, zone),
        "last_heartbeat_at": iso(state.last_heartbeat_at, zone),
        "last_seq": state.last_seq,
        "open_state": state.open_state,
        "open_state_since": iso(state.open_state_since, zone),
        "scheduled_open": scheduled_open(hours, now, zone) if (hours := found.hours) else None,
        "occupants": state.occupants,
        "capacity": state.capacity,
        "occupancy_at": iso(state.occupancy_at, zone),
        "updated_at": iso(state.updated_at, zone),
    }


def current_row(
    state: StationState, zone: ZoneInfo, now: datetime, fresh_until: datetime | None
) -> tuple[Any, ...]:
    """The ``station_current`` row of a state, in the order of
    :data:`stationwatch.db.sink.CURRENT_COLUMNS`: the public live state's values, without
    its detour through text times. Its registry columns (name to services) are written when
    the station's record changed; the rest is :func:`live_row`."""
    shown = listing(state.profile)
    location = shown.location or {}
    return (
        state.station_id,
        shown.name,
        shown.category,
        shown.street,
        shown.district,
        location.get("lat"),
        location.get("lon"),
        shown.services,
        *live_row(state, zone, now, fresh_until)[1:],
    )


def live_row(
    state: StationState, zone: ZoneInfo, now: datetime, fresh_until: datetime | None
) -> tuple[Any, ...]:
    """What a heartbeat, a count or a judgement may change of a station's ``station_current``
    row, in the order of :data:`stationwatch.db.sink.LIVE_COLUMNS` (a row per station that
    changed, at every refresh: most changed nothing of their record)."""
    found = state.facts
    hours = found.hours
    return (
        state.station_id,
        effective_lifecycle(found, now),
        state.liveness,
        state.liveness_since,
        state.last_heartbeat_at,
        state.open_state,
        state.open_state_since,
        scheduled_open(hours, now, zone) if hours else None,
        state.occupants,
        state.capacity,
        state.occupancy_at,
        now,
        fresh_until,
    )


def stored_view(raw: dict[str, Any], zone: ZoneInfo, now: datetime) -> dict[str, Any]:
    """The public live state of a station as the table stores it (JSON)."""
    return live_state(StationState.from_json(raw), zone, now)


def station_view(raw: dict[str, Any], settings: Settings) -> dict[str, Any]:
    return stored_view(raw, display_zone(settings.timezone), utcnow())
