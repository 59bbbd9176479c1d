"""Phase "sink": the project's database sink against raw COPY, on the same heartbeat rows.

Raw: one asyncpg COPY of every row into a scratch table made ``LIKE stationwatch.heartbeats
INCLUDING ALL`` (same columns, primary key and indexes; on TimescaleDB a plain table, not a
hypertable). Sink: :class:`stationwatch.db.sink.TimescaleSink` writing the same rows into the
real, empty ``stationwatch.heartbeats`` in batches of the worker's batch size, as the worker
does. The heartbeats table is emptied afterwards, before any worker uses the database.

Each takes about a second, on a machine whose other tenants come and go: the two are
measured in turns, ``ROUNDS`` times, and the medians reported (the ratio is the median of
the rounds' ratios). One round each swung the ratio from 0.45 to 0.65 between two runs.
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from stationwatch.bench.tools import rate
from stationwatch.db.sink import HEARTBEAT_COLUMNS, Batch, TimescaleSink

ROUNDS = 3


def heartbeat_rows(station_ids: list[str], count: int) -> list[tuple[Any, ...]]:
    """``count`` distinct heartbeat rows, round robin over the stations, a millisecond apart."""
    start = datetime.now(UTC) - timedelta(milliseconds=count)
    rows = []
    for n in range(count):
        sid = station_ids[n % len(station_ids)]
        at = start + timedelta(milliseconds=n)
        values = {
            "time": at,
            "station_id": sid,
            "seq": n,
            "received_at": at,
            "device_id": f"gw-{sid}",
            "uptime_s": 86_400 + n,
            "battery_pct": 97.5,
            "on_mains": True,
            "temperature_c": 21.5,
            "firmware": "1.4.2",
            "interval_s": 30,
        }
        rows.append(tuple(values[c] for c in HEARTBEAT_COLUMNS))
    return rows


async def raw_copy_rate(database_url: str, rows: list[tuple[Any, ...]]) -> float:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("CREATE SCHEMA bench_scratch")
        await conn.execute(
            "CREATE TABLE bench_scratch.heartbeats (LIKE stationwatch.heartbeats INCLUDING ALL)"
        )
        started = time.perf_counter()
        await conn.copy_records_to_table(
            "heartbeats", schema_name="bench_scratch", records=rows, columns=HEARTBEAT_COLUMNS
        )
        elapsed = time.perf_counter() - started
        await conn.execute("DROP SCHEMA bench_scratch CASCADE")
    finally:
        await conn.close()
    return rate(len(rows), elapsed)


async def sink_rate(database_url: str, rows: list[tuple[Any, ...]], batch_size: int) -> float:
    sink = TimescaleSink(database_url)
    written = 0
    try:
        started = time.perf_counter()
        for at in range(0, len(rows), batch_size):
            result = await sink.write(Batch(heartbeats=rows[at : at + batch_size]))
            written += result.written.get("heartbeats", 0)
        elapsed = time.perf_counter() - started
    finally:
        await sink.close()
    if written != len(rows):
        raise RuntimeError(f"bench: the sink wrote {written} of {len(rows)} rows")
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("TRUNCATE stationwatch.heartbeats")
    finally:
        await conn.close()
    return rate(len(rows), elapsed)


async def measure_sink(
    database_url: str, station_ids: list[str], count: int, batch_size: int
) -> dict[str, Any]:
    rows = heartbeat_rows(station_ids, count)
    raws, sinks = [], []
    for _ in range(ROUNDS):
        raws.append(await raw_copy_rate(database_url, rows))
        sinks.append(await sink_rate(database_url, rows, batch_size))
    return {
        "sink_rows": count,
        "sink_batch_size": batch_size,
        "sink_rounds": ROUNDS,
        "raw_copy_rows_per_s": round(statistics.median(raws)),
        "sink_rows_per_s": round(statistics.median(sinks)),
        "sink_ratio": round(statistics.median(s / r for s, r in zip(sinks, raws, strict=True)), 3),
    }
