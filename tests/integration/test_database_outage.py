"""The database goes away under a running worker: nothing is lost, and the worker says so —
for a few seconds, and (fault test 3 of issue 12) for a minute while the fleet keeps sending."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from stationwatch.broker import EmbeddedBroker
from tests.factories import dumps, heartbeat, profile
from tests.integration.alerts_reader import TopicCollector
from tests.integration.harness import Producer, WorkerProcess, wait_for, worker_env
from tests.integration.paced_fleet import PacedFleet
from tests.integration.pgproxy import CuttableProxy
from tests.integration.reliability import Report, sizes
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


@pytest.mark.parametrize("outage_s", sizes(reduced=8, full=60))
async def test_a_long_outage_while_the_fleet_keeps_sending_loses_nothing(
    broker: EmbeddedBroker,
    database_url: str,
    tmp_path: Path,
    unique: str,
    proxied: tuple[CuttableProxy, dict[str, str]],
    report: Report,
    outage_s: int,
) -> None:
    """Fault test 3 (issue 12): the database away for ``outage_s`` while heartbeats keep
    coming. The worker stays up and says why on /health all along, then writes every held
    row; the stations that kept sending raise no alert."""
    proxy, env = proxied
    prefix = env["STATIONWATCH_TOPIC_PREFIX"]
    stations = [f"DL-{unique[:5].upper()}{n:03d}" for n in range(50)]
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        await worker.wait_healthy()
        async with (
            TopicCollector(broker.url, prefix + "station.alerts") as alerts,
            PacedFleet.running(broker.url, prefix, period_s=1) as fleet,
        ):
            await fleet.register(profile(s, heartbeat_interval_s=5) for s in stations)
            fleet.beating.update(stations)

            async def flowing() -> bool:
                return count_rows(database_url, "heartbeats", stations) >= 2 * len(stations)

            await wait_for(flowing, timeout_s=60, what="rows written before the outage")
            await proxy.cut()
            cut_at = time.monotonic()

            async def reports_outage() -> bool:
                response = await worker.get("/health")
                return response.status_code == 503 and response.json()["database"] == "retrying"

            await wait_for(reports_outage, timeout_s=30, what="/health to report the outage")
            detected_s = time.monotonic() - cut_at
            answers: Counter[str] = Counter()
            while time.monotonic() - cut_at < outage_s:  # the outage itself: /health all along
                assert worker.process is not None
                assert worker.process.poll() is None, "the worker died in the outage"
                response = await worker.get("/health")
                body = response.json()
                answers[f"{response.status_code} {body['database']}"] += 1
                assert "database unavailable, writes are being retried" in body["problems"]
                await asyncio.sleep(1)
            held = count_rows(database_url, "heartbeats", stations)
            await proxy.restore()
            restored_at = time.monotonic()

            async def caught_up() -> bool:
                return count_rows(database_url, "heartbeats", stations) >= fleet.sent

            await wait_for(caught_up, timeout_s=120, what="the held rows written")
            resumed_s = time.monotonic() - restored_at
            await worker.wait_healthy(timeout_s=60)
            await fleet.stop()
            sent = fleet.sent

            async def all_written() -> bool:
                return count_rows(database_url, "heartbeats", stations) >= sent

            with contextlib.suppress(AssertionError):  # asserted below, figures first
                await wait_for(all_written, timeout_s=30, what="every heartbeat written")
            await asyncio.sleep(1)  # an observation window: no alert may arrive in it
        rows = count_rows(database_url, "heartbeats", stations)
        report.record(
            events_sent=sent,
            rows_found=rows,
            duplicates=max(0, rows - sent),
            alerts_expected=0,
            alerts_seen=len(alerts.records),
            outage_s=outage_s,
            detected_s=round(detected_s, 1),
            resumed_s=round(resumed_s, 1),
            rows_held_back=sent - held,
        )
        assert rows == sent
        assert set(answers) == {"503 retrying"}, answers
        assert held < sent  # the outage held rows back: the test tested something
        assert alerts.records == []
        assert "database writes recovered" in worker.log()
    finally:
        worker.stop()
