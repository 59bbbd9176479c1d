"""Whether the database is ready for a worker or a notifier: PostgreSQL answers and holds the
newest schema, asked once at start so that a database that is down or not migrated is one
clear line, at once.

Asked through asyncpg, the driver both run on: psycopg (with the libpq, OpenSSL and other
libraries of its binary wheel) took 10 MiB of a worker's resident memory, for this one
question.
"""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, unquote

import asyncpg

from stationwatch.db.migrations import load_migrations
from stationwatch.errors import DatabaseUnavailableError, MigrationError, driver_message

DATABASE_HINT = "start it, or point STATIONWATCH_DATABASE_URL at a running PostgreSQL"
MALFORMED_HINT = (
    "check its hosts and ports, and that its password is URL-encoded "
    "(STATIONWATCH_DATABASE_URL, or STATIONWATCH_DATABASE_PASSWORD_FILE for the password)"
)
# asyncpg reads no ``connect_timeout`` from a URL (it would send it to the server as a setting)
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
            f"cannot reach PostgreSQL at {where(dsn)} ({driver_message(exc)}): {DATABASE_HINT}"
        ) from exc
    except (ValueError, OverflowError) as exc:  # the driver could not read the URL
        # its message may quote a piece of the password: left out
        raise DatabaseUnavailableError(
            f"cannot use the database URL for {where(dsn)}: {MALFORMED_HINT}"
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
    conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_S)
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
    """host:port/dbname of a database URL (its hosts as written, when it lists several), never
    its user or password: whatever comes before the last "@" is left out, even where the
    password is not URL-encoded. Hosts before the path take precedence over a ``host``
    parameter, as asyncpg reads them."""
    rest = dsn.partition("://")[2].rpartition("@")[2]
    location, _, query_string = rest.partition("?")
    hosts, _, dbname = location.partition("/")
    query = {key: values[-1] for key, values in parse_qs(query_string).items()}
    hosts = unquote(hosts) or query.get("host") or "localhost"
    if "," not in hosts and not _has_port(hosts):
        hosts = f"{hosts}:{query.get('port') or 5432}"
    return f"{hosts}/{unquote(dbname) or query.get('dbname') or ''}"


def _has_port(host: str) -> bool:
    if host.startswith("["):  # an IPv6 address
        return "]:" in host
    return ":" in host
