"""One clock: every time that leaves a process is ISO 8601 in ``STATIONWATCH_TIMEZONE``.

Inside, datetimes stay aware in whatever zone they arrived (the wall clock's UTC, a producer's
offset, the database driver's UTC): arithmetic and comparisons do not care. Only where a time
is shown — an HTTP answer, a message on ``station.alerts`` or ``station.deadletter``, a notice,
a log line — is it converted, with the helpers here, so that a reader sees one zone throughout.

Identities derived from times (alert ids) are not presentation: they are computed from the
instant in UTC (``streams.liveness.alert_id``), whatever the display zone.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from pydantic import BaseModel

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@lru_cache(maxsize=8)
def display_zone(name: str) -> ZoneInfo:
    """The zone called ``name`` (``settings.timezone``), built once."""
    return ZoneInfo(name)


def shown(moment: datetime, zone: ZoneInfo) -> datetime:
    """The same instant in ``zone``. A naive datetime is a bug upstream: refused."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment!r}: every time must be timezone-aware")
    return moment.astimezone(zone)


def iso(moment: datetime | None, zone: ZoneInfo) -> str | None:
    """ISO 8601 in ``zone`` (``2026-11-30T08:05:00+08:00``, microseconds when there are any);
    ``None`` stays ``None``."""
    return None if moment is None else shown(moment, zone).isoformat()


def wire(model: BaseModel, zone: ZoneInfo) -> dict[str, Any]:
    """A message as JSON-ready data, every datetime field (nested models too) shown in
    ``zone``: what goes on an output topic."""
    data = model.model_dump(mode="json")
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, datetime):
            data[name] = iso(value, zone)
        elif isinstance(value, BaseModel):
            data[name] = wire(value, zone)
    return data


def _shown_arg(value: Any, zone: ZoneInfo, depth: int = 0) -> Any:
    if isinstance(value, datetime):
        return iso(value, zone) if value.tzinfo is not None else value.isoformat()
    if depth < 3 and isinstance(value, tuple | list):
        return type(value)(_shown_arg(item, zone, depth + 1) for item in value)
    if depth < 3 and isinstance(value, Mapping):
        return {key: _shown_arg(item, zone, depth + 1) for key, item in value.items()}
    return value


def _has_datetime(value: Any, depth: int = 0) -> bool:
    if isinstance(value, datetime):
        return True
    if depth < 3 and isinstance(value, tuple | list):
        return any(_has_datetime(item, depth + 1) for item in value)
    if depth < 3 and isinstance(value, Mapping):
        return any(_has_datetime(item, depth + 1) for item in value.values())
    return False


class ZonedFormatter(logging.Formatter):
    """Log lines in the display zone: the record's own time as ISO 8601 to the millisecond
    (``2026-11-30T08:05:00.123+08:00``), and every datetime among a message's ``%`` arguments
    (also inside tuples, lists and dicts) as ISO 8601 in the zone."""

    def __init__(self, zone: ZoneInfo, fmt: str = LOG_FORMAT) -> None:
        super().__init__(fmt)
        self.zone = zone

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created, self.zone).isoformat(timespec="milliseconds")

    def format(self, record: logging.LogRecord) -> str:
        if record.args and _has_datetime(record.args):
            record = logging.makeLogRecord(record.__dict__)
            args = record.args
            if isinstance(args, Mapping):
                record.args = {key: _shown_arg(v, self.zone) for key, v in args.items()}
            else:
                record.args = tuple(_shown_arg(v, self.zone) for v in args or ())
        return super().format(record)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg] # stream: a property
    """Writes to whatever ``sys.stderr`` is when a record comes (a live display, such as
    `dev`'s, redirects it to print above itself), as logging's own last resort does."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        """Set by ``StreamHandler.__init__``; the current ``sys.stderr`` is always used."""


def log_handler(zone: ZoneInfo, stream: TextIO | None = None) -> logging.Handler:
    """A handler writing lines timed in ``zone`` to ``stream`` (default: standard error)."""
    handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    handler.setFormatter(ZonedFormatter(zone))
    return handler


def configure_logging(level: str, zone_name: str, stream: TextIO | None = None) -> None:
    """The process's logging: ``level`` and up to standard error (or ``stream``), each line
    timed in the display zone. Like :func:`logging.basicConfig`, a no-op when the root logger
    already has handlers."""
    logging.basicConfig(level=level, handlers=[log_handler(display_zone(zone_name), stream)])
