"""A station's registry record as its live state holds it: the JSON, copied through as it is.

Every heartbeat decodes a station's state from the table and encodes it back. The registry
record is most of a state (about 1 kB: names, services, a week of opening hours as some 25
lists), and none of it changes with a heartbeat: kept as its JSON (``msgspec.Raw``), it passes
both ways in C, without ever becoming the several dozen dicts and lists the collector tracked.

What judging reads of a record (:class:`Facts`: lifecycle, heartbeat interval, capacity, the
end of a closure, opening hours) is read from it once, when the record is applied, and kept
in the state beside it. What views and notices show (:class:`Listing`) is read when they are
made. Opening hours are shared between the stations that have the same
(:func:`streams.schedule.shared_hours`). Pure: no Faust, no database.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from streams.schedule import SharedHours, shared_hours

_RECORD_ENCODER = msgspec.json.Encoder()
# JSON null: the registry record of a station missing from the registry, no earlier hours
NULL = msgspec.Raw(b"null")


def absent(value: msgspec.Raw | None) -> bool:
    """Whether a record (or opening hours) kept as JSON is missing."""
    return value is None or (len(value) == 4 and bytes(value) == b"null")


def encode_record(record: dict[str, Any]) -> msgspec.Raw:
    """A registry record (as JSON-ready values) as a state holds it: its JSON."""
    return msgspec.Raw(_RECORD_ENCODER.encode(record))


def holding(record: dict[str, Any]) -> dict[str, Any]:
    """The fields of a state that holds this registry record (as JSON-ready values): the
    record and what judging reads of it."""
    encoded = encode_record(record)
    return {"profile": encoded, "record_facts": facts_of(encoded)}


def record_of(profile: msgspec.Raw | None) -> dict[str, Any] | None:
    """A state's registry record as JSON-ready values (decoded anew: for history rows,
    notices and views, not for judging)."""
    if absent(profile):
        return None
    assert profile is not None  # noqa: S101 - narrows the type
    decoded: dict[str, Any] = msgspec.json.decode(profile)
    return decoded


class Facts(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """What judging reads of a registry record (:func:`facts_of`), kept in the state beside
    the record (``record_facts``, a short JSON array): read with the state, in C, instead of
    from the record's JSON at every heartbeat."""

    lifecycle: str = "unknown"  # as registered ("unknown" without a record)
    heartbeat_interval_s: int | None = None
    capacity: int | None = None
    closed_until: datetime | None = None  # a temporary closure ends by itself then
    opening_hours: msgspec.Raw = NULL  # as the record holds them (JSON)

    @property
    def hours(self) -> SharedHours | None:
        """The opening hours, shared with every station that has the same (None: none)."""
        return shared_hours(self.opening_hours)


class _Judged(msgspec.Struct):
    """What judging reads of a registry record, read leniently; the rest of its JSON is
    skipped, not built."""

    lifecycle: Any = None
    heartbeat_interval_s: Any = None
    capacity: Any = None
    closed_until: Any = None
    opening_hours: msgspec.Raw = NULL


NO_RECORD = Facts()
_JUDGED = msgspec.json.Decoder(_Judged)
_last_facts: tuple[msgspec.Raw | None, Facts] = (NULL, NO_RECORD)


def _int(value: Any) -> int | None:
    return int(value) if value is not None else None


def facts_of(profile: msgspec.Raw | None) -> Facts:
    """What judging reads of a registry record kept as JSON (:data:`NO_RECORD` for none).
    The last one is kept with the record it was read from."""
    global _last_facts
    held, found = _last_facts
    if profile is held:
        return found
    if absent(profile):
        return NO_RECORD
    judged = _JUDGED.decode(profile)  # type: ignore[arg-type] # not absent
    found = Facts(
        str(judged.lifecycle),
        _int(judged.heartbeat_interval_s),
        _int(judged.capacity),
        closure_time(judged.lifecycle, judged.closed_until),
        NULL if absent(judged.opening_hours) else judged.opening_hours.copy(),
    )
    _last_facts = (profile, found)
    return found


def closure_time(lifecycle: Any, until: Any) -> datetime | None:
    """When a record with this lifecycle and ``closed_until`` ends its temporary closure."""
    if lifecycle != "temporarily_closed" or until is None:
        return None
    return until if isinstance(until, datetime) else datetime.fromisoformat(str(until))


class Listing(msgspec.Struct, gc=False):
    """What the views and notices show of a registry record (:func:`listing`)."""

    name: str | None = None
    district: str | None = None
    street: str | None = None
    category: str | None = None
    location: dict[str, Any] | None = None
    services: list[str] = msgspec.field(default_factory=list)


_LISTING = msgspec.json.Decoder(Listing)


def listing(profile: msgspec.Raw | None) -> Listing:
    """What the views and notices show of a state's registry record."""
    if absent(profile):
        return Listing()
    try:
        return _LISTING.decode(profile)  # type: ignore[arg-type] # not absent
    except msgspec.ValidationError:  # a hand-written record: read leniently
        record = record_of(profile) or {}
        return Listing(
            **{k: record.get(k) for k in ("name", "district", "street", "category", "location")},
            services=list(record.get("services") or []),
        )
