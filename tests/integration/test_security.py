"""Security as an operator configures it: the worker, the notifier and the simulator reach the
broker over TLS only (verifying its certificate against the configured CA), and no configured
secret shows in any log line, `/health` or `/metrics`."""

# made-up passwords and tokens throughout, configured to be searched for
# ruff: noqa: S105

from __future__ import annotations

import asyncio
import os
import ssl
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest
import trustme

from stationwatch.broker import EmbeddedBroker, free_port
from stationwatch.settings import with_password
from tests.integration.harness import WorkerProcess, wait_for, worker_env
from tests.integration.notifier_harness import (
    NotifierProcess,
    notifier_env,
    webhook_config,
    write_config,
)
from tests.integration.pgproxy import CuttableProxy

pytestmark = pytest.mark.integration

DB_SECRET = "db-pw-6b1e"  # trust authentication here ignores it, but it is configured
API_SECRET = "api-token-93c2"
HOOK_SECRET = "hook-key-5d7a"  # a receiver's key, in the notifier's configuration file


@pytest.fixture
async def tls_broker(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    """An embedded broker reachable only through a TLS proxy: (its URL, the CA to trust)."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server)
    cafile = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    port = free_port()
    proxy = CuttableProxy("127.0.0.1", port, ssl=server)
    broker = EmbeddedBroker(port=port, advertised_port=proxy.port).start()
    await proxy.start()
    try:
        yield f"kafka://127.0.0.1:{proxy.port}", cafile
    finally:
        await proxy.close()
        broker.stop()


def rows(database_url: str, query: str) -> int:
    with psycopg.connect(database_url) as conn:
        found = conn.execute(query.encode()).fetchone()
    return int(found[0]) if found else 0


async def test_tls_to_the_broker_and_no_secret_in_logs_or_health(
    tls_broker: tuple[str, Path], database_url: str, tmp_path: Path, unique: str
) -> None:
    kafka_url, cafile = tls_broker
    env = worker_env(
        kafka_url=kafka_url,
        database_url=with_password(database_url, DB_SECRET),
        token=unique,
        data_dir=tmp_path / "data",
    )
    env.update(
        STATIONWATCH_KAFKA_SECURITY_PROTOCOL="SSL",
        STATIONWATCH_KAFKA_SSL_CAFILE=str(cafile),
        STATIONWATCH_API_TOKEN=API_SECRET,
        STATIONWATCH_LOG_LEVEL="DEBUG",  # the most a log says
    )
    worker = WorkerProcess(env, tmp_path / "worker.log")
    worker.headers = {"Authorization": f"Bearer {API_SECRET}"}
    worker.start()
    config = write_config(
        tmp_path / "notify.yaml",
        webhook_config(f"http://127.0.0.1:{free_port()}/hook?key={HOOK_SECRET}"),
    )
    notifier = NotifierProcess(notifier_env(env, config), tmp_path / "notifier.log").start()
    simulator_log = tmp_path / "simulate.log"
    try:
        await worker.wait_healthy()
        await notifier.wait_healthy()  # it consumes station.alerts over TLS too
        with simulator_log.open("wb") as log:
            simulator = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "stationwatch.cli",
                "simulate",
                "--stations",
                "5",
                "--duration",
                "4",
                env={**os.environ, **env},
                stdout=log,
                stderr=log,
                stdin=asyncio.subprocess.DEVNULL,
            )
            assert await asyncio.wait_for(simulator.wait(), 60) == 0, simulator_log.read_text()

        async def written() -> bool:
            stations = rows(database_url, "SELECT count(*) FROM stationwatch.stations")
            beats = rows(database_url, "SELECT count(*) FROM stationwatch.heartbeats")
            return stations == 5 and beats > 0

        await wait_for(written, timeout_s=60, what="the simulated fleet's rows, sent over TLS")
        health = (await worker.get("/health")).text
        metrics = (await worker.get("/metrics")).text
        notifier_health = (await notifier.get("/health")).text
        notifier_metrics = (await notifier.get("/metrics")).text
    finally:
        notifier.stop()
        worker.stop()
    for name, text in {
        "worker log": worker.log(),
        "simulator log": simulator_log.read_text(),
        "/health": health,
        "/metrics": metrics,
        "notifier log": notifier.log(),
        "notifier /health": notifier_health,
        "notifier /metrics": notifier_metrics,
    }.items():
        assert text, name
        for secret in (DB_SECRET, API_SECRET, HOOK_SECRET):
            assert secret not in text, f"{secret} in the {name}"
