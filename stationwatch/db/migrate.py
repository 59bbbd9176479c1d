"""Versioned, idempotent schema migrations: `stationwatch migrate`.

Migrations are SQL files shipped in ``schemas/migrations`` (package data). A file is named
``NNNN_name.sql`` when both flavors share it, or ``NNNN_name.postgres.sql`` plus
``NNNN_name.timescale.sql`` when TimescaleDB and plain PostgreSQL differ. The flavor is chosen
once, on the first run (TimescaleDB when the server has it installed and preloaded, unless
``STATIONWATCH_DB_FLAVOR`` says otherwise; installed but not preloaded stops with the fix), and
recorded with every applied version in ``stationwatch.schema_migrations``; later runs keep it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, cast

import psycopg
from psycopg import errors, sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import TupleRow

from stationwatch.db.migrations import FLAVORS, Flavor, Migration, load_migrations
from stationwatch.errors import MigrationError, driver_message

logger = logging.getLogger(__name__)

Connection = psycopg.Connection[TupleRow]

FlavorChoice = Literal["auto", "timescale", "postgres"]

# Serialises concurrent `migrate` runs on one database (advisory locks are per database).
ADVISORY_LOCK_KEY = 0x5354_4E57_4D49_4752  # "STNWMIGR"
CONNECT_TIMEOUT_S = 10

BOOTSTRAP = b"""
CREATE SCHEMA IF NOT EXISTS stationwatch;
CREATE TABLE IF NOT EXISTS stationwatch.schema_migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    flavor     text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
"""


@dataclass(frozen=True)
class MigrationResult:
    """What one `migrate` run did."""

    flavor: Flavor
    applied: list[str]
    database_created: bool
    database: str = ""
    version: int = 0

    def describe(self) -> str:
        """A short human summary, printed by `stationwatch migrate`."""
        engine = "TimescaleDB" if self.flavor == "timescale" else "PostgreSQL (no TimescaleDB)"
        where = f"database {self.database!r}" if self.database else "database"
        head = f"Created {where}; " if self.database_created else f"{where.capitalize()}: "
        if self.applied:
            done = f"applied {len(self.applied)} migration(s): {', '.join(self.applied)}"
        else:
            done = "already up to date"
        return f"{head}{done}.\nSchema version {self.version} on {engine}."


def migrate(dsn: str, flavor: FlavorChoice = "auto") -> MigrationResult:
    """Create the database if missing and bring schema `stationwatch` up to the newest version;
    a new schema gets ``flavor`` (``auto``: TimescaleDB when the server has it ready)."""
    migrations = load_migrations()
    params = conninfo_to_dict(dsn)
    database = str(params.get("dbname") or "")
    conn, created = _connect_creating(dsn, params, database)
    with conn:
        try:
            conn.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
            with conn.transaction():
                conn.execute(BOOTSTRAP)
            chosen = _stored_flavor(conn) or _choose_flavor(conn, flavor, _where(params))
            done = {
                row[0] for row in conn.execute("SELECT version FROM stationwatch.schema_migrations")
            }
            applied = [
                _apply(conn, step, chosen) for step in migrations if step.version not in done
            ]
        except psycopg.Error as exc:
            raise MigrationError(
                f"migration failed on {_where(params)}: {driver_message(exc)}"
            ) from exc
    version = migrations[-1].version if migrations else 0
    return MigrationResult(chosen, applied, created, database, version)


def _apply(conn: Connection, step: Migration, flavor: Flavor) -> str:
    label = f"{step.version:04d}_{step.name}"
    try:
        with conn.transaction():
            conn.execute(step.sql[flavor].encode())
            conn.execute(
                "INSERT INTO stationwatch.schema_migrations (version, name, flavor)"
                " VALUES (%s, %s, %s)",
                (step.version, label, flavor),
            )
    except psycopg.Error as exc:
        raise MigrationError(f"migration {label} ({flavor}) failed: {driver_message(exc)}") from exc
    logger.info("applied migration %s (%s)", label, flavor)
    return label


def _stored_flavor(conn: Connection) -> Flavor | None:
    row = conn.execute(
        "SELECT flavor FROM stationwatch.schema_migrations ORDER BY version LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    if row[0] not in FLAVORS:
        raise MigrationError(f"schema_migrations records an unknown flavor {row[0]!r}")
    return cast(Flavor, row[0])


@dataclass(frozen=True)
class TimescaleState:
    """What a server offers of TimescaleDB."""

    available: bool  # the extension's files are installed (pg_available_extensions)
    preloaded: bool  # its library is in shared_preload_libraries (CREATE EXTENSION needs it)

    def usable(self) -> bool:
        return self.available and self.preloaded


PRELOAD_FIX = (
    "add timescaledb to shared_preload_libraries in postgresql.conf (`timescaledb-tune` does "
    "it) and restart PostgreSQL"
)


def timescale_state(conn: Connection) -> TimescaleState:
    """Read without trying ``CREATE EXTENSION``: on a server that has TimescaleDB installed but
    not preloaded, that attempt is a FATAL error that closes the connection."""
    available = conn.execute(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
    ).fetchone()
    row = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()
    libraries = str(row[0]) if row else ""
    preloaded = "timescaledb" in {part.strip().strip('"') for part in libraries.split(",")}
    return TimescaleState(available=available is not None, preloaded=preloaded)


def decide_flavor(wanted: FlavorChoice, state: TimescaleState, where: str) -> Flavor:
    """The flavor for a new schema: ``wanted``, or (``auto``) TimescaleDB when usable. A server
    with TimescaleDB installed but not preloaded is a mistake to fix, not to work around
    silently: the flavor is chosen once and kept."""
    if wanted == "postgres":
        return "postgres"
    if state.usable():
        return "timescale"
    if state.available:
        raise MigrationError(
            f"TimescaleDB is installed on {where} but not preloaded: {PRELOAD_FIX}; or set "
            "STATIONWATCH_DB_FLAVOR=postgres to use plain PostgreSQL without it"
        )
    if wanted == "timescale":
        raise MigrationError(
            f"STATIONWATCH_DB_FLAVOR=timescale, but TimescaleDB is not installed on {where}"
        )
    return "postgres"


def _choose_flavor(conn: Connection, wanted: FlavorChoice, where: str) -> Flavor:
    flavor = decide_flavor(wanted, timescale_state(conn), where)
    if flavor == "timescale":
        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        logger.info("TimescaleDB present; using hypertables and continuous aggregates")
    else:
        logger.info("using plain PostgreSQL (TimescaleDB not installed or not wanted)")
    return flavor


def _connect_creating(
    dsn: str, params: Mapping[str, object], database: str
) -> tuple[Connection, bool]:
    """Connect to the database, creating it through the `postgres` database when missing."""
    try:
        return _connect(dsn, params), False
    except psycopg.OperationalError as exc:
        if not database or database == "postgres":
            raise _unreachable(params, exc) from exc
        first = exc
    try:
        admin = _connect(dsn, params, dbname="postgres")
    except psycopg.OperationalError:
        raise _unreachable(params, first) from first
    try:
        with admin:
            exists = admin.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
            ).fetchone()
            if exists is not None:  # it exists, so the first failure was not about that
                raise _unreachable(params, first) from first
            created = _create_database(admin, database)
        return _connect(dsn, params), created
    except psycopg.Error as exc:
        raise _unreachable(params, exc) from exc


def _create_database(admin: Connection, database: str) -> bool:
    try:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    except (errors.DuplicateDatabase, errors.UniqueViolation):
        return False  # a concurrent migrate created it first
    logger.info("created database %s", database)
    return True


def _connect(dsn: str, params: Mapping[str, object], dbname: str | None = None) -> Connection:
    extra: dict[str, str | int | None] = {}
    if "connect_timeout" not in params:
        extra["connect_timeout"] = CONNECT_TIMEOUT_S
    if dbname is not None:
        extra["dbname"] = dbname
    return psycopg.connect(make_conninfo(dsn, **extra), autocommit=True)


def _unreachable(params: Mapping[str, object], exc: psycopg.Error) -> MigrationError:
    return MigrationError(f"cannot use PostgreSQL at {_where(params)}: {driver_message(exc)}")


def _where(params: Mapping[str, object]) -> str:
    """host:port/dbname, never the password."""
    host = params.get("host") or "localhost"
    port = params.get("port") or 5432
    return f"{host}:{port}/{params.get('dbname') or ''}"
