"""One batch's steps around the pure ingest step: a hole in what the consumer hands over of a
partition is read again from the broker and folded in order; a partition taken up after a
rebalance is expected at its committed offset and judged from its last committed record."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError
from faust.types import TP

from schemas.topics import HEARTBEAT
from stationwatch.db.sink import Batch, Refused, WriteResult
from streams.batch import EARLY_ROWS, RowWriter, fold_and_judge, split_events, write_rows
from streams.holes import MAX_HOLE
from streams.liveness import Clock
from streams.resume import expect_committed, start_clocks
from streams.runtime import ticks_topic_name
from tests import factories
from tests.unit.streams.test_status_views import SETTINGS, make_runtime, tp

NOW = datetime(2026, 12, 2, 14, 0, tzinfo=UTC)
SID = "SY-0001"
TOPIC = SETTINGS.topic(HEARTBEAT)


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


def body(offset: int) -> bytes:
    return factories.dumps(factories.heartbeat(SID, NOW, seq=offset))


def heartbeat_event(offset: int, partition: int = 0) -> FakeEvent:
    message = FakeMessage(TOPIC, partition, offset, NOW.timestamp())
    return FakeEvent(message, SID.encode(), body(offset))


@dataclass
class BrokerRecord:
    offset: int
    key: bytes
    value: bytes
    timestamp: int = int(NOW.timestamp() * 1000)


@dataclass
class FakeReader:
    """The broker's side of reading a hole again: the partition's records from the offset
    sought to (``fail``: the broker cannot be reached)."""

    fail: bool = False
    asked: list[tuple[TopicPartition, int]] = field(default_factory=list)

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.partitions = partitions

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.asked.append((partition, offset))
        self.position = offset

    async def getmany(self, *partitions: TopicPartition, **_: Any) -> dict[Any, list[Any]]:
        if self.fail:
            raise KafkaConnectionError("the broker is gone")
        records = [BrokerRecord(o, SID.encode(), body(o)) for o in range(self.position, 20)]
        self.position = 20
        return {partitions[0]: records}


async def fold(
    offsets: list[int], reader: FakeReader, caplog: pytest.LogCaptureFixture
) -> tuple[list[int], float, float, Any]:
    runtime = make_runtime(positions={tp(HEARTBEAT, 0): 10})
    runtime.table = {}
    runtime.record_reader = reader

    async def unknown_clock(
        partition: int, fetched: Any = None, assigned: Any = None
    ) -> Clock | None:
        return None  # folded, judged later: this test is about offsets

    runtime.clock = unknown_clock  # type: ignore[method-assign]
    records, ticks = split_events(runtime, [heartbeat_event(o) for o in offsets])
    with caplog.at_level(logging.WARNING, logger="streams.batch"):
        outcome = await fold_and_judge(runtime, records, ticks, NOW)
    seqs = [row[2] for row in outcome.batch.heartbeats]
    assert runtime.positions[tp(HEARTBEAT, 0)] == offsets[-1] + 1

    def counted(outcome_label: str) -> float:
        labels = {"topic": HEARTBEAT, "outcome": outcome_label}
        value = runtime.registry.get_sample_value(
            "stationwatch_input_offsets_skipped_total", labels
        )
        return value or 0

    return seqs, counted("read_again"), counted("lost"), outcome


@pytest.mark.parametrize(
    "offsets",
    [
        pytest.param([10, 11, 12], id="contiguous"),
        pytest.param([8, 9, 10], id="replayed-after-a-rebalance"),
    ],
)
async def test_a_partition_without_a_hole_is_taken_as_it_comes(
    offsets: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    reader = FakeReader()
    seqs, read_again, lost, _ = await fold(offsets, reader, caplog)
    assert seqs == offsets
    assert (read_again, lost, reader.asked, caplog.text) == (0, 0, [], "")


async def test_a_hole_is_read_again_and_folded_in_order(caplog: pytest.LogCaptureFixture) -> None:
    reader = FakeReader()
    seqs, read_again, lost, _ = await fold([10, 15, 16], reader, caplog)
    assert seqs == [10, 11, 12, 13, 14, 15, 16]  # the skipped four before the one after them
    assert reader.asked == [(TopicPartition(TOPIC, 0), 11)]
    assert (read_again, lost) == (4, 0)
    assert "went past offsets 11 to 14" in caplog.text
    assert "4 records read again from the broker" in caplog.text


async def test_a_hole_that_cannot_be_read_again_says_how_to_recover(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seqs, read_again, lost, _ = await fold([10, 15, 16], FakeReader(fail=True), caplog)
    assert seqs == [10, 15, 16]
    assert (read_again, lost) == (0, 4)
    assert "reset the consumer group's offset of this partition to 11" in caplog.text


async def test_a_jump_farther_than_dropped_records_reach_is_taken_as_a_seek(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A worker's first records can come from before its committed offsets (fetched before
    the seek) and then jump to them: what lies between was processed before."""
    reader = FakeReader()
    far = 11 + MAX_HOLE + 1  # offset 11 expected
    seqs, read_again, lost, _ = await fold([10, far], reader, caplog)
    assert seqs == [10, far]
    assert (read_again, lost, reader.asked) == (0, 0, [])


