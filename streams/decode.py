"""Turn one raw input record into a validated message, or the reason it is dead-lettered.

Pure: the agent passes the record's parts and the time of receipt. Besides what the models
check (see ``schemas``), a message's own time is judged against the time of receipt: more than
``max_skew`` ahead is rejected (a clock running fast), and telemetry more than ``max_age``
behind (:data:`MAX_AGE`, 30 days) too: that is no backlog but a device clock reset to a factory
date. A registry record may be old: master data changes rarely.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

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
MAX_AGE = timedelta(days=30)
_AGED = frozenset({HEARTBEAT, OCCUPANCY, STATUS})  # topics whose times may not be older

_ID = re.compile(STATION_ID_PATTERN)
_PLAIN = re.compile(r"[\w.\[\]-]{1,40}", re.ASCII)
# jiter's words for a `\uXXXX` escape that is no character (a lone UTF-16 surrogate)
_ESCAPE_ERRORS = ("hex escape", "surrogate")


@dataclass(frozen=True, slots=True)
class Rejected:
    reason_class: str
    error: str


@dataclass(frozen=True, slots=True)
class Tombstone:
    station_id: str


Decoded = BaseModel | Tombstone | Rejected


def _where(loc: tuple[int | str, ...]) -> str:
    """A field path; a part taken from the input (a dict key) is quoted and cut short."""
    parts = []
    for part in loc:
        text = str(part)
        parts.append(text if _PLAIN.fullmatch(text) else repr(text[:40]))
    return ".".join(parts) or "message"


def describe_validation_error(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False, include_input=False)
    parts = []
    for err in errors[:5]:
        message = err["msg"]
        if err["type"] == "json_invalid" and any(w in message for w in _ESCAPE_ERRORS):
            message += " (a \\u escape must be a whole character: no lone UTF-16 surrogate)"
        parts.append(f"{_where(err['loc'])}: {message}")
    more = len(errors) - 5
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
    max_age: timedelta = MAX_AGE,
    zone: ZoneInfo | None = None,
) -> Decoded:
    """``topic`` is the contract's name (without any deployment prefix); a time an error
    names is shown in ``zone`` (the display zone) when given, else as the message gave it."""
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
    field = _TIME_FIELD[topic]
    stamp: datetime = getattr(message, field)
    if stamp - received_at > max_skew:
        return Rejected(
            "future",
            f"{field}: {_shown(stamp, zone)} is more than "
            f"{int(max_skew.total_seconds())} s in the future",
        )
    if topic in _AGED and received_at - stamp > max_age:
        return Rejected(
            "past",
            f"{field}: {_shown(stamp, zone)} is more than {_span(max_age)} in the past",
        )
    return message


def _shown(stamp: datetime, zone: ZoneInfo | None) -> str:
    """Only for a rejected message: the accepted ones never pay for the conversion."""
    return (stamp.astimezone(zone) if zone is not None else stamp).isoformat()


def _span(span: timedelta) -> str:
    if span.days and span == timedelta(days=span.days):
        return f"{span.days} days"
    return f"{int(span.total_seconds())} s"
