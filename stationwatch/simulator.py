"""A simulated fleet talking to the broker: registry first, then heartbeats, occupancy counts,
open/closed events on each station's schedule, devices that go quiet for a while, staff who
close a station for a while, and a tiny share of malformed messages, so every path of the
worker (liveness, alerts, dead letters) runs — at rates a real network might show.

The fleet and the messages are pure (``stationwatch.fleet``, ``stationwatch.telemetry_sim``);
:class:`Fleet` schedules them on the clock it is given (tests drive it with a simulated one),
and :func:`run_simulator` sends them in batches: ``send`` without waiting for each delivery,
then one ``flush`` per tick, which keeps up with tens of thousands of stations.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import random
import time
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

import orjson
from aiokafka import AIOKafkaProducer

from schemas import topics
from stationwatch.broker import (
    ensure_topics,
)
from stationwatch.fleet import build_fleet
from stationwatch.kafka_auth import client_auth, start_producer
from stationwatch.settings import Settings
from stationwatch.telemetry_sim import (
    LONG_CLOSURE_SHARE,
    MALFORMED_RATE,
    MANUAL_CLOSE_EVERY_S,
    OUTAGE_EVERY_S,
    SENSOR_REPORT_S,
    SENSOR_STEP_S,
    StationState,
    heartbeat,
    malformed,
    occupancy,
    status,
    step_occupants,
)
from streams.holidays import load_holidays
from streams.schedule import scheduled_open, use_calendar

__all__ = ["Fleet", "build_fleet", "run_simulator"]

logger = logging.getLogger(__name__)

SCHEDULE_CHECK_S = 15.0  # how often every station's opening hours are compared with its state
MANUAL_REPORT_S = 300.0  # stations without a sensor: staff count the people now and then
Message = tuple[str, bytes, bytes | None]  # (contract topic, key, value)


class Fleet:
    """The simulated stations and the heap of their next reports, on the clock it is given:
    ``start`` (wall seconds) and ``now`` (the same moment, aware) at creation, then ``wall``
    and ``at`` on every call."""

    def __init__(
        self,
        settings: Settings,
        stations: int,
        seed: int,
        interval: int,
        *,
        start: float | None = None,
        now: datetime | None = None,
        demo_outage: tuple[float, float] | None = None,
    ) -> None:
        """``demo_outage`` (after, for): one station open now loses its device ``after``
        seconds from the start, for ``for`` seconds — so a demo shows an offline alert."""
        self.zone = ZoneInfo(settings.timezone)
        self.rng = random.Random(seed)  # noqa: S311 - simulation, not security
        now = (now or datetime.now(self.zone)).astimezone(self.zone)
        start = time.time() if start is None else start
        profiles = build_fleet(stations, seed, now, heartbeat_interval_s=interval)
        self.states = [StationState.create(p, self.rng) for p in profiles]
        self.hours = [p.opening_hours.model_dump(mode="json") for p in profiles]
        self.due: list[tuple[float, int, str]] = []  # (wall time, station index, kind)
        # (station, from, until): the demo's planned outage
        self.planned: tuple[StationState, float, float] | None = None
        if demo_outage is not None:
            after, lasting = demo_outage
            for state, hours in zip(self.states, self.hours, strict=True):
                profile = state.profile
                if (
                    profile.lifecycle == "active"
                    and state.device_id
                    and scheduled_open(hours, now, self.zone)
                ):
                    self.planned = (state, start + after, start + after + lasting)
                    break
        for i, state in enumerate(self.states):
            if state.profile.lifecycle != "active":
                continue
            # the first reports within one interval: a fresh demo shows every count at once
            first = min(float(interval), SENSOR_STEP_S)
            if state.device_id:  # spread the devices' phases over one interval
                heapq.heappush(self.due, (start + self.rng.uniform(0, interval), i, "heartbeat"))
            heapq.heappush(self.due, (start + self.rng.uniform(0, first), i, "occupancy"))

    @staticmethod
    def _every(state: StationState, kind: str) -> float:
        if kind == "heartbeat":
            return float(state.profile.heartbeat_interval_s or MANUAL_REPORT_S)
        return SENSOR_STEP_S if state.device_id else MANUAL_REPORT_S

    def registry(self) -> list[Message]:
        return [(topics.REGISTRY, s.key, s.profile.model_dump_json().encode()) for s in self.states]

    def schedule_pass(self, wall: float, at: datetime) -> list[Message]:
        """Open and close stations whose state differs from their hours (or a manual closure)."""
        out: list[Message] = []
        for state, hours in zip(self.states, self.hours, strict=True):
            if state.profile.lifecycle != "active":
                if state.open_state is None:
                    out.append(_msg(topics.STATUS, state, status(state, at, False, "maintenance")))
                continue
            if state.manual_until > wall:
                continue
            want = scheduled_open(hours, at, self.zone)
            if state.open_state is None or want != (state.open_state == "open"):
                reason = "manual" if state.manual_until else "schedule"
                out.append(_msg(topics.STATUS, state, status(state, at, want, reason)))
            state.manual_until = 0.0
        return out

    def due_reports(self, wall: float, at: datetime) -> list[Message]:
        out: list[Message] = []
        while self.due and self.due[0][0] <= wall:
            when, i, kind = heapq.heappop(self.due)
            state = self.states[i]
            every = self._every(state, kind)
            heapq.heappush(self.due, (max(when + every, wall), i, kind))
            if kind == "heartbeat":
                sent = self._heartbeat(state, wall, at, every)
            else:
                sent = self._count(state, wall, at, every)
            out += sent
            if sent and self.rng.random() < MALFORMED_RATE:
                out.append(malformed(state, at, self.rng))
        return out

    def _heartbeat(
        self, state: StationState, wall: float, at: datetime, every: float
    ) -> list[Message]:
        if state.silent_until > wall:
            return []
        if self.planned is not None and self.planned[0] is state:
            _, begins, ends = self.planned
            if begins <= wall < ends:
                state.silent_until = ends
                return []
        if self.rng.random() < every / OUTAGE_EVERY_S:
            # a blip (stale), a longer outage (offline), or a device without power for a while
            roll = self.rng.random()
            if roll < 0.55:
                quiet = every * self.rng.uniform(4, 9)
            elif roll < 0.9:
                quiet = every * self.rng.uniform(12, 40)
            else:
                quiet = self.rng.uniform(1800, 7200)
            state.silent_until = wall + quiet
            return []
        return [_msg(topics.HEARTBEAT, state, heartbeat(state, at, self.rng))]

    def _count(self, state: StationState, wall: float, at: datetime, every: float) -> list[Message]:
        out: list[Message] = []
        step_occupants(state, at, self.rng)
        if state.device_id:  # a sensor: on change, and every SENSOR_REPORT_S
            quiet = state.silent_until > wall  # it talks through the station's device
            stale = wall - state.reported_at >= SENSOR_REPORT_S - 1e-6
            if not quiet and (state.occupants != state.reported or stale):
                out.append(_msg(topics.OCCUPANCY, state, occupancy(state, at, wall)))
        elif state.open_state == "open":  # staff count now and then while open
            out.append(_msg(topics.OCCUPANCY, state, occupancy(state, at, wall)))
        if state.open_state == "open" and self.rng.random() < every / MANUAL_CLOSE_EVERY_S:
            reason = self.rng.choice(("manual", "weather", "maintenance"))
            out.append(_msg(topics.STATUS, state, status(state, at, False, reason)))
            long = self.rng.random() < LONG_CLOSURE_SHARE
            state.manual_until = wall + self.rng.uniform(*((1200, 3600) if long else (180, 720)))
        return out


def _msg(topic: str, state: StationState, value: dict[str, object]) -> Message:
    return topic, state.key, orjson.dumps(value)


async def _start_producer(settings: Settings) -> AIOKafkaProducer:
    return await start_producer(
        settings,
        client_id="stationwatch-simulator",
        linger_ms=20,
        max_batch_size=512 * 1024,
        acks=1,
    )


async def _send(producer: AIOKafkaProducer, settings: Settings, batch: list[Message]) -> int:
    """Send a batch without waiting for each delivery, then flush; returns the count delivered."""
    if not batch:
        return 0
    futures = [
        await producer.send(settings.topic(topic), value, key=key) for topic, key, value in batch
    ]
    await producer.flush()
    results = await asyncio.gather(*futures, return_exceptions=True)
    failed = [r for r in results if isinstance(r, BaseException)]
    if failed:
        logger.warning("%d of %d messages not delivered: %s", len(failed), len(batch), failed[0])
    return len(batch) - len(failed)


async def run_simulator(
    settings: Settings,
    *,
    stations: int,
    duration: float | None,
    seed: int,
    heartbeat_interval_s: int | None = None,
    on_sent: Callable[[int], None] | None = None,
    demo_outage: tuple[float, float] | None = None,
) -> None:
    """Simulate ``stations`` stations until ``duration`` seconds have passed or cancellation."""
    use_calendar(load_holidays(settings.holidays_file))  # open and close as the worker expects
    fleet = Fleet(settings, stations, seed, heartbeat_interval_s or 30, demo_outage=demo_outage)
    if fleet.planned is not None:
        logger.info(
            "the device of %s will go quiet for a while (demo)",
            fleet.planned[0].profile.station_id,
        )
    inputs = [settings.topic(t) for t in topics.INPUT_TOPICS]
    await ensure_topics(
        settings.kafka,
        inputs,
        settings.partitions,
        compacted=[settings.topic(topics.REGISTRY)],
        replication_factor=settings.replication_factor,
        auth=client_auth(settings),
    )
    producer = await _start_producer(settings)
    deadline = None if duration is None else time.monotonic() + duration
    report = on_sent or (lambda _count: None)
    try:
        report(await _send(producer, settings, fleet.registry()))
        logger.info("sent %d station profiles to %s", stations, settings.topic(topics.REGISTRY))
        next_check = 0.0
        while deadline is None or time.monotonic() < deadline:
            wall, at = time.time(), datetime.now(fleet.zone)
            batch = []
            if wall >= next_check:
                batch += fleet.schedule_pass(wall, at)
                next_check = wall + SCHEDULE_CHECK_S
            batch += fleet.due_reports(wall, at)
            report(await _send(producer, settings, batch))
            wake = min(fleet.due[0][0] if fleet.due else next_check, next_check)
            pause = min(max(wake - time.time(), 0.01), 1.0)
            if deadline is not None:
                pause = min(pause, max(deadline - time.monotonic(), 0.0))
            await asyncio.sleep(pause)
    finally:
        await producer.stop()  # sends what is still buffered
