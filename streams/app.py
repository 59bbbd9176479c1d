"""The Faust app of a stationwatch worker: input topics, the live station-state table, the
ingest agent, the liveness timer, and the feed of its API server process (`streams.feed`).
Built by :func:`create_app`.

One agent consumes the four input topics and the worker's tick topic (all co-partitioned with
the table's changelog). A batch is handled in this order, so that a crash at any point loses
nothing and never hides an alert: fold and judge → rows to PostgreSQL (retried until written)
→ alerts and dead letters to Kafka (awaited) → table (changelog) → the batch is acked.
The timer only sends ticks ("partition p has stations due"); judging happens in the agent.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import faust
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from faust.types import TP
from prometheus_client import CollectorRegistry

from schemas.topics import ALERTS, DEADLETTER, HEARTBEAT, INPUT_TOPICS
from stationwatch.db.sink import CurrentWriter, TimescaleSink, station_current_row
from stationwatch.errors import DatabaseUnavailableError, StationwatchError, WorkerStoppingError
from stationwatch.kafka_auth import broker_credentials, start_offset_reader
from stationwatch.metrics import WorkerMetrics
from stationwatch.settings import Settings
from stationwatch.zone import wire
from streams.feed import ApiFeed, Snapshot
from streams.freshness import fresh_until
from streams.ingest import (
    IngestConfig,
    Misplaced,
    Outcome,
    Overlay,
    Record,
    Tick,
    process_records,
    refused_letters,
    send_dead_letters,
    utcnow,
)
from streams.liveness import Clock, LivenessConfig
from streams.state import StationState
from streams.state_codec import decode_state, stored_partition
from streams.tracker import DueIndex, Watermarks, partition_for
from streams.views import live_state

logger = logging.getLogger(__name__)

STATE_TABLE = "station_state"
TICK_BATCH = 20_000  # stations judged per tick and partition at most
MISPLACED_REPORTS = 20  # stations named in the log at most (the metric counts them all)
STOP_STEP_S = 12  # longest wait for one step of stopping (API server, sink, writer)
END_EVERY_S = 0.25  # how often the broker is asked for the heartbeat partitions' end offsets
END_MAX_AGE_S = 2.0  # an older answer does not make a partition caught up
PART = 25  # records (or due stations) handled between two yields to the event loop


def ticks_topic_name(settings: Settings) -> str:
    return settings.topic(f"{settings.app_id}-liveness-ticks")


@dataclass
class Runtime:
    """What the agents, the timer and the views of one worker share."""

    settings: Settings
    app: faust.App
    table: Any
    sink: TimescaleSink
    metrics: WorkerMetrics
    registry: CollectorRegistry
    config: IngestConfig
    # next offset to process, per input partition this worker has processed
    positions: dict[TP, int] = field(default_factory=dict)
    due: DueIndex = field(default_factory=DueIndex)
    indexed: bool = False  # the owned stations are scheduled and fed to the API server
    # stations to write to station_current: their new state, or None to read it from the table
    current_dirty: dict[str, StationState | None] = field(default_factory=dict)
    current_removed: set[str] = field(default_factory=set)
    health: tuple[bool, dict[str, Any]] = (False, {"status": "starting", "problems": ["starting"]})
    feed: ApiFeed | None = None
    current: CurrentWriter = field(default_factory=lambda: CurrentWriter(""))
    watermarks: Watermarks = field(default_factory=Watermarks)
    ticks_pending: set[int] = field(default_factory=set)
    misplaced_reported: set[str] = field(default_factory=set)  # stations already logged
    started_at: datetime = field(default_factory=utcnow)
    # per heartbeat partition: when the broker was asked for its end offset, and the answer
    end_offsets: dict[TP, tuple[datetime, int]] = field(default_factory=dict)
    offset_reader: AIOKafkaConsumer | None = None  # the client that asks for them
    # the tables hold the current assignment's state (from Faust's rebalance signals)
    recovered: bool = False

    def contract_topic(self, broker_topic: str) -> str:
        prefix = self.settings.topic_prefix
        return broker_topic[len(prefix) :] if prefix else broker_topic

    def active_partitions(self) -> set[int]:
        heartbeat = self.settings.topic(HEARTBEAT)
        return {
            tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == heartbeat
        }

    async def clock(self, partition: int) -> Clock | None:
        """The time stations of ``partition`` are judged at, or None while it cannot be known.

        Caught up: when the broker was last asked for the partition's end offset (at most
        ``END_MAX_AGE_S`` ago, by :func:`install_end_offsets`) and everything up to that end has
        been processed — then every heartbeat sent before that moment has been seen. The fetch
        highwater alone is not enough: it is as old as the partition's last fetch, which a
        worker busy with a backlog may not have repeated for seconds, and the stations whose
        heartbeats arrived since would be judged silent. Behind: the broker time of the newest
        heartbeat processed there, so a backlog is not mistaken for silence.
        """
        wall = utcnow()
        tp = TP(self.settings.topic(HEARTBEAT), partition)
        consumer = self.app.consumer
        if tp not in consumer.assignment():
            return None
        highwater = consumer.highwater(tp)
        if highwater is None:
            return None  # nothing fetched yet since the assignment
        position = self.positions.get(tp)
        if position is None:
            position = await consumer.position(tp)
            if position is None:
                return None
        lag = self.settings.caught_up_lag
        known = self.end_offsets.get(tp)
        if known is not None and highwater - position <= lag:
            asked, end = known
            if end - position <= lag and (wall - asked).total_seconds() <= END_MAX_AGE_S:
                return Clock(judge=min(asked, wall), wall=wall)
        mark = self.watermarks.get(partition)
        if mark is None:
            return None
        return Clock(judge=min(mark, wall), wall=wall)


def advertised_host(settings: Settings) -> str:
    if settings.web_bind not in {"0.0.0.0", "::", ""}:  # noqa: S104 - comparing, not binding
        return settings.web_bind
    return socket.gethostname()


def create_app(settings: Settings, registry: CollectorRegistry | None = None) -> Runtime:
    registry = registry or CollectorRegistry()
    metrics = WorkerMetrics.create(registry)
    host = settings.web_host or advertised_host(settings)
    app = faust.App(
        settings.app_id,
        broker=settings.kafka,
        broker_credentials=broker_credentials(settings),
        store=settings.store,
        datadir=str(settings.data_dir) if settings.data_dir else None,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor or 1,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.broker_session_timeout_s,
        broker_heartbeat_interval=settings.broker_heartbeat_interval_s,
        # HTTP is served by the API server process on this URL (streams.feed): Faust's own web
        # server stays off; the URL still tells the other workers where this one answers.
        web_enabled=False,
        web_port=settings.web_port,
        web_bind=settings.web_bind,
        web_host=host,
        canonical_url=f"http://{host}:{settings.web_port}",
        producer_acks=-1,
        producer_max_batch_size=settings.producer_max_batch_bytes,
        key_serializer="raw",
        value_serializer="raw",
        processing_guarantee="at_least_once",
    )
    table = app.tables.add(
        StationTable(
            app,
            name=STATE_TABLE,
            default=None,
            beacon=app.tables.beacon,
            partitions=settings.partitions,
            key_type=str,  # raw bytes on the changelog, hashed like the input keys
            value_type=bytes,  # raw, as stored: streams.state_codec
        )
    )
    sink = TimescaleSink(
        settings.dsn,
        on_retry=metrics.db_retries.inc,
        on_available=lambda ok: metrics.db_available.set(1 if ok else 0),
        stopping=lambda: bool(app.should_stop),
    )
    metrics.db_available.set(1)  # until a write fails
    config = IngestConfig(
        topic_prefix=settings.topic_prefix,
        max_bytes=settings.max_message_bytes,
        max_skew=timedelta(seconds=settings.max_clock_skew_s),
        max_age=timedelta(seconds=settings.max_message_age_s),
        liveness=liveness_config(settings),
        partitions=settings.partitions,
    )
    runtime = Runtime(settings, app, table, sink, metrics, registry, config)
    runtime.current = CurrentWriter(settings.dsn)

    def raw_topic(name: str) -> Any:
        return app.topic(
            name,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.partitions,
        )

    inputs = app.topic(
        *(settings.topic(name) for name in INPUT_TOPICS),
        ticks_topic_name(settings),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
    )
    deadletters = raw_topic(settings.topic(DEADLETTER))
    alerts = raw_topic(settings.topic(ALERTS))
    ticks = raw_topic(ticks_topic_name(settings))

    # Each returns once the record is handed to the producer, with its delivery to await: a
    # batch's records go out together and are awaited together (in order per partition).
    async def send_deadletter(key: bytes | None, value: bytes) -> Awaitable[Any]:
        delivery: Awaitable[Any] = await deadletters.send(key=key, value=value)
        return delivery

    async def send_alert(key: bytes, value: bytes) -> Awaitable[Any]:
        delivery: Awaitable[Any] = await alerts.send(key=key, value=value)
        return delivery

    @app.agent(inputs, name="ingest", concurrency=1)
    async def ingest(stream: faust.StreamT[bytes]) -> None:
        batches = stream.take_events(  # type: ignore[attr-defined] # missing from StreamT
            settings.batch_size, within=settings.batch_within_s
        )
        async for events in batches:
            try:
                await handle_batch(runtime, events, send_deadletter, send_alert)
            except (WorkerStoppingError, asyncio.CancelledError) as exc:
                abandon(events)
                logger.warning(
                    "stopped with a batch of %d records unfinished (%s); "
                    "its offsets are not committed, it is processed again at the next start",
                    len(events),
                    exc or "cancelled",
                )
                await batches.aclose()
                if isinstance(exc, asyncio.CancelledError):
                    raise
                return

    @app.timer(interval=settings.tick_interval_s)  # type: ignore[untyped-decorator]
    async def send_ticks() -> None:
        """Ask the agent to judge the partitions that have stations due (or need indexing)."""
        if app.rebalancing or not runtime.recovered:
            return
        if not runtime.indexed:
            index_owned_stations(runtime)
        now = utcnow().timestamp()
        for partition in runtime.active_partitions():
            if partition in runtime.ticks_pending:
                continue
            due = runtime.due.next_due(partition)
            if runtime.due.indexed and (due is None or due > now):
                continue
            runtime.ticks_pending.add(partition)
            await ticks.send(key=b"tick", value=b"{}", partition=partition)

    @app.timer(interval=settings.current_refresh_s)  # type: ignore[untyped-decorator]
    async def refresh_station_current() -> None:
        """Write the stations that changed to ``station_current`` (Grafana's live view)."""
        if not runtime.current_dirty and not runtime.current_removed:
            return
        changed, runtime.current_dirty = runtime.current_dirty, {}
        gone, runtime.current_removed = runtime.current_removed, set()
        rows: list[tuple[Any, ...]] = []
        pending = list(changed.items())
        for i in range(0, len(pending), PART):
            rows.extend(current_rows(runtime, pending[i : i + PART]))
            await asyncio.sleep(0)
        try:
            refused = await runtime.current.write(rows, sorted(gone))
        except DatabaseUnavailableError as exc:
            runtime.current_dirty = changed | runtime.current_dirty  # next time, newest first
            runtime.current_removed |= gone
            logger.warning("station_current not refreshed (%s); will retry", exc)
            return
        if refused:
            logger.error("station_current: the database refused the rows of %s", refused)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type] # mode's signal typing
    async def _on_revoked(sender: Any, *args: Any, **kwargs: Any) -> None:
        runtime.recovered = False  # a rebalance begins: the tables are recovered again

    @app.on_rebalance_complete.connect  # type: ignore[arg-type] # mode's signal typing
    async def _on_rebalance(sender: Any, **kwargs: Any) -> None:
        """Sent once the tables are recovered for the new assignment (before the streams
        resume; ``app.rebalancing`` stays true until they have)."""
        runtime.recovered = True
        assigned = app.consumer.assignment()
        runtime.positions = {tp: p for tp, p in runtime.positions.items() if tp in assigned}
        runtime.end_offsets.clear()
        runtime.due.reset()
        runtime.indexed = False
        if runtime.feed is not None:
            runtime.feed.reset()
        runtime.watermarks.reset()
        runtime.ticks_pending.clear()

    async def crash(exc: BaseException) -> None:
        await app.crash(exc)

    def snapshot() -> Snapshot | None:
        """The owned stations for a (re)started API server, unless a rebalance is under way
        (then index_owned_stations feeds it once the partitions are recovered)."""
        if not runtime.indexed or app.rebalancing or not runtime.recovered:
            return None
        active = runtime.active_partitions()
        return sorted(active), owned_states(runtime, active)

    runtime.feed = ApiFeed(settings, snapshot=snapshot, on_fatal=crash)

    @app.service
    class _Lifecycle(faust.Service):
        async def on_start(self) -> None:
            if runtime.feed is not None:
                await runtime.feed.start()

        async def on_stop(self) -> None:
            """Each step is bounded: a stop never hangs on one of them (the API server exits
            with the worker anyway, and connections close with the process)."""
            steps: list[tuple[str, Any]] = [
                ("the API server", runtime.feed.stop() if runtime.feed is not None else None),
                ("the database sink", sink.close()),
                ("the report of the stop", report_stopped(runtime)),
                (
                    "the end offset reader",
                    runtime.offset_reader.stop() if runtime.offset_reader is not None else None,
                ),
                ("the station_current writer", runtime.current.close()),
            ]
            for name, step in steps:
                if step is None:
                    continue
                try:
                    await asyncio.wait_for(step, STOP_STEP_S)
                except TimeoutError:
                    logger.error(  # noqa: TRY400 - the overrun is the whole story
                        "stopping: %s did not stop within %d s; going on", name, STOP_STEP_S
                    )

    install_end_offsets(runtime)
    from streams.status import install_status_report, report_stopped

    install_status_report(runtime)
    from streams.holidays import install_holiday_reload

    install_holiday_reload(runtime)
    return runtime


