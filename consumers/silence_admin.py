"""`stationwatch silence add|list|expire`: silences kept in PostgreSQL, which every running
notifier rereads each second."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from pydantic import ValidationError

from consumers.receivers import parse_duration
from consumers.silences import Silence, parse_matchers
from consumers.store import NotifyStore
from stationwatch.errors import ConfigurationError


def new_silence(
    matchers: Sequence[str],
    *,
    now: datetime,
    comment: str,
    created_by: str,
    duration: str | None = None,
    until: datetime | None = None,
    starts_at: datetime | None = None,
) -> Silence:
    """A silence from the command line's words; :class:`ConfigurationError` says what is wrong."""
    if (duration is None) == (until is None):
        raise ConfigurationError("give either --duration (e.g. 2h) or --until (a time)")
    start = starts_at or now
    try:
        end = until if until is not None else start + parse_duration(duration)
        return Silence(
            id=str(uuid.uuid4()),
            matchers=parse_matchers(matchers),
            starts_at=start,
            ends_at=end,
            created_by=created_by,
            comment=comment,
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'silence'}: {err['msg']}"
            for err in exc.errors(include_url=False)
        )
        raise ConfigurationError(problems) from None
    except ValueError as exc:  # a matcher or a duration
        raise ConfigurationError(str(exc)) from None


async def add(dsn: str, silence: Silence) -> None:
    store = NotifyStore(dsn)
    try:
        await store.add_silence(silence)
    finally:
        await store.close()


async def listed(dsn: str, *, now: datetime, include_expired: bool) -> list[Silence]:
    store = NotifyStore(dsn)
    try:
        return await store.silences(since=None if include_expired else now)
    finally:
        await store.close()


async def expire(dsn: str, silence_id: str, *, now: datetime) -> bool:
    try:
        uuid.UUID(silence_id)
    except ValueError:
        raise ConfigurationError(f"{silence_id!r} is not a silence id (a UUID)") from None
    store = NotifyStore(dsn)
    try:
        return await store.expire_silence(silence_id, now)
    finally:
        await store.close()


def describe(silence: Silence, now: datetime) -> str:
    """One silence in two lines, its times in the zone of ``now``."""
    left = silence.ends_at - now
    remaining = f", {_short(left)} left" if left > timedelta(0) else ""
    start = silence.starts_at.astimezone(now.tzinfo).isoformat(timespec="seconds")
    end = silence.ends_at.astimezone(now.tzinfo).isoformat(timespec="seconds")
    return (
        f"{silence.id}  {silence.state(now):8}  {' '.join(str(m) for m in silence.matchers)}\n"
        f"    {start} → {end}{remaining}; "
        f"by {silence.created_by}: {silence.comment}"
    )


def _short(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"
