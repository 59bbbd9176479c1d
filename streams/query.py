"""Queries over live states: parameters, filters, distances, free seats. Pure: no Faust, no I/O.

A station is **open now** when its lifecycle is ``active``, its schedule says open (weekly hours,
holidays) and it has not reported itself closed. ``nearby`` with ``open_now=true`` also leaves out
stations that are ``offline`` (its device is silent: nobody should be sent there).
"""

from __future__ import annotations

import math
import sys
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo

import msgspec
import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from schemas.registry import Category, Lifecycle, Service
from streams.record import closure_time
from streams.schedule import scheduled_open, shared_hours
from streams.state import Liveness
from streams.state_codec import state_json

EARTH_RADIUS_M = 6_371_008.8  # mean Earth radius (IUGG)
MAX_RADIUS_M = 50_000.0
MAX_PAGE = 1000
MAX_NEARBY = 100


class QueryError(ValueError):
    """A bad query parameter; ``parameter`` names it."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter


class _Query(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ListQuery(_Query):
    liveness: Liveness | None = None
    category: Category | None = None
    street: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    service: Service | None = None
    open_now: bool | None = None
    lifecycle: Literal[Lifecycle, "unknown"] | None = None  # one enum: the 400 names all four
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE)] = 100
    offset: Annotated[int, Field(ge=0, le=1_000_000)] = 0


class NearbyQuery(_Query):
    lat: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
    lon: Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]
    radius_m: Annotated[float, Field(gt=0, le=MAX_RADIUS_M, allow_inf_nan=False)] = 3000.0
    service: Service | None = None
    open_now: bool = True
    limit: Annotated[int, Field(ge=1, le=MAX_NEARBY)] = 10


Q = TypeVar("Q", bound=_Query)


def parse_query(model: type[Q], params: dict[str, list[str]]) -> Q:
    """Query-string parameters → a validated query, or :class:`QueryError` naming the first
    bad parameter (unknown, repeated, malformed or out of range)."""
    values: dict[str, Any] = {}
    for name, given in params.items():
        if name not in model.model_fields:
            raise QueryError(name, f"unknown parameter (known: {', '.join(model.model_fields)})")
        if len(given) != 1:
            raise QueryError(name, "given more than once")
        values[name] = given[0]
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        # loc[0] is the parameter; a union adds the member that failed (``lifecycle.literal[…]``)
        name = str(first["loc"][0]) if first["loc"] else "query"
        raise QueryError(name, first["msg"]) from None


class Entry(msgspec.Struct, frozen=True, gc=False):
    """One station as the read model holds it: what filters and distances need, plus the state
    as stored, encoded (the full view is built from it only for stations that are returned).

    Compact on purpose: with 150,000 stations, entries holding the decoded state took ~1 GB
    and 3 million objects the garbage collector scanned (full collections of 1.4 s). Encoded
    states, shared schedules and service sets, and interned strings leave a few objects per
    station, none of them tracked by the collector (an entry refers to no container that could
    lead back to it). A struct, not a frozen dataclass: made three times faster, which counts
    when a snapshot of 150,000 comes in."""

    station_id: str
    partition: int
    raw: bytes  # the state as the live table stores it: compressed (state_codec), or JSON
    lat: float | None
    lon: float | None
    category: str | None
    street: str | None
    services: frozenset[str]
    lifecycle: str  # as registered; see lifecycle_at
    liveness: str
    open_state: str
    hours: dict[str, Any] | None  # shared between stations with the same schedule: read only
    occupants: int | None
    capacity: int | None
    occupancy_at: datetime | None
    closed_until: datetime | None = None  # a temporary closure ends by itself then

    def lifecycle_at(self, now: datetime) -> str:
        """The lifecycle at ``now``: a temporary closure past its end is ``active``."""
        if self.closed_until is not None and self.closed_until <= now:
            return "active"
        return self.lifecycle

    @property
    def state(self) -> dict[str, Any]:
        """The state as stored (decoded anew on each access)."""
        decoded: dict[str, Any] = orjson.loads(state_json(self.raw))
        return decoded


_SHARED_LIMIT = 65_536  # distinct service sets kept for sharing (schedules: shared_hours)
_shared_services: dict[frozenset[str], frozenset[str]] = {}
# a registry record's services as JSON -> the set: a fleet has a few hundred distinct lists at
# most; past the limit, lists not seen yet are decoded each time (and still shared by value)
_services_of_json: dict[bytes, frozenset[str]] = {}
_SERVICES = msgspec.json.Decoder(frozenset[str] | None)


def _shared(cache: dict[Any, Any], key: Any, value: Any) -> Any:
    found = cache.get(key)
    if found is not None:
        return found
    if len(cache) < _SHARED_LIMIT:
        cache[key] = value
    return value


def _services(raw: msgspec.Raw) -> frozenset[str]:
    """The service set of a record's ``services`` JSON, decoded once per distinct JSON: a
    fleet has few distinct sets, and building each station's anew (its strings hashed, the
    set made) took a quarter of an entry's making. Raises ``ValueError`` (msgspec's
    ``ValidationError``) when it is not a list of strings."""
    key = bytes(raw)
    found = _services_of_json.get(key)
    if found is None:
        try:
            decoded = frozenset(_SERVICES.decode(key) or ())
        except msgspec.ValidationError as exc:  # where, as when decoded with the state
            where = "- at `$.profile.services"
            text = str(exc)
            text = text.replace("- at `$", where, 1) if "- at `$" in text else f"{text} {where}`"
            raise msgspec.ValidationError(text) from None
        found = _shared(_shared_services, decoded, decoded)
        if len(_services_of_json) < _SHARED_LIMIT:
            _services_of_json[key] = found
    return found


def exact(encoded: bytes) -> bytes:
    """A copy of exactly its length: orjson's result keeps its (several kB) working buffer."""
    return memoryview(encoded).tobytes()


