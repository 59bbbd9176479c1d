"""Everything on the wire: pydantic models of the contract's messages, and the SQL migrations.

No network or database imports here.
"""

from schemas.alerts import Alert, AlertKind, AlertSeverity, AlertState
from schemas.common import STATION_ID_PATTERN, StationId
from schemas.deadletter import DeadLetter
from schemas.registry import Location, OpeningHours, StationProfile
from schemas.telemetry import Heartbeat, Occupancy, StatusEvent
from schemas.topics import (
    ALERTS,
    DEADLETTER,
    HEARTBEAT,
    INPUT_TOPICS,
    OCCUPANCY,
    REGISTRY,
    STATUS,
)

__all__ = [
    "ALERTS",
    "DEADLETTER",
    "HEARTBEAT",
    "INPUT_TOPICS",
    "OCCUPANCY",
    "REGISTRY",
    "STATION_ID_PATTERN",
    "STATUS",
    "Alert",
    "AlertKind",
    "AlertSeverity",
    "AlertState",
    "DeadLetter",
    "Heartbeat",
    "Location",
    "Occupancy",
    "OpeningHours",
    "StationId",
    "StationProfile",
    "StatusEvent",
]
