"""What station devices and staff apps send: heartbeats, occupancy counts, open/closed events."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, Field

from schemas.common import ShortText, StationId, WireModel

OccupancySource = Literal["sensor", "manual"]
OpenState = Literal["open", "closed"]
StatusReason = Literal["schedule", "manual", "maintenance", "weather", "emergency"]
StatusActor = Literal["device", "staff", "supervisor"]


class Heartbeat(WireModel):
    """`station.heartbeat`: a station device says it is alive."""

    station_id: StationId
    sent_at: AwareDatetime
    device_id: ShortText | None = None
    seq: Annotated[int, Field(ge=0, le=2**63 - 1)] | None = None
    uptime_s: Annotated[int, Field(ge=0)] | None = None
    battery_pct: Annotated[float, Field(ge=0, le=100)] | None = None
    on_mains: bool | None = None
    temperature_c: Annotated[float, Field(ge=-80, le=120)] | None = None
    firmware: ShortText | None = None


class Occupancy(WireModel):
    """`station.occupancy`: how many people are inside."""

    station_id: StationId
    observed_at: AwareDatetime
    occupants: Annotated[int, Field(ge=0, le=100_000)]
    capacity: Annotated[int, Field(ge=0, le=100_000)] | None = None
    source: OccupancySource | None = None


class StatusEvent(WireModel):
    """`station.status`: the station opened or closed."""

    station_id: StationId
    at: AwareDatetime
    state: OpenState
    reason: StatusReason | None = None
    actor: StatusActor | None = None
