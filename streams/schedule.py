"""Should a station be open now? Weekly hours in station-local time, Chinese public holidays and
make-up working days (the `chinese-calendar` package with the operator's holidays file merged
over it: `streams.holidays`), 24-hour stations.

Rules (pure, no I/O):
- ``always_open`` → open.
- On a statutory public holiday: closed unless ``holidays_open``; then the day's own weekly hours,
  or, for a day it has none, its usual workday hours (the first of mon…fri that has hours).
- On a make-up working day (a weekend day declared a workday): the day's own hours, or else its
  usual workday hours.
- Otherwise the day's weekly hours. An interval whose end is before its start runs past midnight:
  ``["20:00", "02:00"]`` on Friday covers Friday 20:00 to Saturday 02:00.
- Days the calendar does not know yet are treated as ordinary days (logged once a year).

The calendar in use is held here, in one place: :func:`use_calendar` swaps it (at start and when
the holidays file changes) and forgets every answer the previous one gave.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from schemas.registry import WEEKDAYS, minutes
from streams.holidays import HolidayCalendar

logger = logging.getLogger(__name__)

_WORKDAYS = WEEKDAYS[:5]
_calendar = HolidayCalendar()  # the package's alone until use_calendar is called


def use_calendar(calendar: HolidayCalendar) -> None:
    """Judge every schedule by ``calendar`` from now on."""
    global _calendar
    _calendar = calendar
    day_kind.cache_clear()
    _window.cache_clear()
    _stamps.cache_clear()
    _open_at.cache_clear()
    _next_shared.cache_clear()


def active_calendar() -> HolidayCalendar:
    return _calendar


@lru_cache(maxsize=4096)
def day_kind(day: date) -> str:
    """``holiday``, ``makeup_workday`` or ``normal``, by the calendar in use."""
    if not _calendar.knows(day):
        _warn_uncovered(day.year)
    return _calendar.day_kind(day)


@lru_cache(maxsize=64)
def _warn_uncovered(year: int) -> None:
    logger.warning(
        "the holiday calendar has no data for %d beyond %s: treating those days as ordinary "
        "days; list them in STATIONWATCH_HOLIDAYS_FILE (see deploy/holidays.yaml)",
        year,
        _calendar.known_until,
    )


def _usual_workday_hours(weekly: dict[str, Any]) -> list[list[str]]:
    for name in _WORKDAYS:
        if weekly.get(name):
            return list(weekly[name])
    return []


def intervals_for(day: date, hours: dict[str, Any]) -> list[list[str]]:
    """The opening intervals that start on ``day`` (local date)."""
    weekly: dict[str, Any] = hours.get("weekly") or {}
    own = list(weekly.get(WEEKDAYS[day.weekday()]) or [])
    kind = day_kind(day)
    if kind == "holiday":
        if not hours.get("holidays_open"):
            return []
        return own or _usual_workday_hours(weekly)
    if kind == "makeup_workday":
        return own or _usual_workday_hours(weekly)
    return own


class SharedHours(dict[str, Any]):
    """Opening hours held once for every station that has them (:func:`shared_hours`), with
    their cache key. Read only."""

    __slots__ = ("key",)

    def __init__(self, hours: dict[str, Any]) -> None:
        super().__init__(hours)
        self.key = orjson.dumps(hours, option=orjson.OPT_SORT_KEYS)


_SHARED_LIMIT = 65_536  # distinct opening hours kept for sharing
_shared: dict[bytes, SharedHours] = {}  # by their JSON as records hold them
_by_key: dict[bytes, SharedHours] = {}  # by their cache key (the same hours written otherwise)
# the JSON last asked for, and its answer: judging a station asks three times
_last_shared: tuple[object, SharedHours | None] = (None, None)


def shared_hours(encoded: Any) -> SharedHours | None:
    """Opening hours from their JSON (``None`` for none): one dict per distinct JSON, shared
    by the stations that have it (a fleet has a few hundred schedules, not one per station).
    ``null`` and empty hours are none."""
    global _last_shared
    held, last = _last_shared
    if encoded is held:
        return last
    if encoded is None:
        return None
    text = bytes(encoded)
    found = _shared.get(text)
    if found is not None:
        _last_shared = (encoded, found)
        return found
    decoded = orjson.loads(text)
    hours = SharedHours(decoded) if decoded else None
    if hours is not None and len(_shared) < _SHARED_LIMIT:
        _shared[text] = hours
        _by_key.setdefault(hours.key, hours)
    _last_shared = (encoded, hours)
    return hours


_last_key: tuple[dict[str, Any] | None, bytes] = (None, b"")


def _key(hours: dict[str, Any]) -> bytes:
    """Opening hours as a cache key: their JSON, keys sorted; shared hours carry theirs. For
    others the last one is kept with the hours it was made of: judging a station asks three
    times for the same hours (a registry record's hours are replaced, never changed in place)."""
    if type(hours) is SharedHours:
        return hours.key
    global _last_key
    held, key = _last_key
    if held is not hours:
        key = orjson.dumps(hours, option=orjson.OPT_SORT_KEYS)
        _last_key = (hours, key)
    return key


def scheduled_open(hours: dict[str, Any], at: datetime, zone: ZoneInfo) -> bool:
    """Whether the opening hours say the station is open at ``at`` (an aware time)."""
    if hours.get("always_open"):
        return True
    local = at.astimezone(zone)
    return _open_at(_key(hours), local.date(), local.hour * 60 + local.minute)


@lru_cache(maxsize=65536)
def _open_at(hours_key: bytes, today: date, minute: int) -> bool:
    """:func:`scheduled_open` at a local day and minute: its answer changes only from one
    minute to the next, and many stations share hours (each is judged at every heartbeat)."""
    hours = orjson.loads(hours_key)
    for start, end in intervals_for(today, hours):
        lo, hi = minutes(start), minutes(end)
        if (lo < hi and lo <= minute < hi) or (lo > hi and minute >= lo):
            return True
    for start, end in intervals_for(today - timedelta(days=1), hours):
        lo, hi = minutes(start), minutes(end)
        if lo > hi and minute < hi:
            return True
    return False


def _boundaries(day: date, hours: dict[str, Any], zone: ZoneInfo) -> list[datetime]:
    """Local opening and closing moments of the intervals that start on ``day``."""
    moments: list[datetime] = []
    midnight = datetime(day.year, day.month, day.day, tzinfo=zone)
    for start, end in intervals_for(day, hours):
        lo, hi = minutes(start), minutes(end)
        moments.append(midnight + timedelta(minutes=lo))
        moments.append(midnight + timedelta(minutes=hi if hi > lo else hi + 1440))
    return moments


_HORIZON = 8  # days looked at around a moment for the next/previous opening or closing


@lru_cache(maxsize=16384)
def _window(hours_key: bytes, local_day: date, zone_key: str) -> tuple[datetime, ...]:
    """Every opening and closing moment of the intervals starting from ``_HORIZON`` days before
    ``local_day`` up to ``_HORIZON - 1`` days after, sorted, in UTC (:func:`_in_utc`). Cached:
    many stations share hours, and a station is looked at many times a day."""
    hours = orjson.loads(hours_key)
    zone = ZoneInfo(zone_key)
    return _in_utc(
        moment
        for offset in range(-_HORIZON, _HORIZON)
        for moment in _boundaries(local_day + timedelta(days=offset), hours, zone)
    )


def _in_utc(moments: Iterable[datetime]) -> tuple[datetime, ...]:
    """Moments sorted, as UTC times. The same instants as in the schedule's zone, but a
    judgement compares them with its clock (UTC) and with times read from the state (UTC),
    and aware times of different zones are compared by asking each zone for its offset:
    605 ns against 28 ns a comparison, and judging a steady station took twice as long."""
    return tuple(sorted(moment.astimezone(UTC) for moment in moments))


@lru_cache(maxsize=16384)
def _stamps(hours_key: bytes, local_day: date, zone_key: str) -> tuple[float, ...]:
    """The moments of :func:`_window` as POSIX times: searched without comparing aware
    times of different zones (each comparison asks both zones for their offsets)."""
    return tuple(moment.timestamp() for moment in _window(hours_key, local_day, zone_key))


def _around(
    hours: dict[str, Any], at: datetime, zone: ZoneInfo, days: int
) -> tuple[tuple[datetime, ...], int]:
    """The opening and closing moments around ``at``, and how many of them are at or
    before it."""
    local_day = at.astimezone(zone).date()
    if days != _HORIZON:
        moments = _in_utc(
            moment
            for offset in range(-days, days)
            for moment in _boundaries(local_day + timedelta(days=offset), hours, zone)
        )
        return moments, bisect.bisect_right(moments, at)
    key = _key(hours)
    return (
        _window(key, local_day, zone.key),
        bisect.bisect_right(_stamps(key, local_day, zone.key), at.timestamp()),
    )


def next_change(
    hours: dict[str, Any], at: datetime, zone: ZoneInfo, days: int = _HORIZON
) -> datetime | None:
    """The first moment after ``at`` at which :func:`scheduled_open` may change its answer
    (an opening or closing time; ``None`` for 24-hour stations or none within ``days``)."""
    if hours.get("always_open"):
        return None
    if days == _HORIZON and type(hours) is SharedHours and _by_key.get(hours.key) is hours:
        return _next_shared(hours.key, at, zone)
    moments, index = _around(hours, at, zone, days)
    return moments[index] if index < len(moments) else None


@lru_cache(maxsize=8192)
def _next_shared(hours_key: bytes, at: datetime, zone: ZoneInfo) -> datetime | None:
    """:func:`next_change` of shared hours. Cached: the stations that share hours are asked
    after the same moments (their last opening or closing, ``scheduled_since``) at every
    judgement, so they are the last to be pushed out by the other moments asked after (a
    judgement's own time, once a boundary has passed); the cache stays within about 2 MB."""
    moments, index = _around(_by_key[hours_key], at, zone, _HORIZON)
    return moments[index] if index < len(moments) else None


def previous_change(
    hours: dict[str, Any], at: datetime, zone: ZoneInfo, days: int = _HORIZON
) -> datetime | None:
    """The last opening or closing moment at or before ``at`` (``None`` for 24-hour stations
    or none within ``days``)."""
    if hours.get("always_open"):
        return None
    moments, index = _around(hours, at, zone, days)
    return moments[index - 1] if index > 0 else None