@dataclass
class FakeGroupReader:
    """The broker's answer for the worker group's committed offsets (``fail``: no answer)."""

    committed_at: dict[TopicPartition, int | None]
    fail: bool = False

    async def committed(self, partition: TopicPartition) -> int | None:
        if self.fail:
            raise KafkaConnectionError("the broker is gone")
        return self.committed_at.get(partition)


async def test_a_newly_assigned_partition_is_expected_at_its_committed_offset() -> None:
    """A hole before a partition's first record after a rebalance is seen: the first record is
    expected where the consumer is about to seek. Kept partitions keep what was processed;
    the tick topic and partitions without a commit are not checked."""
    kept, new, fresh = tp(HEARTBEAT, 0), tp(HEARTBEAT, 1), tp(HEARTBEAT, 2)
    occupancy, ticks = tp("station.occupancy", 1), TP(ticks_topic_name(SETTINGS), 1)
    runtime = make_runtime(positions={kept: 50})
    runtime.offset_reader = FakeGroupReader(
        {TopicPartition(*new): 7, TopicPartition(*occupancy): 3, TopicPartition(*kept): 40}
    )
    committed = await expect_committed(runtime, {kept, new, fresh, occupancy, ticks})
    assert committed == {new: 7, occupancy: 3}
    assert runtime.positions == {kept: 50, new: 7, occupancy: 3}

    # the first record after the assignment lies beyond the commit: the hole is read again
    records, _ = split_events(runtime, [heartbeat_event(12, partition=1)])
    runtime.record_reader = reader = FakeReader()
    runtime.table = {}

    async def unknown_clock(
        partition: int, fetched: Any = None, assigned: Any = None
    ) -> Clock | None:
        return None

    runtime.clock = unknown_clock  # type: ignore[method-assign]
    await fold_and_judge(runtime, records, {}, NOW)
    assert reader.asked == [(TopicPartition(TOPIC, 1), 7)]


async def test_no_committed_offsets_leaves_the_first_records_unchecked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runtime = make_runtime()
    runtime.offset_reader = FakeGroupReader({}, fail=True)
    with caplog.at_level(logging.WARNING, logger="streams.resume"):
        await expect_committed(runtime, {tp(HEARTBEAT, 0)})
    assert runtime.positions == {}
    assert "committed offsets not known after the rebalance" in caplog.text


async def test_a_heartbeat_partition_taken_up_is_judged_from_its_last_committed_record() -> None:
    """Its clock starts at the broker time of the record before the committed offset (all up to
    there was processed), not at its first heartbeat processed: reports folded before that
    heartbeat are judged too."""
    runtime = make_runtime()
    runtime.record_reader = reader = FakeReader()
    runtime.offset_reader = FakeOffsets(starts={}, ends={})
    occupancy = tp("station.occupancy", 1)
    await start_clocks(runtime, {1}, {tp(HEARTBEAT, 1): 7, occupancy: 3})
    assert reader.asked == [(TopicPartition(TOPIC, 1), 6)]
    assert runtime.watermarks.get(1) == NOW


@dataclass
class FakeOffsets:
    """The broker's first and end offsets of partitions (by partition number)."""

    starts: dict[int, int]
    ends: dict[int, int]

    async def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {t: self.starts[t.partition] for t in tps}

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {t: self.ends[t.partition] for t in tps}


