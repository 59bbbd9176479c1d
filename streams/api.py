"""The live-state HTTP API of a worker: one station, filtered lists, nearest open stations, and
the summary.

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
import re
from collections import Counter
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from aiohttp import ClientError, ClientTimeout
from faust.web import Request, Response, View
from yarl import URL

from schemas.common import STATION_ID_PATTERN
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
from streams.tracker import partition_for
from streams.views import station_view, stored_view

if TYPE_CHECKING:
    from streams.app import Runtime

_ID = re.compile(STATION_ID_PATTERN)
SCOPE = "X-Stationwatch-Scope"
FORWARDED = "X-Stationwatch-Forwarded"
PEER_TIMEOUT = ClientTimeout(total=3)


def error(view: View, status: int, message: str, **extra: Any) -> Response:
    return view.json({"error": message, **extra}, status=status)


def authorized(runtime: Runtime, request: Request) -> bool:
    token = runtime.settings.api_token
    if token is None:
        return True
    given = request.headers.get("Authorization", "")
    expected = f"Bearer {token.get_secret_value()}"
    return hmac.compare_digest(given.encode(), expected.encode())


def unauthorized(view: View) -> Response:
    response = error(view, 401, "missing or wrong bearer token")
    response.headers["WWW-Authenticate"] = 'Bearer realm="stationwatch"'
    return response


def query_params(request: Request) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {}
    for name, value in request.query.items():
        params.setdefault(name, []).append(value)
    return params


def owner_url(runtime: Runtime, station_id: str) -> str | None:
    """The worker that owns the station's partition, by the same hash the producers' default
    partitioner uses for the station-id key (Faust's own router hashes the JSON-encoded key)."""
    partition = partition_for(station_id, runtime.settings.partitions)
    changelog = runtime.table.changelog_topic.get_topic_name()
    for url, topics in runtime.app.router.table_metadata(runtime.table.name).items():
        if partition in topics.get(changelog, ()):
            return str(url)
    return None


def peers(runtime: Runtime) -> tuple[dict[str, set[int]], set[int]]:
    """Other workers with the partitions they own, and the partitions this worker owns."""
    changelog = runtime.table.changelog_topic.get_topic_name()
    own_url = str(runtime.app.conf.canonical_url)
    others: dict[str, set[int]] = {}
    own: set[int] = set()
    for url, topics in runtime.app.router.table_metadata(runtime.table.name).items():
        partitions = set(topics.get(changelog, ()))
        if str(url) == own_url:
            own = partitions
        elif partitions:
            others[str(url)] = partitions
    return others, own


class PeerAnswerError(ClientError):
    """Another worker answered, but not 200."""

    def __init__(self, url: str, status: int) -> None:
        super().__init__(f"{url} answered {status}")
        self.status = status


async def ask(runtime: Runtime, url: str, request: Request, headers: dict[str, str]) -> Any:
    target = URL(url).with_path(request.url.path).with_query(request.query)
    if "Authorization" in request.headers:
        headers = {**headers, "Authorization": request.headers["Authorization"]}
    async with runtime.http().get(target, headers=headers, timeout=PEER_TIMEOUT) as got:
        if got.status != 200:
            raise PeerAnswerError(url, got.status)
        return await got.json()


async def gather(
    runtime: Runtime, request: Request, local: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[int]]:
    """This worker's answer and every other worker's; the partitions nobody answered for."""
    others, own = peers(runtime)
    answers = [local]
    covered = set(own) if runtime.index.ready else set()
    results = await asyncio.gather(
        *(ask(runtime, url, request, {SCOPE: "local"}) for url in others),
        return_exceptions=True,
    )
    for (_url, partitions), result in zip(others.items(), results, strict=True):
        if isinstance(result, BaseException):
            continue
        answers.append(result)
        covered |= partitions
    missing = sorted(set(range(runtime.settings.partitions)) - covered)
    return answers, missing


def is_local(request: Request) -> bool:
    return request.headers.get(SCOPE) == "local"


def not_ready(view: View) -> Response:
    return error(view, 503, "partitions are being assigned, try again")


def install_api(runtime: Runtime) -> None:
    app = runtime.app
    table = runtime.table
    zone = ZoneInfo(runtime.settings.timezone)
    fresh_s = runtime.settings.occupancy_fresh_s

    document = build_openapi(secured=runtime.settings.api_token is not None)

    @app.page("/openapi.json")
    class OpenApi(View):
        async def get(self, request: Request) -> Response:
            if not authorized(runtime, request):
                return unauthorized(self)
            return self.json(document)

    @app.page("/stations/nearby")
    class Nearby(View):
        async def get(self, request: Request) -> Response:
            if not authorized(runtime, request):
                return unauthorized(self)
            try:
                query = parse_query(NearbyQuery, query_params(request))
            except QueryError as exc:
                return error(self, 400, str(exc), parameter=exc.parameter)
            now = utcnow()
            if is_local(request) and not runtime.index.ready:
                return not_ready(self)
            found = runtime.index.nearest(
                query.lat,
                query.lon,
                query.radius_m,
                lambda e: nearby_candidate(e, query, now, zone),
                query.limit,
            )
            items = []
            for entry, distance in found:
                item = station_view(entry.state, runtime.settings)
                item["distance_m"] = round(distance, 1)
                item.update(free_seats(entry, now, fresh_s))
                item["open_now"] = is_open_now(entry, now, zone)
                items.append(item)
            local = {"items": items}
            if is_local(request):
                return self.json(local)
            answers, missing = await gather(runtime, request, local)
            merged = sorted(
                (item for answer in answers for item in answer["items"]),
                key=lambda item: (item["distance_m"], item["station_id"]),
            )[: query.limit]
            return self.json(
                {
                    "items": merged,
                    "as_of": now.isoformat(),
                    "occupancy_fresh_s": fresh_s,
                    "complete": not missing,
                    "missing_partitions": missing,
                }
            )

    @app.page("/stations/{station_id}")
    class Station(View):
        async def get(self, request: Request, station_id: str) -> Response:
            if not authorized(runtime, request):
                return unauthorized(self)
            if not _ID.fullmatch(station_id):
                return error(
                    self,
                    400,
                    f"station_id: {station_id[:40]!r} does not match {STATION_ID_PATTERN}",
                    parameter="station_id",
                )
            owner = owner_url(runtime, station_id)
            if owner is None:
                return not_ready(self)
            if owner != str(app.conf.canonical_url) and FORWARDED not in request.headers:
                try:
                    return self.json(await ask(runtime, owner, request, {FORWARDED: "1"}))
                except PeerAnswerError as exc:
                    if exc.status == 404:
                        return error(self, 404, f"station {station_id} is unknown")
                    return error(self, 503, f"the owning worker {owner} did not answer: {exc}")
                except ClientError as exc:
                    return error(self, 503, f"the owning worker {owner} did not answer: {exc}")
                except (OSError, TimeoutError) as exc:
                    return error(self, 503, f"the owning worker {owner} did not answer: {exc}")
            raw = table.get(station_id)
            if raw is None:
                return error(self, 404, f"station {station_id} is unknown")
            return self.json(station_view(raw, runtime.settings))

    @app.page("/stations")
    class Stations(View):
        async def get(self, request: Request) -> Response:
            if not authorized(runtime, request):
                return unauthorized(self)
            try:
                query = parse_query(ListQuery, query_params(request))
            except QueryError as exc:
                return error(self, 400, str(exc), parameter=exc.parameter)
            if is_local(request) and not runtime.index.ready:
                return not_ready(self)
            now = utcnow()
            chosen = sorted(
                (e for e in runtime.index if matches(e, query, now, zone)),
                key=lambda e: e.station_id,
            )
            window = chosen[: query.offset + query.limit]
            local = {
                "items": [stored_view(e.state, zone, now) for e in window],
                "total": len(chosen),
            }
            if is_local(request):
                return self.json(local)
            answers, missing = await gather(runtime, request, local)
            merged = sorted(
                (item for answer in answers for item in answer["items"]),
                key=lambda item: item["station_id"],
            )
            return self.json(
                {
                    "items": merged[query.offset : query.offset + query.limit],
                    "total": sum(answer["total"] for answer in answers),
                    "limit": query.limit,
                    "offset": query.offset,
                    "as_of": now.isoformat(),
                    "complete": not missing,
                    "missing_partitions": missing,
                }
            )

    @app.page("/summary")
    class Summary(View):
        async def get(self, request: Request) -> Response:
            if not authorized(runtime, request):
                return unauthorized(self)
            if request.query:
                name = next(iter(request.query))
                return error(self, 400, f"{name}: unknown parameter", parameter=name)
            if is_local(request) and not runtime.index.ready:
                return not_ready(self)
            now = utcnow()
            local = summarize(runtime, now, zone)
            if is_local(request):
                return self.json(local)
            answers, missing = await gather(runtime, request, local)
            total: dict[str, Any] = {"total": 0, "open_now": 0}
            for key in ("by_liveness", "by_category", "by_street", "by_lifecycle"):
                counter: Counter[str] = Counter()
                for answer in answers:
                    counter.update(answer[key])
                total[key] = dict(sorted(counter.items()))
            for answer in answers:
                total["total"] += answer["total"]
                total["open_now"] += answer["open_now"]
            total.update(as_of=now.isoformat(), complete=not missing, missing_partitions=missing)
            return self.json(total)


def summarize(runtime: Runtime, now: Any, zone: ZoneInfo) -> dict[str, Any]:
    by: dict[str, Counter[str]] = {
        "by_liveness": Counter(),
        "by_category": Counter(),
        "by_street": Counter(),
        "by_lifecycle": Counter(),
    }
    open_now = 0
    entries = list(runtime.index)
    for entry in entries:
        by["by_liveness"][entry.liveness] += 1
        by["by_category"][entry.category or "unknown"] += 1
        by["by_street"][entry.street or "unknown"] += 1
        by["by_lifecycle"][entry.lifecycle] += 1
        open_now += is_open_now(entry, now, zone)
    return {
        **{key: dict(counter) for key, counter in by.items()},
        "total": len(entries),
        "open_now": open_now,
    }
