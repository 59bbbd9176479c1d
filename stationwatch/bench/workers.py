"""The worker under test, run as a user runs it: a `stationwatch worker` subprocess, watched
through its HTTP API and its process only."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from stationwatch.allocator import process_allocator
from stationwatch.bench.tools import child_pids, cpu_seconds, rss_bytes


def worker_env(
    *,
    kafka_url: str,
    database_url: str,
    token: str,
    partitions: int,
    offline_after: float,
    stale_after: float,
) -> dict[str, str]:
    """Settings of a bench worker: its own topics (prefix) and consumer group; thresholds short
    enough that stations with a short heartbeat interval go offline within seconds."""
    return {
        "STATIONWATCH_KAFKA": kafka_url,
        "STATIONWATCH_DATABASE_URL": database_url,
        "STATIONWATCH_TOPIC_PREFIX": f"bench{token}.",
        "STATIONWATCH_APP_ID": f"bench-{token}",
        "STATIONWATCH_WEB_BIND": "127.0.0.1",
        "STATIONWATCH_PARTITIONS": str(partitions),
        "STATIONWATCH_STALE_AFTER": str(stale_after),
        "STATIONWATCH_OFFLINE_AFTER": str(offline_after),
        "STATIONWATCH_BROKER_HEARTBEAT_INTERVAL_S": "1",
        # The embedded broker reports end offsets right only for single-record batches, and
        # the restarted worker recovers its tables from their changelogs by those offsets.
        "STATIONWATCH_PRODUCER_MAX_BATCH_BYTES": "1",
        "STATIONWATCH_LOG_LEVEL": "WARNING",
    }


@dataclass
class Worker:
    """One `stationwatch worker` process with its own web port, state directory and log."""

    env: dict[str, str]
    workdir: Path
    name: str
    port: int
    session: aiohttp.ClientSession
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def start(self) -> float:
        """Launch the process; returns the monotonic time of the launch."""
        env = {
            **os.environ,
            **self.env,
            "STATIONWATCH_WEB_PORT": str(self.port),
            "STATIONWATCH_DATA_DIR": str(self.workdir / f"{self.name}-data"),
        }
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "stationwatch.cli", "worker"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return time.monotonic()

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 60) -> float:
        """Signal the process and wait for it to exit; returns the seconds that took."""
        started = time.monotonic()
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return 0.0
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        return time.monotonic() - started

    def check_running(self) -> None:
        if self.process is None or self.process.poll() is not None:
            code = None if self.process is None else self.process.returncode
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"bench: worker {self.name} exited ({code}):\n{tail}")

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.session.get(f"{self.url}{path}") as answer:
            body = await answer.json(content_type=None)
            return answer.status, body

    async def health(self) -> tuple[bool, dict[str, Any]]:
        self.check_running()
        status, body = await self.get("/health")
        return status == 200, body

    async def healthy(self) -> bool:
        return (await self.health())[0]

    async def answering(self) -> bool:
        self.check_running()
        async with self.session.get(f"{self.url}/health") as answer:
            return answer.status in (200, 503)

    async def metric(self, name: str, **labels: str) -> float:
        async with self.session.get(f"{self.url}/metrics") as answer:
            text = await answer.text()
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
        )

    def profile(self, seconds: float) -> subprocess.Popen[bytes] | None:
        """With ``STATIONWATCH_BENCH_PROFILE=FILE`` (and py-spy installed): sample this worker
        and its API server for ``seconds`` (threads holding the GIL), in raw (collapsed) form."""
        path = os.environ.get("STATIONWATCH_BENCH_PROFILE")
        if not path or self.process is None:
            return None
        command = ["py-spy", "record", "--pid", str(self.process.pid), "--gil", "--threads"]
        command += ["--subprocesses", "-f", "raw", "-r", "200", "-d", str(round(seconds))]
        return subprocess.Popen(  # noqa: S603 - a fixed profiler command line
            [*command, "-o", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def allocator(self) -> str:
        """The memory allocator the worker process runs with, read off the process
        (:func:`stationwatch.allocator.process_allocator`): ``jemalloc``, ``python`` or
        ``unknown``."""
        return "unknown" if self.process is None else process_allocator(self.process.pid)

    def cpu_seconds(self) -> float | None:
        """CPU time used so far by the worker process and its API server process (None when
        either cannot be read: not running, or gone)."""
        if self.process is None:
            return None
        used = [cpu_seconds(pid) for pid in (self.process.pid, *child_pids(self.process.pid))]
        return None if None in used else sum(u for u in used if u is not None)

    def own_cpu_seconds(self) -> float | None:
        """CPU time used so far by the worker process alone: every thread of it, whatever it
        does, not its API server (None when it cannot be read: not running, or gone)."""
        return None if self.process is None else cpu_seconds(self.process.pid)

    def memory(self) -> tuple[int | None, int | None]:
        """Resident bytes of the worker process and of its API server process."""
        if self.process is None:
            return None, None
        api = next((rss_bytes(p) for p in child_pids(self.process.pid)), None)
        return rss_bytes(self.process.pid), api
