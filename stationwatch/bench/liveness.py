"""Phases "detection", "recovery" and "failover": how soon silence is judged, by the worker
that holds the station, by a restarted worker, and by the survivor of two.

Each uses its own stations of the fleet, re-registered with a short heartbeat interval
(``fast_interval_s``), always open and active, beating twice per interval. A station's offline
threshold is its last heartbeat's ``sent_at`` + ``offline_after`` × interval; an alert counts
when a firing ``offline`` alert for it reaches the bench on ``station.alerts``.

- detection: with the fleet loaded and background heartbeats running, ``--silent`` beating
  stations fall silent at once; per station, alert arrival − threshold.
- recovery: beating stations, then the worker is stopped (SIGTERM) and they fall silent; once
  their thresholds have passed (the worker still down) it is started again. ``recovery_s`` is
  the time from its launch until it is both healthy (``/health`` 200: consuming, caught up,
  writing, its API server holding every station) and has judged every one of them offline:
  its state is back and it is judging.
- failover: two workers share the partitions; beating stations on both fall silent, and one
  worker is killed (SIGKILL) just before their thresholds pass. ``failover_s`` is the longest
  wait, after the later of the kill and a station's threshold, for its offline alert: the
  killed worker's stations are judged again only once the survivor has taken them over.
  Where that time goes, from the survivor's ``/health`` asked every tenth of a second after
  the kill (each an upper bound: a busy worker answers late): when it began to rebalance (the
  broker noticed the dead member: its session timeout), when it held every input partition
  again (the group's join and the tables' recovery), and when it was caught up (the records
  the dead worker left and those that came meanwhile worked off).
A station whose alert never comes within the phase's limit (90 s after the last threshold, or
after the restarted worker is healthy) counts with the limit as its delay (``missed`` says how
many).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson

from stationwatch.bench.tools import Progress, wait_until
from stationwatch.bench.traffic import AlertWatch, Load, Message
from stationwatch.bench.workers import Worker

JUDGE_LIMIT_S = 90.0  # longest wait for alerts after the last threshold
TAKEOVER_POLL_S = 0.1  # how often the survivor's /health is asked after a kill
TAKEOVER_GRACE_S = 15.0  # how long it may still take to be caught up once every alert came


@dataclass(frozen=True)
class Timing:
    fast_interval_s: int  # the registry takes whole seconds
    offline_after: float

    @property
    def threshold_s(self) -> float:
        return self.fast_interval_s * self.offline_after


def fast_profiles(profiles: Iterable[dict[str, Any]], interval_s: int) -> list[Message]:
    """Registry records that make stations expected alive with a short heartbeat interval."""
    now = datetime.now(UTC).isoformat()
    messages = []
    for profile in profiles:
        changed = {
            **profile,
            "heartbeat_interval_s": interval_s,
            "lifecycle": "active",
            "opening_hours": {"always_open": True, "weekly": {}, "holidays_open": True},
            "closed_until": None,
            "updated_at": now,
        }
        messages.append((profile["station_id"].encode(), orjson.dumps(changed)))
    return messages


async def wait_ready(
    worker: Worker, station_ids: list[str], interval_s: int, timeout_s: float = 120
) -> list[str]:
    """Until the worker holds every station with the short interval, has heard from it and
    judges it online (or stale for a moment, while it is busy: its silence still raises
    offline), most of them online. At the deadline, those ready so far (at least half)."""
    deadline = time.monotonic() + timeout_s
    while True:
        states: list[tuple[int, Any]] = []
        for at in range(0, len(station_ids), 50):
            states += await asyncio.gather(
                *(worker.get(f"/stations/{sid}") for sid in station_ids[at : at + 50])
            )
        bodies = [body if status == 200 else {} for status, body in states]
        ready = [
            sid
            for sid, body in zip(station_ids, bodies, strict=True)
            if body.get("liveness") in ("online", "stale")
            and body.get("heartbeat_interval_s") == interval_s
        ]
        online = sum(1 for body in bodies if body.get("liveness") == "online")
        if len(ready) == len(station_ids) and online >= 0.9 * len(station_ids):
            return ready
        if time.monotonic() > deadline:
            if len(ready) >= len(station_ids) / 2:
                return ready
            raise TimeoutError(
                f"bench: after {timeout_s:.0f} s only {len(ready)} of {len(station_ids)} "
                "stations beating online with the short interval"
            )
        await asyncio.sleep(1.0)


async def judged(
    alerts: AlertWatch, thresholds: dict[str, float], after: float, not_before: float = 0.0
) -> tuple[dict[str, float], int]:
    """Wait for an offline alert (arriving after ``after``) for every station, until
    ``JUDGE_LIMIT_S`` after the last threshold (or after ``not_before``, if later); returns
    their arrival times, the limit for the missed ones, and how many were missed."""
    deadline = max(*thresholds.values(), not_before) + JUDGE_LIMIT_S
    found: dict[str, float] = {}
    while time.time() < deadline:
        found = alerts.offline_since(thresholds, after)
        if len(found) == len(thresholds):
            return found, 0
        await asyncio.sleep(0.2)
    missed = len(thresholds) - len(found)
    return {sid: found.get(sid, deadline) for sid in thresholds}, missed


async def silence(load: Load, station_ids: list[str], timing: Timing) -> dict[str, float]:
    """Stop their heartbeats; returns each one's offline threshold (epoch seconds)."""
    await load.silence(station_ids)
    return {sid: load.last_sent[sid] + timing.threshold_s for sid in station_ids}


