"""stationwatch.collector: young collections far apart, and each collection timed."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from stationwatch import collector
from stationwatch.metrics import WorkerMetrics


@pytest.fixture
def thresholds() -> Iterator[None]:
    saved = gc.get_threshold()
    yield
    gc.set_threshold(*saved)


@pytest.mark.usefixtures("thresholds")
def test_only_the_young_threshold_changes() -> None:
    gc.set_threshold(700, 10, 10)
    collector.collect_young_less_often()
    assert gc.get_threshold() == (collector.YOUNG_THRESHOLD, 10, 10)


@pytest.mark.usefixtures("thresholds")
def test_fewer_young_collections_for_objects_in_flight() -> None:
    """Batches of objects that live a while, as a worker's do: the young generation is
    collected once per YOUNG_THRESHOLD new objects, not once per 700."""

    def young_collections() -> int:
        before = int(gc.get_stats()[0]["collections"])
        held: list[list[int]] = []
        for _ in range(20):  # 20 batches of 10,000 containers, each kept until the next
            held = [[i] for i in range(10_000)]
        del held
        return int(gc.get_stats()[0]["collections"]) - before

    gc.set_threshold(700, 10, 10)
    default = young_collections()
    collector.collect_young_less_often()
    assert young_collections() <= 2 < 200 <= default


def test_every_collection_is_timed_by_generation() -> None:
    registry = CollectorRegistry()
    metrics = WorkerMetrics.create(registry)
    callback = collector.time_collections(metrics.gc_pauses)
    try:
        gc.collect(0)
        gc.collect(2)
    finally:
        collector.stop_timing(callback)
    assert callback not in gc.callbacks

    def sample(suffix: str, generation: str) -> float | None:
        name = f"stationwatch_gc_pause_seconds_{suffix}"
        return registry.get_sample_value(name, {"generation": generation})

    assert (sample("count", "0") or 0) >= 1
    assert (sample("count", "2") or 0) >= 1
    assert (sample("sum", "2") or 0) > 0
