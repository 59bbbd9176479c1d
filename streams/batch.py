"""One batch of the ingest agent, in the order that makes a crash at any point lose nothing
and never hide an alert: fold and judge → rows to PostgreSQL (retried until written) → alerts
and dead letters to Kafka (awaited) → the live table and its changelog (awaited) → the batch
is acked (by the agent, when :func:`handle_batch` returns).

The rows of the records folded so far go to PostgreSQL while the rest of the batch is folded
(:class:`RowWriter`): one write at a time, in order, each in its own transaction, as batches
read one after another would be. Every one is written before anything else of the batch
leaves the worker; a crash before that leaves the batch unacked, and reading it again writes
nothing twice (the sink is idempotent)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import orjson
from aiokafka.errors import KafkaError
from faust.types import TP

from schemas.topics import HEARTBEAT
from stationwatch.db.sink import Batch, WriteResult
from stationwatch.errors import StationwatchError, WorkerStoppingError
from stationwatch.zone import wire
from streams.changelog import TableWrite
from streams.holes import MAX_HOLE
from streams.ingest import (
    Misplaced,
    Outcome,
    Overlay,
    Record,
    StateWrite,
    Tick,
    process_records,
    refused_letters,
    send_dead_letters,
    utcnow,
)
from streams.liveness import Clock
from streams.runtime import Runtime, ticks_topic_name
from streams.take import Batches, settle

logger = logging.getLogger(__name__)

TICK_BATCH = 20_000  # stations judged per tick and partition at most
MISPLACED_REPORTS = 20  # stations named in the log at most (the metric counts them all)
PART = 25  # records (or due stations) handled between two yields to the event loop
# Rows handed to PostgreSQL while the batch is still folded, at least this many at a time
# (fewer, smaller transactions are not worth their commit).
EARLY_ROWS = 500


async def handle_batch(
    runtime: Runtime, events: list[Any], send_deadletter: Any, send_alert: Any
) -> None:
    """Process one batch of events; returns only when everything it produced is durable."""
    records, ticks = split_events(runtime, events)
    now = utcnow()
    context = _describe(records) if records else f"(ticks for partitions {sorted(ticks)})"
    rows = RowWriter(runtime, context)
    try:
        outcome = await fold_and_judge(runtime, records, ticks, now, rows)
        await write_rows(runtime, outcome, now, rows)
    except BaseException:
        await rows.abandon()
        raise
    zone = runtime.config.liveness.zone  # the display zone: output times are shown in it
    await send_alerts(runtime, outcome, send_alert)
    await send_dead_letters(outcome.dead_letters, send_deadletter, zone=zone)
    report_misplaced(runtime, outcome.misplaced)
    await write_table(runtime, outcome.state_writes)
    writes = list(outcome.state_writes.items())
    for i in range(0, len(writes), PART):
        apply_state_writes(runtime, dict(writes[i : i + PART]))
        await asyncio.sleep(0)
    runtime.metrics.observe_processing_delays(outcome.event_times, utcnow())
    for event in ticks.values():
        runtime.positions[event.message.tp] = event.message.offset + 1


def split_events(runtime: Runtime, events: list[Any]) -> tuple[list[Record], dict[int, Any]]:
    """The input records of a batch, and its ticks (the newest event per partition)."""
    ticks_topic = ticks_topic_name(runtime.settings)
    records: list[Record] = []
    ticks: dict[int, Any] = {}
    for event in events:
        message = event.message
        if message.topic == ticks_topic:
            ticks[message.partition] = event
            continue
        records.append(as_record(runtime, event))
    return records, ticks


def as_record(runtime: Runtime, event: Any) -> Record:
    """A consumed event (Faust's, or one read again: :class:`streams.holes.ReadAgain`) as the
    ingest step takes it."""
    message = event.message
    return Record(
        topic=runtime.contract_topic(message.topic),
        partition=message.partition,
        offset=message.offset,
        key=event.key,
        value=event.value,
        ref=event,
    )


class RowWriter:
    """A batch's rows written while the batch is still folded: the rows so far are handed
    over whenever the last write is done, one write at a time, in order."""

    def __init__(self, runtime: Runtime, context: str) -> None:
        self.runtime = runtime
        self.context = context
        self.writing: asyncio.Task[None] | None = None
        self.written: list[tuple[Batch, WriteResult]] = []

    def idle(self) -> bool:
        return self.writing is None or self.writing.done()

    async def hand(self, batch: Batch) -> None:
        """Write ``batch`` after the write before it (awaited first: its failure is raised)."""
        await self.wait()
        self.writing = asyncio.ensure_future(self._write(batch))

    async def wait(self) -> None:
        """Until every batch handed over is written (a write that failed raises its error)."""
        if self.writing is not None:
            await self.writing

    async def write(self, batch: Batch) -> list[tuple[Batch, WriteResult]]:
        """The rest of the batch's rows, after those handed over."""
        await self.wait()
        if len(batch):
            await self._write(batch)
        return self.written

    async def abandon(self) -> None:
        """The batch is given up: a write still running is cancelled, and waited for until it
        has stopped (the sink's connection is not shared by two writes); a write that failed
        has its error taken (the batch's own error is the one raised)."""
        writing = self.writing
        if writing is None:
            return
        if not writing.done():
            writing.cancel()
            await asyncio.wait({writing})
        if not writing.cancelled():
            writing.exception()

    async def _write(self, batch: Batch) -> None:
        with self.runtime.metrics.db_batch_seconds.time():
            result = await self.runtime.sink.write(batch, log_context=self.context)
        self.written.append((batch, result))


async def fold_and_judge(
    runtime: Runtime,
    records: list[Record],
    ticks: dict[int, Any],
    now: datetime,
    rows: RowWriter | None = None,
) -> Outcome:
    """Fold the records into the stations' states and judge them, then judge the stations
    that are due on the partitions ticked; with ``rows``, the rows so far are handed to it
    whenever it is idle (:data:`EARLY_ROWS` at least).

    The batch is worked through in parts, yielding to the event loop between them, so the
    HTTP API (same loop) answers within milliseconds while a large batch is processed. Each
    part is judged by the clock as of the records folded so far (a backlog's own progress),
    and due stations (ticks) last, once the whole batch is folded."""
    heartbeat_topic = runtime.settings.topic(HEARTBEAT)
    outcome = Outcome()
    overlay = Overlay(runtime.table)
    fetched: dict[TP, int | None] = {}  # Runtime.clock's answers from the consumer
    assigned = runtime.app.consumer.assignment()

    async def run(part: list[Record], due: list[Tick], clocks: dict[int, Clock | None]) -> None:
        overlay.read_ahead(part, due)
        outcome.merge(
            process_records(
                part,
                overlay,
                now=now,
                clocks=clocks,
                config=runtime.config,
                ticks=due,
                metrics=runtime.metrics,
            )
        )
        overlay.absorb(outcome)
        if rows is not None and len(outcome.batch) >= EARLY_ROWS and rows.idle():
            await rows.hand(outcome.batch)
            outcome.batch = Batch()
        await asyncio.sleep(0)

    for i in range(0, len(records), PART):
        part: list[Record] = []
        for record in records[i : i + PART]:
            expected = runtime.positions.get(record.ref.message.tp)
            found = [record]
            if expected is not None and record.offset > expected:  # a hole: read it again
                found = [*await fill_hole(runtime, record, expected), record]
            for item in found:
                message = item.ref.message
                if message.topic == heartbeat_topic:
                    runtime.watermarks.advance(message.partition, message.timestamp)
                runtime.positions[message.tp] = message.offset + 1
            part.extend(found)
        partitions = {r.partition for r in part}
        clocks = {p: await runtime.clock(p, fetched, assigned) for p in partitions}
        await run(part, [], clocks)
    for partition, ref in ticks.items():
        runtime.ticks_pending.discard(partition)
        clock = await runtime.clock(partition, fetched, assigned)
        if clock is None:
            continue
        due = runtime.due.pop_due(partition, clock.judge, TICK_BATCH)
        for i in range(0, len(due), PART):
            await run([], [Tick(partition, due[i : i + PART], ref)], {partition: clock})
    return outcome


async def write_rows(runtime: Runtime, outcome: Outcome, now: datetime, rows: RowWriter) -> None:
    """Write the batch's rows (those not handed to ``rows`` yet, after those that were),
    retried until written; a row the database refuses becomes a dead letter of the record
    behind it."""
    for batch, result in await rows.write(outcome.batch):
        for table_name, count in result.written.items():
            runtime.metrics.rows_written.labels(table_name).inc(count)
        outcome.dead_letters.extend(
            refused_letters(
                batch, result.refused, config=runtime.config, now=now, metrics=runtime.metrics
            )
        )


async def send_alerts(runtime: Runtime, outcome: Outcome, send_alert: Any) -> None:
    """Hand every alert to the producer, then wait until the broker has them all: before the
    batch's offsets move."""
    zone = runtime.config.liveness.zone
    deliveries = []
    for alert in outcome.alerts:
        deliveries.append(
            await send_alert(alert.station_id.encode(), orjson.dumps(wire(alert, zone)))
        )
        runtime.metrics.alerts.labels(alert.kind, alert.state).inc()
        logger.info(
            "alert %s %s %s (starts %s, id %s)",
            alert.station_id,
            alert.kind,
            alert.state,
            alert.starts_at,
            alert.alert_id,
        )
    await asyncio.gather(*deliveries)


async def work_through(batches: Batches, handle: Callable[[list[Any]], Awaitable[None]]) -> None:
    """The ingest agent's life: each batch handled to the end (and acked as the next is
    asked for, :func:`streams.take.take_batches`). A batch given up (the worker stopping, the
    agent cancelled, a crash) is abandoned, never acked: read again at the next start. However
    the agent ends, the batches end with it (their filler stops, what it holds is settled):
    nothing of a crashed agent takes events from the one Faust starts again, or keeps a
    rebalance waiting. Closed where it waits (its coroutine closed, never to run on: nothing
    may be awaited then), the batches are ended without waiting for their filler."""
    closed = False
    try:
        async for events in batches:
            try:
                await handle(events)
            except (WorkerStoppingError, asyncio.CancelledError) as exc:
                abandon(events)
                logger.warning(
                    "stopped with a batch of %d records unfinished (%s); "
                    "its offsets are not committed, it is processed again at the next start",
                    len(events),
                    str(exc) or type(exc).__name__,
                )
                if isinstance(exc, asyncio.CancelledError):
                    raise
                return
            except BaseException:
                # a crash (or the coroutine closed): settled (a rebalance does not wait for
                # it), never committed (read again at the next start)
                abandon(events)
                raise
    except GeneratorExit:
        closed = True
        batches.abort()
        raise
    finally:
        if not closed:
            await batches.aclose()


def abandon(events: list[Any]) -> None:
    """Give up a batch when stopping mid-way, without acknowledging it: its offsets are never
    committed, so its records are read again at the next start.

    A message whose ``acked`` flag is set is settled for the consumer (Faust's shutdown stops
    waiting for it, and the stream's ack of the batch becomes a no-op) but never enters the
    consumer's committable offsets, which only ``Consumer.ack`` fills."""
    for event in events:
        settle(event)


async def fill_hole(runtime: Runtime, record: Record, expected: int) -> list[Record]:
    """The records the consumer went past before ``record`` (offsets ``expected`` to its own
    minus one), read again from the broker (:mod:`streams.holes`)."""
    message = record.ref.message
    skipped = message.offset - expected
    if skipped > MAX_HOLE:
        runtime.metrics.offsets_skipped.labels(record.topic, "jump").inc(skipped)
        logger.info(
            "%s/%d: the consumer jumped from offset %d to %d, farther than records dropped "
            "can reach: taken as the seek to the committed offset",
            record.topic,
            record.partition,
            expected - 1,
            message.offset,
        )
        return []
    try:
        events = await runtime.read_again(
            message.topic, message.partition, expected, message.offset
        )
    except (KafkaError, StationwatchError, TimeoutError) as exc:
        runtime.metrics.offsets_skipped.labels(record.topic, "lost").inc(skipped)
        logger.error(  # noqa: TRY400 - the offsets are the story, not the trace
            "%s/%d: the consumer went past offsets %d to %d without handing them over, and "
            "reading them again failed (%s): to process them, reset the consumer group's "
            "offset of this partition to %d and restart the workers",
            record.topic,
            record.partition,
            expected,
            message.offset - 1,
            exc,
            expected,
        )
        return []
    runtime.metrics.offsets_skipped.labels(record.topic, "read_again").inc(skipped)
    logger.warning(
        "%s/%d: the consumer went past offsets %d to %d without handing them over; "
        "%d records read again from the broker",
        record.topic,
        record.partition,
        expected,
        message.offset - 1,
        len(events),
    )
    return [as_record(runtime, event) for event in events]


def report_misplaced(runtime: Runtime, misplaced: list[Misplaced]) -> None:
    """Say loudly, once per station, that records arrive where they were not expected."""
    for item in misplaced:
        kind = "moved" if item.moved else "partitioner"
        runtime.metrics.partition_mismatches.labels(item.topic, kind).inc()
        reported = runtime.misplaced_reported
        if item.station_id in reported or len(reported) > MISPLACED_REPORTS:
            continue
        reported.add(item.station_id)
        if len(reported) > MISPLACED_REPORTS:
            logger.warning(
                "more stations arrive on unexpected partitions; only "
                "stationwatch_partition_mismatches_total counts them from now on"
            )
            continue
        if item.moved:
            logger.error(
                "records of %s now arrive on partition %d (%s), its earlier ones on %d: its "
                "producers partition its key differently (e.g. per topic or per client); "
                "every producer must use one partitioner for all station topics, or its state "
                "is split between workers",
                item.station_id,
                item.arrived,
                item.topic,
                item.expected,
            )
        else:
            logger.warning(
                "records of %s arrive on partition %d (%s), where the default Kafka "
                "partitioner (murmur2) would put them on %d: its producer partitions "
                "differently; the station is owned by the partition its records arrive on "
                "(stationwatch_partition_mismatches_total counts these)",
                item.station_id,
                item.arrived,
                item.topic,
                item.expected,
            )


async def write_table(runtime: Runtime, writes: dict[str, StateWrite]) -> None:
    """The stations that changed, to the live table and its changelog (delivered)."""
    assert runtime.writer is not None  # noqa: S101 - set with the agent (install_ingest)
    await runtime.writer.write(
        TableWrite(station_id, write.partition, None if write.remove else write.value)
        for station_id, write in writes.items()
        if write.remove or write.value is not None
    )


def apply_state_writes(runtime: Runtime, writes: dict[str, StateWrite]) -> None:
    """What follows a station's write: its next judging, the API server, station_current."""
    feed = runtime.feed
    for station_id, write in writes.items():
        if write.remove:
            runtime.due.forget(station_id)
            if feed is not None:
                feed.remove(station_id)
            runtime.current_removed.add(station_id)
            runtime.current_dirty.pop(station_id, None)
            runtime.current_listed.discard(station_id)
        else:
            runtime.due.schedule(station_id, write.partition, write.next_due, write.liveness)
            runtime.current_removed.discard(station_id)  # removed and registered again
            if write.value is not None:
                if feed is not None:
                    feed.put(station_id, write.partition, write.value)
                runtime.current_dirty[station_id] = write.state
                if write.listed:
                    runtime.current_listed.add(station_id)


def _describe(records: list[Record]) -> str:
    first, last = records[0], records[-1]
    return (
        f"(batch {first.topic}/{first.partition}@{first.offset}"
        f" … {last.topic}/{last.partition}@{last.offset})"
    )
