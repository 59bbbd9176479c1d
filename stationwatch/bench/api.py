"""Phase "api": the HTTP API under ingest, and the worker's memory.

While heartbeats arrive at a steady rate (``--ingest-rate``, but at most 80 % of the rate the
pipeline phase measured, so the worker keeps up and no backlog is left for the next phases),
the worker's ingest is measured over a window without requests, then ``GET /stations/{id}``
and ``GET /stations/nearby`` are timed one request at a time (``--requests`` each, and for at
least half a window each). Raw baseline: the same client against a bare aiohttp server
answering a fixed JSON body. Resident memory of the worker and of its API server process is
read at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import subprocess
import sys
import time
from typing import Any

import aiohttp

from stationwatch.bench.tools import mib, percentiles, wait_until
from stationwatch.bench.traffic import Load
from stationwatch.bench.workers import Worker
from stationwatch.broker import free_port

RAW_SERVER = """
import sys
from aiohttp import web
body = b'{"station_id": "SY-0001", "liveness": "online", "occupants": 3}'
async def handle(request):
    return web.Response(body=body, content_type="application/json")
app = web.Application()
app.router.add_get("/{tail:.*}", handle)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


async def time_requests(
    session: aiohttp.ClientSession, urls: list[str], min_s: float = 0.0
) -> list[float]:
    """Each URL once, one at a time, and again from the start until ``min_s`` have passed."""
    samples = []
    began = time.perf_counter()
    for n in itertools.count():
        if n >= len(urls) and time.perf_counter() - began >= min_s:
            break
        url = urls[n % len(urls)]
        started = time.perf_counter()
        async with session.get(url) as answer:
            await answer.read()
            if answer.status != 200:
                raise RuntimeError(f"bench: {url} answered {answer.status}")
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def start_raw_server(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603 - a fixed script of this module
        [sys.executable, "-c", RAW_SERVER, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def events(worker: Worker) -> float:
    return await worker.metric("stationwatch_events_total")


async def measure_api(
    worker: Worker,
    load: Load,
    *,
    station_ids: list[str],
    stations: int,
    requests: int,
    offered_per_s: float,
    window_s: float,
    seed: int,
) -> dict[str, Any]:
    session = worker.session
    rng = random.Random(seed)  # noqa: S311 - sampling
    lookups = [f"{worker.url}/stations/{rng.choice(station_ids)}" for _ in range(requests)]
    nearby = [
        f"{worker.url}/stations/nearby?lat={rng.uniform(40.0, 40.3):.5f}"
        f"&lon={rng.uniform(116.45, 116.98):.5f}&radius_m=3000&limit=10"
        for _ in range(requests)
    ]
    raw_port = free_port()
    raw_server = start_raw_server(raw_port)
    raw_url = f"http://127.0.0.1:{raw_port}/x"
    try:

        async def raw_up() -> bool:
            async with session.get(raw_url) as answer:
                return answer.status == 200

        await wait_until(raw_up, 30, "the raw HTTP baseline server")
        load.background_per_s = offered_per_s
        await asyncio.sleep(min(window_s, 3))  # the load settles in
        # The worker reports its metrics each second: windows of several seconds keep that
        # granularity out of the figures.
        before, window = await events(worker), time.perf_counter()
        await asyncio.sleep(window_s)
        idle_rate = (await events(worker) - before) / (time.perf_counter() - window)
        before, window = await events(worker), time.perf_counter()
        get_ms = await time_requests(session, lookups, window_s / 2)
        near_ms = await time_requests(session, nearby, window_s / 2)
        busy_rate = (await events(worker) - before) / (time.perf_counter() - window)
        worker_rss, api_rss = worker.memory()
        raw_ms = await time_requests(session, [raw_url] * requests)
    finally:
        load.background_per_s = 0
        raw_server.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            raw_server.wait(timeout=10)
    get_p, near_p, raw_p = percentiles(get_ms), percentiles(near_ms), percentiles(raw_ms)
    return {
        "ingest_offered_per_s": round(offered_per_s),
        "ingest_without_requests_per_s": round(idle_rate),
        "ingest_during_requests_per_s": round(busy_rate),
        "ingest_during_requests_ratio": round(busy_rate / max(idle_rate, 1e-9), 2),
        "get_station_ms": get_p,
        "nearby_ms": near_p,
        "raw_http_ms": raw_p,
        "get_station_p99_ratio_to_raw": round(get_p["p99"] / raw_p["p99"], 2),
        "nearby_p99_ratio_to_raw": round(near_p["p99"] / raw_p["p99"], 2),
        "point_query_p99_ms": get_p["p99"],
        "nearby_p99_ms": near_p["p99"],
        "memory_mb": {"worker": mib(worker_rss), "api_server": mib(api_rss)},
        "worker_rss_bytes": worker_rss or 0,
        "api_server_rss_bytes": api_rss or 0,
        "rss_bytes_per_station": round((worker_rss or 0) / stations),
    }
