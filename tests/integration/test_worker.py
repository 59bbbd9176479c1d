"""The worker end to end: real broker, real PostgreSQL, real `stationwatch worker` process."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from kafka import KafkaConsumer

from stationwatch.allocator import find_jemalloc, jemalloc_loaded, process_allocator
from stationwatch.bench.tools import child_pids
from stationwatch.broker import EmbeddedBroker, bootstrap_servers
from tests.factories import dumps, heartbeat, occupancy, profile, status
from tests.integration.harness import Producer, WorkerProcess, running_worker, wait_for, worker_env

pytestmark = pytest.mark.integration


def station_ids(prefix: str, count: int) -> list[str]:
    return [f"IT-{prefix.upper()}{i:02d}" for i in range(count)]


def count_rows(database_url: str, table: str, ids: list[str]) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            f"SELECT count(*) FROM stationwatch.{table} WHERE station_id = ANY(%s)",  # noqa: S608
            (ids,),
        ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture(scope="module")
async def worker(
    broker: EmbeddedBroker, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[WorkerProcess]:
    """One worker shared by the tests of this module; each test uses its own stations."""
    tmp = tmp_path_factory.mktemp("worker")
    async with running_worker(broker.url, database_url, tmp) as process:
        yield process


@pytest.fixture
async def producer(broker: EmbeddedBroker, worker: WorkerProcess) -> AsyncIterator[Producer]:
    async with Producer(broker.url, worker.env["STATIONWATCH_TOPIC_PREFIX"]) as running:
        yield running


def telemetry(ids: list[str], now: datetime) -> list[tuple[str, str, dict[str, Any]]]:
    messages: list[tuple[str, str, dict[str, Any]]] = []
    for sid in ids:
        messages.append(("station.registry", sid, profile(sid)))
        messages.extend(
            ("station.heartbeat", sid, heartbeat(sid, now - timedelta(seconds=60 - seq), seq))
            for seq in range(20)
        )
        messages.extend(
            ("station.occupancy", sid, occupancy(sid, now - timedelta(seconds=50 - i), i))
            for i in range(10)
        )
        for i, state in enumerate(["open", "closed", "open", "closed"]):
            messages.append(
                ("station.status", sid, status(sid, now - timedelta(minutes=10 - i), state))
            )
    return messages


async def send_all(producer: Producer, messages: list[tuple[str, str, dict[str, Any]]]) -> None:
    for topic, key, value in messages:
        await producer.send(topic, key, dumps(value))
    await producer.flush()


async def test_each_message_writes_exactly_one_row_even_when_delivered_twice(
    worker: WorkerProcess, producer: Producer, database_url: str, unique: str
) -> None:
    ids = station_ids(unique[:6], 5)
    messages = telemetry(ids, datetime.now(UTC))
    expected = {"heartbeats": 100, "occupancy": 50, "status_events": 20, "stations": 5}
    before = await worker.metric("stationwatch_events_total", outcome="accepted")
    await send_all(producer, messages)

    async def all_rows() -> bool:
        return all(count_rows(database_url, t, ids) == n for t, n in expected.items())

    await wait_for(all_rows, timeout_s=30, what="every row to be written")

    await send_all(producer, messages)  # the same messages again: a redelivery

    async def processed_twice() -> bool:
        done = await worker.metric("stationwatch_events_total", outcome="accepted")
        return done - before >= 2 * len(messages)

    await wait_for(processed_twice, timeout_s=30, what="the redelivered messages to be processed")
    assert {t: count_rows(database_url, t, ids) for t in expected} == expected


async def test_live_state_holds_the_newest_values_whatever_the_arrival_order(
    worker: WorkerProcess, producer: Producer, unique: str
) -> None:
    sid = station_ids(unique[:6], 1)[0]
    now = datetime.now(UTC).replace(microsecond=0)
    beats = [heartbeat(sid, now - timedelta(seconds=30 - i), i) for i in range(30)]
    counts = [occupancy(sid, now - timedelta(seconds=20 - i), i % 7) for i in range(20)]
    events = [
        status(sid, now - timedelta(minutes=5 - i), s)
        for i, s in enumerate(["closed", "open", "closed", "open"])
    ]
    shuffled = [("station.heartbeat", b) for b in beats] + [
        ("station.occupancy", c) for c in counts
    ]
    shuffled += [("station.status", e) for e in events]
    random.Random(7).shuffle(shuffled)
    await producer.send(
        "station.registry", sid, dumps(profile(sid, capacity=8, category="smart_24h"))
    )
    for topic, message in shuffled:
        await producer.send(topic, sid, dumps(message))
    await producer.flush()

    async def state() -> dict[str, Any] | None:
        response = await worker.get(f"/stations/{sid}")
        if response.status_code != 200:
            return None
        body: dict[str, Any] = response.json()
        return (
            body
            if body["last_seq"] == 29
            and body["occupancy_at"] is not None
            # the same instant, shown in STATIONWATCH_TIMEZONE whatever offset it came in
            and datetime.fromisoformat(body["occupancy_at"])
            == datetime.fromisoformat(counts[-1]["observed_at"])
            else None
        )

    body = await wait_for(state, timeout_s=30, what="the live state to show the newest values")
    assert datetime.fromisoformat(body["last_heartbeat_at"]) == now - timedelta(seconds=1)
    assert body["occupants"] == counts[-1]["occupants"]
    assert body["open_state"] == "open"
    assert datetime.fromisoformat(body["open_state_since"]) == now - timedelta(minutes=2)
    assert body["category"] == "smart_24h"
    assert body["capacity"] == 10  # the occupancy message's capacity wins over the registry's 8
    assert body["lifecycle"] == "active"
    assert body["scheduled_open"] is True

    unknown = await worker.get("/stations/ZZ-NOSUCH1")
    assert unknown.status_code == 404
    bad = await worker.get("/stations/not-an-id")
    assert bad.status_code == 400
    assert "station_id" in bad.json()["error"]


def malformed(sid: str, now: datetime) -> list[tuple[str, bytes | None, bytes | None, str]]:
    """Ten kinds of bad input: (topic, key, value, words the dead letter's reason must hold)."""
    good = heartbeat(sid, now, 1)
    key = sid.encode()
    future = (now + timedelta(days=2)).isoformat()
    return [
        ("station.heartbeat", key, b'{"station_id": "' + key + b'", "sent_at"', "Invalid JSON"),
        (
            "station.occupancy",
            key,
            dumps(occupancy(sid, now, 3) | {"occupants": "3"}),
            "valid integer",
        ),
        ("station.occupancy", key, dumps(occupancy(sid, now, -1)), "greater than or equal to 0"),
        (
            "station.heartbeat",
            b"sy-1",
            dumps(good | {"station_id": "sy-1"}),
            "should match pattern",
        ),
        ("station.heartbeat", b"XX-OTHER", dumps(good), "differs from station_id"),
        ("station.heartbeat", None, dumps(good), "key: missing"),
        ("station.heartbeat", key, dumps(good | {"sent_at": "2026-11-30T08:00:00"}), "timezone"),
        ("station.status", key, dumps(status(sid, now, "ajar")), "should be 'open' or 'closed'"),
        ("station.heartbeat", key, dumps(good | {"pad": "x" * 70_000}), "bytes, more than"),
        ("station.heartbeat", key, dumps(good | {"sent_at": future}), "in the future"),
    ]


async def test_bad_input_is_dead_lettered_with_its_reason_and_good_input_around_it_lands(
    worker: WorkerProcess, producer: Producer, database_url: str, unique: str
) -> None:
    sid = station_ids(unique[:6], 1)[0]
    now = datetime.now(UTC)
    bad = malformed(sid, now)
    await producer.send("station.registry", sid, dumps(profile(sid)))
    seq = 0
    for _round in range(10):
        for topic, key, value, _words in bad:
            await producer.send(
                "station.heartbeat", sid, dumps(heartbeat(sid, now - timedelta(seconds=seq), seq))
            )
            seq += 1
            await producer.send(topic, key, value)
    await producer.flush()

    prefix = worker.env["STATIONWATCH_TOPIC_PREFIX"]
    letters = await asyncio.to_thread(
        read_topic, worker.env["STATIONWATCH_KAFKA"], prefix + "station.deadletter", 100
    )
    assert len(letters) == 100
    by_reason = {words: 0 for *_, words in bad}
    for letter in letters:
        assert letter["error"]
        assert letter["topic"].startswith(prefix)
        assert isinstance(letter["offset"], int)
        assert isinstance(letter["raw"], str)
        assert len(letter["raw"]) <= 64 * 1024
        datetime.fromisoformat(letter["at"])
        matching = [w for w in by_reason if w in letter["error"]]
        assert len(matching) == 1, letter["error"]
        by_reason[matching[0]] += 1
    assert all(n == 10 for n in by_reason.values()), by_reason

    async def good_rows() -> bool:
        return count_rows(database_url, "heartbeats", [sid]) == 100

    await wait_for(good_rows, timeout_s=30, what="the 100 good heartbeats around the bad input")
    assert worker.process is not None
    assert worker.process.poll() is None


def read_topic(
    kafka_url: str, topic: str, want: int, timeout_s: float = 30
) -> list[dict[str, Any]]:
    """Read ``want`` records with an independent client (kafka-python)."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap_servers(kafka_url),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=int(timeout_s * 1000),
        group_id=None,
    )
    try:
        records: list[dict[str, Any]] = []
        for record in consumer:
            records.append(json.loads(record.value))
            if len(records) >= want:
                break
        return records
    finally:
        consumer.close()


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
async def test_a_restarted_worker_recovers_the_live_state(
    broker: EmbeddedBroker, database_url: str, tmp_path: Path, unique: str, store: str
) -> None:
    env = worker_env(
        kafka_url=broker.url, database_url=database_url, token=unique, data_dir=tmp_path / "data"
    )
    env["STATIONWATCH_STORE"] = store
    ids = station_ids(unique[:6], 3)
    first = WorkerProcess(env, tmp_path / "first.log").start()
    try:
        await first.wait_healthy()
        async with Producer(broker.url, env["STATIONWATCH_TOPIC_PREFIX"]) as producer:
            await send_all(producer, telemetry(ids, datetime.now(UTC)))

        async def states() -> list[dict[str, Any]] | None:
            bodies = [(await first.get(f"/stations/{sid}")) for sid in ids]
            if any(b.status_code != 200 or b.json()["last_seq"] != 19 for b in bodies):
                return None
            return [b.json() for b in bodies]

        before = await wait_for(states, timeout_s=30, what="the live state of every station")
    finally:
        assert first.stop() == 0, first.log()[-3000:]

    second = WorkerProcess(env, tmp_path / "second.log").start()
    try:
        await second.wait_healthy()
        after = [(await second.get(f"/stations/{sid}")).json() for sid in ids]
    finally:
        second.stop()
    volatile = {"scheduled_open"}
    assert [{k: v for k, v in s.items() if k not in volatile} for s in after] == [
        {k: v for k, v in s.items() if k not in volatile} for s in before
    ]


@pytest.mark.skipif(find_jemalloc() is None, reason="no jemalloc library (Debian: libjemalloc2)")
def test_the_worker_runs_with_jemalloc_and_its_api_server_with_pythons(
    worker: WorkerProcess,
) -> None:
    assert worker.process is not None
    api_servers = child_pids(worker.process.pid)
    assert len(api_servers) == 1
    assert process_allocator(worker.process.pid) == "jemalloc"
    assert process_allocator(api_servers[0]) == "python"  # not inherited
    assert not jemalloc_loaded(Path(f"/proc/{api_servers[0]}/maps"))
    assert "memory allocator: jemalloc, for every object" in worker.log()
