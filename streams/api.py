"""The live-state HTTP API: one station, filtered lists, nearest open stations, the summary,
health and metrics. Served by each worker's API server process (`streams.server`) from its
:class:`Replica` of the worker's live table.

With several workers each holds the stations of the partitions it owns. A station lookup is
forwarded to its owner; lists, ``nearby`` and the summary fan out to every worker (the request
carries ``X-Stationwatch-Scope: local`` to the others) and merge the answers. We chose fan-out
over a replicated read model because every answer is then as fresh as the live table itself and
no worker holds (or replays) all stations; the cost is one parallel request per other worker.
An answer says whether every partition was covered (``complete``).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from aiohttp import ClientError, ClientSession, ClientTimeout, web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    generate_latest,
)
from yarl import URL

from schemas.common import STATION_ID_PATTERN
from stationwatch.metrics import ApiMetrics
from stationwatch.settings import Settings
from stationwatch.zone import iso
from streams.board import ASSETS, BoardItems, load_assets, local_board, merge_board
from streams.ingest import utcnow
from streams.openapi import build_openapi
from streams.query import (
    ListQuery,
    NearbyQuery,
    QueryError,
    free_seats,
    is_open_now,
    matches,
    nearby_candidate,
    parse_query,
)
from streams.readmodel import LiveIndex
from streams.tracker import partition_for
from streams.views import station_view, stored_view

logger = logging.getLogger(__name__)

_ID = re.compile(STATION_ID_PATTERN)
SCOPE = "X-Stationwatch-Scope"
FORWARDED = "X-Stationwatch-Forwarded"
PEER_TIMEOUT = ClientTimeout(total=3)
STATUS_MAX_AGE_S = 5.0  # the worker reports every second; older means it is stuck or gone
STARTING = {
    "status": "unavailable",
    "problems": ["the worker has not reported yet"],
    "partitions": 0,
    "lag": 0,
    "lag_by_topic": {},
    "database": "ok",
}


@dataclass
class Replica:
    """What the API server knows: the worker's owned stations and its latest status report."""

    settings: Settings
    index: LiveIndex = field(default_factory=LiveIndex)
    partitions: frozenset[int] = frozenset()  # the index holds every station of these
    routes: dict[str, set[int]] = field(default_factory=dict)  # worker URL → partitions
    own_url: str = ""
    health: tuple[bool, dict[str, Any]] = (False, STARTING)
    status_at: float | None = None  # monotonic time of the worker's last status report
    worker_metrics: bytes = b""  # as of the last status report
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    _session: ClientSession | None = None

    def __post_init__(self) -> None:
        self.metrics = ApiMetrics.create(self.registry)
        self.metrics.report_age.set_function(self.status_age)

    def status_age(self) -> float:
        if self.status_at is None:
            return math.inf
        return time.monotonic() - self.status_at

    def http(self) -> ClientSession:
        if self._session is None or self._session.closed:
            self._session = ClientSession()
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def report(
        self, health: list[Any], routes: dict[str, list[int]], own_url: str, metrics: str
    ) -> None:
        self.health = (bool(health[0]), health[1])
        self.routes = {url: set(partitions) for url, partitions in routes.items()}
        self.own_url = own_url
        self.worker_metrics = metrics.encode()
        self.status_at = time.monotonic()

    def holds(self, partition: int) -> bool:
        return self.index.ready and partition in self.partitions

    def owner_url(self, station_id: str) -> str | None:
        """The worker that owns the partition the default partitioner (murmur2) gives the
        station-id key: the likely owner (Faust's own router hashes the JSON-encoded key)."""
        partition = partition_for(station_id, self.settings.partitions)
        for url, partitions in self.routes.items():
            if partition in partitions:
                return url
        return None

    def others(self) -> dict[str, set[int]]:
        """The other workers, with the partitions they own."""
        return {url: p for url, p in self.routes.items() if url != self.own_url and p}

    def local(self, answer: dict[str, Any]) -> dict[str, Any]:
        """This worker's own part of an answer, with the partitions it covers."""
        return {**answer, "partitions": sorted(self.partitions)}


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def error(status: int, message: str, **extra: Any) -> web.Response:
    return json_response({"error": message, **extra}, status=status)


def bad_parameter(exc: QueryError) -> web.Response:
    return error(400, str(exc), parameter=exc.parameter)


def not_ready() -> web.Response:
    return error(503, "partitions are being assigned, try again")


