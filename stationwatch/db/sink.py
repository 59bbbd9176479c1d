"""Writes batches of accepted messages to PostgreSQL/TimescaleDB.

An append-only table is filled by COPY straight into it; when that fails (a row already there,
or refused) by COPY into a session-temporary staging table, then
``INSERT … SELECT … ON CONFLICT DO NOTHING`` (:func:`_append`). Stations and alerts always go
through their staging table and an upsert. Fast, and a message delivered twice writes one row.
A batch is one transaction. Two kinds of failure are told apart (:func:`classify`):

- the database is unavailable (connection, timeout, server state): retried with backoff until
  it answers or the worker stops; the agent calling :meth:`TimescaleSink.write` blocks,
  consumption pauses, and the offsets of the batch are committed only once its rows are durable
  (a worker stopped meanwhile leaves them uncommitted: they are read again at the next start);
- the database refuses a row (SQLSTATE classes 22 and 23, or a value the driver cannot encode):
  retrying cannot help, so the batch is split in halves until the refused rows are isolated;
  every other row is written and the refused ones are handed back (:class:`WriteResult`) for the
  caller to dead-letter. One bad record never holds up the rest.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from stationwatch.errors import (
    DatabaseUnavailableError,
    RowRefusedError,
    StationwatchError,
    WorkerStoppingError,
)
from stationwatch.registry.history import HISTORY_COLUMNS

logger = logging.getLogger(__name__)

HEARTBEAT_COLUMNS = (
    "time",
    "station_id",
    "seq",
    "received_at",
    "device_id",
    "uptime_s",
    "battery_pct",
    "on_mains",
    "temperature_c",
    "firmware",
    "interval_s",
)
OCCUPANCY_COLUMNS = ("time", "station_id", "occupants", "capacity", "source", "received_at")
STATUS_COLUMNS = ("time", "station_id", "state", "reason", "actor", "received_at")
STATION_COLUMNS = (
    "station_id",
    "name",
    "district",
    "street",
    "category",
    "host",
    "lat",
    "lon",
    "services",
    "capacity",
    "opening_hours",
    "heartbeat_interval_s",
    "contact_phone",
    "lifecycle",
    "updated_at",
    "profile",
)
LIVENESS_COLUMNS = ("time", "station_id", "from_liveness", "to_liveness")
EXPECTED_COLUMNS = ("time", "station_id", "expected", "reason")
ALERT_COLUMNS = (
    "alert_id",
    "fingerprint",
    "station_id",
    "kind",
    "severity",
    "starts_at",
    "ends_at",
    "detected_at",
    "resolved_detected_at",
    "last_heartbeat_at",
    "labels",
    "summary",
)
_APPEND_TABLES = {
    "heartbeats": HEARTBEAT_COLUMNS,
    "occupancy": OCCUPANCY_COLUMNS,
    "status_events": STATUS_COLUMNS,
    "liveness_changes": LIVENESS_COLUMNS,
    "station_history": HISTORY_COLUMNS,
    "expected_changes": EXPECTED_COLUMNS,
}


@dataclass
class Batch:
    """Rows of one batch of input, in the column order above."""

    heartbeats: list[tuple[Any, ...]] = field(default_factory=list)
    occupancy: list[tuple[Any, ...]] = field(default_factory=list)
    status_events: list[tuple[Any, ...]] = field(default_factory=list)
    liveness_changes: list[tuple[Any, ...]] = field(default_factory=list)
    # registry changes (stationwatch.registry.history), keyed (station_id, time, what)
    station_history: list[tuple[Any, ...]] = field(default_factory=list)
    expected_changes: list[tuple[Any, ...]] = field(default_factory=list)
    # The last registry action per station in this batch: a row to upsert, or None to delete.
    stations: dict[str, tuple[Any, ...] | None] = field(default_factory=dict)
    # One row per alert episode touched (firing, resolved, or both merged).
    alerts: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    # id(row) → the input record the row came from, so that a row the database refuses can be
    # dead-lettered as that record. The batch holds every row it names, so the ids are stable.
    origins: dict[int, Any] = field(default_factory=dict)

    def add(self, table: str, row: tuple[Any, ...], origin: Any) -> None:
        """Append a row to one of the append-only tables, remembering its input record."""
        getattr(self, table).append(row)
        self.origins[id(row)] = origin

    def origin(self, row: tuple[Any, ...] | None) -> Any:
        return self.origins.get(id(row)) if row is not None else None

    def pieces(self) -> list[Piece]:
        """Every row of the batch as a piece that can be written on its own."""
        found = [Piece(t, None, row) for t in _APPEND_TABLES for row in getattr(self, t)]
        found.extend(Piece("stations", sid, row) for sid, row in self.stations.items())
        found.extend(Piece("alerts", aid, row) for aid, row in self.alerts.items())
        return found

    @classmethod
    def of(cls, pieces: Sequence[Piece]) -> Batch:
        batch = cls()
        for piece in pieces:
            if piece.table in _APPEND_TABLES:
                getattr(batch, piece.table).append(piece.row)
            else:
                getattr(batch, piece.table)[piece.key] = piece.row
        return batch

    def __len__(self) -> int:
        return (
            len(self.heartbeats)
            + len(self.occupancy)
            + len(self.status_events)
            + len(self.liveness_changes)
            + len(self.station_history)
            + len(self.expected_changes)
            + len(self.stations)
            + len(self.alerts)
        )


@dataclass(frozen=True, slots=True)
class Piece:
    """One row of a batch: its table, its key (stations, alerts) and the row (None: delete)."""

    table: str
    key: str | None
    row: tuple[Any, ...] | None


@dataclass(frozen=True, slots=True)
class Refused:
    """A row the database refused, and why."""

    table: str
    row: tuple[Any, ...] | None
    error: str


@dataclass
class WriteResult:
    written: dict[str, int] = field(default_factory=dict)  # rows newly inserted per table
    refused: list[Refused] = field(default_factory=list)
    splits: int = 0  # extra writes needed to isolate the refused rows

    def add(self, written: dict[str, int]) -> None:
        for table, count in written.items():
            self.written[table] = self.written.get(table, 0) + count


# SQLSTATE classes of a refused row: data exception, integrity constraint violation.
_REFUSED_CLASSES = frozenset({"22", "23"})


def classify(exc: BaseException) -> StationwatchError:
    """A driver error as ours: the row is refused (retrying cannot help), or the database is
    unavailable (retry later). Client-side encoding failures (a value too large for its column,
    a string that is not valid UTF-8) are refusals too."""
    message = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, asyncpg.PostgresError):
        sqlstate = str(getattr(exc, "sqlstate", "") or "")
        if sqlstate[:2] in _REFUSED_CLASSES:
            return RowRefusedError(message)
        return DatabaseUnavailableError(message)
    if isinstance(exc, (ValueError, TypeError, OverflowError)):  # includes asyncpg.DataError
        return RowRefusedError(message)
    return DatabaseUnavailableError(message)


_DRIVER_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    ValueError,
    TypeError,
    OverflowError,
)


def station_row(profile: dict[str, Any], updated_at: datetime) -> tuple[Any, ...]:
    """A ``stations`` row from a registry record (as JSON)."""
    return (
        profile["station_id"],
        profile["name"],
        profile.get("district") or "",
        profile.get("street") or "",
        profile["category"],
        profile["host"],
        profile["location"]["lat"],
        profile["location"]["lon"],
        list(profile.get("services") or []),
        profile.get("capacity"),
        orjson.dumps(profile["opening_hours"]).decode(),
        profile.get("heartbeat_interval_s"),
        profile.get("contact_phone"),
        profile["lifecycle"],
        updated_at,
        orjson.dumps(profile).decode(),
    )


_UPSERT_STATIONS = f"""
INSERT INTO stationwatch.stations ({", ".join(STATION_COLUMNS)})
SELECT {", ".join(STATION_COLUMNS)} FROM _stage_stations
ON CONFLICT (station_id) DO UPDATE SET
{", ".join(f"{c} = EXCLUDED.{c}" for c in STATION_COLUMNS[1:])}, ingested_at = now()
WHERE EXCLUDED.updated_at >= stationwatch.stations.updated_at
"""  # noqa: S608 - column names are constants of this module

# A firing row, then its resolution: detected_at is kept from the firing, ends_at added.
_UPSERT_ALERTS = f"""
INSERT INTO stationwatch.alerts ({", ".join(ALERT_COLUMNS)})
SELECT {", ".join(ALERT_COLUMNS)} FROM _stage_alerts
ON CONFLICT (alert_id) DO UPDATE SET
ends_at = COALESCE(EXCLUDED.ends_at, stationwatch.alerts.ends_at),
resolved_detected_at = COALESCE(
    EXCLUDED.resolved_detected_at, stationwatch.alerts.resolved_detected_at
),
last_heartbeat_at = COALESCE(EXCLUDED.last_heartbeat_at, stationwatch.alerts.last_heartbeat_at)
"""  # noqa: S608 - column names are constants of this module


async def _append(
    conn: asyncpg.Connection, table: str, rows: Sequence[tuple[Any, ...]], columns: Sequence[str]
) -> int:
    """Rows of an append-only table; returns how many are new.

    COPY straight into the table first: in the steady state none of the rows is there yet,
    and nothing writes faster. A row already there (a batch read again after a crash or a
    rebalance, or twice in one batch) or refused fails that COPY, inside a savepoint that
    leaves the batch's transaction usable; the rows then go through the staging table and
    ``INSERT … ON CONFLICT DO NOTHING``, which skips what is there and lets a refusal surface
    as before."""
    try:
        async with conn.transaction():  # a savepoint
            await conn.copy_records_to_table(
                table, schema_name="stationwatch", records=rows, columns=columns
            )
    except asyncpg.PostgresError:
        await conn.copy_records_to_table(f"_stage_{table}", records=rows, columns=columns)
        status = await conn.execute(
            f"INSERT INTO stationwatch.{table} ({', '.join(columns)}) "  # noqa: S608
            f"SELECT {', '.join(columns)} FROM _stage_{table} "
            "ON CONFLICT DO NOTHING"
        )
        return int(status.rsplit(" ", 1)[-1])
    return len(rows)


class TimescaleSink:
    """One connection, used by the single ingest agent of a worker."""

    def __init__(
        self,
        dsn: str,
        *,
        on_retry: Callable[[], None] | None = None,
        on_available: Callable[[bool], None] | None = None,
        stopping: Callable[[], bool] = lambda: False,
        max_backoff_s: float = 30.0,
    ) -> None:
        self._dsn = dsn
        self._stopping = stopping
        self._conn: asyncpg.Connection | None = None
        self._on_retry = on_retry
        self._on_available = on_available
        self._max_backoff_s = max_backoff_s
        self._down_since: float | None = None

    @property
    def available(self) -> bool:
        """False from a failed write until the next one succeeds."""
        return self._down_since is None

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                await asyncio.wait_for(conn.close(), timeout=5)
            except (OSError, asyncpg.PostgresError, TimeoutError):
                conn.terminate()

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            conn = await asyncpg.connect(self._dsn, timeout=10, command_timeout=60)
            for table in (*_APPEND_TABLES, "stations", "alerts"):
                await conn.execute(
                    f"CREATE TEMP TABLE IF NOT EXISTS _stage_{table} "
                    f"(LIKE stationwatch.{table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
                )
            self._conn = conn
        return self._conn

    async def write_once(self, batch: Batch) -> dict[str, int]:
        """Write one batch in one transaction; returns rows newly inserted per table.

        Raises :class:`DatabaseUnavailableError` or :class:`RowRefusedError` (see
        :func:`classify`)."""
        try:
            conn = await self._connection()
            written: dict[str, int] = {}
            async with conn.transaction():
                for table, columns in _APPEND_TABLES.items():
                    rows: Sequence[tuple[Any, ...]] = getattr(batch, table)
                    if rows:
                        written[table] = await _append(conn, table, rows, columns)
                upserts = [row for row in batch.stations.values() if row is not None]
                deletes = [sid for sid, row in batch.stations.items() if row is None]
                if upserts:
                    await conn.copy_records_to_table(
                        "_stage_stations", records=upserts, columns=STATION_COLUMNS
                    )
                    status = await conn.execute(_UPSERT_STATIONS)
                    written["stations"] = int(status.rsplit(" ", 1)[-1])
                if batch.alerts:
                    await conn.copy_records_to_table(
                        "_stage_alerts", records=list(batch.alerts.values()), columns=ALERT_COLUMNS
                    )
                    status = await conn.execute(_UPSERT_ALERTS)
                    written["alerts"] = int(status.rsplit(" ", 1)[-1])
                if deletes:
                    await conn.execute(
                        "DELETE FROM stationwatch.stations WHERE station_id = ANY($1::text[])",
                        deletes,
                    )
        except _DRIVER_ERRORS as exc:
            error = classify(exc)
            if not isinstance(exc, asyncpg.PostgresError) or error.retriable:
                # a client-side failure can leave the protocol mid-COPY: start afresh
                await self.close()
            raise error from exc
        return written

    async def write(self, batch: Batch, *, log_context: str = "") -> WriteResult:
        """Write the batch. Waits (retrying) while the database is unavailable; rows it refuses
        are isolated and returned, every other row is written."""
        result = WriteResult()
        try:
            result.add(await self._write_retrying(batch, log_context))
        except RowRefusedError as exc:
            logger.warning(
                "database refused a row (%s); isolating it among %d rows %s",
                exc,
                len(batch),
                log_context,
            )
            await self._isolate(batch.pieces(), result, log_context)
        return result

    async def _isolate(self, pieces: list[Piece], result: WriteResult, log_context: str) -> None:
        """Write ``pieces`` in halves, recursively, until every refused row stands alone."""
        stack = [pieces[len(pieces) // 2 :], pieces[: len(pieces) // 2]]
        while stack:
            part = stack.pop()
            if not part:
                continue
            result.splits += 1
            try:
                result.add(await self._write_retrying(Batch.of(part), log_context))
            except RowRefusedError as exc:
                if len(part) == 1:
                    result.refused.append(Refused(part[0].table, part[0].row, str(exc)))
                    continue
                middle = len(part) // 2
                stack.extend((part[middle:], part[:middle]))

    async def _pause(self, delay: float, held: int) -> None:
        """Wait ``delay`` before the next try, unless the worker is stopping: then give up
        (:class:`WorkerStoppingError`), so that stopping never waits for the database."""
        deadline = time.monotonic() + delay
        while True:
            if self._stopping():
                raise WorkerStoppingError(
                    f"stopping while the database is unavailable: {held} rows not written"
                )
            left = deadline - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 0.25))

    async def _write_retrying(self, batch: Batch, log_context: str) -> dict[str, int]:
        """Write the batch, retrying with capped exponential backoff while the database is
        unavailable; a refused row is raised (:class:`RowRefusedError`)."""
        attempt = 0
        while True:
            try:
                written = await self.write_once(batch)
            except DatabaseUnavailableError as exc:
                attempt += 1
                if self._down_since is None:
                    self._down_since = time.monotonic()
                    if self._on_available:
                        self._on_available(False)
                if self._on_retry:
                    self._on_retry()
                delay = min(self._max_backoff_s, 0.25 * 2 ** min(attempt, 10))
                delay *= 0.5 + random.random() / 2  # noqa: S311 - jitter, not security
                logger.warning(
                    "database write failed (%s), %d rows held, consumption paused; "
                    "retry %d in %.1f s %s",
                    exc,
                    len(batch),
                    attempt,
                    delay,
                    log_context,
                )
                await self._pause(delay, len(batch))
                continue
            if self._down_since is not None:
                logger.warning(
                    "database writes recovered after %.1f s; consumption resumed",
                    time.monotonic() - self._down_since,
                )
                self._down_since = None
            if self._on_available:
                self._on_available(True)
            return written


CURRENT_COLUMNS = (
    "station_id",
    "name",
    "category",
    "street",
    "district",
    "lat",
    "lon",
    "services",
    "lifecycle",
    "liveness",
    "liveness_since",
    "last_heartbeat_at",
    "open_state",
    "open_state_since",
    "scheduled_open",
    "occupants",
    "capacity",
    "occupancy_at",
    "updated_at",
    "fresh_until",
)

# what a heartbeat, a count or a judgement changes of a row: all but the registry's columns
LIVE_COLUMNS = (CURRENT_COLUMNS[0], *CURRENT_COLUMNS[CURRENT_COLUMNS.index("lifecycle") :])

_UPSERT_CURRENT = f"""
INSERT INTO stationwatch.station_current_reported ({", ".join(CURRENT_COLUMNS)})
SELECT {", ".join(CURRENT_COLUMNS)} FROM _stage_station_current
ON CONFLICT (station_id) DO UPDATE SET
{", ".join(f"{c} = EXCLUDED.{c}" for c in CURRENT_COLUMNS[1:])}
"""  # noqa: S608 - column names are constants of this module

# the live columns of rows that are there; the ids of the staged rows that are not
_UPDATE_LIVE = f"""
WITH updated AS (
    UPDATE stationwatch.station_current_reported AS c
    SET {", ".join(f"{c} = s.{c}" for c in LIVE_COLUMNS[1:])}
    FROM _stage_station_live AS s
    WHERE c.station_id = s.station_id
    RETURNING c.station_id
)
SELECT s.station_id FROM _stage_station_live AS s
WHERE NOT EXISTS (SELECT 1 FROM updated AS u WHERE u.station_id = s.station_id)
"""  # noqa: S608 - column names are constants of this module


@dataclass
class CurrentRows:
    """``station_current`` rows to write: ``whole`` (:data:`CURRENT_COLUMNS`) and ``live``
    (:data:`LIVE_COLUMNS`, of stations whose registry columns are written already)."""

    whole: list[tuple[Any, ...]] = field(default_factory=list)
    live: list[tuple[Any, ...]] = field(default_factory=list)

    def extend(self, other: CurrentRows) -> None:
        self.whole.extend(other.whole)
        self.live.extend(other.live)


@dataclass(frozen=True)
class CurrentWritten:
    """What :meth:`CurrentWriter.write` could not write: the stations whose rows the database
    refused, and those given as ``live`` rows that have no row to update (to be written
    whole)."""

    refused: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class WorkerReport:
    """One worker's report to ``pipeline_workers``: is the picture it writes live?"""

    worker_id: str
    host: str
    pid: int
    started_at: datetime
    seen_at: datetime
    healthy: bool
    problems: tuple[str, ...] = ()
    partitions: int = 0
    lag: int = 0


