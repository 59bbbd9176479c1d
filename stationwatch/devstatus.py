"""What `stationwatch dev` shows while it runs: rates, liveness, dead letters, rows — read from
the worker's ``/metrics`` (Prometheus text) and from row counts in the database."""

from __future__ import annotations

import time
import urllib.request
from dataclasses import dataclass, field
from urllib.error import URLError

import psycopg
from prometheus_client.parser import text_string_to_metric_families
from psycopg import sql
from rich.table import Table

TABLES = ("stations", "heartbeats", "occupancy", "status_events", "liveness_changes", "alerts")
LIVENESS = ("online", "stale", "offline", "unknown", "not_monitored")


@dataclass
class WorkerMetrics:
    """The few numbers of the worker's ``/metrics`` that `dev` shows."""

    processed: float = 0.0
    deadletters: float = 0.0
    rows_written: dict[str, float] = field(default_factory=dict)
    stations: dict[str, float] = field(default_factory=dict)
    db_available: float | None = None


def parse_metrics(text: str) -> WorkerMetrics:
    out = WorkerMetrics()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, sample.value
            if name == "stationwatch_events_total":
                out.processed += value
            elif name == "stationwatch_deadletters_total":
                out.deadletters += value
            elif name == "stationwatch_rows_written_total":
                table = labels.get("table", "?")
                out.rows_written[table] = out.rows_written.get(table, 0.0) + value
            elif name == "stationwatch_stations":
                key = labels.get("liveness", "?")
                out.stations[key] = out.stations.get(key, 0.0) + value
            elif name == "stationwatch_db_available":
                out.db_available = value
    return out


def scrape(port: int, timeout_s: float = 1.0) -> WorkerMetrics | None:
    """The worker's metrics, or ``None`` while it does not answer (starting, busy)."""
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return parse_metrics(response.read().decode("utf-8", "replace"))
    except (URLError, OSError, ValueError):
        return None


def row_counts(url: str, timeout_s: float = 2.0) -> dict[str, int] | None:
    """``count(*)`` of each table in schema ``stationwatch``; ``None`` when the database does not
    answer. A table that does not exist (yet) is left out."""
    counts: dict[str, int] = {}
    try:
        with psycopg.connect(url, connect_timeout=max(1, int(timeout_s)), autocommit=True) as conn:
            conn.execute(sql.SQL("SET statement_timeout = {}").format(int(timeout_s * 1000)))
            for table in TABLES:
                query = sql.SQL("SELECT count(*) FROM stationwatch.{}").format(
                    sql.Identifier(table)
                )
                try:
                    row = conn.execute(query).fetchone()
                except psycopg.errors.UndefinedTable:
                    continue
                counts[table] = int(row[0]) if row else 0
    except psycopg.Error:
        return None
    return counts


@dataclass
class StatusBoard:
    """Keeps the last readings and turns them into a rich table or a plain line."""

    started: float = field(default_factory=time.monotonic)
    sent: int = 0
    metrics: WorkerMetrics | None = None
    rows: dict[str, int] | None = None
    sent_rate: float = 0.0
    processed_rate: float = 0.0
    _last: tuple[float, int, float] | None = None

    def count_sent(self, n: int) -> None:
        self.sent += n

    def update(self, metrics: WorkerMetrics | None) -> None:
        now = time.monotonic()
        if metrics is not None:
            self.metrics = metrics
        processed = self.metrics.processed if self.metrics else 0.0
        if self._last is not None and now > self._last[0]:
            elapsed = now - self._last[0]
            self.sent_rate = (self.sent - self._last[1]) / elapsed
            self.processed_rate = max(0.0, processed - self._last[2]) / elapsed
        self._last = (now, self.sent, processed)

    def _liveness(self) -> str:
        if self.metrics is None or not self.metrics.stations:
            return "-"
        known = [f"{k} {int(self.metrics.stations.get(k, 0))}" for k in LIVENESS]
        other = [f"{k} {int(v)}" for k, v in self.metrics.stations.items() if k not in LIVENESS]
        return ", ".join(known + other)

    def _db(self) -> str:
        if self.metrics is None or self.metrics.db_available is None:
            return "unknown" if self.rows is None else "up"
        if self.metrics.db_available:
            return "up"
        if not self.metrics.rows_written:
            return "up" if self.rows is not None else "not written yet"
        return "DOWN (worker retrying)"

    def _rows(self) -> str:
        if self.rows is None:
            return "-"
        return ", ".join(f"{table} {count:,}" for table, count in self.rows.items())

    def render(self) -> Table:
        table = Table(title="stationwatch dev", show_header=False, title_justify="left")
        table.add_column(style="bold")
        table.add_column()
        uptime = time.monotonic() - self.started
        worker = "answering" if self.metrics is not None else "starting…"
        processed = int(self.metrics.processed) if self.metrics else 0
        dead = int(self.metrics.deadletters) if self.metrics else 0
        table.add_row("running", f"{uptime:,.0f} s (worker {worker})")
        table.add_row("sent", f"{self.sent:,} messages  ({self.sent_rate:,.0f}/s)")
        table.add_row("processed", f"{processed:,} events  ({self.processed_rate:,.0f}/s)")
        table.add_row("stations", self._liveness())
        table.add_row("dead letters", f"{dead:,}")
        written = self.metrics.rows_written if self.metrics else {}
        table.add_row("rows written", ", ".join(f"{t} {int(v):,}" for t, v in written.items()))
        table.add_row("rows in db", self._rows())
        table.add_row("database", self._db())
        return table

    def line(self) -> str:
        processed = int(self.metrics.processed) if self.metrics else 0
        dead = int(self.metrics.deadletters) if self.metrics else 0
        return (
            f"[{time.monotonic() - self.started:5.0f}s] sent {self.sent} ({self.sent_rate:.0f}/s)"
            f" processed {processed} ({self.processed_rate:.0f}/s) dead letters {dead}"
            f" | stations {self._liveness()} | rows {self._rows()} | db {self._db()}"
        )