def query_params(request: web.Request) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {}
    for name, value in request.query.items():
        params.setdefault(name, []).append(value)
    return params


def is_local(request: web.Request) -> bool:
    return request.headers.get(SCOPE) == "local"


class PeerAnswerError(ClientError):
    """Another worker answered, but not 200."""

    def __init__(self, url: str, status: int) -> None:
        super().__init__(f"{url} answered {status}")
        self.status = status


async def ask(replica: Replica, url: str, request: web.Request, headers: dict[str, str]) -> Any:
    target = URL(url).with_path(request.url.path).with_query(request.query)
    if "Authorization" in request.headers:
        headers = {**headers, "Authorization": request.headers["Authorization"]}
    async with replica.http().get(target, headers=headers, timeout=PEER_TIMEOUT) as got:
        if got.status != 200:
            raise PeerAnswerError(url, got.status)
        return await got.json()


async def lookup(replica: Replica, url: str, request: web.Request) -> tuple[int, Any]:
    """Ask another worker for a station it holds: its status and JSON body."""
    target = URL(url).with_path(request.url.path)
    headers = {FORWARDED: "1"}
    if "Authorization" in request.headers:
        headers["Authorization"] = request.headers["Authorization"]
    async with replica.http().get(target, headers=headers, timeout=PEER_TIMEOUT) as got:
        body = await got.json() if got.content_type == "application/json" else {}
        return got.status, body


async def gather(
    replica: Replica, request: web.Request, local: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[int]]:
    """This worker's answer and every other worker's; the partitions nobody answered for."""
    others = replica.others()
    answers = [local]
    covered = set(replica.partitions) if replica.index.ready else set()
    results = await asyncio.gather(
        *(ask(replica, url, request, {SCOPE: "local"}) for url in others),
        return_exceptions=True,
    )
    for (_url, partitions), result in zip(others.items(), results, strict=True):
        if isinstance(result, BaseException):
            continue
        answers.append(result)
        covered |= set(result.get("partitions", partitions))  # what it holds, if it says
    missing = sorted(set(range(replica.settings.partitions)) - covered)
    return answers, missing


def summarize(index: LiveIndex, now: Any, zone: ZoneInfo) -> dict[str, Any]:
    by: dict[str, Counter[str]] = {
        "by_liveness": Counter(),
        "by_category": Counter(),
        "by_street": Counter(),
        "by_lifecycle": Counter(),
    }
    open_now = 0
    entries = list(index)
    for entry in entries:
        by["by_liveness"][entry.liveness] += 1
        by["by_category"][entry.category or "unknown"] += 1
        by["by_street"][entry.street or "unknown"] += 1
        by["by_lifecycle"][entry.lifecycle_at(now)] += 1
        open_now += is_open_now(entry, now, zone)
    return {
        **{key: dict(counter) for key, counter in by.items()},
        "total": len(entries),
        "open_now": open_now,
    }


