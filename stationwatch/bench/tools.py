"""The bench's small helpers: percentiles, waiting with a deadline, progress lines, memory, and
scratch databases."""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TextIO

import aiohttp
import psycopg


def percentiles(samples: list[float]) -> dict[str, float]:
    """n, p50, p90, p99, max and mean of ``samples`` (nearest rank, rounded to 3 places)."""
    ordered = sorted(samples)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {
        "n": len(ordered),
        "p50": pick(0.50),
        "p90": pick(0.90),
        "p99": pick(0.99),
        "max": round(ordered[-1], 3),
        "mean": round(statistics.fmean(ordered), 3),
    }


class Progress:
    """One line per step on standard error, with the seconds since the bench started."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self.stream = stream
        self.started = time.monotonic()

    def __call__(self, message: str) -> None:
        self.stream.write(f"[{time.monotonic() - self.started:6.1f} s] {message}\n")
        self.stream.flush()


async def wait_until(
    check: Callable[[], Awaitable[bool]], timeout_s: float, what: str, interval_s: float = 0.25
) -> float:
    """Poll ``check`` until it holds; returns the monotonic time it first held. A connection
    error counts as "not yet"."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
            if await check():
                return time.monotonic()
        await asyncio.sleep(interval_s)
    raise TimeoutError(f"bench: timed out after {timeout_s:.0f} s waiting for {what}")


def rss_bytes(pid: int) -> int | None:
    """Resident memory of a process in bytes (Linux), or None when it cannot be read."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """CPU time a process has used so far (user and system, every thread; Linux), or None
    when it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu() -> tuple[float, float] | None:
    """The machine's CPU time so far, (busy, total) seconds over every core (Linux's
    ``/proc/stat``; busy: all but idle and iowait), or None when it cannot be read."""
    try:
        ticks = [int(t) for t in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks) - ticks[3] - ticks[4]) / hz, sum(ticks) / hz


def busy_cores(before: tuple[float, float] | None) -> float | None:
    """The cores busy on average since ``before`` (:func:`machine_cpu`), or None."""
    now = machine_cpu()
    if before is None or now is None or now[1] <= before[1]:
        return None
    cores = os.cpu_count() or 1
    return (now[0] - before[0]) / ((now[1] - before[1]) / cores)


def child_pids(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def mib(size: int | None) -> float | None:
    return None if size is None else round(size / 2**20, 1)


def scratch_database(dsn: str, label: str) -> tuple[str, str]:
    """The URL and name of a new database beside ``dsn``'s (created by ``migrate``)."""
    base, _, _ = dsn.rpartition("/")
    name = f"stationwatch_bench_{label}_{uuid.uuid4().hex[:8]}"
    return f"{base}/{name}", name


def drop_database(dsn: str, name: str) -> None:
    base, _, _ = dsn.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0
