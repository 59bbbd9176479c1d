"""`stationwatch dev` as a user runs it: a subprocess on a machine with nothing else set up."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest

from stationwatch.broker import free_port
from tests.integration.conftest import drop_database
from tests.integration.test_one_clock import Clockwatch

pytestmark = pytest.mark.integration

STATIONWATCH = [sys.executable, "-m", "stationwatch.cli"]


def _env(data_dir: Path, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATIONWATCH_")}
    env |= {
        "STATIONWATCH_DATA_DIR": str(data_dir),
        "STATIONWATCH_DATABASE_URL": database_url,
        "STATIONWATCH_WEB_PORT": str(free_port()),
    }
    return env


def _run(
    args: list[str], env: dict[str, str], timeout_s: float
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*STATIONWATCH, *args], env=env, capture_output=True, text=True, timeout=timeout_s
    )


def _heartbeat_rows(url: str) -> int:
    with psycopg.connect(url, connect_timeout=5) as conn:
        row = conn.execute("SELECT count(*) FROM stationwatch.heartbeats").fetchone()
    return int(row[0]) if row else 0


@pytest.fixture
def fresh_database() -> Iterator[str]:
    """A database name on the local server that does not exist yet (dev's migrate creates it)."""
    from tests.integration.conftest import database_url_for

    name = f"stationwatch_dev_{uuid.uuid4().hex[:10]}"
    yield database_url_for(name)
    drop_database(name)


def test_dev_runs_the_stack_and_writes_rows(tmp_path: Path, fresh_database: str) -> None:
    env = _env(tmp_path, fresh_database) | {"STATIONWATCH_TIMEZONE": "America/Sao_Paulo"}
    done = _run(["dev", "--duration", "20", "--stations", "60"], env, 180)

    assert done.returncode == 0, done.stdout + done.stderr
    assert f"using PostgreSQL at {fresh_database}" in done.stdout
    assert re.search(r"live board on http://127\.0\.0\.1:\d+/$", done.stdout, re.MULTILINE)
    assert "stopped after" in done.stdout
    assert _heartbeat_rows(fresh_database) > 0
    worker_log = tmp_path / "logs" / "worker.log"
    assert worker_log.exists()
    # One clock: what dev prints and logs, and its worker's log, show times in the zone.
    watch = Clockwatch(zone=ZoneInfo("America/Sao_Paulo"))
    assert watch.log("worker.log", worker_log.read_text(errors="replace")) > 5
    watch.log("dev stderr", done.stderr)
    watch.text("dev stdout", done.stdout)
    assert watch.problems == [], "\n".join(watch.problems[:20])


def test_dev_falls_back_to_embedded_postgres(tmp_path: Path) -> None:
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/stationwatch"
    done = _run(["dev", "--duration", "20", "--stations", "30"], _env(tmp_path, closed), 240)

    assert done.returncode == 0, done.stdout + done.stderr
    pgdata = tmp_path / "postgres"
    assert f"no PostgreSQL answered at {closed}" in done.stdout
    assert f"started embedded PostgreSQL, data in {pgdata}" in done.stdout
    assert (pgdata / "PG_VERSION").exists()
    assert not (pgdata / "postmaster.pid").exists()  # stopped on the way out
    # the rows stay in the data dir for the next run; look with a server of our own
    from stationwatch.embedded_pg import start_embedded

    server = start_embedded(pgdata)
    try:
        assert _heartbeat_rows(server.get_uri("stationwatch")) > 0
    finally:
        server.cleanup()


def test_second_dev_refuses_while_one_runs(tmp_path: Path, fresh_database: str) -> None:
    env = _env(tmp_path, fresh_database)
    first = subprocess.Popen(
        [*STATIONWATCH, "dev", "--duration", "120", "--stations", "20"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lock = tmp_path / "dev.lock"
        deadline = time.monotonic() + 30
        while not (lock.exists() and lock.read_text().strip() == str(first.pid)):
            assert first.poll() is None, "the first dev exited early"
            assert time.monotonic() < deadline, "the first dev never took the lock"
            time.sleep(0.1)

        second = _run(["dev", "--duration", "5"], env, 60)

        assert second.returncode != 0
        message = second.stdout + second.stderr
        assert "already running" in message
        assert str(first.pid) in message
        assert first.poll() is None  # the first one is untouched
    finally:
        first.send_signal(signal.SIGTERM)
        output, _ = first.communicate(timeout=90)
    assert first.returncode == 0, output
    assert "stopped after" in output