_UPSERT_WORKER = """
INSERT INTO stationwatch.pipeline_workers
    (worker_id, host, pid, started_at, seen_at, healthy, healthy_at, problems, partitions, lag)
VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $6 THEN $5::timestamptz END, $7, $8, $9)
ON CONFLICT (worker_id) DO UPDATE SET
    host = EXCLUDED.host, pid = EXCLUDED.pid, started_at = EXCLUDED.started_at,
    seen_at = EXCLUDED.seen_at, healthy = EXCLUDED.healthy,
    healthy_at = coalesce(EXCLUDED.healthy_at, stationwatch.pipeline_workers.healthy_at),
    problems = EXCLUDED.problems, partitions = EXCLUDED.partitions, lag = EXCLUDED.lag
"""


class CurrentWriter:
    """Keeps ``station_current`` (the live state for Grafana) and the worker's report in
    ``pipeline_workers`` on a connection of its own."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()  # one operation at a time on the connection

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.terminate()

    async def write(
        self,
        rows: list[tuple[Any, ...]],
        deletes: list[str],
        *,
        live: Sequence[tuple[Any, ...]] = (),
    ) -> CurrentWritten:
        """Upsert ``rows`` (whole), update the live columns of ``live`` and delete
        ``deletes``; returns the stations whose rows the database refused (they are skipped,
        the rest is written) and the ``live`` ones without a row. Raises
        :class:`DatabaseUnavailableError` when it cannot write at all."""
        try:
            missing = await self._write_once(rows, live, deletes)
        except RowRefusedError:
            refused, missing = [], []
            for whole, one in [*((True, r) for r in rows), *((False, r) for r in live)]:
                try:  # rare: find the refused rows one by one
                    if whole:
                        await self._write_once([one], (), [])
                    else:
                        missing += await self._write_once([], [one], [])
                except RowRefusedError:
                    refused.append(str(one[0]))
            await self._write_once([], (), deletes)
            return CurrentWritten(refused, missing)
        return CurrentWritten([], missing)

    async def report(self, report: WorkerReport) -> None:
        """Upsert this worker's row in ``pipeline_workers``; raises
        :class:`DatabaseUnavailableError` when it cannot."""
        async with self._lock:
            try:
                conn = await self._connection()
                await conn.execute(
                    _UPSERT_WORKER,
                    report.worker_id,
                    report.host,
                    report.pid,
                    report.started_at,
                    report.seen_at,
                    report.healthy,
                    list(report.problems),
                    report.partitions,
                    report.lag,
                )
            except _DRIVER_ERRORS as exc:
                raise await self._failed(exc) from exc

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(self._dsn, timeout=10, command_timeout=30)
            for stage in ("_stage_station_current", "_stage_station_live"):
                await self._conn.execute(
                    f"CREATE TEMP TABLE IF NOT EXISTS {stage} "
                    "(LIKE stationwatch.station_current_reported) ON COMMIT DELETE ROWS"
                )
        return self._conn

    async def _write_once(
        self, rows: list[tuple[Any, ...]], live: Sequence[tuple[Any, ...]], deletes: list[str]
    ) -> list[str]:
        async with self._lock:
            return await self._write_locked(rows, live, deletes)

    async def _write_locked(
        self, rows: list[tuple[Any, ...]], live: Sequence[tuple[Any, ...]], deletes: list[str]
    ) -> list[str]:
        """In one transaction; returns the ids of the ``live`` rows that had no row."""
        missing: list[str] = []
        try:
            conn = await self._connection()
            async with conn.transaction():
                if rows:
                    await conn.copy_records_to_table(
                        "_stage_station_current", records=rows, columns=CURRENT_COLUMNS
                    )
                    await conn.execute(_UPSERT_CURRENT)
                if live:
                    await conn.copy_records_to_table(
                        "_stage_station_live", records=live, columns=LIVE_COLUMNS
                    )
                    missing = [r[0] for r in await conn.fetch(_UPDATE_LIVE)]
                if deletes:
                    await conn.execute(
                        "DELETE FROM stationwatch.station_current_reported"
                        " WHERE station_id = ANY($1)",
                        deletes,
                    )
        except _DRIVER_ERRORS as exc:
            raise await self._failed(exc) from exc
        return missing

    async def _failed(self, exc: BaseException) -> StationwatchError:
        """The error to raise for a driver error; a connection that may be broken is closed."""
        error = classify(exc)
        if not isinstance(exc, asyncpg.PostgresError) or error.retriable:
            await self.close()
        return error
