"""`stationwatch bench`: measure the worker on this machine, against raw baselines in the same run.

1. An embedded broker and a scratch database on the configured PostgreSQL server.
2. A fleet of ``--stations`` registry records is produced; raw baseline: aiokafka consuming and
   parsing the same records.
3. A real `stationwatch worker` ingests them: events/s against the raw baseline.
4. While heartbeats keep arriving at ``--ingest-rate``/s, ``GET /stations/{id}`` and
   ``GET /stations/nearby`` are timed one request at a time (``--requests`` each, and for at
   least 7.5 s each); the worker's ingest rate is measured meanwhile and over 15 s without
   requests just before. Raw baseline: the same client against
   a bare aiohttp server answering a fixed JSON body. Resident memory of the worker and of its
   API server process is read at the end of the timed phase.

Prints one JSON object. Targets (issue "live state API"): with 150,000 stations, station lookup
p99 ≤ 5 ms and nearby p99 ≤ 20 ms while ingest continues.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from schemas.topics import ALERTS, DEADLETTER, HEARTBEAT, INPUT_TOPICS, REGISTRY
from stationwatch.broker import EmbeddedBroker, bootstrap_servers, ensure_topics, free_port
from stationwatch.db.migrate import migrate
from stationwatch.fleet import build_fleet
from stationwatch.settings import Settings

TARGETS_MS = {"get_station_p99": 5.0, "nearby_p99": 20.0}
WINDOW_S = 15.0  # ingest is measured over this long without requests, then with each kind
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


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {
        "n": len(ordered),
        "p50": pick(0.50),
        "p90": pick(0.90),
        "p99": pick(0.99),
        "max": round(ordered[-1], 3),
        "mean": round(statistics.fmean(ordered), 3),
    }


def scratch_database(dsn: str) -> tuple[str, str]:
    base, _, _ = dsn.rpartition("/")
    name = f"stationwatch_bench_{uuid.uuid4().hex[:8]}"
    return f"{base}/{name}", name


def drop_database(dsn: str, name: str) -> None:
    base, _, _ = dsn.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def produce(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=256 * 1024, acks=1
    )
    await producer.start()
    started = time.perf_counter()
    try:
        for key, value in messages:
            await producer.send(topic, value=value, key=key)
        await producer.flush()
    finally:
        await producer.stop()
    return len(messages) / (time.perf_counter() - started)


async def raw_consume_rate(bootstrap: str, topic: str, expected: int) -> float:
    """Baseline: a bare aiokafka consumer reading and parsing the same records."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    seen = 0
    started = time.perf_counter()
    try:
        while seen < expected:
            batch = await consumer.getmany(timeout_ms=2000, max_records=5000)
            if not batch:
                break
            for records in batch.values():
                for record in records:
                    orjson.loads(record.value)
                seen += len(records)
    finally:
        await consumer.stop()
    return seen / (time.perf_counter() - started)


async def metric(session: aiohttp.ClientSession, url: str, name: str, **labels: str) -> float:
    async with session.get(f"{url}/metrics") as answer:
        text = await answer.text()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


async def wait_until(check: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientError, OSError):
            if await check():
                return
        await asyncio.sleep(0.5)
    raise TimeoutError(f"bench: timed out waiting for {what}")


