"""The project's exceptions: retriable ones are retried with backoff, the rest are reported."""

from __future__ import annotations

from typing import ClassVar


class StationwatchError(Exception):
    """Base of every error stationwatch raises on purpose."""

    retriable: ClassVar[bool] = False


class ConfigurationError(StationwatchError):
    """A setting or configuration file is invalid."""


class DatabaseUnavailableError(StationwatchError):
    """PostgreSQL could not be reached or refused the write; try again later."""

    retriable = True


class BrokerUnavailableError(StationwatchError):
    """The Kafka broker could not be reached."""

    retriable = True


class MigrationError(StationwatchError):
    """A migration failed; the database is left at the last complete version."""


class RowRefusedError(StationwatchError):
    """PostgreSQL (or its driver) refused a row as data: retrying the same row cannot help."""


class WorkerStoppingError(StationwatchError):
    """The worker is stopping while work is still held (e.g. rows the database cannot take
    now): the work is abandoned unacknowledged, so it is read again at the next start."""


def driver_message(exc: BaseException) -> str:
    """A database driver's error on one line: its primary message where the driver keeps one
    apart from the hint lines (psycopg's ``diag``), else its text; the first line that is not
    blank, or the exception's type when there is none."""
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    text = primary or str(exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
