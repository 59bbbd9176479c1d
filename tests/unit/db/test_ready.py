"""The readiness check the worker and the notifier make at start (stationwatch.db.ready): where
it names the database, and that asking it costs the worker no second database driver."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from stationwatch.db import ready
from stationwatch.db.ready import require_schema, where
from stationwatch.errors import DatabaseUnavailableError


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param("postgresql://sw:s3cret@db.example:6543/sw", "db.example:6543/sw", id="full"),
        pytest.param("postgres://localhost/stationwatch", "localhost:5432/stationwatch", id="port"),
        pytest.param("postgresql://", "localhost:5432/", id="bare"),
        pytest.param(
            "postgresql:///sw?host=/var/run/postgresql&port=5433",
            "/var/run/postgresql:5433/sw",
            id="socket-in-query",
        ),
        pytest.param(
            "postgresql://sw@db1:5432,db2:5433/sw", "db1:5432,db2:5433/sw", id="host-list"
        ),
        pytest.param("postgresql://sw@[::1]/sw", "[::1]:5432/sw", id="ipv6"),
        pytest.param("postgresql://sw@[::1]:6543/sw", "[::1]:6543/sw", id="ipv6-port"),
        pytest.param(
            "postgresql://sw@db.example/sw?host=/var/run/postgresql",
            "db.example:5432/sw",
            id="host-before-the-path-first",
        ),
        pytest.param("postgresql://sw:s3cret/x@db/sw", "db:5432/sw", id="password-with-slash"),
        pytest.param("postgresql://sw:s3cret#x@db/sw", "db:5432/sw", id="password-with-hash"),
        pytest.param("postgresql://sw@db:abc/sw", "db:abc/sw", id="bad-port"),
    ],
)
def test_the_database_is_named_by_host_port_and_name_never_the_password(
    url: str, expected: str
) -> None:
    assert where(url) == expected
    assert "s3cret" not in where(url)


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("postgresql://sw:s3cret@127.0.0.1:abc/sw", id="port-not-a-number"),
        pytest.param("postgresql://sw:s3cret@127.0.0.1:99999/sw", id="port-too-large"),
        pytest.param("postgresql://sw:s3#cret@127.0.0.1/sw", id="password-not-url-encoded"),
    ],
)
def test_a_url_the_driver_cannot_read_is_one_clear_error_without_the_password(url: str) -> None:
    with pytest.raises(DatabaseUnavailableError, match="password is URL-encoded") as caught:
        require_schema(url)
    assert "s3" not in str(caught.value)
    assert "cret" not in str(caught.value)


def test_a_server_that_never_answers_is_given_up_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """A listener that accepts and never replies: the check gives up after its own timeout,
    whatever ``connect_timeout`` the URL names (asyncpg does not read it)."""
    monkeypatch.setattr(ready, "CONNECT_TIMEOUT_S", 0.5)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailableError, match=f"127.0.0.1:{port}/sw"):
            require_schema(f"postgresql://sw@127.0.0.1:{port}/sw?connect_timeout=30")
        assert time.monotonic() - started < 5


def test_a_worker_does_not_load_psycopg() -> None:
    """psycopg and the libraries of its binary wheel took 10 MiB of a worker's memory; the
    worker and its start-up check run on asyncpg."""
    code = "import sys, stationwatch.cli, streams.worker; print('psycopg' in sys.modules)"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "False"
