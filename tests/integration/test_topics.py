"""The topics the worker creates: as many copies as the cluster allows, or as the operator set;
an impossible setting stops the worker at once with the fix."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from stationwatch.broker import EmbeddedBroker, bootstrap_servers, ensure_topics
from stationwatch.errors import ConfigurationError
from tests.integration.harness import worker_env

pytestmark = pytest.mark.integration


async def test_topics_get_the_copies_the_single_broker_allows(
    broker: EmbeddedBroker, unique: str
) -> None:
    names = [f"t{unique}.a", f"t{unique}.b"]
    setup = await ensure_topics(broker.url, names, 3)
    assert setup.created == names
    assert (setup.replication_factor, setup.brokers) == (1, 1)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers(broker.url))
    await admin.start()
    try:
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    assert [len(t["partitions"]) for t in described] == [3, 3]
    assert {len(p["replicas"]) for t in described for p in t["partitions"]} == {1}
    again = await ensure_topics(broker.url, names, 3)
    assert again.created == []


async def test_more_copies_than_brokers_is_refused_before_anything_is_created(
    broker: EmbeddedBroker, unique: str
) -> None:
    with pytest.raises(ConfigurationError, match="REPLICATION_FACTOR is 3"):
        await ensure_topics(broker.url, [f"t{unique}.c"], 3, replication_factor=3)


def test_a_worker_asked_for_impossible_copies_stops_at_once_and_says_why(
    broker: EmbeddedBroker, database_url: str, tmp_path: Path, unique: str
) -> None:
    env = worker_env(
        kafka_url=broker.url, database_url=database_url, token=unique, data_dir=tmp_path / "d"
    )
    env["STATIONWATCH_REPLICATION_FACTOR"] = "3"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "stationwatch.cli", "worker"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr[-2000:]
    assert "STATIONWATCH_REPLICATION_FACTOR is 3, but the cluster has 1 broker" in done.stderr
    assert time.monotonic() - started < 30
