"""Whether the database is ready for a worker or a notifier: PostgreSQL answers and holds the
newest schema, asked once at start so that a database that is down or not migrated is one
clear line, at once.

Asked through asyncpg, the driver both run on: psycopg (with the libpq, OpenSSL and other
libraries of its binary wheel) took 10 MiB of a worker's resident memory, for this one
question.
"""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, urlsplit

import asyncpg

from stationwatch.db.migrations import load_migrations
from stationwatch.errors import DatabaseUnavailableError, MigrationError

DATABASE_HINT = "start it, or point STATIONWATCH_DATABASE_URL at a running PostgreSQL"
CONNECT_TIMEOUT_S = 10


def require_schema(dsn: str) -> int:
    """Check that PostgreSQL at ``dsn`` (a ``postgresql://`` URL) answers and holds the newest
    schema; one clear :class:`DatabaseUnavailableError` or :class:`MigrationError`
    otherwise. Returns the version. Not from inside a running event loop."""
    newest = load_migrations()[-1].version
    try:
        version = asyncio.run(_stored_version(dsn))
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise DatabaseUnavailableError(
            f"cannot reach PostgreSQL at {where(dsn)} ({_reason(exc)}): {DATABASE_HINT}"
        ) from exc
    if version < newest:
        state = "has no stationwatch schema" if version == 0 else f"is at schema version {version}"
        raise MigrationError(
            f"the database at {where(dsn)} {state}, this stationwatch needs version "
            f"{newest}: run `stationwatch migrate` first"
        )
    return version


async def _stored_version(dsn: str) -> int:
    """The newest schema version applied (0: none)."""
    timeout = None if "connect_timeout" in _query(dsn) else CONNECT_TIMEOUT_S
    conn = await asyncpg.connect(dsn, timeout=timeout)
    try:
        if not await conn.fetchval(
            "SELECT to_regclass('stationwatch.schema_migrations') IS NOT NULL"
        ):
            return 0
        found = await conn.fetchval("SELECT max(version) FROM stationwatch.schema_migrations")
        return int(found or 0)
    finally:
        await conn.close()


def where(dsn: str) -> str:
    """host:port/dbname of a database URL, never the password."""
    url, query = urlsplit(dsn), _query(dsn)
    host = query.get("host") or url.hostname or "localhost"
    port = query.get("port") or url.port or 5432
    return f"{host}:{port}/{query.get('dbname') or url.path.lstrip('/')}"


def _query(dsn: str) -> dict[str, str]:
    return {key: values[-1] for key, values in parse_qs(urlsplit(dsn).query).items()}


def _reason(exc: BaseException) -> str:
    """The driver's message on one line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