def install_end_offsets(runtime: Runtime) -> None:
    app = runtime.app

    @app.timer(interval=END_EVERY_S)  # type: ignore[untyped-decorator]
    async def ask_end_offsets() -> None:
        """Ask the broker for the end offsets of the heartbeat partitions this worker holds,
        off the ingest path (the agent only reads the answers: :meth:`Runtime.clock`), with a
        client of its own (asked through the worker's consumer, each answer waited for its
        fetches: over a second). On a broker that counts a producer batch as one record the
        answer may fall short of the true end, never beyond it: enough to see that records
        arrived after the last fetch."""
        heartbeat = runtime.settings.topic(HEARTBEAT)
        tps = [tp for tp in app.consumer.assignment() if tp.topic == heartbeat]
        if not tps or app.rebalancing:
            return
        asked = utcnow()
        try:
            if runtime.offset_reader is None:
                runtime.offset_reader = await start_offset_reader(runtime.settings)
            ends = await runtime.offset_reader.end_offsets(
                [TopicPartition(tp.topic, tp.partition) for tp in tps]
            )
        except (KafkaError, StationwatchError) as exc:  # judged by the stream meanwhile
            logger.debug("end offsets of %s unavailable: %s", heartbeat, exc)
            return
        for tp, end in ends.items():
            runtime.end_offsets[TP(tp.topic, tp.partition)] = (asked, end)


