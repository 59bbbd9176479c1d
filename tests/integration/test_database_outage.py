"""The database goes away under a running worker: nothing is lost, and the worker says so."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from stationwatch.broker import EmbeddedBroker
from tests.factories import dumps, heartbeat, profile
from tests.integration.harness import Producer, WorkerProcess, wait_for, worker_env
from tests.integration.pgproxy import CuttableProxy
from tests.integration.test_worker import count_rows

pytestmark = pytest.mark.integration


@pytest.fixture
async def proxied(
    broker: EmbeddedBroker, database_url: str, tmp_path: Path, unique: str
) -> AsyncIterator[tuple[CuttableProxy, dict[str, str]]]:
    """A cuttable proxy in front of PostgreSQL, and worker settings that go through it."""
    parts = urlsplit(database_url)
    proxy = CuttableProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    via_proxy = parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}").geturl()
    env = worker_env(
        kafka_url=broker.url, database_url=via_proxy, token=unique, data_dir=tmp_path / "data"
    )
    try:
        yield proxy, env
    finally:
        await proxy.close()


async def send_beats(producer: Producer, sid: str, seqs: range, now: datetime, back_s: int) -> None:
    """Heartbeats ``seq`` for each of ``seqs``, sent ``back_s - seq`` seconds before ``now``."""
    for seq in seqs:
        sent_at = now - timedelta(seconds=back_s - seq)
        await producer.send("station.heartbeat", sid, dumps(heartbeat(sid, sent_at, seq)))
    await producer.flush()


async def test_worker_holds_its_input_while_the_database_is_down_and_loses_nothing(
    broker: EmbeddedBroker,
    database_url: str,
    tmp_path: Path,
    unique: str,
    proxied: tuple[CuttableProxy, dict[str, str]],
) -> None:
    proxy, env = proxied
    sid = f"DB-{unique[:6].upper()}"
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    now = datetime.now(UTC)
    try:
        await worker.wait_healthy()
        async with Producer(broker.url, env["STATIONWATCH_TOPIC_PREFIX"]) as producer:
            await producer.send("station.registry", sid, dumps(profile(sid)))
            await send_beats(producer, sid, range(50), now, 200)

            async def first_rows() -> bool:
                return count_rows(database_url, "heartbeats", [sid]) == 50

            await wait_for(first_rows, timeout_s=30, what="the rows written before the outage")

            await proxy.cut()
            await send_beats(producer, sid, range(50, 150), now, 200)

            async def reports_outage() -> bool:
                response = await worker.get("/health")
                return response.status_code == 503 and response.json()["database"] == "retrying"

            await wait_for(
                reports_outage, timeout_s=30, what="/health to report the database outage"
            )

            async def retried() -> bool:
                return await worker.metric("stationwatch_db_retries_total") >= 3

            await wait_for(retried, timeout_s=30, what="three retries of the held batch")
            assert "consumption paused" in worker.log()
            assert count_rows(database_url, "heartbeats", [sid]) == 50

            await proxy.restore()

            async def all_rows() -> bool:
                return count_rows(database_url, "heartbeats", [sid]) == 150

            await wait_for(all_rows, timeout_s=60, what="the held rows after the database returned")
            await worker.wait_healthy(timeout_s=30)
            assert "database writes recovered" in worker.log()
            assert worker.process is not None
            assert worker.process.poll() is None
    finally:
        worker.stop()


async def test_a_worker_killed_during_an_outage_loses_no_row(
    broker: EmbeddedBroker,
    database_url: str,
    tmp_path: Path,
    proxied: tuple[CuttableProxy, dict[str, str]],
    unique: str,
) -> None:
    """Offsets are committed only after rows are written: a crash while the database is down
    leaves the held messages to the next worker."""
    proxy, env = proxied
    sid = f"DK-{unique[:6].upper()}"
    now = datetime.now(UTC)
    first = WorkerProcess(env, tmp_path / "first.log").start()
    second = WorkerProcess(env, tmp_path / "second.log")
    try:
        await first.wait_healthy()
        await proxy.cut()
        async with Producer(broker.url, env["STATIONWATCH_TOPIC_PREFIX"]) as producer:
            await producer.send("station.registry", sid, dumps(profile(sid)))
            await send_beats(producer, sid, range(80), now, 100)

        # The worker has read input it cannot write: the batch it holds is retried, and the
        # rest waits behind it (how much went into that batch is up to the batching).
        async def holding() -> bool:
            accepted = await first.metric("stationwatch_events_total", outcome="accepted")
            return accepted > 0 and await first.metric("stationwatch_db_retries_total") >= 2

        await wait_for(holding, timeout_s=30, what="the worker to hold a batch it cannot write")
        # An observation window, longer than Faust's commit interval: a commit of the held
        # offsets would land in it, and the next worker would then miss those rows.
        await asyncio.sleep(4)
        assert count_rows(database_url, "heartbeats", [sid]) == 0
        first.stop(signal.SIGKILL)
        await proxy.restore()
        second.start()

        async def all_rows() -> bool:
            return (
                count_rows(database_url, "heartbeats", [sid]) == 80
                and count_rows(database_url, "stations", [sid]) == 1
            )

        await wait_for(all_rows, timeout_s=90, what="the next worker to write every held row")
    finally:
        first.stop()
        second.stop()