async def test_a_heartbeat_partition_nobody_committed_is_judged_from_its_start() -> None:
    """Nothing committed (a new group): the clock starts just before the partition's first
    record, or at the moment of asking when it holds none; reports of its stations folded
    before its first heartbeat is processed are judged too."""
    runtime = make_runtime()
    runtime.record_reader = reader = FakeReader()
    runtime.offset_reader = FakeOffsets(starts={2: 4, 3: 0}, ends={2: 9, 3: 0})
    before = datetime.now(UTC)
    await start_clocks(runtime, {2, 3}, {tp(HEARTBEAT, 2): 0})  # a commit at 0: nothing done
    assert reader.asked == [(TopicPartition(TOPIC, 2), 4)]  # its first record
    assert runtime.watermarks.get(2) == NOW - timedelta(milliseconds=1)
    empty = runtime.watermarks.get(3)
    assert empty is not None
    assert before - timedelta(seconds=1) <= empty <= datetime.now(UTC)


async def test_a_clock_that_cannot_be_started_waits_for_the_first_heartbeat(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runtime = make_runtime()
    runtime.record_reader = FakeReader(fail=True)
    with caplog.at_level(logging.WARNING, logger="streams.resume"):
        await start_clocks(runtime, {1}, {tp(HEARTBEAT, 1): 7})
    assert runtime.watermarks.get(1) is None
    assert "clocks not started after the rebalance" in caplog.text


# -- rows written while the batch is folded ---------------------------------------------------
@dataclass
class PacedSink:
    """The database's side of the batch's writes: each takes ``pace`` seconds (``refuse``:
    rows of these heartbeat seqs are refused), noting what was written and whether two writes
    ever overlapped."""

    pace: float = 0.01
    refuse: set[int] = field(default_factory=set)
    started: int = 0
    writes: list[list[int]] = field(default_factory=list)
    active: int = 0
    overlapped: bool = False

    async def write(self, batch: Batch, *, log_context: str = "") -> WriteResult:
        self.started += 1
        self.active += 1
        self.overlapped |= self.active > 1
        try:
            await asyncio.sleep(self.pace)
        finally:
            self.active -= 1
        self.writes.append([row[2] for row in batch.heartbeats])
        refused = [
            Refused("heartbeats", row, "CheckViolationError") for row in batch.heartbeats
            if row[2] in self.refuse
        ]  # fmt: skip
        return WriteResult(written={"heartbeats": len(batch.heartbeats)}, refused=refused)


def paced_runtime(sink: PacedSink) -> Any:
    runtime: Any = make_runtime()
    runtime.table = {}
    runtime.sink = sink

    async def unknown_clock(
        partition: int, fetched: Any = None, assigned: Any = None
    ) -> Clock | None:
        return None

    runtime.clock = unknown_clock
    return runtime


async def test_rows_go_to_the_database_while_the_batch_is_folded_in_order() -> None:
    sink = PacedSink(refuse={7, 1400})
    runtime = paced_runtime(sink)
    count = 3 * EARLY_ROWS
    records, ticks = split_events(runtime, [heartbeat_event(o) for o in range(count)])
    rows = RowWriter(runtime, "(test)")

    outcome = await fold_and_judge(runtime, records, ticks, NOW, rows)
    assert sink.started  # handed over before the fold ended, not after
    assert len(outcome.batch.heartbeats) < count  # the rest, not yet handed over
    await write_rows(runtime, outcome, NOW, rows)

    assert len(sink.writes) > 1
    assert all(len(w) >= EARLY_ROWS for w in sink.writes[:-1])
    assert [seq for w in sink.writes for seq in w] == list(range(count))  # once, in order
    assert not sink.overlapped  # one write at a time
    # a refused row is its own record's dead letter, in whichever write it was
    assert [letter.offset for letter in outcome.dead_letters] == [7, 1400]
    counted = runtime.registry.get_sample_value(
        "stationwatch_rows_written_total", {"table": "heartbeats"}
    )
    assert counted == count


async def test_a_batch_given_up_cancels_its_write_in_progress() -> None:
    sink = PacedSink(pace=60)
    runtime = paced_runtime(sink)
    records, ticks = split_events(runtime, [heartbeat_event(o) for o in range(EARLY_ROWS)])
    rows = RowWriter(runtime, "(test)")
    await fold_and_judge(runtime, records, ticks, NOW, rows)
    assert rows.writing is not None
    assert not rows.writing.done()
    await rows.abandon()
    assert rows.writing.cancelled()
    assert not sink.writes
