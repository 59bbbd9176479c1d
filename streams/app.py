"""The Faust app of a stationwatch worker, built by :func:`create_app`: the input topics, the
live station-state table (:mod:`streams.runtime`), the ingest agent (each batch:
:mod:`streams.batch`), the liveness ticks, the ``station_current`` refresh and the indexing
after a rebalance (:mod:`streams.owned`), the feed of its API server process
(:mod:`streams.feed`), its reports (:mod:`streams.status`) and the holiday calendar's reload.

One agent consumes the four input topics and the worker's tick topic (all co-partitioned with
the table's changelog). The timer only sends ticks ("partition p has stations due"); judging
happens in the agent.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable
from typing import Any

import faust
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from faust.types import TP
from prometheus_client import CollectorRegistry

from schemas.topics import ALERTS, DEADLETTER, HEARTBEAT, INPUT_TOPICS
from stationwatch.db.sink import CurrentWriter, TimescaleSink
from stationwatch.errors import StationwatchError
from stationwatch.heap import keep_released
from stationwatch.kafka_auth import broker_credentials
from stationwatch.metrics import WorkerMetrics
from stationwatch.settings import Settings
from streams.batch import handle_batch, work_through
from streams.changelog import BATCH_BYTES as CHANGELOG_BYTES
from streams.changelog import TableWriter
from streams.consumer import install_consumer
from streams.feed import ApiFeed, Snapshot
from streams.handover import StationApp, install_settled_buffer
from streams.holidays import install_holiday_reload
from streams.ingest import utcnow
from streams.output import OutputProducer
from streams.owned import index_owned_stations, owned_states, refresh_current
from streams.resume import expect_committed, start_clocks
from streams.runtime import (
    END_MAX_AGE_S,
    DeclaredTables,
    Runtime,
    add_station_table,
    ingest_config,
    liveness_config,
    ticks_topic_name,
)
from streams.sensors import QuietMonitor
from streams.status import install_status_report, report_stopped
from streams.take import take_batches

__all__ = ["END_MAX_AGE_S", "Runtime", "create_app", "liveness_config", "ticks_topic_name"]

logger = logging.getLogger(__name__)

STOP_STEP_S = 12  # longest wait for one step of stopping (API server, sink, writer)
END_EVERY_S = 0.25  # how often the broker is asked for the heartbeat partitions' end offsets
OTHER_ENDS_EVERY_S = 1.0  # … and for the other input partitions' (for the health report)
# Records the consumer hands over per fetch call: aiokafka's default is all it has fetched (up
# to 1 MiB per partition, some 30,000 heartbeats over 8 partitions), each made a Python object
# at once while the agent still works through the last batch. Those objects set the high-water
# mark of Python's small-object heap, which keeps most of it (an arena is given back only when
# no object is left in it). Measured at 150,000 stations with a backlog of 150,000 heartbeats:
# 1.12 million live small objects at the peak and 216 MB resident, against 0.86 million and
# 190 MB at 2,000 per call, at the same rate.
MAX_POLL_RECORDS = 2000


def advertised_host(settings: Settings) -> str:
    if settings.web_bind not in {"0.0.0.0", "::", ""}:  # noqa: S104 - comparing, not binding
        return settings.web_bind
    return socket.gethostname()


def create_app(settings: Settings, registry: CollectorRegistry | None = None) -> Runtime:
    registry = registry or CollectorRegistry()
    metrics = WorkerMetrics.create(registry)
    app = faust_app(settings)
    table = add_station_table(app, settings.partitions)
    sink = TimescaleSink(
        settings.dsn,
        on_retry=metrics.db_retries.inc,
        on_available=lambda ok: metrics.db_available.set(1 if ok else 0),
        stopping=lambda: bool(app.should_stop),
    )
    metrics.db_available.set(1)  # until a write fails
    runtime = Runtime(settings, app, table, sink, metrics, registry, ingest_config(settings))
    runtime.current = CurrentWriter(settings.dsn)
    tables = app.tables
    if isinstance(tables, DeclaredTables):  # faust_app's: recovery reads a short end again
        tables.last_offset = runtime.last_offset
    install_ingest(runtime)
    install_ticks(runtime)
    install_current_refresh(runtime)
    install_rebalance(runtime)
    install_feed(runtime)
    install_lifecycle(runtime)
    install_end_offsets(runtime)
    install_status_report(runtime)
    install_holiday_reload(runtime)
    install_heap_release(runtime)
    return runtime


def faust_app(settings: Settings) -> faust.App:
    host = settings.web_host or advertised_host(settings)
    app = StationApp(
        settings.app_id,
        broker=settings.kafka,
        broker_credentials=broker_credentials(settings),
        store=settings.store,
        datadir=str(settings.worker_data_dir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor or 1,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        broker_max_poll_records=MAX_POLL_RECORDS,
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
        TableManager=DeclaredTables,
        Monitor=QuietMonitor,
    )
    install_consumer(app, settings.consumer_fetch_wait_ms)
    install_settled_buffer(app)
    return app


def raw_topic(runtime: Runtime, *names: str) -> Any:
    return runtime.app.topic(
        *names,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=runtime.settings.partitions,
    )


def install_ingest(runtime: Runtime) -> None:
    """The agent: batches of the input topics and the ticks, each handled to the end."""
    settings = runtime.settings
    inputs = raw_topic(
        runtime, *(settings.topic(name) for name in INPUT_TOPICS), ticks_topic_name(settings)
    )
    outputs = runtime.outputs = OutputProducer(settings)
    runtime.writer = TableWriter(
        runtime.table, OutputProducer(settings, name="changelog", batch_bytes=CHANGELOG_BYTES)
    )
    deadletters, alerts = settings.topic(DEADLETTER), settings.topic(ALERTS)

    # Each returns once the record is handed to the producer, with its delivery to await: a
    # batch's records go out together and are awaited together (in order per partition).
    async def send_deadletter(key: bytes | None, value: bytes) -> Awaitable[Any]:
        return await outputs.send(deadletters, key, value)

    async def send_alert(key: bytes, value: bytes) -> Awaitable[Any]:
        return await outputs.send(alerts, key, value)

    @runtime.app.agent(inputs, name="ingest", concurrency=1)
    async def ingest(stream: faust.StreamT[bytes]) -> None:
        await work_through(
            take_batches(stream, settings.batch_size, settings.batch_within_s),
            lambda events: handle_batch(runtime, events, send_deadletter, send_alert),
        )


def install_ticks(runtime: Runtime) -> None:
    app = runtime.app
    ticks = raw_topic(runtime, ticks_topic_name(runtime.settings))

    @app.timer(interval=runtime.settings.tick_interval_s)  # type: ignore[untyped-decorator]
    async def send_ticks() -> None:
        """Ask the agent to judge the partitions that have stations due (or need indexing)."""
        if app.rebalancing or not runtime.recovered:
            return
        if not runtime.indexed and not await index_owned_stations(runtime):
            return
        now = utcnow().timestamp()
        for partition in runtime.active_partitions():
            if partition in runtime.ticks_pending:
                continue
            due = runtime.due.next_due(partition)
            if runtime.due.indexed and (due is None or due > now):
                continue
            runtime.ticks_pending.add(partition)
            await ticks.send(key=b"tick", value=b"{}", partition=partition)


def install_current_refresh(runtime: Runtime) -> None:
    @runtime.app.timer(interval=runtime.settings.current_refresh_s)  # type: ignore[untyped-decorator]
    async def refresh_station_current() -> None:
        await refresh_current(runtime)


def install_heap_release(runtime: Runtime) -> None:
    """Hand the heap's free memory back to the operating system now and then, as the API
    server does (:func:`stationwatch.heap.keep_released`)."""

    @runtime.app.task  # type: ignore[untyped-decorator]
    async def release_heap() -> None:
        await keep_released()


def install_rebalance(runtime: Runtime) -> None:
    app = runtime.app

    @app.on_partitions_revoked.connect  # type: ignore[arg-type] # mode's signal typing
    async def _on_revoked(sender: Any, *args: Any, **kwargs: Any) -> None:
        runtime.recovered = False  # a rebalance begins: the tables are recovered again

    @app.on_rebalance_complete.connect  # type: ignore[arg-type] # mode's signal typing
    async def _on_rebalance(sender: Any, **kwargs: Any) -> None:
        """Sent once the tables are recovered for the new assignment (before the streams
        resume; ``app.rebalancing`` stays true until they have)."""
        runtime.recovered = True
        runtime.assignments += 1
        assigned = app.consumer.assignment()
        runtime.positions = {tp: p for tp, p in runtime.positions.items() if tp in assigned}
        heartbeat = runtime.settings.topic(HEARTBEAT)
        new = {
            tp.partition
            for tp in assigned
            if tp.topic == heartbeat and runtime.watermarks.get(tp.partition) is None
        }
        committed = await expect_committed(runtime, assigned)
        runtime.end_offsets.clear()
        runtime.due.reset()
        runtime.indexed = False
        if runtime.feed is not None:
            runtime.feed.reset()
        runtime.watermarks.keep({tp.partition for tp in assigned if tp.topic == heartbeat})
        await start_clocks(runtime, new, committed)
        runtime.ticks_pending.clear()


def install_feed(runtime: Runtime) -> None:
    app = runtime.app

    async def crash(exc: BaseException) -> None:
        await app.crash(exc)

    def snapshot() -> Snapshot | None:
        """The owned stations for a (re)started API server, unless a rebalance is under way
        (then index_owned_stations feeds it once the partitions are recovered)."""
        if not runtime.indexed or app.rebalancing or not runtime.recovered:
            return None
        active = runtime.active_partitions()
        return sorted(active), owned_states(runtime, active)

    runtime.feed = ApiFeed(runtime.settings, snapshot=snapshot, on_fatal=crash)


def install_lifecycle(runtime: Runtime) -> None:
    @runtime.app.service
    class _Lifecycle(faust.Service):
        async def on_start(self) -> None:
            if runtime.feed is not None:
                await runtime.feed.start()

        async def on_stop(self) -> None:
            """Each step is bounded: a stop never hangs on one of them (the API server exits
            with the worker anyway, and connections close with the process)."""
            steps: list[tuple[str, Any]] = [
                ("the API server", runtime.feed.stop() if runtime.feed is not None else None),
                ("the database sink", runtime.sink.close()),
                (
                    "the producer of alerts and dead letters",
                    runtime.outputs.stop() if runtime.outputs is not None else None,
                ),
                (
                    "the producer of the live table's changelog",
                    runtime.writer.producer.stop() if runtime.writer is not None else None,
                ),
                ("the report of the stop", report_stopped(runtime)),
                (
                    "the end offset reader",
                    runtime.offset_reader.stop() if runtime.offset_reader is not None else None,
                ),
                (
                    "the reader of skipped records",
                    runtime.record_reader.stop() if runtime.record_reader is not None else None,
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


def install_end_offsets(runtime: Runtime) -> None:
    """Ask the broker for the end offsets of the input partitions this worker holds, off the
    ingest path, with a client of its own (asked through the worker's consumer, each answer
    waited for its fetches: over a second). The heartbeat partitions' every
    :data:`END_EVERY_S`, for the judging clock (:meth:`Runtime.clock`); the other input
    topics' every :data:`OTHER_ENDS_EVERY_S`, in questions of their own (a partition of theirs
    the broker cannot answer for holds up only them), for the health report, which counts the
    lag to these ends too: a consumer that stops fetching shows no lag by its own highwater.
    On a broker that counts a producer batch as one record an answer may fall short of the
    true end, never beyond it: enough to see that records arrived after the last fetch."""
    app = runtime.app

    async def ask(topics: set[str]) -> None:
        tps = [tp for tp in app.consumer.assignment() if tp.topic in topics]
        if not tps or app.rebalancing:
            return
        asked = utcnow()
        try:
            reader = await runtime.end_offset_reader()
            ends = await reader.end_offsets([TopicPartition(tp.topic, tp.partition) for tp in tps])
        except (KafkaError, StationwatchError) as exc:  # judged by the stream meanwhile
            logger.debug("end offsets of %s unavailable: %s", sorted(topics), exc)
            return
        for tp, end in ends.items():
            runtime.end_offsets[TP(tp.topic, tp.partition)] = (asked, end)

    heartbeat = {runtime.settings.topic(HEARTBEAT)}
    others = {runtime.settings.topic(name) for name in INPUT_TOPICS} - heartbeat

    @app.timer(interval=END_EVERY_S)  # type: ignore[untyped-decorator]
    async def ask_heartbeat_end_offsets() -> None:
        await ask(heartbeat)

    @app.timer(interval=OTHER_ENDS_EVERY_S)  # type: ignore[untyped-decorator]
    async def ask_other_end_offsets() -> None:
        await ask(others)
