"""What the worker reports to its API server each second: health, partition ownership and
its metrics."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from prometheus_client import generate_latest

from schemas.topics import INPUT_TOPICS
from stationwatch.db.sink import WorkerReport
from stationwatch.errors import StationwatchError
from streams.holidays import holiday_health
from streams.ingest import utcnow

if TYPE_CHECKING:
    from streams.runtime import Runtime

logger = logging.getLogger(__name__)
# how often a worker reports to pipeline_workers (pipeline_status calls a worker gone after 15 s)
REPORT_EVERY_S = 5.0
STOPPED_REPORT_S = 2.0


async def health_report(runtime: Runtime) -> tuple[bool, dict[str, Any]]:
    """Healthy = the worker consumes, is not rebalancing, is caught up, and the database writes."""
    app = runtime.app
    problems: list[str] = []
    inputs = {runtime.settings.topic(name) for name in INPUT_TOPICS}
    assigned = [tp for tp in app.consumer.assignment() if tp.topic in inputs]
    lag_by_topic: dict[str, int] = {}
    for tp in assigned:
        # the end the consumer last fetched, or the broker's end when asked since (a consumer
        # that stops fetching still sees its highwater of then). However old, an answer is a
        # lower bound of the end (an end offset only grows): no age limit, unlike the clock's
        highwater = app.consumer.highwater(tp) or 0
        known = runtime.end_offsets.get(tp)
        if known is not None:
            highwater = max(highwater, known[1])
        position = runtime.positions.get(tp)
        if position is None:
            position = await app.consumer.position(tp) or 0
        lag_by_topic[tp.topic] = lag_by_topic.get(tp.topic, 0) + max(0, highwater - position)
    for topic, lag in lag_by_topic.items():
        runtime.metrics.consumer_lag.labels(runtime.contract_topic(topic)).set(lag)
    total_lag = sum(lag_by_topic.values())
    if app.rebalancing:
        problems.append("rebalancing partitions")
    if not app.consumer.assignment() and not app.rebalancing:
        problems.append("no partitions assigned yet")
    if total_lag > runtime.settings.health_max_lag:
        problems.append(f"behind by {total_lag} messages")
    db_ok = runtime.sink.available
    if not db_ok:
        problems.append("database unavailable, writes are being retried")
    body = {
        "status": "ok" if not problems else "unavailable",
        "problems": problems,
        "partitions": len(assigned),
        "lag": total_lag,
        "lag_by_topic": {runtime.contract_topic(t): n for t, n in lag_by_topic.items()},
        "database": "ok" if db_ok else "retrying",
        # when the holiday calendar ends, and "warnings" (not problems) when that is near
        **holiday_health(runtime.settings),
    }
    return not problems, body


def routes(runtime: Runtime) -> dict[str, list[int]]:
    """Every worker's URL with the partitions of the live table it actively owns."""
    changelog = runtime.table.changelog_topic.get_topic_name()
    return {
        str(url): sorted(topics.get(changelog, ()))
        for url, topics in runtime.app.router.table_metadata(runtime.table.name).items()
    }


def worker_report(runtime: Runtime, now: datetime) -> WorkerReport:
    """This worker's row in ``pipeline_workers``, from its last health report."""
    healthy, body = runtime.health
    url = str(runtime.app.conf.canonical_url)
    return WorkerReport(
        worker_id=url,
        host=urlsplit(url).hostname or "",
        pid=os.getpid(),
        started_at=runtime.started_at,
        seen_at=now,
        healthy=healthy,
        problems=tuple(str(p) for p in body.get("problems", ())),
        partitions=int(body.get("partitions", 0)),
        lag=int(body.get("lag", 0)),
    )


async def report_stopped(runtime: Runtime) -> None:
    """A worker stopping cleanly says so at once (``pipeline_status`` need not wait for its
    report to age); quietly gives up when the database cannot be reached within a moment."""
    report = replace(worker_report(runtime, utcnow()), healthy=False, problems=("stopped",))
    try:
        await asyncio.wait_for(runtime.current.report(report), STOPPED_REPORT_S)
    except (StationwatchError, TimeoutError) as exc:
        logger.debug("pipeline_workers not told of the stop: %s", exc)


def install_status_report(runtime: Runtime) -> None:
    app = runtime.app
    reported = 0.0

    @app.timer(interval=1.0)  # type: ignore[untyped-decorator]
    async def report_status() -> None:
        """Health, the lag and station gauges, who owns which partition and the metrics,
        computed on the worker's event loop and reported to the API server; every
        ``REPORT_EVERY_S`` the health goes to ``pipeline_workers`` too (how old the
        database's picture is)."""
        nonlocal reported
        runtime.health = await health_report(runtime)
        if time.monotonic() - reported >= REPORT_EVERY_S:
            reported = time.monotonic()
            try:
                await runtime.current.report(worker_report(runtime, utcnow()))
            except StationwatchError as exc:
                logger.debug("pipeline_workers not updated: %s", exc)
        counts = runtime.due.counts()
        for liveness in ("online", "stale", "offline", "unknown", "not_monitored"):
            runtime.metrics.stations.labels(liveness).set(counts.get(liveness, 0))
        if runtime.feed is not None:
            runtime.feed.status(
                runtime.health,
                routes(runtime),
                str(app.conf.canonical_url),
                generate_latest(runtime.registry),
            )
