"""Run the real `stationwatch worker` as a subprocess, as a user would, and talk to it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import httpx
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from stationwatch.broker import bootstrap_servers, free_port


async def wait_for(
    condition: Callable[[], Awaitable[Any]], *, timeout_s: float, interval: float = 0.2, what: str
) -> Any:
    """Poll until ``condition()`` returns something truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = await condition()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what} (last: {last!r})")


@dataclass
class WorkerProcess:
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    port: int = field(default=0)
    headers: dict[str, str] = field(default_factory=dict)  # sent with every request
    command: str = "worker"  # the `stationwatch` command run

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        self.port = int(self.env["STATIONWATCH_WEB_PORT"])
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "stationwatch.cli", self.command],
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def get(self, path: str, **params: Any) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.url, timeout=5, headers=self.headers) as client:
            return await client.get(path, params=params)

    async def wait_healthy(self, timeout_s: float = 90) -> None:
        async def healthy() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(
                    f"{self.command} exited with {self.process.returncode}:\n{self.log()[-4000:]}"
                )
            try:
                return (await self.get("/health")).status_code == 200
            except httpx.HTTPError:
                return False

        await wait_for(healthy, timeout_s=timeout_s, what=f"the {self.command} to be healthy")

    async def metric(self, name: str, **labels: str) -> float:
        """Sum of a metric's samples whose labels include ``labels``."""
        text = (await self.get("/metrics")).text
        total = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    total += sample.value
        return total

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        code = self.process.returncode
        self.process = None
        return code


def worker_env(
    *, kafka_url: str, database_url: str, token: str, data_dir: Path, partitions: int = 4
) -> dict[str, str]:
    """Settings for a test worker: its own topics (prefix), consumer group and state dir."""
    return {
        "STATIONWATCH_KAFKA": kafka_url,
        "STATIONWATCH_DATABASE_URL": database_url,
        "STATIONWATCH_TOPIC_PREFIX": f"t{token}.",
        "STATIONWATCH_APP_ID": f"sw-{token}",
        "STATIONWATCH_WEB_PORT": str(free_port()),
        "STATIONWATCH_WEB_BIND": "127.0.0.1",
        "STATIONWATCH_DATA_DIR": str(data_dir),
        "STATIONWATCH_PARTITIONS": str(partitions),
        # Tansu answers a group join after half the session timeout: keep tests quick.
        "STATIONWATCH_BROKER_SESSION_TIMEOUT_S": "6",
        "STATIONWATCH_BROKER_HEARTBEAT_INTERVAL_S": "1",
        "STATIONWATCH_BATCH_WITHIN_S": "0.2",
        # Tansu's end offsets count only a batch's first record: table recovery needs one
        # record per producer batch on the embedded broker.
        "STATIONWATCH_PRODUCER_MAX_BATCH_BYTES": "1",
        "STATIONWATCH_LOG_LEVEL": "INFO",
    }


class Producer:
    """Sends raw records to the contract's topics under a test's prefix."""

    def __init__(
        self, kafka_url: str, prefix: str, partitioner: Callable[..., int] | None = None
    ) -> None:
        """``partitioner(key, all_partitions, available)``: aiokafka's default (murmur2) when
        not given."""
        extra: dict[str, Any] = {"partitioner": partitioner} if partitioner else {}
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers(kafka_url), acks="all", linger_ms=5, **extra
        )
        self.prefix = prefix

    async def __aenter__(self) -> Producer:
        await self._producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._producer.stop()

    async def send(self, topic: str, key: bytes | str | None, value: bytes | str | None) -> None:
        if isinstance(key, str):
            key = key.encode()
        if isinstance(value, str):
            value = value.encode()
        await self._producer.send(self.prefix + topic, value=value, key=key)

    async def flush(self) -> None:
        await self._producer.flush()


@contextlib.asynccontextmanager
async def running_worker(
    kafka_url: str, database_url: str, tmp: Path
) -> AsyncIterator[WorkerProcess]:
    """A healthy test worker of its own (topics, group, state dir under ``tmp``), stopped at
    the end: for a module's tests to share."""
    env = worker_env(
        kafka_url=kafka_url,
        database_url=database_url,
        token=uuid.uuid4().hex[:8],
        data_dir=tmp / "data",
    )
    process = WorkerProcess(env, tmp / "worker.log").start()
    try:
        await process.wait_healthy()
        yield process
    finally:
        process.stop()