def abandon(events: list[Any]) -> None:
    """Give up a batch when stopping mid-way, without acknowledging it: its offsets are never
    committed, so its records are read again at the next start.

    A message whose ``acked`` flag is set is settled for the consumer (Faust's shutdown stops
    waiting for it, and the stream's ack of the batch becomes a no-op) but never enters the
    consumer's committable offsets, which only ``Consumer.ack`` fills."""
    for event in events:
        event.message.acked = True


def liveness_config(settings: Settings) -> LivenessConfig:
    from zoneinfo import ZoneInfo

    return LivenessConfig(
        stale_after=settings.stale_after,
        offline_after=settings.offline_after,
        recovery_beats=settings.recovery_heartbeats,
        flap_changes=settings.flap_changes,
        flap_window=timedelta(seconds=settings.flap_window_s),
        closed_grace=timedelta(seconds=settings.closed_grace_s),
        zone=ZoneInfo(settings.timezone),
        pending={k: timedelta(seconds=v) for k, v in settings.alert_pending_s.items()},
        keep_firing={k: timedelta(seconds=v) for k, v in settings.alert_keep_firing_s.items()},
    )


async def handle_batch(
    runtime: Runtime, events: list[Any], send_deadletter: Any, send_alert: Any
) -> None:
    """Process one batch of events; returns only when everything it produced is durable."""
    ticks_topic = ticks_topic_name(runtime.settings)
    heartbeat_topic = runtime.settings.topic(HEARTBEAT)
    records: list[Record] = []
    tick_refs: dict[int, Any] = {}
    for event in events:
        message = event.message
        if message.topic == ticks_topic:
            tick_refs[message.partition] = event
            continue
        records.append(
            Record(
                topic=runtime.contract_topic(message.topic),
                partition=message.partition,
                offset=message.offset,
                key=event.key,
                value=event.value,
                ref=event,
            )
        )
    # The batch is worked through in parts, yielding to the event loop between them, so the
    # HTTP API (same loop) answers within milliseconds while a large batch is processed. Each
    # part is judged by the clock as of the records folded so far (a backlog's own progress),
    # and due stations (ticks) last, once the whole batch is folded.
    outcome = Outcome()
    overlay = Overlay(runtime.table)
    now = utcnow()

    async def run(part: list[Record], ticks: list[Tick], clocks: dict[int, Clock | None]) -> None:
        outcome.merge(
            process_records(
                part,
                overlay,
                now=now,
                clocks=clocks,
                config=runtime.config,
                ticks=ticks,
                metrics=runtime.metrics,
            )
        )
        overlay.absorb(outcome)
        await asyncio.sleep(0)

    for i in range(0, len(records), PART):
        part = records[i : i + PART]
        for record in part:
            message = record.ref.message
            if message.topic == heartbeat_topic:
                runtime.watermarks.advance(message.partition, message.timestamp)
            runtime.positions[message.tp] = message.offset + 1
        await run(part, [], {p: await runtime.clock(p) for p in {r.partition for r in part}})
    for partition, ref in tick_refs.items():
        runtime.ticks_pending.discard(partition)
        clock = await runtime.clock(partition)
        if clock is None:
            continue
        due = runtime.due.pop_due(partition, clock.judge, TICK_BATCH)
        for i in range(0, len(due), PART):
            await run([], [Tick(partition, due[i : i + PART], ref)], {partition: clock})
    context = _describe(records) if records else f"(ticks for partitions {sorted(tick_refs)})"
    if len(outcome.batch):
        with runtime.metrics.db_batch_seconds.time():
            result = await runtime.sink.write(outcome.batch, log_context=context)
        for table_name, count in result.written.items():
            runtime.metrics.rows_written.labels(table_name).inc(count)
        outcome.dead_letters.extend(
            refused_letters(
                outcome, result.refused, config=runtime.config, now=now, metrics=runtime.metrics
            )
        )
    zone = runtime.config.liveness.zone  # the display zone: output times are shown in it
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
    await asyncio.gather(*deliveries)  # every alert is with the broker before the offsets move
    await send_dead_letters(outcome.dead_letters, send_deadletter, zone=zone)
    report_misplaced(runtime, outcome.misplaced)
    writes = list(outcome.state_writes.items())
    for i in range(0, len(writes), PART):
        apply_state_writes(runtime, dict(writes[i : i + PART]))
        await asyncio.sleep(0)
    runtime.metrics.observe_processing_delays(outcome.event_times, utcnow())
    for event in tick_refs.values():
        runtime.positions[event.message.tp] = event.message.offset + 1


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


