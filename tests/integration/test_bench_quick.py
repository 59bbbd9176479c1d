"""`stationwatch bench --quick` as a user (and CI) runs it: a subprocess with its own embedded
broker, scratch databases on the test PostgreSQL server and real workers. It must finish and
report every figure of issue 13 as a number; how fast the worker is does not matter here."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from stationwatch.allocator import find_jemalloc
from tests.integration.conftest import database_url_for

pytestmark = pytest.mark.integration

FIGURES = [
    "stations",
    "pipeline_events_per_s",
    "pipeline_ratio",
    "pipeline_compare_events_per_s",
    "compare_stations",
    "pipeline_scaling",
    "pipeline_gc_share",
    "pipeline_worker_cpu_us_per_event",
    "pipeline_compare_worker_cpu_us_per_event",
    "registry_events_per_s",
    "first_beats_per_s",
    "first_beats_compare_per_s",
    "first_beats_scaling",
    "registry_ratio",
    "raw_copy_rows_per_s",
    "sink_rows_per_s",
    "sink_ratio",
    "sink_rounds",
    "detection_delay_p50_s",
    "detection_delay_p99_s",
    "point_query_p99_ms",
    "nearby_p99_ms",
    "rss_bytes_per_station",
    "rss_marginal_bytes_per_station",
    "api_server_rss_bytes",
    "recovery_s",
    "failover_s",
    "failover_rebalance_s",
    "failover_assigned_s",
    "failover_caught_up_s",
    "two_worker_ratio",
    "detection_missed",
    "recovery_missed",
    "failover_missed",
    # today's fields, kept
    "produce_per_s",
    "raw_consume_per_s",
    "worker_ingest_per_s",
    "ingest_ratio_to_raw",
    "ingest_offered_per_s",
    "ingest_without_requests_per_s",
    "ingest_during_requests_per_s",
    "get_station_p99_ratio_to_raw",
    "nearby_p99_ratio_to_raw",
]
MACHINE = ["cores", "python", "broker", "postgresql"]


def test_the_quick_bench_reports_every_figure_as_a_number() -> None:
    env = {
        **os.environ,
        # the bench makes (and drops) scratch databases beside this one's
        "STATIONWATCH_DATABASE_URL": database_url_for("stationwatch"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "stationwatch.cli", "bench", "--quick"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout)
    assert "error" not in result
    for field in FIGURES:
        assert isinstance(result.get(field), int | float), (field, result.get(field))
    for ms in ("get_station_ms", "nearby_ms", "raw_http_ms"):
        assert isinstance(result[ms]["p99"], int | float)
    assert all(result["machine"].get(key) for key in MACHINE)
    # the pipeline's rounds: the comparison size's two around the bench size's two, in one
    # cycle in the quick run (so that cycle's scaling is the figure itself)
    rounds = result["pipeline_rounds"]
    small, large = result["compare_stations"], result["stations"]
    assert [r["stations"] for r in rounds] == [small, large, large, small]
    assert result["pipeline_scaling_by_cycle"] == [result["pipeline_scaling"]]
    assert all(r["events_per_s"] > 0 and r["heartbeats"] > 0 for r in rounds)
    assert all(r["idle_worker_cpu_share"] >= 0 for r in rounds)
    assert all((r.get("worker_cpu_us_per_event") or 0) > 0 for r in rounds), rounds
    assert all(0 < r["machine_busy_cores"] <= result["machine"]["cores"] + 0.1 for r in rounds)
    assert result["pipeline_min_backlog"] > 0  # the worker never waited, once warmed up
    assert result["pipeline_heartbeats"] == rounds[1]["heartbeats"] + rounds[2]["heartbeats"]
    # read off the worker process: jemalloc where installed (stationwatch.allocator)
    assert result["worker_allocator"] == ("jemalloc" if find_jemalloc() else "python")
    assert isinstance(result["met"], dict)
    assert "pipeline_events_per_s" in done.stderr  # the targets, printed beside the figures
