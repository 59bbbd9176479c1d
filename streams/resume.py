"""Where a worker takes up the input partitions a rebalance gives it: the group's committed
offsets (the first record expected on each), and the clock of each heartbeat partition.

Both are asked for in the rebalance signal, which comes once the tables are recovered and
before the consumer seeks to the committed offsets:

- a partition's first record beyond its committed offset shows a hole the consumer left
  (:mod:`streams.holes`), read again like any other;
- a heartbeat partition's clock starts at the broker time of the last record committed there
  (read again from the broker): every heartbeat up to it was processed, by this worker or the
  one before, and the recovered table holds what they made of it. Without it the partition had
  no clock until its first heartbeat was processed, and occupancy and open/closed reports of its
  stations folded before then were never judged: an episode that began and ended in that time
  was lost, unlike in a run that never stopped. Where nothing was committed yet (a new group,
  or a partition nobody processed), the clock starts just before the partition's first record
  (nothing was sent there before it), or, on an empty partition, at the moment it was asked
  about: a worker that met a partition's occupancy reports before its first heartbeat lost
  their episodes the same way.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from faust.types import TP

from schemas.topics import HEARTBEAT, INPUT_TOPICS
from stationwatch.errors import StationwatchError
from streams.ingest import utcnow
from streams.runtime import END_MAX_AGE_S, Runtime

logger = logging.getLogger(__name__)

ASK_TIMEOUT_S = END_MAX_AGE_S * 5  # longest wait for the committed offsets, and for the clocks
FIRST_RECORD_MARGIN_S = 0.001  # a partition read from its start: its clock just before the first


async def expect_committed(runtime: Runtime, assigned: set[TP]) -> dict[TP, int]:
    """Expect the first record of each newly assigned input partition at the group's
    committed offset; returns those offsets (none where unknown: no commit yet, or the broker
    did not answer — then not checked)."""
    inputs = {runtime.settings.topic(name) for name in INPUT_TOPICS}
    new = [tp for tp in assigned if tp.topic in inputs and tp not in runtime.positions]
    if not new:
        return {}
    try:
        reader = await runtime.end_offset_reader()
        answers = await asyncio.wait_for(
            asyncio.gather(*(reader.committed(TopicPartition(*tp)) for tp in new)),
            ASK_TIMEOUT_S,
        )
    except (KafkaError, StationwatchError, TimeoutError) as exc:
        logger.warning(
            "committed offsets not known after the rebalance (%s): a hole before "
            "a partition's first record would go unseen",
            exc,
        )
        return {}
    committed = {tp: offset for tp, offset in zip(new, answers, strict=True) if offset is not None}
    runtime.positions.update(committed)
    return committed


async def start_clocks(runtime: Runtime, new: set[int], committed: dict[TP, int]) -> None:
    """Start the clock of each newly assigned heartbeat partition (``new``) at the broker
    time of its last committed record (:class:`streams.tracker.Watermarks`); one where
    nothing was committed yet starts at the beginning: just before its first record's time,
    or, while it holds none, at the moment the broker was asked."""
    heartbeat = runtime.settings.topic(HEARTBEAT)
    done = {tp.partition: offset for tp, offset in committed.items() if tp.topic == heartbeat}
    last = {p: done[p] - 1 for p in new if done.get(p, 0) > 0}
    fresh = sorted(p for p in new if p not in last)
    if not last and not fresh:
        return
    try:
        for partition, offset in sorted(last.items()):
            await clock_from_record(runtime, partition, offset, 0.0)
        if fresh:
            await clocks_from_start(runtime, fresh)
    except (KafkaError, StationwatchError, TimeoutError) as exc:
        logger.warning(
            "the heartbeat partitions' clocks not started after the rebalance (%s): each "
            "starts with its first heartbeat processed",
            exc,
        )


async def clock_from_record(runtime: Runtime, partition: int, offset: int, before: float) -> None:
    """The partition's clock at the broker time of its record at ``offset``, less ``before``
    seconds."""
    heartbeat = runtime.settings.topic(HEARTBEAT)
    found = await asyncio.wait_for(
        runtime.read_again(heartbeat, partition, offset, offset + 1), ASK_TIMEOUT_S
    )
    for record in found:
        runtime.watermarks.advance(partition, record.message.timestamp - before)


async def clocks_from_start(runtime: Runtime, partitions: list[int]) -> None:
    """Clocks of heartbeat partitions read from their beginning: nothing was sent there before
    the first record, and nothing before the moment an empty one was asked about."""
    heartbeat = runtime.settings.topic(HEARTBEAT)
    tps = [TopicPartition(heartbeat, p) for p in partitions]
    reader = await runtime.end_offset_reader()
    asked = utcnow().timestamp()
    starts, ends = await asyncio.wait_for(
        asyncio.gather(reader.beginning_offsets(tps), reader.end_offsets(tps)), ASK_TIMEOUT_S
    )
    for tp in tps:
        if ends[tp] <= starts[tp]:
            runtime.watermarks.advance(tp.partition, asked)
        else:
            await clock_from_record(runtime, tp.partition, starts[tp], FIRST_RECORD_MARGIN_S)
