"""What changed between two registry records of a station: one ``station_history`` entry.

Pure: no database. The worker calls :func:`registry_change` when it applies a record that
differs from the one it held; the row it writes is keyed on (station_id, time, what), so a
record delivered twice writes one row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import orjson

What = Literal["added", "changed", "lifecycle", "removed", "inspection"]

# Bookkeeping of a change, not the station's data: a record differing only here is no change.
_META = frozenset({"updated_at", "changed_by", "changed_via"})
# A change of any of these is a lifecycle change (closure, reopening, decommissioning).
_LIFECYCLE = frozenset({"lifecycle", "closed_until", "closure_reason"})

HISTORY_COLUMNS = ("station_id", "time", "what", "changed_by", "changed_via", "old", "new")


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    station_id: str
    time: datetime
    what: What
    changed_by: str | None
    changed_via: str | None
    old: dict[str, Any] | None  # the changed fields as they were (None: there was no record)
    new: dict[str, Any] | None  # the changed fields as they are now (None: removed)

    def row(self) -> tuple[Any, ...]:
        """As a ``station_history`` row (``HISTORY_COLUMNS``; jsonb as text)."""
        return (
            self.station_id,
            self.time,
            self.what,
            self.changed_by,
            self.changed_via,
            orjson.dumps(self.old).decode() if self.old is not None else None,
            orjson.dumps(self.new).decode() if self.new is not None else None,
        )


def changed_fields(
    old: dict[str, Any], new: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fields (bookkeeping aside) whose values differ: as they were, as they are. A field
    missing on one side is ``None`` there (an optional field left out is unset)."""
    names = sorted((old.keys() | new.keys()) - _META)
    differ = [name for name in names if old.get(name) != new.get(name)]
    return {n: old.get(n) for n in differ}, {n: new.get(n) for n in differ}


def registry_change(
    old: dict[str, Any] | None, new: dict[str, Any] | None, *, removed_at: datetime | None = None
) -> HistoryEntry | None:
    """The history entry for replacing registry record ``old`` by ``new`` (both as JSON, as
    the worker stores them; ``None`` = no record), or ``None`` when nothing but bookkeeping
    changed. Timed by the new record's ``updated_at``; a removal (``new`` None) by
    ``removed_at``."""
    if new is None:
        if old is None or removed_at is None:
            return None
        return HistoryEntry(
            str(old["station_id"]), removed_at, "removed", None, None, _data(old), None
        )
    station_id = str(new["station_id"])
    time = datetime.fromisoformat(str(new["updated_at"]))
    by, via = new.get("changed_by"), new.get("changed_via")
    if old is None:
        return HistoryEntry(station_id, time, "added", by, via, None, _data(new))
    before, after = changed_fields(old, new)
    if not after:
        return None
    what: What = "lifecycle" if after.keys() & _LIFECYCLE else "changed"
    return HistoryEntry(station_id, time, what, by, via, before, after)


def _data(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in _META and v is not None}


def inspection_entry(
    station_id: str,
    *,
    at: datetime,
    result: str,
    note: str,
    by: str,
    via: str = "stations inspect",
) -> HistoryEntry:
    return HistoryEntry(
        station_id, at, "inspection", by, via, None, {"result": result, "note": note}
    )


def describe_values(old: dict[str, Any] | None, new: dict[str, Any] | None) -> str:
    """One line of a history entry's values for people: ``field: old → new; …``."""
    if new is None:
        return f"removed: {_short((old or {}).get('name'))}"
    if old is None:
        return "; ".join(f"{k}: {_short(v)}" for k, v in new.items())
    return "; ".join(f"{k}: {_short(old.get(k))} → {_short(new.get(k))}" for k in new)


def _short(value: Any, limit: int = 60) -> str:
    if value is None:
        return "—"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"
