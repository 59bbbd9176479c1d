"""Every Prometheus metric of stationwatch, created against an injected registry."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from schemas.alerts import AlertKind, AlertState


@dataclass(frozen=True)
class WorkerMetrics:
    events: Counter
    deadletters: Counter
    rows_written: Counter
    rows_refused: Counter
    partition_mismatches: Counter
    offsets_skipped: Counter
    db_batch_seconds: Histogram
    db_retries: Counter
    db_available: Gauge
    stations: Gauge
    consumer_lag: Gauge
    alerts: Counter
    gc_frozen: Gauge
    gc_pauses: Histogram
    holiday_left: Gauge
    processing_delay: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry) -> WorkerMetrics:
        metrics = cls(
            events=Counter(
                "stationwatch_events_total",
                "Input messages processed, by topic and outcome (accepted, deadletter)",
                ["topic", "outcome"],
                registry=registry,
            ),
            deadletters=Counter(
                "stationwatch_deadletters_total",
                "Input messages dead-lettered, by topic and reason class",
                ["topic", "reason"],
                registry=registry,
            ),
            rows_written=Counter(
                "stationwatch_rows_written_total",
                "Rows newly written to PostgreSQL, by table (duplicates not counted)",
                ["table"],
                registry=registry,
            ),
            rows_refused=Counter(
                "stationwatch_rows_refused_total",
                "Rows PostgreSQL refused as data (their input records are dead-lettered), by table",
                ["table"],
                registry=registry,
            ),
            offsets_skipped=Counter(
                "stationwatch_input_offsets_skipped_total",
                "Offsets of an input partition the worker's consumer went past without handing "
                "their records to the ingest agent, by topic and outcome (read_again: read from "
                "the broker and processed; lost: reading them failed, see the log; jump: "
                "farther than records dropped can reach, taken as a seek to the committed offset)",
                ["topic", "outcome"],
                registry=registry,
            ),
            partition_mismatches=Counter(
                "stationwatch_partition_mismatches_total",
                "Stations whose records arrive on another partition than expected, by topic and "
                "kind (partitioner: a new station not where murmur2 puts its key; moved: not "
                "where the station's earlier records arrived); counted once per batch",
                ["topic", "kind"],
                registry=registry,
            ),
            db_batch_seconds=Histogram(
                "stationwatch_db_batch_seconds",
                "Time to write one set of rows to PostgreSQL, retries included: a batch's rows, "
                "or the part of them written while the rest was folded",
                registry=registry,
                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            ),
            db_retries=Counter(
                "stationwatch_db_retries_total",
                "Database writes retried after a transient failure",
                registry=registry,
            ),
            db_available=Gauge(
                "stationwatch_db_available",
                "1 when the last database write succeeded, 0 while retrying",
                registry=registry,
            ),
            stations=Gauge(
                "stationwatch_stations",
                "Stations held by this worker's active partitions, by liveness",
                ["liveness"],
                registry=registry,
            ),
            consumer_lag=Gauge(
                "stationwatch_consumer_lag_messages",
                "Messages not yet processed on this worker's input partitions",
                ["topic"],
                registry=registry,
            ),
            gc_frozen=Gauge(
                "stationwatch_gc_frozen_objects",
                "Objects in the garbage collector's permanent generation (gc.freeze)",
                registry=registry,
            ),
            gc_pauses=Histogram(
                "stationwatch_gc_pause_seconds",
                "Garbage collections of the worker process and their length, by generation "
                "(the sum's rate is the share of time spent collecting)",
                ["generation"],
                registry=registry,
                buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
            ),
            holiday_left=Gauge(
                "stationwatch_holiday_calendar_left_seconds",
                "Time (whole days, in seconds) until the last day the holiday calendar knows "
                "(package and holidays file); later days are judged as ordinary days",
                registry=registry,
            ),
            alerts=Counter(
                "stationwatch_alerts_total",
                "Alert messages emitted, by kind and state (firing, resolved)",
                ["kind", "state"],
                registry=registry,
            ),
            processing_delay=Histogram(
                "stationwatch_processing_delay_seconds",
                "From an input's event time (sent_at, observed_at, at) to its batch being "
                "durable and the live state updated, by topic; a time in the future counts as 0",
                ["topic"],
                registry=registry,
                buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400),
            ),
        )
        every_alert_series(metrics.alerts)
        return metrics

    def observe_processing_delays(
        self, event_times: Iterable[tuple[str, datetime]], now: datetime
    ) -> None:
        """One observation per input, ``now`` minus its event time (at least 0)."""
        delays: defaultdict[str, list[float]] = defaultdict(list)
        for topic, at in event_times:
            delays[topic].append(max((now - at).total_seconds(), 0.0))
        for topic, seconds in delays.items():
            child = self.processing_delay.labels(topic)
            for value in seconds:
                child.observe(value)


@dataclass(frozen=True)
class ApiMetrics:
    """The API server's own metrics (served after the worker's on the same /metrics)."""

    requests: Counter
    latency: Histogram
    report_age: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> ApiMetrics:
        return cls(
            requests=Counter(
                "stationwatch_http_requests_total",
                "HTTP requests answered by the API, by route and status",
                ["route", "status"],
                registry=registry,
            ),
            latency=Histogram(
                "stationwatch_http_request_seconds",
                "Time to answer an HTTP request, by route (forwarding and fan-out included)",
                ["route"],
                registry=registry,
                buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 3),
            ),
            report_age=Gauge(
                "stationwatch_worker_report_age_seconds",
                "Age of the worker's last report (health, ownership, metrics) to its API server",
                registry=registry,
            ),
        )


@dataclass(frozen=True)
class NotifierMetrics:
    """The notifier's metrics (served on its own port)."""

    alerts: Counter
    notices: Counter
    attempts: Counter
    latency: Histogram
    suppressed: Counter
    pending_groups: Gauge
    database_available: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> NotifierMetrics:
        metrics = cls(
            alerts=Counter(
                "stationwatch_notifier_alerts_total",
                "Alert messages the notifier read, by kind and state",
                ["kind", "state"],
                registry=registry,
            ),
            notices=Counter(
                "stationwatch_notices_total",
                "Notices by receiver, channel and outcome (delivered, failed)",
                ["receiver", "channel", "outcome"],
                registry=registry,
            ),
            attempts=Counter(
                "stationwatch_notice_attempts_total",
                "Tries at delivering a notice, by receiver, channel and result (ok, retry, error)",
                ["receiver", "channel", "result"],
                registry=registry,
            ),
            latency=Histogram(
                "stationwatch_notice_delivery_seconds",
                "From the detection of the newest alert in a notice to its delivery",
                ["receiver", "channel"],
                registry=registry,
                buckets=(0.5, 1, 2, 5, 10, 20, 30, 45, 60, 90, 120, 300, 600, 1800),
            ),
            suppressed=Counter(
                "stationwatch_alerts_suppressed_total",
                "Alerts kept from a receiver, by reason (silenced, inhibited)",
                ["reason"],
                registry=registry,
            ),
            pending_groups=Gauge(
                "stationwatch_notifier_pending_groups",
                "Alert groups the notifier holds (waiting, repeating or held back)",
                registry=registry,
            ),
            database_available=Gauge(
                "stationwatch_notifier_db_available",
                "1 while the notifier reaches PostgreSQL",
                registry=registry,
            ),
        )
        every_alert_series(metrics.alerts)
        return metrics


def every_alert_series(counter: Counter) -> None:
    """A series at 0 for every alert kind and state from the start: the first alert of a kind
    then shows in ``rate()`` (a series born at 1 does not), and dashboards show 0, not no
    data."""
    for kind in get_args(AlertKind):
        for state in get_args(AlertState):
            counter.labels(kind, state)
