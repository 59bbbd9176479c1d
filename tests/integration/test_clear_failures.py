"""Where stationwatch cannot go on, it says so in one line, at once, with what to do — run as a
user runs it: the real command, a real (migrated or not) database, no broker."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from stationwatch.allocator import find_jemalloc
from stationwatch.broker import free_port
from tests.integration.conftest import database_url_for
from tests.integration.harness import worker_env
from tests.integration.notifier_harness import notifier_env_for, webhook_config

pytestmark = pytest.mark.integration


def run(args: list[str], env: dict[str, str], timeout_s: float = 30) -> tuple[int, str, float]:
    """Exit code, stderr and seconds taken of ``stationwatch ARGS``."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "stationwatch.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    return done.returncode, done.stderr, time.monotonic() - started


def one_line(stderr: str) -> str:
    """The one line saying what is wrong; informational log lines (" INFO ") may precede it,
    nothing else may."""
    lines = [line for line in stderr.splitlines() if line.strip() and " INFO " not in line]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def no_broker_env(database_url: str, tmp_path: Path) -> dict[str, str]:
    env = worker_env(
        kafka_url=f"kafka://127.0.0.1:{free_port()}",
        database_url=database_url,
        token="nobroker",  # noqa: S106 - a topic prefix, not a password
        data_dir=tmp_path / "data",
    )
    env["STATIONWATCH_WEB_PORT"] = str(free_port())
    return env


@pytest.mark.parametrize("args", [["worker"], ["simulate", "--duration", "2"]])
def test_no_broker_is_one_line_within_seconds(
    args: list[str], database_url: str, tmp_path: Path
) -> None:
    env = no_broker_env(database_url, tmp_path)
    code, stderr, took = run(args, env)
    line = one_line(stderr)
    assert code == 1
    assert took < 10, f"{took:.1f} s"
    assert "cannot reach the Kafka broker" in line
    assert "connection refused" in line
    assert "STATIONWATCH_KAFKA" in line
    assert "stationwatch dev" in line


def test_the_notifier_without_a_broker_is_one_line(database_url: str, tmp_path: Path) -> None:
    config = tmp_path / "notify.yaml"
    config.write_text(webhook_config("http://127.0.0.1:9/hook"), encoding="utf-8")
    env = notifier_env_for(
        f"kafka://127.0.0.1:{free_port()}", database_url, "nobroker", tmp_path, config
    )
    env["STATIONWATCH_NOTIFIER_PORT"] = str(free_port())
    code, stderr, took = run(["notifier"], env)
    assert code == 1
    assert took < 10, f"{took:.1f} s"
    assert "cannot reach the Kafka broker" in one_line(stderr)


def test_no_database_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    url = f"postgresql://postgres:s3cret-pw@127.0.0.1:{free_port()}/stationwatch"
    code, stderr, took = run(["worker"], no_broker_env(url, tmp_path))
    line = one_line(stderr)
    assert code == 1
    assert took < 10, f"{took:.1f} s"
    assert "cannot reach PostgreSQL at 127.0.0.1:" in line
    assert "STATIONWATCH_DATABASE_URL" in line
    assert "s3cret-pw" not in stderr


def test_an_unmigrated_database_says_to_run_migrate(tmp_path: Path) -> None:
    url = database_url_for("postgres")  # answers, and has no stationwatch schema
    code, stderr, _ = run(["worker"], no_broker_env(url, tmp_path))
    line = one_line(stderr)
    assert code == 1
    assert "run `stationwatch migrate` first" in line


def test_a_bad_path_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder", encoding="utf-8")
    for target in (tmp_path / "file" / "below", Path("/proc/no-such-dir/below")):
        code, stderr, _ = run(["schemas", "export", str(target)], {})
        assert code == 1
        assert str(target.parent) in one_line(stderr)


def test_the_database_urls_sslmode_is_honoured(database_url: str, tmp_path: Path) -> None:
    """This server speaks no TLS: a URL that requires it is refused, not quietly downgraded."""
    with psycopg.connect(database_url) as conn:
        speaks_tls = conn.execute("SHOW ssl").fetchone() == ("on",)
    if speaks_tls:
        pytest.skip("this PostgreSQL speaks TLS: sslmode=require would be met")
    code, stderr, _ = run(["worker"], no_broker_env(f"{database_url}?sslmode=require", tmp_path))
    line = one_line(stderr)
    assert code == 1
    assert "SSL" in line


def test_the_worker_says_which_allocator_it_runs_with(database_url: str, tmp_path: Path) -> None:
    env = no_broker_env(database_url, tmp_path)  # logs at INFO
    code, stderr, _ = run(["worker"], {**env, "STATIONWATCH_ALLOCATOR": "python"})
    assert code == 1
    assert "memory allocator: Python's own, with the C library's malloc" in stderr
    assert "(STATIONWATCH_ALLOCATOR=python)" in stderr
    code, stderr, _ = run(["worker"], {**env, "STATIONWATCH_ALLOCATOR": "auto"})
    assert code == 1
    if find_jemalloc() is not None:
        assert "memory allocator: jemalloc, for every object" in stderr
    else:
        assert "no jemalloc library installed" in stderr
    assert "cannot reach the Kafka broker" in one_line(stderr)  # and the rest as before


def test_a_bad_allocator_is_one_line() -> None:
    code, stderr, _ = run(["worker"], {"STATIONWATCH_ALLOCATOR": "tcmalloc"})
    assert code == 2
    assert "STATIONWATCH_ALLOCATOR" in one_line(stderr)
