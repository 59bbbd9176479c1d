"""The Faust app of a stationwatch worker: input topics, the live station-state table, the
ingest agent, and the web views. Built by :func:`create_app` from the settings."""

from __future__ import annotations

import logging
import socket
import weakref
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import faust
from faust.streams import _current_event
from faust.types import TP
from prometheus_client import CollectorRegistry

from schemas.topics import ALERTS, DEADLETTER, INPUT_TOPICS
from stationwatch.db.sink import TimescaleSink
from stationwatch.metrics import WorkerMetrics
from stationwatch.settings import Settings
from streams.ingest import Record, process_records, send_dead_letters, utcnow

logger = logging.getLogger(__name__)

STATE_TABLE = "station_state"


@dataclass
class Runtime:
    """What the agents and views of one worker share."""

    settings: Settings
    app: faust.App
    table: Any
    sink: TimescaleSink
    metrics: WorkerMetrics
    registry: CollectorRegistry
    # next offset to process, per input partition this worker has processed
    positions: dict[TP, int] = field(default_factory=dict)
    newest_timestamp: dict[str, float] = field(default_factory=dict)

    def contract_topic(self, broker_topic: str) -> str:
        prefix = self.settings.topic_prefix
        return broker_topic[len(prefix) :] if prefix else broker_topic


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
        store=settings.store,
        datadir=str(settings.data_dir) if settings.data_dir else None,
        topic_partitions=settings.partitions,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.broker_session_timeout_s,
        broker_heartbeat_interval=settings.broker_heartbeat_interval_s,
        web_port=settings.web_port,
        web_bind=settings.web_bind,
        web_host=host,
        canonical_url=f"http://{host}:{settings.web_port}",
        producer_acks=-1,
        key_serializer="raw",
        value_serializer="raw",
        processing_guarantee="at_least_once",
    )
    table = app.Table(
        STATE_TABLE,
        default=None,
        partitions=settings.partitions,
        key_type=str,  # raw bytes on the changelog, hashed like the input keys
        value_type=None,  # JSON
    )
    sink = TimescaleSink(
        settings.dsn,
        on_retry=metrics.db_retries.inc,
        on_available=lambda ok: metrics.db_available.set(1 if ok else 0),
    )
    metrics.db_available.set(1)  # until a write fails
    runtime = Runtime(settings, app, table, sink, metrics, registry)

    inputs = app.topic(
        *(settings.topic(name) for name in INPUT_TOPICS),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
    )
    deadletters = app.topic(
        settings.topic(DEADLETTER),
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
    )
    app.topic(settings.topic(ALERTS), partitions=settings.partitions)
    max_skew = timedelta(seconds=settings.max_clock_skew_s)

    async def send_deadletter(key: bytes | None, value: bytes) -> Any:
        fut = await deadletters.send(key=key, value=value)
        return await fut

    @app.agent(inputs, name="ingest", concurrency=1)
    async def ingest(stream: faust.StreamT[bytes]) -> None:
        batches = stream.take_events(  # type: ignore[attr-defined] # missing from StreamT
            settings.batch_size, within=settings.batch_within_s
        )
        async for events in batches:
            await handle_batch(runtime, events, send_deadletter, max_skew)

    @app.on_rebalance_complete.connect  # type: ignore[arg-type] # mode's signal typing
    async def _forget_positions(sender: Any, **kwargs: Any) -> None:
        runtime.positions = {
            tp: pos for tp, pos in runtime.positions.items() if tp in app.consumer.assignment()
        }

    @app.service
    class _SinkCloser(faust.Service):
        async def on_stop(self) -> None:
            await sink.close()

    from streams.web import install_views

    install_views(runtime)
    return runtime


async def handle_batch(
    runtime: Runtime, events: list[Any], send_deadletter: Any, max_skew: Any
) -> None:
    """Process one batch of events; returns only when rows and dead letters are durable."""
    records = []
    for event in events:
        message = event.message
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
    now = utcnow()
    outcome = process_records(
        records,
        runtime.table,
        now=now,
        topic_prefix=runtime.settings.topic_prefix,
        max_bytes=runtime.settings.max_message_bytes,
        max_skew=max_skew,
        metrics=runtime.metrics,
    )
    for station_id, (value, event) in outcome.state_writes.items():
        # The changelog record must go to the partition the station's input came from.
        token = _current_event.set(weakref.ref(event))
        try:
            if value is None:
                runtime.table.pop(station_id, None)
            else:
                runtime.table[station_id] = value
        finally:
            _current_event.reset(token)
    first, last = records[0], records[-1]
    context = (
        f"(batch {first.topic}/{first.partition}@{first.offset}"
        f" … {last.topic}/{last.partition}@{last.offset})"
    )
    with runtime.metrics.db_batch_seconds.time():
        written = await runtime.sink.write(outcome.batch, log_context=context)
    for table_name, count in written.items():
        runtime.metrics.rows_written.labels(table_name).inc(count)
    await send_dead_letters(outcome.dead_letters, send_deadletter)
    for event in events:
        message = event.message
        runtime.positions[message.tp] = message.offset + 1
        runtime.newest_timestamp[message.topic] = max(
            runtime.newest_timestamp.get(message.topic, 0.0), message.timestamp or 0.0
        )
