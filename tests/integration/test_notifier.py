"""The notifier end to end: alerts on the real broker, its state in the real PostgreSQL, notices
to a real HTTP receiver; grouped, once, retried, silenced, and across a kill -9."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from stationwatch.broker import EmbeddedBroker, free_port
from tests.integration.harness import Producer, wait_for
from tests.integration.notifier_harness import (
    NotifierProcess,
    Sink,
    alert,
    notifier_env_for,
    send_alerts,
    station_ids,
    webhook_config,
    write_config,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    running = await Sink().start()
    yield running
    await running.stop()


async def test_a_street_going_dark_is_one_notice_and_its_recovery_another(
    broker: EmbeddedBroker, database_url: str, tmp_path: Path, unique: str, sink: Sink
) -> None:
    config = write_config(tmp_path / "notify.yaml", webhook_config(sink.url))
    env = notifier_env_for(broker.url, database_url, unique, tmp_path, config)
    notifier = NotifierProcess(env, tmp_path / "notifier.log").start()
    dark = station_ids("KG", 40)
    other = station_ids("HS", 5)
    start = datetime.now(UTC).replace(microsecond=0)
    try:
        await notifier.wait_healthy()
        async with Producer(broker.url, env["STATIONWATCH_TOPIC_PREFIX"]) as producer:
            await send_alerts(
                producer,
                [alert(s, "offline", "firing", start) for s in dark]
                + [alert(s, "offline", "firing", start, street="后沙峪镇") for s in other],
            )

            async def two_notices() -> bool:
                return len(sink.bodies) >= 2

            await wait_for(two_notices, timeout_s=30, what="the two street notices")
            await asyncio.sleep(3)  # an observation window: a duplicate would arrive in it
            assert len(sink.bodies) == 2, [b["groupLabels"] for b in sink.bodies]
            by_street = {b["groupLabels"]["street"]: b for b in sink.bodies}
            assert sorted(len(b["alerts"]) for b in sink.bodies) == [5, 40]
            konggang = by_street["空港街道"]
            assert konggang["version"] == "4"
            assert konggang["status"] == "firing"
            assert konggang["groupLabels"] == {"kind": "offline", "street": "空港街道"}
            assert {a["labels"]["station_id"] for a in konggang["alerts"]} == set(dark)

            ended = start + timedelta(minutes=1)
            await send_alerts(
                producer,
                [alert(s, "offline", "resolved", start, ends_at=ended) for s in dark],
            )

            async def recovered() -> bool:
                return len(sink.bodies) >= 3

            await wait_for(recovered, timeout_s=30, what="the recovery notice")
        await asyncio.sleep(3)  # an observation window
        assert len(sink.bodies) == 3
        recovery = sink.bodies[2]
        assert recovery["status"] == "resolved"
        assert len(recovery["alerts"]) == 40
        assert {a["status"] for a in recovery["alerts"]} == {"resolved"}
        with psycopg.connect(database_url) as conn:
            rows = conn.execute(
                "SELECT outcome, count(*) FROM stationwatch.deliveries "
                "WHERE station_ids && %s GROUP BY outcome",
                (dark + other,),
            ).fetchall()
        assert dict(rows) == {"delivered": 3}
    finally:
        assert notifier.stop() == 0, notifier.log()[-3000:]


async def test_a_receiver_failing_three_times_gets_the_notice_once_with_the_tries_logged(
    broker: EmbeddedBroker, database_url: str, tmp_path: Path, unique: str
) -> None:
    sink = await Sink(fail_first=3).start()
    config = write_config(tmp_path / "notify.yaml", webhook_config(sink.url))
    env = notifier_env_for(broker.url, database_url, unique, tmp_path, config)
    notifier = NotifierProcess(env, tmp_path / "notifier.log").start()
    stations = station_ids("RT", 3)
    try:
        await notifier.wait_healthy()
        async with Producer(broker.url, env["STATIONWATCH_TOPIC_PREFIX"]) as producer:
            await send_alerts(
                producer, [alert(s, "stale", "firing", datetime.now(UTC)) for s in stations]
            )

        async def delivered() -> bool:
            return len(sink.bodies) >= 1

        await wait_for(delivered, timeout_s=30, what="the notice after three failures")
        await asyncio.sleep(2)  # an observation window
        assert sink.answers == [500, 500, 500, 200]
        assert len(sink.bodies) == 1
        with psycopg.connect(database_url) as conn:
            notice = conn.execute(
                "SELECT notice_id, outcome, attempts FROM stationwatch.deliveries "
                "WHERE station_ids && %s",
                (stations,),
            ).fetchall()
            assert [(o, a) for _, o, a in notice] == [("delivered", 4)]
            tries = conn.execute(
                "SELECT attempt, ok, status_code FROM stationwatch.notice_attempts "
                "WHERE notice_id = %s ORDER BY attempt",
                (notice[0][0],),
            ).fetchall()
        assert tries == [(1, False, 500), (2, False, 500), (3, False, 500), (4, True, 200)]
    finally:
        notifier.stop()
        await sink.stop()


async def test_a_silenced_street_is_recorded_not_delivered(
    broker: EmbeddedBroker, database_url: str, tmp_path: Path, unique: str, sink: Sink
) -> None:
    config = write_config(tmp_path / "notify.yaml", webhook_config(sink.url))
    env = notifier_env_for(broker.url, database_url, unique, tmp_path, config)
    street = f"静默街道{unique[:4]}"
    silenced = station_ids("SL", 4)
    heard = station_ids("HD", 2)
    add = await asyncio.create_subprocess_exec(
        *("stationwatch", "silence", "add", f"street={street}", "--duration", "1h"),
        *("--by", "值班员", "--comment", "停电检修"),
        env={**env, "PATH": str(Path(__import__("sys").executable).parent)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await add.communicate()
    assert add.returncode == 0, err.decode()
    silence_id = out.decode().split()[0]
    notifier = NotifierProcess(env, tmp_path / "notifier.log").start()
    try:
        await notifier.wait_healthy()
        now = datetime.now(UTC)
        async with Producer(broker.url, env["STATIONWATCH_TOPIC_PREFIX"]) as producer:
            await send_alerts(
                producer,
                [alert(s, "offline", "firing", now, street=street) for s in silenced]
                + [alert(s, "offline", "firing", now, street="南法信镇") for s in heard],
            )

        async def recorded() -> bool:
            with psycopg.connect(database_url) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM stationwatch.suppressed_alerts "
                    "WHERE station_id = ANY(%s) AND reason = 'silenced' AND silence_id = %s",
                    (silenced, silence_id),
                ).fetchone()
            return bool(row and row[0] == len(silenced)) and len(sink.bodies) >= 1

        await wait_for(recorded, timeout_s=30, what="the silenced alerts recorded")
        await asyncio.sleep(3)  # an observation window: nothing of the silenced street arrives
        delivered = {a["labels"]["station_id"] for a in sink.alerts()}
        assert delivered == set(heard)
    finally:
        notifier.stop()


async def test_a_notifier_killed_mid_stream_neither_repeats_nor_loses_a_notice(
    broker: EmbeddedBroker, database_url: str, tmp_path: Path, unique: str, sink: Sink
) -> None:
    """Killed with groups delivered, groups waiting (their alerts read, their notices not yet
    sent) and alerts still arriving. (A kill between a receiver's acceptance and the log write
    repeats that one notice: at-least-once there, as in any notifier; not what this tests.)"""
    config = write_config(
        tmp_path / "notify.yaml", webhook_config(sink.url, group_wait="3s", group_interval="1s")
    )
    env = notifier_env_for(broker.url, database_url, unique, tmp_path, config)
    streets = [f"街道{unique[:4]}{n:02d}" for n in range(12)]
    stations = {street: station_ids("KL", 5) for street in streets}
    first = NotifierProcess(env, tmp_path / "first.log").start()
    start = datetime.now(UTC).replace(microsecond=0)
    second: NotifierProcess | None = None
    try:
        await first.wait_healthy()
        async with Producer(broker.url, env["STATIONWATCH_TOPIC_PREFIX"]) as producer:
            for street in streets[:6]:
                await send_alerts(
                    producer,
                    [alert(s, "offline", "firing", start, street=street) for s in stations[street]],
                )

            async def delivered() -> bool:
                with psycopg.connect(database_url) as conn:
                    row = conn.execute(
                        "SELECT count(*) FROM stationwatch.deliveries "
                        "WHERE outcome = 'delivered' AND group_labels->>'street' = ANY(%s)",
                        (streets[:6],),
                    ).fetchone()
                return bool(row and row[0] == 6) and len(sink.bodies) == 6

            await wait_for(delivered, timeout_s=30, what="the first six streets told")
            for street in streets[6:9]:  # read, waiting in their groups, when the kill comes
                await send_alerts(
                    producer,
                    [alert(s, "offline", "firing", start, street=street) for s in stations[street]],
                )

            async def waiting() -> bool:
                # the six told groups still fire (kept for repeats), and three new ones wait
                return "notifier_pending_groups 9.0" in await first.metrics_text()

            await wait_for(waiting, timeout_s=10, what="three groups waiting", interval=0.05)
            first.stop(signal.SIGKILL)
            assert len(sink.bodies) == 6
            for street in streets[9:]:  # sent while no notifier runs
                await send_alerts(
                    producer,
                    [alert(s, "offline", "firing", start, street=street) for s in stations[street]],
                )
        second = NotifierProcess(env, tmp_path / "second.log").start()
        await second.wait_healthy(timeout_s=90)

        async def every_street() -> bool:
            return {b["groupLabels"]["street"] for b in sink.bodies} >= set(streets)

        await wait_for(every_street, timeout_s=60, what="a notice for every street")
        await asyncio.sleep(4)  # an observation window: a repeated notice would arrive in it
        per_street = Counter(b["groupLabels"]["street"] for b in sink.bodies)
        assert per_street == dict.fromkeys(streets, 1), per_street
        for body in sink.bodies:
            street = body["groupLabels"]["street"]
            assert {a["labels"]["station_id"] for a in body["alerts"]} == set(stations[street])
    finally:
        first.stop()
        if second is not None:
            second.stop()


async def test_two_notifiers_share_the_groups_and_tell_each_street_once(
    broker: EmbeddedBroker, database_url: str, tmp_path: Path, unique: str, sink: Sink
) -> None:
    config = write_config(tmp_path / "notify.yaml", webhook_config(sink.url))
    env = notifier_env_for(broker.url, database_url, unique, tmp_path, config)
    env_b = {**env, "STATIONWATCH_NOTIFIER_PORT": str(free_port())}
    first = NotifierProcess(env, tmp_path / "first.log").start()
    second = NotifierProcess(env_b, tmp_path / "second.log").start()
    streets = [f"共享街道{unique[:4]}{n:02d}" for n in range(16)]
    stations = {street: station_ids("SH", 3) for street in streets}
    start = datetime.now(UTC).replace(microsecond=0)
    try:
        await first.wait_healthy(timeout_s=90)
        await second.wait_healthy(timeout_s=90)
        async with Producer(broker.url, env["STATIONWATCH_TOPIC_PREFIX"]) as producer:
            await send_alerts(
                producer,
                [
                    alert(s, "offline", "firing", start, street=street)
                    for street in streets
                    for s in stations[street]
                ],
            )

        async def every_street() -> bool:
            return {b["groupLabels"]["street"] for b in sink.bodies} >= set(streets)

        await wait_for(every_street, timeout_s=60, what="a notice for every street")
        await asyncio.sleep(4)  # an observation window: a second notifier's copy would arrive
        per_street = Counter(b["groupLabels"]["street"] for b in sink.bodies)
        assert per_street == dict.fromkeys(streets, 1), per_street
        told_by = {
            name: notifier.log().count("delivered to hook")
            for name, notifier in (("first", first), ("second", second))
        }
        assert all(told_by.values()), told_by  # both did part of the work
        assert sum(told_by.values()) == len(streets)
    finally:
        first.stop()
        second.stop()
