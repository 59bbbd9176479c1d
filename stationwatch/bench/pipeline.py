"""Phases "registry", "first heartbeats" and "pipeline": input offered faster than the worker
takes it, timed end to end until PostgreSQL holds every row.

- registry: once the worker is healthy (its start and group join are not counted: the
  recovery phase times those), the fleet's profiles are produced as fast as the broker takes
  them, timed from the first sent until ``stationwatch.stations`` holds every station.
- first heartbeats: every station's first heartbeat since its registration, produced as fast
  as the broker takes them, timed until the heartbeats table holds every one. A station's
  first heartbeat is a change of liveness (``unknown`` to ``online``: a ``liveness_changes``
  row, the long way of judging); the ones after it are the steady work the pipeline times.
  Without this pass the two sizes would time different work: at 150,000 stations the
  pipeline's 45 s held about 2.6 heartbeats per station, 40 % of them first ones; at 10,000
  its 20 s held about 20, 5 % first ones.
- pipeline: a round (:func:`saturate`) produces heartbeats (full fields, each a row of its
  own) so that the worker always has a backlog (3 s of its rate so far, or of a prior guess,
  and at least 1,000, ahead of the rows written), for a fixed time; then production stops
  and the clock runs until the heartbeats table holds every heartbeat produced. Rate =
  heartbeats / that whole time. ``min_backlog`` is the least backlog seen after the first
  2 s (a third of a shorter round): above 0 means the worker never waited for input. The
  bench runs cycles of four rounds, the comparison size's two around the bench size's two
  (:meth:`stationwatch.bench.run.Bench.pipeline_rounds`).
Registry and pipeline are set against raw aiokafka consume + parse of records of the same
form, in the same run: the registry's own, and as many heartbeats from the start of the
heartbeats topic (first heartbeats and pipeline alike, made by one generator).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from stationwatch.bench.tools import Progress, rate, wait_until
from stationwatch.bench.traffic import Heartbeats, Message, produce, producer, send_all
from stationwatch.bench.workers import Worker

POLL_S = 0.5
MIN_BACKLOG = 1000
BACKLOG_S = 3.0


@dataclass
class Rows:
    """Counts rows of the bench database, as any reader of it would."""

    conn: asyncpg.Connection

    async def stations(self) -> int:
        return int(await self.conn.fetchval("SELECT count(*) FROM stationwatch.stations"))

    async def heartbeats_since(self, since: datetime) -> int:
        query = "SELECT count(*) FROM stationwatch.heartbeats WHERE time >= $1"
        return int(await self.conn.fetchval(query, since))


async def load_registry(
    worker: Worker,
    rows: Rows,
    registry: tuple[str, str, list[Message]],
    progress: Progress,
    timeout_s: float,
) -> dict[str, Any]:
    """Once the worker is healthy, produce the fleet's profiles (``registry``: bootstrap,
    topic, records) and time until the stations table holds every station."""
    bootstrap, topic, records = registry
    stations = len(records)
    await wait_until(worker.healthy, 300, f"{worker.name} to be healthy")
    started = time.monotonic()
    accepted_at: float | None = None
    last_report = started

    async def loaded() -> bool:
        nonlocal accepted_at, last_report
        if accepted_at is None:
            accepted = await worker.metric("stationwatch_events_total", outcome="accepted")
            accepted_at = time.monotonic() if accepted >= stations else None
        held = await rows.stations()
        if time.monotonic() - last_report >= 30:
            last_report = time.monotonic()
            progress(f"  registry: {held:,} of {stations:,} stations in PostgreSQL")
        return held >= stations

    produced, done = await produce_until(
        bootstrap, topic, records, loaded, timeout_s, "every station in the stations table"
    )
    indexed = await _wait_index(worker, stations)
    return {
        "produce_per_s": round(produced),
        "registry_events_per_s": round(rate(stations, done - started), 1),
        "registry_s": round(done - started, 1),
        # today's figure: registry events the worker accepted (its metric) per second
        "worker_ingest_per_s": round(rate(stations, (accepted_at or done) - started)),
        "read_model_s": round(indexed - done, 1),
    }


async def produce_until(
    bootstrap: str,
    topic: str,
    messages: list[Message],
    check: Callable[[], Awaitable[bool]],
    timeout_s: float,
    what: str,
    interval_s: float = POLL_S,
) -> tuple[float, float]:
    """Produce ``messages`` as fast as the broker takes them while polling ``check`` (as
    :func:`wait_until` does) until it holds. Returns the producer's rate (messages/s) and the
    monotonic time ``check`` first held. A producer that fails fails the wait at once, with
    its error; one still sending when the wait ends (a timeout) is stopped."""
    sending = asyncio.create_task(produce(bootstrap, topic, messages))

    def failed() -> None:
        if sending.done() and (error := sending.exception()) is not None:
            raise RuntimeError(f"bench: producing to {topic}: {error!r}") from error

    async def held() -> bool:
        failed()
        return await check()

    try:
        done = await wait_until(held, timeout_s, what, interval_s)
        return await sending, done
    except TimeoutError:
        failed()  # a producer that failed since the last look: its error, not the timeout
        raise
    finally:
        sending.cancel()
        await asyncio.gather(sending, return_exceptions=True)  # stopped before returning


async def _wait_index(worker: Worker, stations: int) -> float:
    async def indexed() -> bool:
        status, body = await worker.get("/summary")
        return status == 200 and body.get("total", 0) >= stations

    return await wait_until(indexed, 600, "the read model to hold every station")


def shuffled(station_ids: list[str], seed: int) -> list[str]:
    """The stations in an order of their own, the same for a seed."""
    order = list(station_ids)
    random.Random(seed).shuffle(order)  # noqa: S311 - load generation
    return order


async def first_beats(
    bootstrap: str,
    topic: str,
    station_ids: list[str],
    beats: Heartbeats,
    rows: Rows,
    seed: int,
    timeout_s: float,
) -> dict[str, Any]:
    """One heartbeat of every station, in a shuffled order, timed from the first sent until
    every one is a row."""
    order = shuffled(station_ids, seed)
    since = datetime.fromtimestamp(time.time() - 1, UTC)
    base = await rows.heartbeats_since(since)
    messages = beats.many(order)
    started = time.monotonic()

    async def written() -> bool:
        return await rows.heartbeats_since(since) - base >= len(messages)

    _, done = await produce_until(
        bootstrap, topic, messages, written, timeout_s, "every first heartbeat's row", 0.25
    )
    return {"first_beats_per_s": round(rate(len(messages), done - started), 1)}


async def saturate(
    bootstrap: str,
    topic: str,
    cursor: Iterator[str],
    beats: Heartbeats,
    rows: Rows,
    seconds: float,
    progress: Progress,
    prior_per_s: float = 2000,
) -> dict[str, Any]:
    """Offer heartbeats faster than they are written for ``seconds`` (of the stations
    ``cursor`` names, in its order: an endless one), then wait until every one is a row.
    Returns the end-to-end rate and how it was measured. The first ``warm`` seconds (2, or
    a third of a shorter round) size the backlog by ``prior_per_s`` and are left out of
    ``min_backlog``."""
    warm = min(2.0, seconds / 3)
    since = datetime.fromtimestamp(time.time() - 1, UTC)
    base = await rows.heartbeats_since(since)
    sender = producer(bootstrap)
    produced, least = 0, None
    try:
        await sender.start()
        started = time.monotonic()
        while (now := time.monotonic()) - started < seconds:
            done = await rows.heartbeats_since(since) - base
            backlog = produced - done
            if now - started > warm:
                least = backlog if least is None else min(least, backlog)
            so_far = rate(done, now - started) if now - started > warm else prior_per_s
            ahead = max(MIN_BACKLOG, BACKLOG_S * so_far)
            if backlog < ahead:
                chunk = beats.many(itertools.islice(cursor, int(ahead - backlog)))
                produced += await send_all(sender, topic, chunk)
            await asyncio.sleep(POLL_S)
        await sender.flush()
    finally:
        await sender.stop()
    offered_until = time.monotonic()
    written = await rows.heartbeats_since(since) - base
    progress(
        f"  offered {produced:,} heartbeats in {offered_until - started:.0f} s; "
        f"{produced - written:,} still to write"
    )

    async def all_written() -> bool:
        return await rows.heartbeats_since(since) - base >= produced

    drain_limit = 120 + 3 * rate(produced - written, max(rate(written, seconds), 1.0))
    finished = await wait_until(all_written, drain_limit, "every heartbeat row", POLL_S)
    elapsed = finished - started
    return {
        "heartbeats": produced,
        "seconds": round(elapsed, 1),
        "events_per_s": round(rate(produced, elapsed), 1),
        "min_backlog": least if least is not None else 0,
    }