class StationTable(faust.Table):  # type: ignore[type-arg] # faust's generics are untyped
    """The live table. A station's changelog record goes to the partition its input arrived on
    (whatever its producers' partitioner), which the writer names: :meth:`put`, :meth:`drop`."""

    _partition: int | None = None

    def partition_for_key(self, key: Any) -> int | None:
        if self._partition is None:
            raise TypeError(f"{key!r}: the live table is written with put() or drop() only")
        return self._partition

    def put(self, key: str, value: Any, partition: int) -> None:
        self._partition = partition
        try:
            self[key] = value
        finally:
            self._partition = None

    def drop(self, key: str, partition: int) -> None:
        self._partition = partition
        try:
            self.pop(key, None)
        finally:
            self._partition = None


def apply_state_writes(runtime: Runtime, writes: dict[str, Any]) -> None:
    table, feed = runtime.table, runtime.feed
    for station_id, write in writes.items():
        if write.remove:
            table.drop(station_id, write.partition)
        elif write.value is not None:
            table.put(station_id, write.value, write.partition)
        if write.remove:
            runtime.due.forget(station_id)
            if feed is not None:
                feed.remove(station_id)
            runtime.current_removed.add(station_id)
            runtime.current_dirty.pop(station_id, None)
        else:
            runtime.due.schedule(station_id, write.partition, write.next_due, write.liveness)
            if write.value is not None:
                if feed is not None:
                    feed.put(station_id, write.partition, write.value)
                runtime.current_dirty[station_id] = write.state