async def time_requests(
    session: aiohttp.ClientSession, urls: list[str], headers: dict[str, str], min_s: float = 0.0
) -> list[float]:
    """Each URL once, one at a time, and again from the start until ``min_s`` have passed."""
    samples = []
    began = time.perf_counter()
    for n in itertools.count():
        if n >= len(urls) and time.perf_counter() - began >= min_s:
            break
        url = urls[n % len(urls)]
        started = time.perf_counter()
        async with session.get(url, headers=headers) as answer:
            await answer.read()
            if answer.status != 200:
                raise RuntimeError(f"bench: {url} answered {answer.status}")
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def keep_ingesting(bootstrap: str, topic: str, ids: list[str], rate: int) -> None:
    """Heartbeats for random stations at ``rate`` per second, until cancelled."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=10)
    await producer.start()
    rng = random.Random(7)  # noqa: S311 - load generation
    seq = 0
    try:
        while True:
            tick = time.perf_counter()
            now = datetime.now(UTC).isoformat()
            for _ in range(max(1, rate // 10)):
                sid = rng.choice(ids)
                seq += 1
                value = orjson.dumps({"station_id": sid, "sent_at": now, "seq": seq})
                await producer.send(topic, value=value, key=sid.encode())
            await asyncio.sleep(max(0.0, 0.1 - (time.perf_counter() - tick)))
    finally:
        with contextlib.suppress(Exception):
            await producer.stop()


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "stationwatch.cli", "worker"],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def profile_worker(pid: int) -> subprocess.Popen[bytes] | None:
    """With ``STATIONWATCH_BENCH_PROFILE=FILE``: py-spy samples the worker and its API server
    while requests are timed (only threads holding the GIL), in raw (collapsed) form."""
    path = os.environ.get("STATIONWATCH_BENCH_PROFILE")
    if not path:
        return None
    command = ["py-spy", "record", "--pid", str(pid), "--gil", "--threads", "--subprocesses"]
    command += ["-f", "raw"]
    return subprocess.Popen(  # noqa: S603 - a fixed profiler command line
        [*command, "-r", "200", "-d", "15", "-o", path],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process in MiB (Linux), or None when it cannot be read."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def child_pids(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def start_raw_server(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603 - a fixed script of this module
        [sys.executable, "-c", RAW_SERVER, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def run_bench(
    settings: Settings, *, stations: int, requests: int, ingest_rate: int, seed: int
) -> dict[str, Any]:
    result: dict[str, Any] = {"stations": stations, "targets_ms": TARGETS_MS}
    workdir = Path(tempfile.mkdtemp(prefix="stationwatch-bench-"))
    database_url, database = scratch_database(settings.dsn)
    migrate(database_url)
    token = uuid.uuid4().hex[:8]
    prefix = f"bench{token}."
    worker: subprocess.Popen[bytes] | None = None
    raw_server: subprocess.Popen[bytes] | None = None
    with EmbeddedBroker() as broker:
        bootstrap = bootstrap_servers(broker.url)
        try:
            names = [prefix + t for t in (*INPUT_TOPICS, ALERTS, DEADLETTER)]
            await ensure_topics(broker.url, names, settings.partitions)
            fleet = build_fleet(stations, seed, datetime.now(UTC))
            ids = [p.station_id for p in fleet]
            registry = [
                (p.station_id.encode(), orjson.dumps(p.model_dump(mode="json"))) for p in fleet
            ]
            del fleet
            result["produce_per_s"] = round(await produce(bootstrap, prefix + REGISTRY, registry))
            raw = await raw_consume_rate(bootstrap, prefix + REGISTRY, stations)
            result["raw_consume_per_s"] = round(raw)

            port = free_port()
            url = f"http://127.0.0.1:{port}"
            env = {
                "STATIONWATCH_KAFKA": broker.url,
                "STATIONWATCH_DATABASE_URL": database_url,
                "STATIONWATCH_TOPIC_PREFIX": prefix,
                "STATIONWATCH_APP_ID": f"bench-{token}",
                "STATIONWATCH_WEB_PORT": str(port),
                "STATIONWATCH_WEB_BIND": "127.0.0.1",
                "STATIONWATCH_DATA_DIR": str(workdir / "worker"),
                "STATIONWATCH_PARTITIONS": str(settings.partitions),
                "STATIONWATCH_BROKER_SESSION_TIMEOUT_S": "10",
                "STATIONWATCH_BROKER_HEARTBEAT_INTERVAL_S": "1",
                "STATIONWATCH_LOG_LEVEL": "WARNING",
            }
            worker = start_worker(env, workdir / "worker.log")
            async with aiohttp.ClientSession() as session:

                async def up() -> bool:
                    async with session.get(f"{url}/health") as answer:
                        return answer.status in (200, 503)

                await wait_until(up, 120, "the worker's web server")
                started = time.perf_counter()

                async def ingested() -> bool:
                    done = await metric(
                        session, url, "stationwatch_events_total", outcome="accepted"
                    )
                    return done >= stations

                await wait_until(ingested, 1800, "the worker to ingest the fleet")
                rate = stations / (time.perf_counter() - started)
                result["worker_ingest_per_s"] = round(rate)
                result["ingest_ratio_to_raw"] = round(rate / raw, 4)

                async def indexed() -> bool:
                    async with session.get(f"{url}/summary") as answer:
                        return answer.status == 200 and (await answer.json())["total"] >= stations

                await wait_until(indexed, 300, "the read model to hold every station")

                rng = random.Random(seed)  # noqa: S311 - sampling
                lookups = [f"{url}/stations/{rng.choice(ids)}" for _ in range(requests)]
                nearby = [
                    f"{url}/stations/nearby?lat={rng.uniform(40.0, 40.3):.5f}"
                    f"&lon={rng.uniform(116.45, 116.98):.5f}&radius_m=3000&limit=10"
                    for _ in range(requests)
                ]
                raw_port = free_port()
                raw_server = start_raw_server(raw_port)
                raw_url = f"http://127.0.0.1:{raw_port}"

                async def raw_up() -> bool:
                    async with session.get(raw_url) as answer:
                        return answer.status == 200

                await wait_until(raw_up, 30, "the raw HTTP baseline server")
                load = asyncio.create_task(
                    keep_ingesting(bootstrap, prefix + HEARTBEAT, ids, ingest_rate)
                )
                try:
                    # Time requests only once the worker keeps up with the heartbeat stream
                    # (after the fleet's registry, its changelog writes drain first).
                    async def flowing() -> bool:
                        start = await metric(session, url, "stationwatch_events_total")
                        await asyncio.sleep(2)
                        done = await metric(session, url, "stationwatch_events_total") - start
                        return done >= 0.8 * 2 * ingest_rate

                    await wait_until(flowing, 600, "the worker to keep up with the heartbeats")
                    # Ingest without requests, for comparison. The worker reports its metrics
                    # each second: windows of 15 s keep that out of the figures.
                    before = await metric(session, url, "stationwatch_events_total")
                    window = time.perf_counter()
                    await asyncio.sleep(WINDOW_S)
                    after = await metric(session, url, "stationwatch_events_total")
                    idle_rate = (after - before) / (time.perf_counter() - window)
                    profiler = profile_worker(worker.pid)
                    before = await metric(session, url, "stationwatch_events_total")
                    window = time.perf_counter()
                    get_ms = await time_requests(session, lookups, {}, WINDOW_S / 2)
                    near_ms = await time_requests(session, nearby, {}, WINDOW_S / 2)
                    elapsed = time.perf_counter() - window
                    after = await metric(session, url, "stationwatch_events_total")
                    result["memory_mb"] = {
                        "worker": rss_mb(worker.pid),
                        "api_server": next((rss_mb(p) for p in child_pids(worker.pid)), None),
                    }
                    # The baseline under the same load: a bare server, same client.
                    raw_ms = await time_requests(session, [f"{raw_url}/x"] * requests, {})
                    if profiler is not None:
                        profiler.wait(timeout=120)
                finally:
                    load.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await load
                result["ingest_offered_per_s"] = ingest_rate
                result["ingest_without_requests_per_s"] = round(idle_rate)
                result["ingest_during_requests_per_s"] = round((after - before) / elapsed)
                result["ingest_during_requests_ratio"] = round(
                    (after - before) / elapsed / max(idle_rate, 1e-9), 2
                )
                result["get_station_ms"] = percentiles(get_ms)
                result["nearby_ms"] = percentiles(near_ms)
                result["raw_http_ms"] = percentiles(raw_ms)
                result["get_station_p99_ratio_to_raw"] = round(
                    result["get_station_ms"]["p99"] / result["raw_http_ms"]["p99"], 2
                )
                result["nearby_p99_ratio_to_raw"] = round(
                    result["nearby_ms"]["p99"] / result["raw_http_ms"]["p99"], 2
                )
            result["met"] = {
                "get_station_p99": result["get_station_ms"]["p99"] <= TARGETS_MS["get_station_p99"],
                "nearby_p99": result["nearby_ms"]["p99"] <= TARGETS_MS["nearby_p99"],
            }
        finally:
            for process in (worker, raw_server):
                if process is not None and process.poll() is None:
                    process.terminate()
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        process.wait(timeout=30)
                    if process.poll() is None:
                        process.kill()
            drop_database(settings.dsn, database)
    result["worker_log"] = str(workdir / "worker.log")
    return result
