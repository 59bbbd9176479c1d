"""The worker's HTTP views: health, metrics, and the live state of one station."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from aiohttp import ClientTimeout
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from yarl import URL

from schemas.common import STATION_ID_PATTERN
from schemas.topics import INPUT_TOPICS
from streams.tracker import partition_for
from streams.views import station_view

if TYPE_CHECKING:
    from streams.app import Runtime

_ID = re.compile(STATION_ID_PATTERN)


async def health_report(runtime: Runtime) -> tuple[bool, dict[str, Any]]:
    """Healthy = the worker consumes, is not rebalancing, is caught up, and the database writes."""
    app = runtime.app
    problems: list[str] = []
    inputs = {runtime.settings.topic(name) for name in INPUT_TOPICS}
    assigned = [tp for tp in app.consumer.assignment() if tp.topic in inputs]
    lag_by_topic: dict[str, int] = {}
    for tp in assigned:
        highwater = app.consumer.highwater(tp) or 0
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
    db_ok = runtime.metrics.db_available._value.get() != 0
    if not db_ok:
        problems.append("database unavailable, writes are being retried")
    body = {
        "status": "ok" if not problems else "unavailable",
        "problems": problems,
        "partitions": len(assigned),
        "lag": total_lag,
        "lag_by_topic": {runtime.contract_topic(t): n for t, n in lag_by_topic.items()},
        "database": "ok" if db_ok else "retrying",
    }
    return not problems, body


FORWARDED = "X-Stationwatch-Forwarded"


def owner_url(runtime: Runtime, station_id: str) -> str | None:
    """The worker that owns the station's partition (its table shard), by the same hash the
    producers' default partitioner uses for the station id key."""
    partition = partition_for(station_id, runtime.settings.partitions)
    changelog = runtime.table.changelog_topic.get_topic_name()
    for url, topics in runtime.app.router.table_metadata(runtime.table.name).items():
        if partition in topics.get(changelog, ()):
            return str(url)
    return None


async def forward(runtime: Runtime, view: View, request: Request, owner: str) -> Response:
    """Ask the owning worker, and answer with what it said."""
    target = URL(owner).with_path(request.url.path).with_query(request.query)
    headers = {FORWARDED: "1"}
    if "Authorization" in request.headers:
        headers["Authorization"] = request.headers["Authorization"]
    try:
        async with runtime.app.http_client.get(
            target, headers=headers, timeout=ClientTimeout(total=5)
        ) as answer:
            body = await answer.read()
            return view.bytes(body, content_type=answer.content_type, status=answer.status)
    except (OSError, TimeoutError) as exc:
        return view.json({"error": f"the owning worker {owner} did not answer: {exc}"}, status=503)


def install_views(runtime: Runtime) -> None:
    app = runtime.app
    table = runtime.table

    @app.page("/health")
    class Health(View):
        async def get(self, request: Request) -> Response:
            ok, body = await health_report(runtime)
            return self.json(body, status=200 if ok else 503)

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            await health_report(runtime)  # refresh the lag gauges
            counts = runtime.due.counts()
            for liveness in ("online", "stale", "offline", "unknown", "not_monitored"):
                runtime.metrics.stations.labels(liveness).set(counts.get(liveness, 0))
            return self.bytes(
                generate_latest(runtime.registry), content_type=CONTENT_TYPE_LATEST.split(";")[0]
            )

    @app.page("/stations/{station_id}")
    class Station(View):
        async def get(self, request: Request, station_id: str) -> Response:
            if not _ID.fullmatch(station_id):
                error = f"station_id: {station_id[:40]!r} does not match {STATION_ID_PATTERN}"
                return self.json({"error": error}, status=400)
            owner = owner_url(runtime, station_id)
            if owner is None:
                return self.json({"error": "partitions are being assigned, try again"}, status=503)
            if owner != str(app.conf.canonical_url) and FORWARDED not in request.headers:
                return await forward(runtime, self, request, owner)
            raw = table.get(station_id)
            if raw is None:
                return self.json({"error": f"station {station_id} is unknown"}, status=404)
            return self.json(station_view(raw, runtime.settings))
