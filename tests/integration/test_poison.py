"""One record the database refuses never stops the pipeline: it is dead-lettered with the reason
and every other record is written. And a worker stopped while the database is down exits."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

from stationwatch.broker import EmbeddedBroker
from tests.factories import dumps, heartbeat, profile
from tests.integration.harness import Producer, WorkerProcess, running_worker, wait_for, worker_env
from tests.integration.pgproxy import CuttableProxy
from tests.integration.reliability import Report
from tests.integration.test_worker import count_rows, read_topic

pytestmark = [pytest.mark.integration, pytest.mark.bad_input]

# A value validation accepts but this test's database refuses (a CHECK constraint, as an
# operator might add): the worker cannot know in advance, so the sink must isolate the row.
REFUSED_FIRMWARE = "9.9.9-refused"
WAITING = 20  # heartbeats that arrive while the worker holds a batch it cannot write


@pytest.fixture(scope="module")
def refusing_database(database_url: str) -> Iterator[str]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "ALTER TABLE stationwatch.heartbeats ADD CONSTRAINT firmware_not_refused "
            f"CHECK (firmware IS DISTINCT FROM '{REFUSED_FIRMWARE}') NOT VALID"
        )
    yield database_url
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE stationwatch.heartbeats DROP CONSTRAINT firmware_not_refused")


@pytest.fixture(scope="module")
async def worker(
    broker: EmbeddedBroker, refusing_database: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[WorkerProcess]:
    tmp = tmp_path_factory.mktemp("poison")
    async with running_worker(broker.url, refusing_database, tmp) as process:
        yield process


def prefix(worker: WorkerProcess) -> str:
    return worker.env["STATIONWATCH_TOPIC_PREFIX"]


async def send_with_one_bad(
    worker: WorkerProcess, sid: str, bad: dict[str, Any], now: datetime
) -> None:
    """5 good heartbeats, the bad one, 15 good ones (the issue's reproduction)."""
    async with Producer(worker.env["STATIONWATCH_KAFKA"], prefix(worker)) as producer:
        await producer.send("station.registry", sid, dumps(profile(sid)))
        for seq in range(21):
            sent_at = now - timedelta(seconds=60 - seq)
            beat = (
                heartbeat(sid, sent_at, seq) if seq != 5 else {**heartbeat(sid, sent_at, 5), **bad}
            )
            await producer.send("station.heartbeat", sid, dumps(beat))
        await producer.flush()


async def written_within(database_url: str, sid: str, want: int, timeout_s: float) -> float:
    started = time.monotonic()

    async def arrived() -> bool:
        return count_rows(database_url, "heartbeats", [sid]) >= want

    await wait_for(arrived, timeout_s=timeout_s, what=f"{want} heartbeats of {sid} written")
    return time.monotonic() - started


def letters_for(worker: WorkerProcess, sid: str) -> list[dict[str, Any]]:
    """Every dead letter of ``sid`` (the topic is read until it is quiet for 3 s)."""
    letters = read_topic(
        worker.env["STATIONWATCH_KAFKA"],
        prefix(worker) + "station.deadletter",
        want=10_000,
        timeout_s=3,
    )
    return [letter for letter in letters if letter["key"] == sid]


@pytest.mark.parametrize(
    ("case", "bad", "reason"),
    [
        # refused by validation: PostgreSQL cannot store a NUL character in text
        ("nul", {"firmware": "1.4\u00002"}, "firmware"),
        # accepted by validation, refused by the database: the batch is split around it
        ("constraint", {"firmware": REFUSED_FIRMWARE}, "database refused the heartbeats row"),
    ],
)
async def test_one_bad_heartbeat_is_dead_lettered_and_the_rest_written(
    worker: WorkerProcess,
    refusing_database: str,
    case: str,
    bad: dict[str, Any],
    reason: str,
    report: Report,
) -> None:
    sid = f"PZ-{case.upper()[:4]}{prefix(worker)[1:5].upper()}"
    await send_with_one_bad(worker, sid, bad, datetime.now(UTC))
    took = await written_within(refusing_database, sid, 20, timeout_s=20)
    letters = await asyncio.to_thread(letters_for, worker, sid)
    assert len(letters) == 1, letters
    assert reason in letters[0]["error"], letters[0]
    assert letters[0]["topic"] == prefix(worker) + "station.heartbeat"
    assert '"seq": 5' in letters[0]["raw"]
    assert count_rows(refusing_database, "heartbeats", [sid]) == 20
    assert took < 20
    # the worker goes on: a later heartbeat of the same station is written promptly
    async with Producer(worker.env["STATIONWATCH_KAFKA"], prefix(worker)) as producer:
        later = heartbeat(sid, datetime.now(UTC), 100)
        await producer.send("station.heartbeat", sid, dumps(later))
        await producer.flush()
    await written_within(refusing_database, sid, 21, timeout_s=10)
    report.record(
        events_sent=22,  # 21 heartbeats (one bad) and a later one
        rows_found=count_rows(refusing_database, "heartbeats", [sid]),
        duplicates=None,  # not measured here: (station, time) is the rows' key
        alerts_expected=0,
        alerts_seen=None,
        dead_letters=len(letters),
    )
    if case == "constraint":
        assert await worker.metric("stationwatch_rows_refused_total", table="heartbeats") >= 1
    health = await worker.get("/health")
    assert health.status_code == 200, health.text


async def test_a_worker_stopped_while_the_database_is_down_exits_promptly(
    broker: EmbeddedBroker, database_url: str, tmp_path: Path, unique: str
) -> None:
    parts = urlsplit(database_url)
    proxy = CuttableProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    via_proxy = parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}").geturl()
    env = worker_env(
        kafka_url=broker.url, database_url=via_proxy, token=unique, data_dir=tmp_path / "data"
    )
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    sid = f"PZ-DOWN{unique[:4].upper()}"
    try:
        await worker.wait_healthy()
        await proxy.cut()
        async with Producer(broker.url, env["STATIONWATCH_TOPIC_PREFIX"]) as producer:
            await producer.send(
                "station.heartbeat", sid, dumps(heartbeat(sid, datetime.now(UTC), 1))
            )
            await producer.flush()

        async def retrying() -> bool:
            return "consumption paused" in worker.log()

        await wait_for(retrying, timeout_s=20, what="the worker to hold its batch")
        # more arrive while the batch is held: taken into the next batch, never processed
        async with Producer(broker.url, env["STATIONWATCH_TOPIC_PREFIX"]) as producer:
            for seq in range(2, 2 + WAITING):
                beat = heartbeat(sid, datetime.now(UTC), seq)
                await producer.send("station.heartbeat", sid, dumps(beat))
            await producer.flush()
        await asyncio.sleep(1)  # fetched and handed to the agent's next batch
        started = time.monotonic()
        code = worker.stop(signal.SIGTERM, timeout=30)
        stopped_in = time.monotonic() - started
        assert stopped_in < 15, f"SIGTERM took {stopped_in:.1f} s:\n{worker.log()[-3000:]}"
        assert code == 0, worker.log()[-3000:]
        assert "not committed" in worker.log()
        # nothing was lost: the next worker, with the database back, writes the held rows
        await proxy.restore()
        worker = WorkerProcess(env, tmp_path / "worker.log").start()

        async def written() -> bool:
            return count_rows(database_url, "heartbeats", [sid]) == 1 + WAITING

        await wait_for(written, timeout_s=60, what="the held heartbeats written after restart")
    finally:
        worker.stop(signal.SIGKILL)
        await proxy.close()
