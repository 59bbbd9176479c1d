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
