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
  was lost, unlike in a run that never stopped.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from faust.types import TP

from schemas.topics import HEARTBEAT, INPUT_TOPICS
from stationwatch.errors import StationwatchError
from streams.runtime import END_MAX_AGE_S, Runtime

logger = logging.getLogger(__name__)

ASK_TIMEOUT_S = END_MAX_AGE_S * 5  # longest wait for the committed offsets, and for the clocks


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


async def start_clocks(runtime: Runtime, committed: dict[TP, int]) -> None:
    """Start each newly assigned heartbeat partition's clock at the broker time of its last
    committed record (:class:`streams.tracker.Watermarks`)."""
    heartbeat = runtime.settings.topic(HEARTBEAT)
    last = {tp.partition: offset - 1 for tp, offset in committed.items() if tp.topic == heartbeat}
    last = {partition: offset for partition, offset in last.items() if offset >= 0}
    if not last:
        return
    try:
        for partition, offset in sorted(last.items()):
            found = await asyncio.wait_for(
                runtime.read_again(heartbeat, partition, offset, offset + 1), ASK_TIMEOUT_S
            )
            for record in found:
                runtime.watermarks.advance(partition, record.message.timestamp)
    except (KafkaError, StationwatchError, TimeoutError) as exc:
        logger.warning(
            "the heartbeat partitions' clocks not started after the rebalance (%s): each "
            "starts with its first heartbeat processed",
            exc,
        )