async def beat(
    load: Load, worker: Worker, profiles: list[dict[str, Any]], timing: Timing
) -> list[str]:
    """Start the stations' heartbeats, then re-register them with the short interval (beating
    first: a station silent since the pipeline phase would go offline at once, and its
    alerts would load the worker), and wait until the worker holds them so; returns those
    ready (see :func:`wait_ready`)."""
    station_ids = [p["station_id"] for p in profiles]
    load.period_s = timing.fast_interval_s / 2
    load.beating.update(station_ids)
    await asyncio.sleep(load.period_s * 2)
    await load.register(fast_profiles(profiles, timing.fast_interval_s))
    ready = await wait_ready(worker, station_ids, timing.fast_interval_s)
    await load.silence(set(station_ids) - set(ready))
    await asyncio.sleep(load.period_s)  # every one has a recorded last heartbeat
    return ready


def delays_p(delays: list[float], q: float) -> float:
    ordered = sorted(delays)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


async def measure_detection(
    worker: Worker, load: Load, alerts: AlertWatch, group: list[dict[str, Any]], timing: Timing
) -> dict[str, Any]:
    silent = await beat(load, worker, group, timing)
    silenced = time.time()
    thresholds = await silence(load, silent, timing)
    arrivals, missed = await judged(alerts, thresholds, silenced)
    delays = [arrivals[sid] - thresholds[sid] for sid in silent]
    return {
        "detection_stations": len(silent),  # of --silent: those the worker had ready
        "detection_delay_p50_s": delays_p(delays, 0.50),
        "detection_delay_p99_s": delays_p(delays, 0.99),
        "detection_delay_max_s": round(max(delays), 3),
        "detection_missed": missed,
    }


async def measure_recovery(
    worker: Worker,
    load: Load,
    alerts: AlertWatch,
    group: list[dict[str, Any]],
    timing: Timing,
    progress: Progress,
) -> dict[str, Any]:
    probes = await beat(load, worker, group, timing)
    stop_s = await asyncio.to_thread(worker.stop, signal.SIGTERM)
    thresholds = await silence(load, probes, timing)
    progress(f"  stopped in {stop_s:.1f} s; down until the probes' thresholds have passed")
    await asyncio.sleep(max(0.0, max(thresholds.values()) - time.time()) + 0.5)
    launched_wall = time.time()
    launched = worker.start()
    healthy = await wait_until(worker.healthy, 600, "the restarted worker to be healthy")
    # judging may only start once it is caught up: the limit counts from then
    healthy_wall = launched_wall + healthy - launched
    arrivals, missed = await judged(alerts, thresholds, launched_wall, healthy_wall)
    judged_s = max(arrivals.values()) - launched_wall
    return {
        "recovery_s": round(max(healthy - launched, judged_s), 2),
        "recovery_healthy_s": round(healthy - launched, 2),
        "recovery_judged_s": round(judged_s, 2),
        "recovery_stop_s": round(stop_s, 2),
        "recovery_probes": len(probes),
        "recovery_missed": missed,
    }


async def measure_failover(
    survivor: Worker,
    victim: Worker,
    load: Load,
    alerts: AlertWatch,
    group: list[dict[str, Any]],
    timing: Timing,
) -> dict[str, Any]:
    probes = await beat(load, survivor, group, timing)
    silenced = time.time()
    thresholds = await silence(load, probes, timing)
    partitions = sum(
        [(await worker.health())[1].get("partitions", 0) for worker in (survivor, victim)]
    )
    await asyncio.sleep(max(0.0, min(thresholds.values()) - time.time() - 1.0))
    killed = time.time()
    await asyncio.to_thread(victim.stop, signal.SIGKILL)
    steps = asyncio.create_task(watch_takeover(survivor, partitions, killed))
    try:
        arrivals, missed = await judged(alerts, thresholds, silenced)
        await asyncio.wait({steps}, timeout=TAKEOVER_GRACE_S)  # caught up before, as a rule
    finally:
        steps.cancel()
    seen = steps.result() if steps.done() and not steps.cancelled() else {}
    waits = {sid: arrivals[sid] - max(killed, thresholds[sid]) for sid in probes}
    late = sum(1 for w in waits.values() if w > 2.0)
    return {
        "failover_s": round(max(waits.values()), 2),
        "failover_probes": len(probes),
        "failover_probes_waiting_for_takeover": late,
        "failover_missed": missed,
        **{f"failover_{step}_s": seen.get(step) for step in TAKEOVER_STEPS},
    }


TAKEOVER_STEPS = ("rebalance", "assigned", "caught_up")


async def watch_takeover(survivor: Worker, partitions: int, killed: float) -> dict[str, float]:
    """Seconds from the kill until the survivor's ``/health`` first said it was rebalancing,
    then held all ``partitions`` input partitions (not rebalancing), then was healthy (caught
    up); returns once it has seen all three (a step not seen, as when a rebalance passes
    between two questions, is left out)."""
    seen: dict[str, float] = {}
    while "caught_up" not in seen:
        try:
            healthy, body = await survivor.health()
        except (aiohttp.ClientError, TimeoutError):
            healthy, body = False, {}
        after = round(time.time() - killed, 2)
        rebalancing = "rebalancing partitions" in body.get("problems", ())
        if rebalancing:
            seen.setdefault("rebalance", after)
        elif body.get("partitions", 0) >= partitions:  # the dead worker's are its own now
            seen.setdefault("assigned", after)
            if healthy:
                seen["caught_up"] = after
        await asyncio.sleep(TAKEOVER_POLL_S)
    return seen
