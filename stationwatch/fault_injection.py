"""The faults a simulated fleet suffers, decided here and nowhere else: rates, a random source
and a (simulated) clock in, what happens out. No broker, no wall clock: `stationwatch.simulator`
applies the decisions and only sends what results.

Rates come in three kinds, each 0 to switch the fault off:

- **per device-hour** (or per street-hour): a Poisson rate — 2.0 means twice an hour on average,
  0.01 once in a hundred hours; decided every time a device is due to report, for the time
  since its last chance (:func:`happens`);
- **per message**: a probability for each telemetry message on its way out (:class:`WireFaults`);
- **per closing**: a probability for each scheduled closing of an open station.

Every fault draws from its own random stream (:func:`fault_rng`), so switching one on or off
leaves the others — and the fleet's ordinary traffic — as they were for the same seed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import ClassVar, Literal

from stationwatch.errors import ConfigurationError
from stationwatch.telemetry_sim import malformed_message

HOUR_S = 3600.0
Message = tuple[str, bytes, bytes | None]  # (contract topic, key, value)

# How long each fault lasts (seconds of simulated time, drawn uniformly between the two)
OUTAGE_BLIP = (4.0, 9.0)  # heartbeat intervals: past stale (3), short of offline (10)
OUTAGE_LONG = (12.0, 40.0)  # heartbeat intervals: offline for a while
OUTAGE_UNPOWERED_S = (1800.0, 7200.0)  # a device without power for a while
FLAP_FOR_S = (600.0, 1800.0)  # a flapping device flaps this long …
FLAP_QUIET = (3.5, 5.0)  # … silent this many intervals at a time (past stale) …
FLAP_BEATS = (1, 3)  # … then this many heartbeats, and silent again
POWER_CUT_S = (600.0, 2700.0)  # a street without power
LATE_CLOSE_S = (300.0, 1800.0)  # staff close this long after the scheduled closing time
HOLD_MAX_S = 120.0  # a message held back to be reordered goes out at the latest after this
MANUAL_CLOSE_S = ((180.0, 720.0), (1200.0, 3600.0))  # a staff closure: short, long
LONG_CLOSURE_SHARE = 0.3  # long closures outlast the closed-during-hours grace (15 min)

DeviceFault = Literal["outage", "death", "flapping", "clock_skew"]


@dataclass(frozen=True)
class FaultRates:
    """How often each fault happens; the defaults are the simulator's long-standing behaviour
    (a device goes quiet about every 12 hours, staff close about once a week of opening hours,
    one message in a thousand is malformed) with every other fault off."""

    outage: float = 1 / 12  # per device-hour: quiet for a while, then back
    death: float = 0.0  # per device-hour: stops for good
    flapping: float = 0.0  # per device-hour: starts flapping (rapid off/on) for a while
    power_cut: float = 0.0  # per street-hour: every device of the street quiet for a while
    clock_skew: float = 0.0  # per device-hour: its clock goes off by clock_skew_s, for good
    clock_skew_s: float = 600.0  # how far a skewed clock is off (ahead or behind, at random)
    manual_close: float = 1 / 168  # per open station-hour: staff close it for a while
    late_close: float = 0.0  # per scheduled closing: staff close late
    duplicate: float = 0.0  # per message: sent twice
    reorder: float = 0.0  # per message: held back, sent after the station's next one
    malformed: float = 0.001  # per message: followed by a broken one (a dead letter)

    PER_MESSAGE: ClassVar[tuple[str, ...]] = ("late_close", "duplicate", "reorder", "malformed")

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            if not math.isfinite(value) or value < 0:
                raise ConfigurationError(f"{spec.name}: {value} is not a rate (0 or more)")
            if spec.name in self.PER_MESSAGE and value > 1:
                raise ConfigurationError(f"{spec.name}: {value} is not a probability (0 to 1)")


def fault_rng(seed: int, fault: str) -> random.Random:
    """The random stream of one fault for a run's seed (the same on every machine)."""
    return random.Random(f"{seed}:fault:{fault}")  # noqa: S311 - simulation, not security


def happens(rate_per_h: float, over_s: float, rng: random.Random) -> bool:
    """Whether an event of ``rate_per_h`` (Poisson) happens within ``over_s`` seconds. Draws
    from ``rng`` only when the rate is on, so a fault switched off changes no stream."""
    if rate_per_h <= 0 or over_s <= 0:
        return False
    return rng.random() < -math.expm1(-rate_per_h * over_s / HOUR_S)


