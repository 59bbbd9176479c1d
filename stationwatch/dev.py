"""`stationwatch dev`: the whole stack on one machine with nothing installed or running.

Order: lock → database (the configured PostgreSQL when it answers, else the embedded one) →
broker (the embedded Tansu, or ``STATIONWATCH_KAFKA`` when that is set explicitly and answers) →
migrate → topics → worker subprocess → simulator in-process → live summary. Stopping (Ctrl-C,
SIGTERM, ``--duration``) undoes it in reverse: simulator, worker, broker, embedded PostgreSQL.

One `dev` per data dir: a lock file (``STATIONWATCH_DATA_DIR`` or the user's state dir) keeps a
second one from fighting the first over ports and the embedded database.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TextIO, cast

import platformdirs
from aiohttp import web
from pydantic import SecretStr
from rich.console import Console
from rich.live import Live

from schemas import topics
from stationwatch.broker import (
    EmbeddedBroker,
    bootstrap_servers,
    ensure_topics,
    free_port,
    port_open,
)
from stationwatch.dev_notify import SINK_PATH, Relay, dev_config, start_sink
from stationwatch.devstatus import StatusBoard, row_counts, scrape
from stationwatch.embedded_pg import redact, resolve_database
from stationwatch.errors import StationwatchError
from stationwatch.settings import Settings
from stationwatch.simulator import run_simulator

DEV_HEARTBEAT_S = 5  # short device interval, so liveness changes show within a minute
PLAIN_EVERY_S = 5.0  # status line period when stdout is not a terminal
ROWS_EVERY_S = 3.0
# one station open now loses its device 40 s in, for 3 min: the demo shows it go stale and
# offline, its notices, and its recovery
DEV_OUTAGE = (40.0, 180.0)
DEV_SINK_PORT = 6069  # the demo's local webhook sink (a free one if taken)


class AlreadyRunningError(StationwatchError):
    """Another `stationwatch dev` holds the lock."""


def state_dir(settings: Settings) -> Path:
    return settings.data_dir or Path(platformdirs.user_state_dir("stationwatch"))


@contextlib.contextmanager
def dev_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (it holds our pid) for the block's duration."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by children
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            raise AlreadyRunningError(
                f"stationwatch dev is already running (pid {holder}; lock {path}). Stop it first "
                "(Ctrl-C in its terminal), or give this one its own STATIONWATCH_DATA_DIR."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # releases the lock


def _web_port(settings: Settings) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the worker's server does
        try:
            sock.bind((settings.web_bind, settings.web_port))
        except OSError:
            sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _broker(settings: Settings, stack: ExitStack, say: Console) -> str:
    """The Kafka URL to use: an explicit ``STATIONWATCH_KAFKA`` that answers, else embedded."""
    if "kafka" in settings.model_fields_set:
        host, _, port = bootstrap_servers(settings.kafka).split(",")[0].rpartition(":")
        if port_open(host, int(port), timeout=2.0):
            say.print(f"using Kafka at {settings.kafka}")
            return settings.kafka
        say.print(f"no Kafka broker answered at {settings.kafka}; ", end="")
    broker = EmbeddedBroker().start()
    stack.callback(broker.stop)
    say.print(f"started embedded broker (Tansu, in memory) at {broker.url}")
    return broker.url


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class _Worker:
    """`stationwatch worker` as a child process in its own session (Ctrl-C is ours to pass on)."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "stationwatch.cli", "worker"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class _Dev:
    def __init__(self, settings: Settings, duration: float | None, stations: int) -> None:
        self.settings, self.duration, self.stations = settings, duration, stations
        self.say = Console(highlight=False, soft_wrap=True)
        self.board = StatusBoard()
        self.stop = asyncio.Event()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop.set)
        from stationwatch.db.migrate import migrate
        from stationwatch.registry.store import record_patrol_interval

        with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="stationwatch-dev-") as tmp:
            database = await asyncio.to_thread(resolve_database, self.settings)
            stack.callback(database.stop)
            self.say.print(database.describe())
            kafka = await asyncio.to_thread(_broker, self.settings, stack, self.say)
            result = await asyncio.to_thread(migrate, database.url)
            self.say.print(result.describe())
            days = self.settings.patrol_interval_days  # as `migrate` does, for the dashboards
            await asyncio.to_thread(record_patrol_interval, database.url, days)
            names = [self.settings.topic(t) for t in (*topics.INPUT_TOPICS, *topics.OUTPUT_TOPICS)]
            registry = self.settings.topic(topics.REGISTRY)
            await ensure_topics(
                kafka,
                names,
                self.settings.partitions,
                compacted=[registry],
                replication_factor=self.settings.replication_factor,
            )
            port = _web_port(self.settings)
            env = {
                **os.environ,  # the worker inherits the user's settings, with ours on top
                "STATIONWATCH_KAFKA": kafka,
                "STATIONWATCH_DATABASE_URL": database.url,
                "STATIONWATCH_WEB_PORT": str(port),
                "STATIONWATCH_DATA_DIR": tmp,
                "PYTHONUNBUFFERED": "1",
                **self._group_timeouts(),
            }
            worker = _Worker(env, state_dir(self.settings) / "logs" / "worker.log")
            self.say.print(f"worker started (pid {worker.process.pid}), log in {worker.log}")
            self.say.print(f"API on http://127.0.0.1:{port}/summary; Ctrl-C stops everything")
            self.say.print(f"live board on http://127.0.0.1:{port}/")
            notifier = await self._notifier(kafka, database.url)
            simulated = self.settings.model_copy(update={"kafka": kafka})
            simulator = asyncio.create_task(
                run_simulator(
                    simulated,
                    stations=self.stations,
                    duration=None,
                    seed=1,
                    heartbeat_interval_s=DEV_HEARTBEAT_S,
                    on_sent=self.board.count_sent,
                    demo_outage=DEV_OUTAGE,
                )
            )
            try:
                code = await self._watch(worker, simulator, port, database.url)
            finally:
                simulator.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await simulator
                await notifier.stop()
                await asyncio.to_thread(worker.stop)
            rows = await asyncio.to_thread(row_counts, database.url, 10.0)
            counts = ", ".join(f"{t} {n:,}" for t, n in (rows or {}).items()) or "unavailable"
            self.say.print(
                f"stopped after {time.monotonic() - self.board.started:.0f} s: "
                f"sent {self.board.sent:,} messages; rows in {redact(database.url)}: {counts}"
            )
            return code

    async def _notifier(self, kafka: str, database_url: str) -> _DevNotifier:
        """The notifier, in this process: notices on this console, and a webhook sink."""
        from consumers.notifier import Notifier

        sink_port = _free_or(DEV_SINK_PORT)
        sink_url = f"http://127.0.0.1:{sink_port}{SINK_PATH}"
        config = dev_config(self.settings.notify_config, sink_url)
        update: dict[str, Any] = {
            "kafka": kafka,
            "database_url": SecretStr(database_url),
            "notifier_port": _free_or(self.settings.notifier_port),
        }
        for name, value in self._group_timeouts().items():  # what the embedded broker needs
            field = name.removeprefix("STATIONWATCH_").lower()
            if field.startswith("broker_"):
                update[field] = float(value)
        settings = self.settings.model_copy(update=update)
        sink = await start_sink(self._notice_line, sink_port)
        relay = cast(TextIO, Relay(self._notice_line))
        notifier = Notifier(settings, config, console=relay)
        stop = asyncio.Event()
        task = asyncio.create_task(notifier.run(stop))
        self.say.print(
            f"notifier: notices printed here; webhook sink on {sink_url} "
            f"(metrics on http://127.0.0.1:{settings.notifier_port}/metrics)"
        )
        return _DevNotifier(task, stop, sink)

    def _notice_line(self, line: str) -> None:
        self.say.print(line, highlight=False, markup=False)

    def _group_timeouts(self) -> dict[str, str]:
        """Settings the embedded broker needs, unless the user chose them: Tansu's end offsets
        count only the first record of a producer batch (so table recovery would stop short):
        the worker sends one record per batch; and a quicker group heartbeat."""
        chosen = self.settings.model_fields_set
        out = {}
        if "producer_max_batch_bytes" not in chosen:
            out["STATIONWATCH_PRODUCER_MAX_BATCH_BYTES"] = "1"
        if "broker_heartbeat_interval_s" not in chosen:
            out["STATIONWATCH_BROKER_HEARTBEAT_INTERVAL_S"] = "1"
        return out

    async def _watch(
        self, worker: _Worker, simulator: asyncio.Task[None], port: int, db_url: str
    ) -> int:
        deadline = None if self.duration is None else time.monotonic() + self.duration
        tty = self.say.is_terminal
        next_line = next_rows = 0.0
        with (
            Live(self.board.render(), console=self.say, auto_refresh=False)
            if tty
            else (contextlib.nullcontext()) as live
        ):
            while not self.stop.is_set():
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    break
                if worker.process.poll() is not None:
                    self.say.print(
                        f"the worker exited with code {worker.process.returncode}; "
                        f"the end of its log ({worker.log}):\n{_tail(worker.log)}"
                    )
                    return 1
                if simulator.done():
                    problem = simulator.exception() if not simulator.cancelled() else "cancelled"
                    self.say.print(f"the simulator stopped: {problem}")
                    return 1
                self.board.update(await asyncio.to_thread(scrape, port))
                if now >= next_rows:
                    self.board.rows = await asyncio.to_thread(row_counts, db_url)
                    next_rows = now + ROWS_EVERY_S
                if live is not None:
                    live.update(self.board.render(), refresh=True)
                elif now >= next_line:
                    self.say.print(self.board.line(), soft_wrap=True)
                    next_line = now + PLAIN_EVERY_S
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), timeout=1.0)
        return 0


class _DevNotifier:
    def __init__(self, task: asyncio.Task[None], stop: asyncio.Event, sink: web.AppRunner) -> None:
        self.task, self._stop, self._sink = task, stop, sink

    async def stop(self) -> None:
        self._stop.set()
        try:
            await asyncio.wait_for(self.task, timeout=20)
        except Exception as exc:  # noqa: BLE001 - stopping: report, go on with the rest
            print(f"the notifier stopped with {type(exc).__name__}: {exc}", file=sys.stderr)  # noqa: T201
        await self._sink.cleanup()


def _free_or(port: int) -> int:
    """``port`` when nothing listens there, else a free one."""
    return free_port() if port_open("127.0.0.1", port) else port


def run_dev(settings: Settings, *, duration: float | None, stations: int) -> int:
    """Run the whole stack until Ctrl-C, SIGTERM or ``duration``; returns the exit code."""
    lock = state_dir(settings) / "dev.lock"
    try:
        with dev_lock(lock):
            return asyncio.run(_Dev(settings, duration, stations).run())
    except AlreadyRunningError as exc:
        Console(stderr=True, highlight=False).print(str(exc))
        return 1
