"""`station.alerts`: firing and resolved alert episodes."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field

from schemas.common import StationId, WireModel

AlertKind = Literal["stale", "offline", "closed_during_hours", "over_capacity", "flapping"]
AlertSeverity = Literal["info", "warning", "critical"]
AlertState = Literal["firing", "resolved"]

SEVERITY: dict[str, AlertSeverity] = {
    "stale": "warning",
    "offline": "critical",
    "closed_during_hours": "warning",
    "over_capacity": "info",
    "flapping": "warning",
}


class Alert(WireModel):
    """One firing or resolved message of an alert episode."""

    alert_id: str
    fingerprint: str
    station_id: StationId
    kind: AlertKind
    state: AlertState
    severity: AlertSeverity
    starts_at: AwareDatetime
    ends_at: AwareDatetime | None = None
    detected_at: AwareDatetime
    last_heartbeat_at: AwareDatetime | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    summary: str = ""
