"""What station devices and staff apps send: heartbeats, occupancy counts, open/closed events.

Times are :data:`~schemas.common.WireTime` (2000-01-01 up to 2100-01-01 UTC). Relative to the
time of receipt, ``streams.decode`` also rejects a message time more than the allowed clock skew
in the future or more than ``MAX_AGE`` (30 days) in the past: a backlog of days (a device that
was offline, a worker catching up within the broker's retention) is kept, a clock reset to a
factory date is not.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from schemas.common import BIGINT_MAX, ShortText, StationId, WireModel, WireTime

OccupancySource = Literal["sensor", "manual"]
OpenState = Literal["open", "closed"]
StatusReason = Literal["schedule", "manual", "maintenance", "weather", "emergency"]
StatusActor = Literal["device", "staff", "supervisor"]


class Heartbeat(WireModel):
    """`station.heartbeat`: a station device says it is alive.

    ``seq`` and ``uptime_s`` fit the `bigint` columns; ``device_id`` and ``firmware`` hold no NUL.
    """

    station_id: StationId
    sent_at: WireTime
    device_id: ShortText | None = None
    seq: Annotated[int, Field(ge=0, le=BIGINT_MAX)] | None = None
    uptime_s: Annotated[int, Field(ge=0, le=BIGINT_MAX)] | None = None
    battery_pct: Annotated[float, Field(ge=0, le=100)] | None = None
    on_mains: bool | None = None
    temperature_c: Annotated[float, Field(ge=-80, le=120)] | None = None
    firmware: ShortText | None = None


class Occupancy(WireModel):
    """`station.occupancy`: how many people are inside."""

    station_id: StationId
    observed_at: WireTime
    occupants: Annotated[int, Field(ge=0, le=100_000)]
    capacity: Annotated[int, Field(ge=0, le=100_000)] | None = None
    source: OccupancySource | None = None


class StatusEvent(WireModel):
    """`station.status`: the station opened or closed."""

    station_id: StationId
    at: WireTime
    state: OpenState
    reason: StatusReason | None = None
    actor: StatusActor | None = None