def _text(value: Any) -> str | None:
    return sys.intern(str(value)) if value is not None else None


class _Location(msgspec.Struct):
    lat: float | None = None
    lon: float | None = None


class _Profile(msgspec.Struct):
    """The parts of a registry record (as a state holds it) an entry keeps."""

    location: _Location | None = None
    category: Any = None
    street: Any = None
    services: msgspec.Raw = msgspec.Raw(b"null")  # its JSON: the key it is shared by
    lifecycle: Any = None
    opening_hours: msgspec.Raw = msgspec.Raw(b"null")  # its JSON: the key it is shared by
    capacity: int | None = None
    closed_until: Any = None


class _State(msgspec.Struct):
    """The parts of a state an entry keeps: decoding only these, and leaving the rest of the
    JSON unbuilt, costs a third of decoding the whole state (150,000 of them come at once
    when a worker starts or takes partitions over)."""

    profile: _Profile | None = None
    liveness: Any = None
    open_state: Any = None
    occupants: int | None = None
    reported_capacity: int | None = None
    occupancy_at: str | None = None


_STATE_VIEW = msgspec.json.Decoder(_State)
_NO_PROFILE = _Profile()
_NO_LOCATION = _Location()


def entry_from_json(station_id: str, partition: int, text: bytes, raw: bytes) -> Entry:
    """The entry of a state given as JSON (``raw``: the same state as stored).

    Raises ``ValueError`` (``msgspec.ValidationError``) when a field has the wrong type."""
    state = _STATE_VIEW.decode(text)
    profile = state.profile or _NO_PROFILE
    location = profile.location or _NO_LOCATION
    reported = state.reported_capacity
    closed_until = closure_time(profile.lifecycle, profile.closed_until)
    return Entry(
        station_id=station_id,
        partition=partition,
        raw=raw,
        lat=location.lat,
        lon=location.lon,
        category=_text(profile.category),
        street=_text(profile.street),
        services=_services(profile.services),
        lifecycle=sys.intern(str(profile.lifecycle or "unknown")),
        liveness=sys.intern(str(state.liveness or "unknown")),
        open_state=sys.intern(str(state.open_state or "unknown")),
        hours=shared_hours(profile.opening_hours),
        occupants=state.occupants,
        capacity=reported if reported is not None else profile.capacity,
        occupancy_at=datetime.fromisoformat(state.occupancy_at) if state.occupancy_at else None,
        closed_until=closed_until,
    )


def entry_from_state(
    station_id: str, partition: int, state: dict[str, Any], raw: bytes | None = None
) -> Entry:
    """The entry of a state as a dict (``raw``: the same state, already encoded)."""
    text = orjson.dumps(state)
    return entry_from_json(station_id, partition, text, raw if raw is not None else exact(text))


def is_open_now(entry: Entry, now: datetime, zone: ZoneInfo) -> bool:
    return (
        entry.lifecycle_at(now) == "active"
        and entry.hours is not None
        and entry.open_state != "closed"
        and scheduled_open(entry.hours, now, zone)
    )


def matches(entry: Entry, query: ListQuery, now: datetime, zone: ZoneInfo) -> bool:
    return (
        (query.liveness is None or entry.liveness == query.liveness)
        and (query.category is None or entry.category == query.category)
        and (query.street is None or entry.street == query.street)
        and (query.service is None or query.service in entry.services)
        and (query.lifecycle is None or entry.lifecycle_at(now) == query.lifecycle)
        and (query.open_now is None or is_open_now(entry, now, zone) == query.open_now)
    )


def nearby_candidate(entry: Entry, query: NearbyQuery, now: datetime, zone: ZoneInfo) -> bool:
    if query.service is not None and query.service not in entry.services:
        return False
    if query.open_now:
        return entry.liveness != "offline" and is_open_now(entry, now, zone)
    return True


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def unit_vector(lat: float, lon: float) -> tuple[float, float, float]:
    """A point on the unit sphere: straight-line (chord) distance grows with great-circle
    distance, so a Euclidean KD-tree over these answers great-circle queries."""
    p, lam = math.radians(lat), math.radians(lon)
    return (math.cos(p) * math.cos(lam), math.cos(p) * math.sin(lam), math.sin(p))


def chord_for(distance_m: float) -> float:
    """The chord length on the unit sphere of a great-circle distance."""
    return 2 * math.sin(min(math.pi, distance_m / EARTH_RADIUS_M) / 2)


def free_seats(entry: Entry, now: datetime, fresh_s: float) -> dict[str, Any]:
    """``free_seats`` when the occupancy count is fresh enough to trust, else ``None``; always
    the count's age."""
    if entry.occupancy_at is None:
        return {"free_seats": None, "occupancy_age_s": None}
    age = max(0.0, (now - entry.occupancy_at).total_seconds())
    free = None
    if age <= fresh_s and entry.capacity is not None and entry.occupants is not None:
        free = max(0, entry.capacity - entry.occupants)
    return {"free_seats": free, "occupancy_age_s": round(age, 1)}
