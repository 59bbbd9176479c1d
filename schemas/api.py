"""Shapes of the HTTP API's answers, for the OpenAPI document (the views build plain dicts;
a test checks real answers against these)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from schemas.registry import Location

Liveness = Literal["online", "stale", "offline", "unknown", "not_monitored"]
OpenState = Literal["open", "closed", "unknown"]


class _Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


class LiveState(_Answer):
    """The live state of one station."""

    station_id: str
    name: str | None
    district: str | None
    category: str | None
    street: str | None
    location: Location | None
    services: list[str]
    lifecycle: str
    heartbeat_interval_s: int | None
    liveness: Liveness
    liveness_since: str | None
    last_heartbeat_at: str | None
    last_seq: int | None
    open_state: OpenState
    open_state_since: str | None
    scheduled_open: bool | None
    occupants: int | None
    capacity: int | None
    occupancy_at: str | None
    updated_at: str | None


class Coverage(_Answer):
    as_of: str
    complete: bool
    missing_partitions: list[int]


class StationList(Coverage):
    items: list[LiveState]
    total: int
    limit: int
    offset: int


class NearbyStation(LiveState):
    distance_m: float
    free_seats: int | None
    occupancy_age_s: float | None
    open_now: bool


class NearbyAnswer(Coverage):
    items: list[NearbyStation]
    occupancy_fresh_s: float


class Summary(Coverage):
    total: int
    open_now: int
    by_liveness: dict[str, int]
    by_category: dict[str, int]
    by_street: dict[str, int]
    by_lifecycle: dict[str, int]


class BoardStation(_Answer):
    """A station as the live board draws it: ``x``/``y`` on the board's map (null without a
    location)."""

    id: str
    name: str | None
    street: str | None
    lat: float | None
    lon: float | None
    liveness: Liveness
    liveness_since: str | None
    last_heartbeat_at: str | None
    x: float | None
    y: float | None


class BoardMap(_Answer):
    """The map the stations are projected on (equirectangular around their bounding box)."""

    width: float
    height: float
    metres_per_unit: float


class BoardStreet(_Answer):
    """A street label, at the middle of its stations."""

    name: str
    x: float
    y: float
    stations: int


class Board(Coverage):
    """Everything the live board shows: every station, the counts, the offline stations."""

    timezone: str
    total: int
    by_liveness: dict[Liveness, int]
    stations: list[BoardStation]
    offline: list[str]
    unplaced: int
    map: BoardMap | None
    streets: list[BoardStreet]
    data_age_s: float | None
    data_old_after_s: float


class Health(_Answer):
    status: Literal["ok", "unavailable"]
    problems: list[str]
    partitions: int
    lag: int
    lag_by_topic: dict[str, int]
    database: Literal["ok", "retrying"]


class ErrorAnswer(_Answer):
    error: str
    parameter: str | None = None
