"""Fuzzing the real worker: a deterministic corpus of bad input on every input topic, sent in
rounds with good messages after each round's bad ones.

Every bad record is dead-lettered with its reason (matched by topic, partition and offset),
none of them reaches a table, and the good messages behind them are written promptly: the
longest stall (a good message produced → its row in PostgreSQL) is measured and bounded.
A one-line JSON summary is printed (``pytest -s``) for reports.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiokafka import AIOKafkaProducer
from kafka import KafkaConsumer

from schemas.common import STATION_ID_PATTERN
from schemas.topics import HEARTBEAT, INPUT_TOPICS, OCCUPANCY, REGISTRY, STATUS
from stationwatch.broker import EmbeddedBroker, bootstrap_servers
from tests import corpus
from tests.factories import dumps, heartbeat, occupancy, profile, status
from tests.integration.harness import WorkerProcess, wait_for, worker_env
from tests.integration.reliability import Report

pytestmark = [pytest.mark.integration, pytest.mark.bad_input]

PER_TOPIC = 300
ROUNDS = 10
STALL_LIMIT_S = 10.0  # a good message must be in its table this soon after it was produced
TABLES = ("heartbeats", "occupancy", "status_events", "stations", "station_current")
Place = tuple[str, int, int]  # prefixed topic, partition, offset


async def send(
    producer: AIOKafkaProducer, topic: str, key: bytes | None, value: bytes | None
) -> Any:
    """Queue one record; the returned future resolves to its metadata once the broker has it."""
    return await producer.send(topic, key=key, value=value)


def good_round(token: str, index: int, base: datetime) -> list[tuple[str, str, dict[str, Any]]]:
    """One good message per topic: (topic, its row's identity in the database, message)."""
    beating = f"FG-{token}BEAT"
    at = base + timedelta(seconds=index)
    registered = f"FG-{token}R{index:02d}"
    state = "open" if index % 2 else "closed"
    return [
        (HEARTBEAT, f"heartbeats:{at.isoformat()}", heartbeat(beating, at, index)),
        (OCCUPANCY, f"occupancy:{at.isoformat()}", occupancy(beating, at, index % 10)),
        (STATUS, f"status_events:{at.isoformat()}", status(beating, at, state)),
        (REGISTRY, f"stations:{registered}", profile(registered)),
    ]


async def rows_present(conn: psycopg.AsyncConnection[Any], token: str) -> set[str]:
    """The good rows written so far, named as :func:`good_round` names them."""
    found: set[str] = set()
    beating = f"FG-{token}BEAT"
    for table in ("heartbeats", "occupancy", "status_events"):
        cursor = await conn.execute(
            f"SELECT time FROM stationwatch.{table} WHERE station_id = %s",  # noqa: S608 - fixed names
            (beating,),
        )
        found.update(
            f"{table}:{row[0].astimezone(UTC).isoformat()}" for row in await cursor.fetchall()
        )
    cursor = await conn.execute(
        "SELECT station_id FROM stationwatch.stations WHERE station_id LIKE %s", (f"FG-{token}R%",)
    )
    found.update(f"stations:{row[0]}" for row in await cursor.fetchall())
    return found


async def all_written(conn: psycopg.AsyncConnection[Any], token: str, expected: set[str]) -> bool:
    return expected <= await rows_present(conn, token)


def read_dead_letters(
    kafka_url: str, topic: str, want: set[Place], timeout_s: float = 60
) -> dict[Place, dict[str, Any]]:
    """Read the dead-letter topic (kafka-python, an independent client) until every place in
    ``want`` has its letter, or the time is up."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap_servers(kafka_url),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=5_000,
        group_id=None,
    )
    letters: dict[Place, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout_s
    try:
        while not want <= set(letters) and time.monotonic() < deadline:
            for record in consumer:
                letter = json.loads(record.value)
                letters[(letter["topic"], letter["partition"], letter["offset"])] = letter
                if want <= set(letters):
                    break
        return letters
    finally:
        consumer.close()


async def test_bad_input_is_dead_lettered_and_never_stalls_the_worker(
    broker: EmbeddedBroker, database_url: str, tmp_path: Path, unique: str, report: Report
) -> None:
    started = time.monotonic()
    token = unique[:6].upper()
    env = worker_env(
        kafka_url=broker.url, database_url=database_url, token=unique, data_dir=tmp_path / "data"
    )
    prefix = env["STATIONWATCH_TOPIC_PREFIX"]
    now = datetime.now(UTC).replace(microsecond=0)
    cases = corpus.corpus(
        lambda n: f"FZ-{token}{n:04d}", now, seed=corpus.SEED, per_topic=PER_TOPIC
    )
    fuzz_ids = sorted({c.station_id for c in cases})
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers(broker.url), acks="all", linger_ms=5
    )
    conn = await psycopg.AsyncConnection.connect(database_url, autocommit=True)
    try:
        await worker.wait_healthy()
        await producer.start()
        bad_futures: list[tuple[corpus.Case, Any]] = []
        good_places: set[Place] = set()
        stalls: list[float] = []
        drains: list[float] = []
        per_round = -(-len(cases) // ROUNDS)
        base = now - timedelta(minutes=5)
        for index in range(ROUNDS):
            for case in cases[index * per_round : (index + 1) * per_round]:
                future = await send(producer, prefix + case.topic, case.key, case.value)
                bad_futures.append((case, future))
            produced: dict[str, float] = {}
            for topic, row, message in good_round(token, index, base):
                key = message["station_id"].encode()
                metadata = await (await send(producer, prefix + topic, key, dumps(message)))
                produced[row] = time.monotonic()
                good_places.add((prefix + topic, metadata.partition, metadata.offset))
            sent = max(produced.values())

            # poll often: the stall is measured to the poll that first sees every row
            await wait_for(
                partial(all_written, conn, token, set(produced)),
                timeout_s=60,
                interval=0.05,
                what=f"the good rows of round {index}",
            )
            seen = time.monotonic()
            stalls.append(seen - min(produced.values()))
            drains.append(seen - sent)

        places: dict[Place, corpus.Case] = {}
        for case, future in bad_futures:
            metadata = await future
            places[(prefix + case.topic, metadata.partition, metadata.offset)] = case
        letters = await asyncio.to_thread(
            read_dead_letters, broker.url, prefix + "station.deadletter", set(places)
        )

        report.record(
            events_sent=len(places) + len(good_places),
            rows_found=len(good_places),  # each round waited until its good rows were written
            duplicates=None,
            alerts_expected=0,
            alerts_seen=None,
            bad_records=len(places),
            dead_letters=sum(1 for p in places if p in letters),
            longest_stall_s=round(max(stalls), 2),
        )
        missing = [(p, places[p].kind) for p in places if p not in letters]
        assert not missing, f"{len(missing)} bad records not dead-lettered, e.g. {missing[:5]}"
        wrong = [
            (places[p].kind, places[p].expect, letters[p]["error"])
            for p in places
            if not any(word in letters[p]["error"] for word in places[p].expect)
        ]
        assert not wrong, f"{len(wrong)} dead letters with another reason, e.g. {wrong[:5]}"
        assert not good_places & set(letters), "a good message was dead-lettered"
        assert all(letters[p]["error"].strip() for p in places)

        for table in TABLES:
            cursor = await conn.execute(
                f"SELECT count(*) FROM stationwatch.{table} "  # noqa: S608 - fixed names
                "WHERE station_id = ANY(%s) OR station_id !~ %s",
                (fuzz_ids, STATION_ID_PATTERN),
            )
            assert await cursor.fetchone() == (0,), f"{table}: rows of bad input"
        assert worker.process is not None
        assert worker.process.poll() is None, worker.log()[-3000:]
        log = worker.log()
        assert "Traceback" not in log, log[log.index("Traceback") - 2000 :][:6000]
        assert max(stalls) < STALL_LIMIT_S, stalls

        assert set(Counter(case.topic for case in places.values())) == set(INPUT_TOPICS)
        summary = {
            "test": "fuzz_worker",
            "seed": corpus.SEED,
            "tried": dict(Counter(case.topic for case in places.values())),
            "dead_letters": dict(Counter(case.topic for p, case in places.items() if p in letters)),
            "kinds": dict(sorted(Counter(case.kind for case in places.values()).items())),
            "good_messages": len(good_places),
            "rounds": ROUNDS,
            "longest_stall_s": round(max(stalls), 3),
            "longest_round_drain_s": round(max(drains), 3),
            "runtime_s": round(time.monotonic() - started, 1),
        }
        print(json.dumps(summary, sort_keys=True))  # noqa: T201 - the report, shown with `pytest -s`
    finally:
        await producer.stop()
        await conn.close()
        worker.stop()
