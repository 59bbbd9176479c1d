"""The readiness check the worker and the notifier make at start (stationwatch.db.ready): where
it names the database, and that asking it costs the worker no second database driver."""

from __future__ import annotations

import subprocess
import sys

import pytest

from stationwatch.db.ready import where


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
    ],
)
def test_the_database_is_named_by_host_port_and_name_never_the_password(
    url: str, expected: str
) -> None:
    assert where(url) == expected
    assert "s3cret" not in where(url)


def test_a_worker_does_not_load_psycopg() -> None:
    """psycopg and the libraries of its binary wheel took 10 MiB of a worker's memory; the
    worker and its start-up check run on asyncpg."""
    code = "import sys, streams.worker; print('psycopg' in sys.modules)"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "False"