class Api:
    """The request handlers, bound to one replica."""

    def __init__(self, replica: Replica) -> None:
        self.replica = replica
        self.settings = replica.settings
        self.zone = ZoneInfo(self.settings.timezone)
        self.document = build_openapi(secured=self.settings.api_token is not None)
        self.assets = load_assets()
        self.board_items = BoardItems(self.zone)
        self._board: tuple[float, bytes] | None = None  # (monotonic time, merged answer)

    async def health(self, request: web.Request) -> web.Response:
        replica = self.replica
        ok, body = replica.health
        problems = []
        age = replica.status_age()
        if replica.status_at is not None and age > STATUS_MAX_AGE_S:
            problems.append(f"the worker has not reported for {age:.0f} s")
        if replica.status_at is not None and not replica.index.ready:
            # caught up means served too: the worker's report may come before its stations do
            problems.append("the API server is loading the worker's stations")
        if problems:
            ok, body = False, {**body, "status": "unavailable"}
            body["problems"] = [*body.get("problems", []), *problems]
        return json_response(body, status=200 if ok else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        """The worker's metrics as of its last report (each second), then the server's own."""
        body = self.replica.worker_metrics + generate_latest(self.replica.registry)
        return web.Response(body=body, content_type=CONTENT_TYPE_LATEST.split(";")[0])

    async def openapi(self, request: web.Request) -> web.Response:
        return json_response(self.document)

    async def station(self, request: web.Request) -> web.Response:
        """One station: from this worker's replica when it holds it, else from the worker that
        does. Stations belong to the partition their records arrive on, which only the default
        partitioner predicts: the predicted owner is asked first, then every other worker."""
        station_id = request.match_info["station_id"]
        if not _ID.fullmatch(station_id):
            return error(
                400,
                f"station_id: {station_id[:40]!r} does not match {STATION_ID_PATTERN}",
                parameter="station_id",
            )
        replica = self.replica
        entry = replica.index.entries.get(station_id)
        if entry is not None and replica.holds(entry.partition):
            return json_response(station_view(entry.state, self.settings))
        held = sorted(replica.partitions) if replica.index.ready else []
        if FORWARDED in request.headers:  # a peer asks what this worker holds
            if not replica.index.ready:
                return not_ready()
            return error(404, f"station {station_id} is unknown", partitions=held)
        covered = set(held)
        others = replica.others()
        guess = replica.owner_url(station_id)
        rounds = [[guess]] if guess in others else []
        rounds.append([url for url in others if url != guess])
        unanswered: list[str] = []
        for urls in rounds:
            answers = await asyncio.gather(
                *(lookup(replica, url, request) for url in urls), return_exceptions=True
            )
            for url, answer in zip(urls, answers, strict=True):
                if isinstance(answer, BaseException):
                    unanswered.append(f"{url}: {answer}")
                    continue
                status, body = answer
                if status == 200:
                    return json_response(body)
                if status == 404:
                    covered |= set(body.get("partitions", ()))
                else:
                    unanswered.append(f"{url} answered {status}")
        missing = sorted(set(range(self.settings.partitions)) - covered)
        if not missing:
            return error(404, f"station {station_id} is unknown")
        if not unanswered:
            return not_ready()
        return error(
            503,
            f"partitions {missing} did not answer: {'; '.join(unanswered)}",
            missing_partitions=missing,
        )

    async def nearby(self, request: web.Request) -> web.Response:
        try:
            query = parse_query(NearbyQuery, query_params(request))
        except QueryError as exc:
            return bad_parameter(exc)
        replica = self.replica
        if is_local(request) and not replica.index.ready:
            return not_ready()
        now = utcnow()
        zone, fresh_s = self.zone, self.settings.occupancy_fresh_s
        found = replica.index.nearest(
            query.lat,
            query.lon,
            query.radius_m,
            lambda e: nearby_candidate(e, query, now, zone),
            query.limit,
        )
        items = []
        for entry, distance in found:
            item = stored_view(entry.state, zone, now)
            item["distance_m"] = round(distance, 1)
            item.update(free_seats(entry, now, fresh_s))
            item["open_now"] = is_open_now(entry, now, zone)
            items.append(item)
        local = replica.local({"items": items})
        if is_local(request):
            return json_response(local)
        answers, missing = await gather(replica, request, local)
        merged = sorted(
            (item for answer in answers for item in answer["items"]),
            key=lambda item: (item["distance_m"], item["station_id"]),
        )[: query.limit]
        return json_response(
            {
                "items": merged,
                "as_of": iso(now, zone),
                "occupancy_fresh_s": fresh_s,
                "complete": not missing,
                "missing_partitions": missing,
            }
        )

    async def stations(self, request: web.Request) -> web.Response:
        try:
            query = parse_query(ListQuery, query_params(request))
        except QueryError as exc:
            return bad_parameter(exc)
        replica = self.replica
        if is_local(request) and not replica.index.ready:
            return not_ready()
        now = utcnow()
        chosen = sorted(
            (e for e in replica.index if matches(e, query, now, self.zone)),
            key=lambda e: e.station_id,
        )
        window = chosen[: query.offset + query.limit]
        local = replica.local(
            {"items": [stored_view(e.state, self.zone, now) for e in window], "total": len(chosen)}
        )
        if is_local(request):
            return json_response(local)
        answers, missing = await gather(replica, request, local)
        merged = sorted(
            (item for answer in answers for item in answer["items"]),
            key=lambda item: item["station_id"],
        )
        return json_response(
            {
                "items": merged[query.offset : query.offset + query.limit],
                "total": sum(answer["total"] for answer in answers),
                "limit": query.limit,
                "offset": query.offset,
                "as_of": iso(now, self.zone),
                "complete": not missing,
                "missing_partitions": missing,
            }
        )

    async def summary(self, request: web.Request) -> web.Response:
        if request.query:
            name = next(iter(request.query))
            return error(400, f"{name}: unknown parameter", parameter=name)
        replica = self.replica
        if is_local(request) and not replica.index.ready:
            return not_ready()
        now = utcnow()
        local = replica.local(summarize(replica.index, now, self.zone))
        if is_local(request):
            return json_response(local)
        answers, missing = await gather(replica, request, local)
        total: dict[str, Any] = {"total": 0, "open_now": 0}
        for key in ("by_liveness", "by_category", "by_street", "by_lifecycle"):
            counter: Counter[str] = Counter()
            for answer in answers:
                counter.update(answer[key])
            total[key] = dict(sorted(counter.items()))
        for answer in answers:
            total["total"] += answer["total"]
            total["open_now"] += answer["open_now"]
        total.update(as_of=iso(now, self.zone), complete=not missing, missing_partitions=missing)
        return json_response(total)

    async def board(self, request: web.Request) -> web.Response:
        """Every station with its map position and liveness, the counts, the offline ones:
        what the live board at ``/`` draws (fanned out and merged like the summary)."""
        if request.query:
            name = next(iter(request.query))
            return error(400, f"{name}: unknown parameter", parameter=name)
        replica = self.replica
        local_only = is_local(request)
        if local_only and not replica.index.ready:
            return not_ready()
        # However many boards are open, one merged answer a second, the same for all of them.
        if not local_only and self._board is not None:
            made, body = self._board
            if time.monotonic() - made <= BOARD_REUSE_S:
                return board_response(body)
        items = self.board_items.items(replica.index)
        local = replica.local(local_board(items, replica.status_age()))
        if local_only:
            return json_response(local)
        answers, missing = await gather(replica, request, local)
        body = orjson.dumps(merge_board(answers, missing, utcnow(), self.zone))
        self._board = (time.monotonic(), body)
        return board_response(body)

    async def asset(self, request: web.Request) -> web.Response:
        """The live board's page and files (package data, no build step)."""
        body, content_type = self.assets[request.path]
        response = web.Response(body=body, content_type=content_type, charset="utf-8")
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        if content_type == "text/html":
            # only our own script and style; station names are data, never markup
            response.headers["Content-Security-Policy"] = BOARD_CSP
        return response


BOARD_REUSE_S = 1.0  # a merged board answers every request within this long


def board_response(body: bytes) -> web.Response:
    response = web.Response(body=body, content_type="application/json")
    response.enable_compression()  # ~380 kB for a district of 1,400 stations, ~45 kB gzipped
    return response


BOARD_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# Reachable without the bearer token: probes and scrapers, and the board's page and files
# (they hold no data; the page asks for the token when /board.json answers 401).
OPEN_PATHS = frozenset({"/health", "/metrics", *ASSETS})


def build_app(replica: Replica) -> web.Application:
    api = Api(replica)
    token = replica.settings.api_token
    expected = f"Bearer {token.get_secret_value()}".encode() if token is not None else None

    async def answer(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            if expected is not None and request.path not in OPEN_PATHS:
                given = request.headers.get("Authorization", "").encode()
                if not hmac.compare_digest(given, expected):
                    response = error(401, "missing or wrong bearer token")
                    response.headers["WWW-Authenticate"] = 'Bearer realm="stationwatch"'
                    return response
            return await handler(request)
        except web.HTTPException as exc:  # unknown path, wrong method
            response = error(exc.status, exc.reason)
            if isinstance(exc, web.HTTPMethodNotAllowed):
                response.headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
            return response
        except Exception:
            logger.exception("%s %s failed", request.method, request.path_qs)
            return error(500, "internal error; the server's log has the details")

    @web.middleware
    async def guard(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Bearer token, JSON errors for unknown paths and methods, never a bare 500, and the
        request metrics."""
        started = time.perf_counter()
        response = await answer(request, handler)
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        replica.metrics.latency.labels(route).observe(time.perf_counter() - started)
        replica.metrics.requests.labels(route, str(response.status)).inc()
        return response

    app = web.Application(middlewares=[guard])
    app.router.add_get("/health", api.health)
    app.router.add_get("/metrics", api.metrics)
    app.router.add_get("/openapi.json", api.openapi)
    app.router.add_get("/stations/nearby", api.nearby)
    app.router.add_get("/stations/{station_id}", api.station)
    app.router.add_get("/stations", api.stations)
    app.router.add_get("/summary", api.summary)
    app.router.add_get("/board.json", api.board)
    for path in ASSETS:
        app.router.add_get(path, api.asset)
    return app
