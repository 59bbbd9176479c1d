"""A worker or notifier that stops cleanly leaves its consumer group at once, also in the
group's first generation (numbered 0 by the embedded broker), so the next member does not wait
for a departed one. Read from the broker itself, with the independent client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from stationwatch.broker import EmbeddedBroker, bootstrap_servers
from tests.integration.harness import WorkerProcess, wait_for, worker_env
from tests.integration.notifier_harness import NotifierProcess, notifier_env, webhook_config

pytestmark = pytest.mark.integration


async def members(broker: EmbeddedBroker, group: str) -> list[Any]:
    """The group's members as the broker describes them (DescribeGroups)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers(broker.url))
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    (described,) = response.to_object()["groups"]
    return list(described["members"])


async def test_a_cleanly_stopped_worker_and_notifier_leave_their_groups(
    broker: EmbeddedBroker, database_url: str, tmp_path: Path, unique: str
) -> None:
    env = worker_env(
        kafka_url=broker.url, database_url=database_url, token=unique, data_dir=tmp_path / "d"
    )
    config = tmp_path / "notify.yaml"
    config.write_text(webhook_config("http://127.0.0.1:9/hook"), encoding="utf-8")
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    notifier = NotifierProcess(notifier_env(env, config), tmp_path / "notifier.log").start()
    groups = {
        "worker": env["STATIONWATCH_APP_ID"],
        "notifier": f"{env['STATIONWATCH_APP_ID']}-notifier",
    }
    try:
        await worker.wait_healthy()
        await notifier.wait_healthy()

        async def joined() -> bool:
            counts = [len(await members(broker, g)) for g in groups.values()]
            return counts == [1, 1]

        await wait_for(joined, timeout_s=30, what="both in their groups")
        assert notifier.stop() == 0
        assert worker.stop() == 0
        left = {name: await members(broker, g) for name, g in groups.items()}
        assert left == {"worker": [], "notifier": []}
        assert "left group" in worker.log()
        assert "left group" in notifier.log()
    finally:
        notifier.stop()
        worker.stop()
