"""Turn one raw input record into a validated message, or the reason it is dead-lettered.

Pure: the agent passes the record's parts and the time of receipt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel, ValidationError

from schemas import Heartbeat, Occupancy, StationProfile, StatusEvent
from schemas.common import STATION_ID_PATTERN
from schemas.topics import HEARTBEAT, OCCUPANCY, REGISTRY, STATUS

MODELS: dict[str, type[BaseModel]] = {
    HEARTBEAT: Heartbeat,
    OCCUPANCY: Occupancy,
    STATUS: StatusEvent,
    REGISTRY: StationProfile,
}
_TIME_FIELD = {HEARTBEAT: "sent_at", OCCUPANCY: "observed_at", STATUS: "at", REGISTRY: "updated_at"}

_ID = re.compile(STATION_ID_PATTERN)


@dataclass(frozen=True, slots=True)
class Rejected:
    reason_class: str
    error: str


@dataclass(frozen=True, slots=True)
class Tombstone:
    station_id: str


Decoded = BaseModel | Tombstone | Rejected


def describe_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "message"
        parts.append(f"{where}: {err['msg']}")
    more = len(exc.errors()) - 5
    if more > 0:
        parts.append(f"(+{more} more)")
    return "; ".join(parts)


def decode(
    topic: str,
    key: bytes | None,
    value: bytes | None,
    *,
    received_at: datetime,
    max_bytes: int,
    max_skew: timedelta,
) -> Decoded:
    """``topic`` is the contract's name (without any deployment prefix)."""
    if key is None or not key:
        return Rejected("key", "key: missing (must be the station id)")
    try:
        station_key = key.decode("utf-8")
    except UnicodeDecodeError:
        return Rejected("key", "key: not valid UTF-8")
    if value is None:
        if topic == REGISTRY and _ID.fullmatch(station_key):
            return Tombstone(station_key)
        if topic == REGISTRY:
            return Rejected("key", f"key: {station_key[:40]!r} is not a station id")
        return Rejected("empty", "value: missing (null)")
    if len(value) > max_bytes:
        return Rejected("too_large", f"value: {len(value)} bytes, more than {max_bytes}")
    model = MODELS[topic]
    try:
        message = model.model_validate_json(value)
    except ValidationError as exc:
        kind = "json" if any(e["type"] == "json_invalid" for e in exc.errors()) else "invalid"
        return Rejected(kind, describe_validation_error(exc))
    station_id = getattr(message, "station_id")  # noqa: B009 - every input model has it
    if station_key != station_id:
        return Rejected("key", f"key: {station_key[:40]!r} differs from station_id {station_id!r}")
    stamp: datetime = getattr(message, _TIME_FIELD[topic])
    if stamp - received_at > max_skew:
        return Rejected(
            "future",
            f"{_TIME_FIELD[topic]}: {stamp.isoformat()} is more than "
            f"{int(max_skew.total_seconds())} s in the future",
        )
    return message
