"""Fault test 2 (issue 12): failover. Two workers share the partitions; one is killed (-9).

Before the kill, some stations are offline (their episodes open, on both workers). At the kill,
those come back and others fall silent. The survivor takes the dead worker's partitions over
once the group's session timeout has passed, recovers their state from the changelog, and
then resolves each open episode (the episode's state survived: same alert id, no second
episode) and raises each new offline episode once; the stations that kept sending raise none.
A message of the batch in flight at the kill may come again from the survivor (at-least-once
output, as in the worker-kill test): counted, and bounded to one repeat.

Measured: how long the survivor took to own every partition (``takeover_s``), and how long
after their offline threshold the dead worker's silent stations were found offline
(``judged_late_s``, the largest; the threshold itself is ``OFFLINE_AFTER`` seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from stationwatch.broker import EmbeddedBroker
from streams.api import SCOPE
from streams.tracker import partition_for
from tests.factories import profile
from tests.integration.alerts_reader import TopicCollector
from tests.integration.harness import WorkerProcess, wait_for
from tests.integration.paced_fleet import PacedFleet, missing_heartbeats
from tests.integration.reliability import Report, sizes
from tests.integration.test_fault_backlog import by_liveness, heartbeat_rows
from tests.integration.test_liveness import OFFLINE_AFTER, liveness_env

pytestmark = pytest.mark.integration

PARTITIONS = 4
SESSION_TIMEOUT_S = 6


def failover_env(
    broker: EmbeddedBroker, database_url: str, token: str, data: Path
) -> dict[str, str]:
    env = liveness_env(broker, database_url, token, data)
    env.update(
        STATIONWATCH_PARTITIONS=str(PARTITIONS),
        STATIONWATCH_BROKER_SESSION_TIMEOUT_S=str(SESSION_TIMEOUT_S),
    )
    return env


async def owned(worker: WorkerProcess) -> set[int]:
    """The partitions whose stations the worker itself serves (its API's local answer)."""
    async with httpx.AsyncClient(base_url=worker.url, timeout=5) as client:
        try:
            answer = await client.get("/summary", headers={SCOPE: "local"})
        except httpx.HTTPError:
            return set()
    return set(answer.json().get("partitions", [])) if answer.status_code == 200 else set()


def offline(alerts: TopicCollector, state: str) -> Counter[str]:
    """Offline episodes (alert ids) in ``state`` per station: a repeated message of the same
    episode counts once."""
    return Counter(
        station
        for station, _ in {
            (a["station_id"], a["alert_id"])
            for a in alerts.records
            if a["kind"] == "offline" and a["state"] == state
        }
    )


@pytest.mark.parametrize("count", sizes(reduced=40, full=400))
async def test_the_survivor_takes_over_and_neither_loses_nor_doubles_an_episode(
    broker: EmbeddedBroker,
    database_url: str,
    tmp_path: Path,
    unique: str,
    report: Report,
    count: int,
) -> None:
    env_a = failover_env(broker, database_url, unique, tmp_path / "data-a")
    env_b = {**failover_env(broker, database_url, unique, tmp_path / "data-b")}
    env_b["STATIONWATCH_TOPIC_PREFIX"] = env_a["STATIONWATCH_TOPIC_PREFIX"]
    env_b["STATIONWATCH_APP_ID"] = env_a["STATIONWATCH_APP_ID"]
    prefix = env_a["STATIONWATCH_TOPIC_PREFIX"]
    stations = [f"FO-{unique[:5].upper()}{n:04d}" for n in range(count)]
    # a tenth of each partition's stations offline before the kill, beating again from it,
    # and a tenth falling silent at the kill
    by_partition = [
        [s for s in stations if partition_for(s, PARTITIONS) == p] for p in range(PARTITIONS)
    ]
    back = [s for group in by_partition for s in group[: max(1, len(group) // 10)]]
    late = [s for group in by_partition for s in group[-max(1, len(group) // 10) :]]
    steady = [s for s in stations if s not in {*back, *late}]
    survivor = WorkerProcess(env_a, tmp_path / "a.log").start()
    victim = WorkerProcess(env_b, tmp_path / "b.log")
    try:
        await survivor.wait_healthy()
        victim.start()
        await victim.wait_healthy()

        async def shared() -> bool:
            mine, theirs = await owned(survivor), await owned(victim)
            return bool(mine) and bool(theirs) and mine | theirs == set(range(PARTITIONS))

        await wait_for(shared, timeout_s=60, what="both workers to own partitions")
        async with (
            TopicCollector(broker.url, prefix + "station.alerts") as alerts,
            PacedFleet.running(broker.url, prefix, period_s=0.5) as fleet,
        ):
            await fleet.register(profile(s, heartbeat_interval_s=1) for s in stations)
            fleet.beating.update(stations)

            async def all_online() -> bool:
                return (await by_liveness(survivor)).get("online") == count

            await wait_for(all_online, timeout_s=90, what=f"{count} stations online")
            fleet.beating.difference_update(back)

            async def back_offline() -> bool:
                return set(offline(alerts, "firing")) == set(back)

            await wait_for(back_offline, timeout_s=60, what="the first silent ones offline")
            theirs = await owned(victim)
            victims_late = [s for s in late if partition_for(s, PARTITIONS) in theirs]
            victims_back = [s for s in back if partition_for(s, PARTITIONS) in theirs]
            assert victims_late, f"the victim owns nothing ({theirs}): nothing is tested"
            assert victims_back, "the victim holds no open episode: nothing is tested"

            killed = time.monotonic()
            victim.stop(signal.SIGKILL)
            fleet.beating.difference_update(late)
            fleet.beating.update(back)

            async def taken_over() -> bool:
                return await owned(survivor) == set(range(PARTITIONS))

            await wait_for(taken_over, timeout_s=90, interval=0.1, what="the survivor to own all")
            takeover_s = time.monotonic() - killed

            async def settled() -> bool:  # (more than these is a failure, asserted below)
                return set(offline(alerts, "resolved")) >= set(back) and set(
                    offline(alerts, "firing")
                ) >= set(back) | set(late)

            await wait_for(settled, timeout_s=90, what="the episodes resolved and the new fired")
            # An observation window: a repeated or second episode would arrive in it.
            await asyncio.sleep(3)
            await fleet.stop()
            sent = fleet.sent

        async def all_written() -> bool:
            return heartbeat_rows(database_url, stations)[0] >= sent

        # the figures are recorded and asserted below, whether or not this wait succeeds
        with contextlib.suppress(AssertionError):
            await wait_for(all_written, timeout_s=60, what="every heartbeat written")
        rows, duplicate_rows = heartbeat_rows(database_url, stations)

        firings = [a for a in alerts.records if a["kind"] == "offline" and a["state"] == "firing"]
        late_found = {
            a["station_id"]: datetime.fromisoformat(a["detected_at"])
            - datetime.fromisoformat(a["starts_at"])
            for a in firings
            if a["station_id"] in victims_late
        }
        judged_late_s = max(d.total_seconds() for d in late_found.values())
        messages = Counter((a["alert_id"], a["state"]) for a in alerts.records)
        repeated = sum(n - 1 for n in messages.values())
        report.record(
            events_sent=sent,
            rows_found=rows,
            duplicates=duplicate_rows,
            alerts_expected=2 * len(back) + len(late),  # offline fired and resolved, fired
            alerts_seen=len(offline(alerts, "firing")) + len(offline(alerts, "resolved")),
            takeover_s=round(takeover_s, 1),
            judged_late_s=round(judged_late_s, 1),
            alert_messages_repeated=repeated,
            stations=count,
        )
        assert (rows, duplicate_rows) == (sent, 0), missing_heartbeats(
            database_url, fleet, PARTITIONS
        )
        assert not {a["station_id"] for a in alerts.records} & set(steady)
        assert offline(alerts, "firing") == dict.fromkeys([*back, *late], 1)
        assert offline(alerts, "resolved") == dict.fromkeys(back, 1)
        # the dead worker's open episodes, recovered from the changelog, resolved under their
        # own ids
        for sid in victims_back:
            ids = {a["alert_id"] for a in alerts.records if a["station_id"] == sid}
            assert len(ids) <= 2, (sid, ids)  # offline (and a stale before it): one id each
        # At-least-once output (see the worker-kill test): a message of the batch in flight at
        # the kill may come again from the survivor — the same episode, at most once.
        assert set(messages.values()) <= {1, 2}, messages
        # the victim's silent stations judged within the session timeout plus the threshold
        assert judged_late_s < SESSION_TIMEOUT_S + OFFLINE_AFTER + 10, late_found
    finally:
        survivor.stop()
        victim.stop()