def owned_states(runtime: Runtime, active: set[int]) -> Iterator[tuple[str, int, bytes]]:
    """Every station of the ``active`` partitions, from the live table: a station belongs to
    the partition its records arrive on (kept in its state; states stored before that was
    kept are placed by the default partitioner)."""
    partitions = runtime.settings.partitions
    for station_id, value in list(runtime.table.items()):
        if not value:
            continue
        partition = stored_partition(value)
        if partition is None:
            partition = partition_for(station_id, partitions)
        if partition in active:
            yield station_id, partition, value


def index_owned_stations(runtime: Runtime) -> None:
    """After a rebalance: every station of the partitions this worker now owns is due for a
    look, goes to station_current, and is fed to the API server."""
    feed = runtime.feed
    if feed is not None:
        feed.reset()
    active = runtime.active_partitions()
    owned = []
    for station_id, partition, value in owned_states(runtime, active):
        owned.append((station_id, partition))
        runtime.current_dirty[station_id] = None
        if feed is not None:
            feed.put(station_id, partition, value)
    if feed is not None:
        feed.ready(active)
    runtime.indexed = True
    count = runtime.due.rebuild(owned)
    logger.info("watching %d stations on partitions %s", count, sorted(active))
    freeze_long_lived(runtime)


def freeze_long_lived(runtime: Runtime) -> None:
    """Once the tables are recovered and indexed: collect everything, then move what survives
    (the worker's and Faust's long-lived structures) out of the collector's reach, so later
    full collections stay short. The live states are bytes the collector never tracks. What
    an earlier rebalance froze is collected again first, so nothing frozen leaks."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    runtime.metrics.gc_frozen.set(gc.get_freeze_count())


def current_rows(
    runtime: Runtime, changed: list[tuple[str, StationState | None]]
) -> list[tuple[Any, ...]]:
    """``station_current`` rows of these stations: from the state the batch left (None: as
    the table holds it)."""
    now = utcnow()
    config = runtime.config.liveness
    rows = []
    for station_id, state in changed:
        if state is None:
            value = runtime.table.get(station_id)
            if not value:
                continue
            state = decode_state(value)
        view = live_state(state, config.zone, now)
        rows.append(station_current_row(view, now, fresh_until(state, config)))
    return rows


def _describe(records: list[Record]) -> str:
    first, last = records[0], records[-1]
    return (
        f"(batch {first.topic}/{first.partition}@{first.offset}"
        f" … {last.topic}/{last.partition}@{last.offset})"
    )
