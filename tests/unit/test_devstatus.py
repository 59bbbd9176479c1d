"""What `stationwatch dev` reads from the worker's /metrics and shows."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from stationwatch.dev import AlreadyRunningError, dev_lock
from stationwatch.devstatus import StatusBoard, parse_metrics
from stationwatch.embedded_pg import redact
from stationwatch.metrics import WorkerMetrics


def _exposition() -> str:
    registry = CollectorRegistry()
    metrics = WorkerMetrics.create(registry)
    metrics.events.labels("station.heartbeat", "accepted").inc(90)
    metrics.events.labels("station.occupancy", "deadletter").inc(3)
    metrics.deadletters.labels("station.occupancy", "validation").inc(3)
    metrics.rows_written.labels("heartbeats").inc(80)
    metrics.rows_written.labels("occupancy").inc(7)
    metrics.stations.labels("online").set(40)
    metrics.stations.labels("offline").set(2)
    metrics.db_available.set(1)
    return generate_latest(registry).decode()


def test_parse_metrics_reads_the_worker_exposition() -> None:
    parsed = parse_metrics(_exposition())

    assert parsed.processed == 93
    assert parsed.deadletters == 3
    assert parsed.rows_written == {"heartbeats": 80, "occupancy": 7}
    assert parsed.stations == {"online": 40, "offline": 2}
    assert parsed.db_available == 1


def test_status_line_shows_what_the_user_needs() -> None:
    board = StatusBoard()
    board.count_sent(120)
    board.update(parse_metrics(_exposition()))
    board.rows = {"heartbeats": 80}

    line = board.line()

    for part in ("sent 120", "processed 93", "dead letters 3", "online 40", "heartbeats 80"):
        assert part in line
    assert "db up" in line
    assert board.render().row_count >= 8


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://sw:secret@db:5432/x", "postgresql://sw:***@db:5432/x"),
        ("postgresql://postgres@127.0.0.1:5432/x", "postgresql://postgres@127.0.0.1:5432/x"),
        ("postgresql://postgres:@/x?host=/tmp/pg", "postgresql://postgres:@/x?host=/tmp/pg"),
    ],
)
def test_redact_hides_passwords(url: str, shown: str) -> None:
    assert redact(url) == shown


def _hold(
    path: str, ready: multiprocessing.synchronize.Event, done: multiprocessing.synchronize.Event
) -> None:
    with dev_lock(Path(path)):
        ready.set()
        done.wait(30)


def test_lock_names_the_process_holding_it(tmp_path: Path) -> None:
    path = tmp_path / "dev.lock"
    ctx = multiprocessing.get_context("spawn")
    ready, done = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold, args=(str(path), ready, done))
    holder.start()
    try:
        assert ready.wait(30)
        with pytest.raises(AlreadyRunningError, match=rf"pid {holder.pid}\b"), dev_lock(path):
            pass
    finally:
        done.set()
        holder.join(30)
    with dev_lock(path):  # free again once the holder is gone
        assert path.read_text().strip().isdigit()
