"""The metrics module: what the worker's processing-delay histogram records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import get_args

from prometheus_client import CollectorRegistry

from schemas.alerts import AlertKind
from stationwatch.metrics import NotifierMetrics, WorkerMetrics

NOW = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
NAME = "stationwatch_processing_delay_seconds"


def test_each_input_is_one_observation_of_its_delay_by_topic() -> None:
    registry = CollectorRegistry()
    metrics = WorkerMetrics.create(registry)
    metrics.observe_processing_delays(
        [
            ("station.heartbeat", NOW - timedelta(seconds=0.2)),
            ("station.heartbeat", NOW - timedelta(seconds=40)),
            ("station.status", NOW - timedelta(hours=2)),
        ],
        NOW,
    )

    def value(suffix: str, topic: str, **labels: str) -> float | None:
        return registry.get_sample_value(f"{NAME}_{suffix}", {"topic": topic, **labels})

    assert value("count", "station.heartbeat") == 2
    assert value("sum", "station.heartbeat") == 40.2
    assert value("bucket", "station.heartbeat", le="0.25") == 1
    assert value("bucket", "station.heartbeat", le="30.0") == 1
    assert value("bucket", "station.heartbeat", le="60.0") == 2
    assert value("count", "station.status") == 1
    assert value("bucket", "station.status", le="3600.0") == 0
    assert value("bucket", "station.status", le="21600.0") == 1
    assert value("count", "station.occupancy") is None  # nothing observed, no series


def test_an_event_time_in_the_future_counts_as_no_delay() -> None:
    registry = CollectorRegistry()
    metrics = WorkerMetrics.create(registry)
    metrics.observe_processing_delays([("station.occupancy", NOW + timedelta(seconds=5))], NOW)
    labels = {"topic": "station.occupancy"}
    assert registry.get_sample_value(f"{NAME}_sum", labels) == 0
    assert registry.get_sample_value(f"{NAME}_bucket", {**labels, "le": "0.1"}) == 1


def test_every_alert_kind_and_state_is_counted_from_zero() -> None:
    """Worker and notifier: the first alert of a kind shows in rate(), not only the second."""
    registry = CollectorRegistry()
    WorkerMetrics.create(registry)
    NotifierMetrics.create(registry)
    for name in ("stationwatch_alerts_total", "stationwatch_notifier_alerts_total"):
        for kind in get_args(AlertKind):
            for state in ("firing", "resolved"):
                assert registry.get_sample_value(name, {"kind": kind, "state": state}) == 0
