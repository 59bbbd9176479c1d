"""One batch's steps around the pure ingest step: what the consumer hands over is checked for
holes in a partition's offsets."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas.topics import HEARTBEAT
from streams.batch import fold_and_judge, split_events
from streams.liveness import Clock
from tests import factories
from tests.unit.streams.test_status_views import SETTINGS, make_runtime, tp

NOW = datetime(2026, 12, 2, 14, 0, tzinfo=UTC)
SID = "SY-0001"


@dataclass
class FakeMessage:
    topic: str
    partition: int
    offset: int
    timestamp: float

    @property
    def tp(self) -> Any:
        return tp(HEARTBEAT, self.partition)


@dataclass
class FakeEvent:
    message: FakeMessage
    key: bytes
    value: bytes


def heartbeat_event(offset: int, seq: int) -> FakeEvent:
    body = factories.dumps(factories.heartbeat(SID, NOW, seq))
    message = FakeMessage(SETTINGS.topic(HEARTBEAT), 0, offset, NOW.timestamp())
    return FakeEvent(message, SID.encode(), body)


@pytest.mark.parametrize(
    ("offsets", "skipped"),
    [
        pytest.param([10, 11, 12], 0, id="contiguous"),
        pytest.param([8, 9, 10], 0, id="replayed-after-a-rebalance"),
        pytest.param([10, 15, 16], 4, id="a-hole"),
    ],
)
async def test_a_hole_in_a_partition_s_offsets_is_counted_and_named(
    offsets: list[int], skipped: int, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = make_runtime(positions={tp(HEARTBEAT, 0): 10})
    runtime.table = {}

    async def unknown_clock(partition: int, fetched: Any = None) -> Clock | None:
        return None  # folded, judged later: this test is about offsets

    runtime.clock = unknown_clock  # type: ignore[method-assign]
    events = [heartbeat_event(offset, n) for n, offset in enumerate(offsets, start=1)]
    records, ticks = split_events(runtime, events)
    with caplog.at_level(logging.ERROR, logger="streams.batch"):
        outcome = await fold_and_judge(runtime, records, ticks, NOW)
    assert len(outcome.batch.heartbeats) == len(offsets)
    assert runtime.positions[tp(HEARTBEAT, 0)] == offsets[-1] + 1
    counted = runtime.registry.get_sample_value(
        "stationwatch_input_offsets_skipped_total", {"topic": HEARTBEAT}
    )
    assert (counted or 0) == skipped
    if skipped:
        assert "offsets 11 to 14 were not processed" in caplog.text
        assert "reset the consumer group's offset of this partition to 11" in caplog.text
    else:
        assert caplog.text == ""