def outage_s(rng: random.Random, interval_s: float) -> float:
    """How long a device that goes quiet stays quiet: a blip (stale), a longer outage
    (offline), or a while without power."""
    roll = rng.random()
    if roll < 0.55:
        return interval_s * rng.uniform(*OUTAGE_BLIP)
    if roll < 0.9:
        return interval_s * rng.uniform(*OUTAGE_LONG)
    return rng.uniform(*OUTAGE_UNPOWERED_S)


@dataclass(frozen=True)
class DeviceFaults:
    """The random streams of the per-device faults, one each."""

    outage: random.Random
    death: random.Random
    flapping: random.Random
    clock_skew: random.Random

    @classmethod
    def for_seed(cls, seed: int) -> DeviceFaults:
        return cls(*(fault_rng(seed, name) for name in ("outage", "death", "flapping", "skew")))

    def strike(self, rates: FaultRates, over_s: float) -> list[DeviceFault]:
        """What befalls one device within ``over_s`` seconds (usually nothing), in the order
        the simulator applies it."""
        struck: list[DeviceFault] = []
        if happens(rates.death, over_s, self.death):
            struck.append("death")
        if happens(rates.clock_skew, over_s, self.clock_skew):
            struck.append("clock_skew")
        if happens(rates.flapping, over_s, self.flapping):
            struck.append("flapping")
        if happens(rates.outage, over_s, self.outage):
            struck.append("outage")
        return struck

    def skew_s(self, rates: FaultRates) -> float:
        """A clock that went wrong: ``clock_skew_s`` ahead or behind."""
        return rates.clock_skew_s if self.clock_skew.random() < 0.5 else -rates.clock_skew_s

    def flap_for_s(self) -> float:
        return self.flapping.uniform(*FLAP_FOR_S)

    def flap_step(self, interval_s: float) -> tuple[float, int]:
        """A flapping device's next quiet spell (seconds) and the heartbeats it sends after."""
        return interval_s * self.flapping.uniform(*FLAP_QUIET), self.flapping.randint(*FLAP_BEATS)


def power_cuts(
    streets: Sequence[str], rate_per_h: float, over_s: float, rng: random.Random
) -> list[tuple[str, float]]:
    """The streets that lose power within ``over_s`` seconds, each with how long it lasts."""
    if rate_per_h <= 0:
        return []
    return [
        (street, rng.uniform(*POWER_CUT_S))
        for street in streets
        if happens(rate_per_h, over_s, rng)
    ]


def late_close_s(rate: float, rng: random.Random) -> float:
    """How late staff close at a scheduled closing (0: on time)."""
    if rate <= 0 or rng.random() >= rate:
        return 0.0
    return rng.uniform(*LATE_CLOSE_S)


def manual_closure_s(rng: random.Random) -> float:
    """How long staff keep a station closed that they closed during its hours."""
    return rng.uniform(*MANUAL_CLOSE_S[rng.random() < LONG_CLOSURE_SHARE])


class WireFaults:
    """What happens to telemetry on its way out: duplicated, reordered (held back until the
    station's next message on the same topic, then sent after it: an out-of-order pair) and
    malformed messages added. Messages in, messages out; at most one message held per station
    and topic, and none longer than :data:`HOLD_MAX_S`."""

    def __init__(self, rates: FaultRates, seed: int) -> None:
        self.rates = rates
        self.duplicates = fault_rng(seed, "duplicate")
        self.reorders = fault_rng(seed, "reorder")
        self.malformations = fault_rng(seed, "malformed")
        self.held: dict[tuple[str, bytes], tuple[float, Message]] = {}

    def apply(self, messages: Iterable[Message], wall: float, at: datetime) -> list[Message]:
        rates = self.rates
        out: list[Message] = []
        for message in messages:
            topic, key, _value = message
            slot = (topic, key)
            if slot in self.held:  # the newer one first, then the one held back
                out += (message, self.held.pop(slot)[1])
            elif rates.reorder > 0 and self.reorders.random() < rates.reorder:
                self.held[slot] = (wall, message)
            else:
                out.append(message)
            if rates.duplicate > 0 and self.duplicates.random() < rates.duplicate:
                out.append(message)  # a producer's retry after a lost acknowledgement
            if rates.malformed > 0 and self.malformations.random() < rates.malformed:
                out.append(malformed_message(key.decode(), at, self.malformations))
        out += self.release(wall)
        return out

    def release(self, wall: float, *, everything: bool = False) -> list[Message]:
        """The held messages whose time is up (all with ``everything``)."""
        due = [
            slot
            for slot, (held_at, _) in self.held.items()
            if everything or wall - held_at >= HOLD_MAX_S
        ]
        return [self.held.pop(slot)[1] for slot in due]
