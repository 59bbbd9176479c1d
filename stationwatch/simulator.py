"""A simulated fleet talking to the broker: registry first, then heartbeats, occupancy counts,
open/closed events on each station's schedule, and the faults it is told to inject (devices
going quiet, dying or flapping, streets losing power, clocks off, staff closing during hours or
late, messages duplicated, reordered or malformed), so every path of the worker (liveness,
alerts, dead letters) runs — at rates a real network might show, or far higher for a test.

The fleet, the messages and the fault decisions are pure (``stationwatch.fleet``,
``stationwatch.telemetry_sim``, ``stationwatch.fault_injection``); :class:`Fleet` schedules them
on a simulated clock that advances in steps of :data:`TICK_S`, and :func:`run_simulator` only
paces those steps against real time (``speed`` times faster) and sends what each step says, in
batches: ``send`` without waiting for each delivery, then one ``flush``. The same seed, start
time and duration give the same messages whatever the machine's speed.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import random
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import orjson
from aiokafka import AIOKafkaProducer

from schemas import topics
from stationwatch.broker import (
    ensure_topics,
)
from stationwatch.errors import ConfigurationError
from stationwatch.fault_injection import (
    DeviceFaults,
    FaultRates,
    WireFaults,
    fault_rng,
    happens,
    late_close_s,
    manual_closure_s,
    outage_s,
    power_cuts,
)
from stationwatch.fleet import build_fleet, collector_paused, iter_fleet
from stationwatch.kafka_auth import client_auth, start_producer
from stationwatch.settings import Settings
from stationwatch.sim_clock import clock_notes
from stationwatch.telemetry_sim import (
    SENSOR_REPORT_S,
    SENSOR_STEP_S,
    StationState,
    heartbeat,
    occupancy,
    status,
    step_occupants,
)
from streams.holidays import load_holidays
from streams.schedule import scheduled_open, use_calendar

__all__ = ["FaultRates", "Fleet", "build_fleet", "run_simulator"]

logger = logging.getLogger(__name__)

SCHEDULE_CHECK_S = 15.0  # how often every station's opening hours are compared with its state
MANUAL_REPORT_S = 300.0  # stations without a sensor: staff count the people now and then
TICK_S = 1.0  # the simulated clock's step (seconds of simulated time)
MAX_TICKS_PER_SEND = 300  # a sender behind real time catches up in batches of this many steps
REGISTRY_CHUNK = 5000  # station profiles per send
Message = tuple[str, bytes, bytes | None]  # (contract topic, key, value)


class Fleet:
    """The simulated stations and the heap of their next reports, on the clock it is given:
    ``start`` (wall seconds) and ``now`` (the same moment, aware) at creation, then ``wall``
    and ``at`` on every call. :meth:`tick` is one step of the clock; :meth:`schedule_pass`
    and :meth:`due_reports` are its parts."""

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
        faults: FaultRates | None = None,
    ) -> None:
        """``demo_outage`` (after, for): one station open now loses its device ``after``
        seconds from the start, for ``for`` seconds — so a demo shows an offline alert."""
        self.zone = ZoneInfo(settings.timezone)
        self.rng = random.Random(seed)  # noqa: S311 - simulation, not security
        self.rates = faults or FaultRates()
        self.devices = DeviceFaults.for_seed(seed)
        self.power_rng = fault_rng(seed, "power_cut")
        self.late_rng = fault_rng(seed, "late_close")
        self.manual_rng = fault_rng(seed, "manual_close")
        self.wire = WireFaults(self.rates, seed)
        now = (now or datetime.now(self.zone)).astimezone(self.zone)
        start = time.time() if start is None else start
        self.next_check = start
        streets: dict[tuple[str, str], int] = {}
        hours_of: dict[int, dict[str, object]] = {}  # the fleet shares its opening hours
        self.states: list[StationState] = []
        self.hours: list[dict[str, object]] = []
        with collector_paused():
            for profile in iter_fleet(stations, seed, now, heartbeat_interval_s=interval):
                state = StationState.create(profile, self.rng)
                place = (profile.district, profile.street)
                state.street_no = streets.setdefault(place, len(streets))
                self.states.append(state)
                shared = id(profile.opening_hours)
                if shared not in hours_of:
                    hours_of[shared] = profile.opening_hours.model_dump(mode="json")
                self.hours.append(hours_of[shared])
        self.streets = [f"{district}/{street}" for district, street in streets]
        self.dark = [0.0] * len(self.streets)  # a street's power is back at this wall time
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

    def iter_registry(self) -> Iterator[Message]:
        for s in self.states:
            yield topics.REGISTRY, s.key, s.profile.model_dump_json().encode()

    def registry(self) -> list[Message]:
        return list(self.iter_registry())

    def tick(self, wall: float, at: datetime) -> list[Message]:
        """One step of the simulated clock: power cuts and the schedule pass when due, every
        report due, then what happens to the messages on the wire."""
        out: list[Message] = []
        if wall >= self.next_check:
            self.power_pass(wall)
            out += self.schedule_pass(wall, at)
            self.next_check = wall + SCHEDULE_CHECK_S
        out += self.due_reports(wall, at)
        return self.wire.apply(out, wall, at)

    def power_pass(self, wall: float) -> list[str]:
        """Streets that lose power now (for the next :data:`SCHEDULE_CHECK_S` seconds' odds)."""
        lit = [n for n, back in enumerate(self.dark) if back <= wall]
        names = [self.streets[n] for n in lit]
        cut = dict(power_cuts(names, self.rates.power_cut, SCHEDULE_CHECK_S, self.power_rng))
        for n in lit:
            if self.streets[n] in cut:
                self.dark[n] = wall + cut[self.streets[n]]
        return list(cut)

    def _device_time(self, state: StationState, at: datetime) -> datetime:
        return at + timedelta(seconds=state.skew_s) if state.skew_s else at

    def _quiet(self, state: StationState, wall: float) -> bool:
        """The device sends nothing: dead, in an outage or a quiet spell, or without power."""
        return state.dead or state.silent_until > wall or self.dark[state.street_no] > wall

    def schedule_pass(self, wall: float, at: datetime) -> list[Message]:
        """Open and close stations whose state differs from their hours (or a manual closure);
        staff close late when :attr:`FaultRates.late_close` says so."""
        out: list[Message] = []
        open_now: dict[int, bool] = {}  # by opening hours: a few dozen patterns in any fleet
        for state, hours in zip(self.states, self.hours, strict=True):
            if state.profile.lifecycle != "active":
                if state.open_state is None:
                    out.append(_msg(topics.STATUS, state, status(state, at, False, "maintenance")))
                continue
            if state.manual_until > wall:
                continue
            key = id(hours)
            if key not in open_now:
                open_now[key] = scheduled_open(hours, at, self.zone)
            want = open_now[key]
            if state.open_state is not None and want == (state.open_state == "open"):
                state.manual_until = state.late_until = 0.0
                continue
            if state.open_state == "open" and not want and not state.manual_until:
                if not state.late_until:  # a scheduled closing: on time, or staff are late
                    late = late_close_s(self.rates.late_close, self.late_rng)
                    if late:
                        state.late_until = wall + late
                        continue
                elif state.late_until > wall:
                    continue
                else:  # staff close at last, by hand
                    event = status(state, at, False, "schedule", "staff")
                    out.append(_msg(topics.STATUS, state, event))
                    state.late_until = 0.0
                    continue
            reason = "manual" if state.manual_until else "schedule"
            by_device = reason == "schedule" and state.device_id is not None
            when = self._device_time(state, at) if by_device else at
            out.append(_msg(topics.STATUS, state, status(state, when, want, reason)))
            state.manual_until = state.late_until = 0.0
        return out

    def due_reports(self, wall: float, at: datetime) -> list[Message]:
        """Every report due by ``wall``, each stamped with the moment it fell due."""
        out: list[Message] = []
        while self.due and self.due[0][0] <= wall:
            when, i, kind = heapq.heappop(self.due)
            state = self.states[i]
            every = self._every(state, kind)
            heapq.heappush(self.due, (max(when + every, wall), i, kind))
            due_at = at - timedelta(seconds=wall - when) if when < wall else at
            if kind == "heartbeat":
                out += self._heartbeat(state, wall, due_at, every)
            else:
                out += self._count(state, wall, due_at, every)
        return out

    def _heartbeat(
        self, state: StationState, wall: float, at: datetime, every: float
    ) -> list[Message]:
        if self._quiet(state, wall):
            if self.dark[state.street_no] > wall:
                state.uptime_s = 0  # it restarts when the power is back
            return []
        if self.planned is not None and self.planned[0] is state:
            _, begins, ends = self.planned
            if begins <= wall < ends:
                state.silent_until = ends
                return []
        for fault in self.devices.strike(self.rates, every):
            if fault == "death":
                state.dead = True
                return []
            if fault == "clock_skew":
                state.skew_s = self.devices.skew_s(self.rates)
            elif fault == "flapping":  # starts flapping, or flaps for longer
                if state.flap_until <= wall:
                    state.flap_beats = 0
                state.flap_until = max(state.flap_until, wall + self.devices.flap_for_s())
            else:  # an outage: a blip (stale), longer (offline), or without power for a while
                state.silent_until = wall + outage_s(self.devices.outage, every)
                return []
        if state.flap_until > wall:
            if state.flap_beats <= 0:
                quiet, state.flap_beats = self.devices.flap_step(every)
                state.silent_until = wall + quiet
                return []
            state.flap_beats -= 1
        beat = heartbeat(state, self._device_time(state, at), self.rng)
        return [_msg(topics.HEARTBEAT, state, beat)]

    def _count(self, state: StationState, wall: float, at: datetime, every: float) -> list[Message]:
        out: list[Message] = []
        step_occupants(state, at, self.rng)
        if state.device_id:  # a sensor: on change, and every SENSOR_REPORT_S
            quiet = self._quiet(state, wall)  # it talks through the station's device
            stale = wall - state.reported_at >= SENSOR_REPORT_S - 1e-6
            if not quiet and (state.occupants != state.reported or stale):
                count = occupancy(state, self._device_time(state, at), wall)
                out.append(_msg(topics.OCCUPANCY, state, count))
        elif state.open_state == "open":  # staff count now and then while open
            out.append(_msg(topics.OCCUPANCY, state, occupancy(state, at, wall)))
        if state.open_state == "open" and happens(self.rates.manual_close, every, self.manual_rng):
            reason = self.manual_rng.choice(("manual", "weather", "maintenance"))
            out.append(_msg(topics.STATUS, state, status(state, at, False, reason)))
            state.manual_until = wall + manual_closure_s(self.manual_rng)
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
    faults: FaultRates | None = None,
    speed: float = 1.0,
    start: datetime | None = None,
) -> None:
    """Simulate ``stations`` stations until ``duration`` real seconds have passed (the clock's
    last step then is ``duration × speed`` simulated seconds after ``start``) or cancellation.
    ``start``: the simulated clock's first moment (default: now)."""
    if not (math.isfinite(speed) and speed > 0):
        raise ConfigurationError(f"speed: {speed} must be a number above 0")
    use_calendar(load_holidays(settings.holidays_file))  # open and close as the worker expects
    zone = ZoneInfo(settings.timezone)
    begin = (start or datetime.now(zone)).astimezone(zone)
    origin_wall = begin.timestamp()
    fleet = Fleet(
        settings,
        stations,
        seed,
        heartbeat_interval_s or 30,
        start=origin_wall,
        now=begin,
        demo_outage=demo_outage,
        faults=faults,
    )
    if fleet.planned is not None:
        logger.info(
            "the device of %s will go quiet for a while (demo)",
            fleet.planned[0].profile.station_id,
        )
    real_now = datetime.now(zone)
    for note in clock_notes(begin, real_now, speed, duration, settings):
        logger.warning("%s", note)
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
    report = on_sent or (lambda _count: None)
    last = None if duration is None else math.floor(duration * speed / TICK_S + 1e-9)
    try:
        profiles = fleet.iter_registry()
        while chunk := list(itertools.islice(profiles, REGISTRY_CHUNK)):
            report(await _send(producer, settings, chunk))
        logger.info("sent %d station profiles to %s", stations, settings.topic(topics.REGISTRY))
        origin = time.monotonic()  # the simulated clock starts once the registry is out
        step = 0
        while last is None or step <= last:
            batch: list[Message] = []
            elapsed = time.monotonic() - origin
            for _ in range(MAX_TICKS_PER_SEND):
                if (last is not None and step > last) or step * TICK_S / speed > elapsed:
                    break
                sim = step * TICK_S
                batch += fleet.tick(origin_wall + sim, begin + timedelta(seconds=sim))
                step += 1
            if last is not None and step > last:  # the end: nothing is held back any more
                batch += fleet.wire.release(origin_wall + step * TICK_S, everything=True)
            report(await _send(producer, settings, batch))
            if last is None or step <= last:  # until the next step is due (or at once)
                await asyncio.sleep(max(0.0, origin + step * TICK_S / speed - time.monotonic()))
    finally:
        await producer.stop()  # sends what is still buffered
