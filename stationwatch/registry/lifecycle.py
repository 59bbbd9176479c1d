"""Closing, reopening and decommissioning a station: the registry record each command publishes.

Pure: no broker, no database, no wall clock (the caller passes ``now``). Each function takes the
station's current registry record (as stored, JSON) and returns the changed record, validated
as the worker will validate it, or raises :class:`LifecycleError` saying why the change makes
no sense (closing a decommissioned station, an end of closure already past, …).
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from schemas.registry import StationProfile
from stationwatch.errors import StationwatchError

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# A record's ``updated_at`` must be newer than the one it replaces, or the worker keeps the old.
_TICK = timedelta(milliseconds=1)


class LifecycleError(StationwatchError):
    """The lifecycle change asked for cannot be made (bad date, wrong state, invalid record)."""


def parse_until(text: str, zone: ZoneInfo, now: datetime) -> datetime:
    """``--until``: a day (``2026-12-10``, the start of that day in ``zone``) or an ISO time
    (without an offset: in ``zone``). It must lie in the future."""
    value = text.strip()
    try:
        if _DAY.match(value):
            moment = datetime.combine(date.fromisoformat(value), time(0), tzinfo=zone)
        else:
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=zone)
    except ValueError:
        raise LifecycleError(
            f"--until: {text!r} is not a day like 2026-12-10 or a time like 2026-12-10T08:00"
        ) from None
    if moment <= now:
        raise LifecycleError(f"--until: {moment.isoformat()} is not in the future")
    return moment


def _changed(
    current: dict[str, Any], now: datetime, by: str | None, via: str, **fields: Any
) -> StationProfile:
    previous = datetime.fromisoformat(str(current["updated_at"]))
    record = {
        **current,
        **fields,
        "updated_at": max(now, previous + _TICK).isoformat(),
        "changed_by": by,
        "changed_via": via,
    }
    try:
        # as JSON, like the worker decodes it (strict models take times only as JSON text)
        return StationProfile.model_validate_json(json.dumps(record, ensure_ascii=False))
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "record"
        raise LifecycleError(f"the changed record is invalid: {where}: {first['msg']}") from None


def close(
    current: dict[str, Any],
    *,
    now: datetime,
    reason: str,
    until: datetime | None,
    by: str | None,
    via: str = "stations close",
) -> StationProfile:
    """Temporarily closed, with a reason; with ``until`` the closure ends by itself then."""
    station = current["station_id"]
    if current.get("lifecycle") == "decommissioned":
        raise LifecycleError(f"{station} is decommissioned: it cannot be closed")
    if not reason.strip():
        raise LifecycleError("--reason: say why the station closes")
    return _changed(
        current,
        now,
        by,
        via,
        lifecycle="temporarily_closed",
        closed_until=until.isoformat() if until is not None else None,
        closure_reason=reason.strip(),
    )


def reopen(
    current: dict[str, Any], *, now: datetime, by: str | None, via: str = "stations reopen"
) -> StationProfile:
    """Active again (a closure's end and reason are dropped; the history keeps them)."""
    station = current["station_id"]
    lifecycle = current.get("lifecycle")
    if lifecycle == "active":
        raise LifecycleError(f"{station} is already active")
    if lifecycle == "decommissioned":
        raise LifecycleError(
            f"{station} is decommissioned: register it again (stations import) to bring it back"
        )
    return _changed(
        current, now, by, via, lifecycle="active", closed_until=None, closure_reason=None
    )


def decommission(
    current: dict[str, Any],
    *,
    now: datetime,
    by: str | None,
    reason: str | None = None,
    via: str = "stations decommission",
) -> StationProfile:
    """Out of service for good: never monitored again, kept in the registry and its history."""
    station = current["station_id"]
    if current.get("lifecycle") == "decommissioned":
        raise LifecycleError(f"{station} is already decommissioned")
    return _changed(
        current,
        now,
        by,
        via,
        lifecycle="decommissioned",
        closed_until=None,
        closure_reason=reason.strip() if reason and reason.strip() else None,
    )
