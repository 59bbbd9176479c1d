"""A simulated week of a fleet, driven through the worker's real ingest step, and the same week's
availability recomputed independently from first principles.

``simulate`` builds the inputs (registry records, heartbeats) of about 60 stations over the week
of 2026-09-20 (Sunday, a make-up working day) to 2026-09-26, with the Mid-autumn Festival on
Friday 25 and Saturday 26 (public holidays); ``drive`` feeds them, in time order, to
``streams.ingest.process_records`` exactly as the worker's agent does (a record when it arrives,
then the stations due, judged a tick after they are due) and collects the rows it would write;
``recompute`` derives each station's daily monitored and online seconds from the raw heartbeat
times, the opening hours, the holidays and the registry changes, by the README's rules, without
any of the product's liveness or schedule code.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from schemas.topics import HEARTBEAT, REGISTRY
from streams.ingest import IngestConfig, Outcome, Record, Tick, process_records
from streams.liveness import Clock, LivenessConfig
from streams.tracker import DueIndex
from tests.factories import dumps, heartbeat, profile

SH = ZoneInfo("Asia/Shanghai")
WEEK_START = datetime(2026, 9, 20, tzinfo=SH)
WEEK_END = WEEK_START + timedelta(days=7)
REGISTERED = WEEK_START - timedelta(hours=2)  # the fleet is registered the evening before
SIM_END = WEEK_END + timedelta(hours=1)  # judged a little past the week
DAYS = [(WEEK_START - timedelta(days=1) + timedelta(days=n)).date() for n in range(8)]
# The State Council's 2026 calendar for these days (test data, not the product's calendar):
# the Mid-autumn Festival holiday is Friday 25 to Sunday 27; Sunday 20 is a working day.
DAY_KINDS = {
    date(2026, 9, 20): "makeup_workday",
    date(2026, 9, 25): "holiday",
    date(2026, 9, 26): "holiday",
    date(2026, 9, 27): "holiday",
}
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
STALE_AFTER, OFFLINE_AFTER, RECOVERY_BEATS = 3, 10, 2  # the defaults (README)
LATENCY = timedelta(milliseconds=200)  # a heartbeat is processed this long after it was sent
TICK_DELAY = timedelta(milliseconds=500)  # a due station is judged this long after it is due
REGISTRY_DELAY = timedelta(milliseconds=700)  # a registry record, after its updated_at second

ALWAYS: dict[str, Any] = {"always_open": True, "weekly": {}, "holidays_open": True}


def _weekly(days: tuple[str, ...], *spans: tuple[str, str]) -> dict[str, Any]:
    return {day: [list(span) for span in spans] for day in days}


OFFICE = _weekly(WEEKDAYS[:5], ("08:00", "20:00"))
SPLIT = {
    **_weekly(WEEKDAYS[:5], ("07:00", "11:30"), ("13:00", "19:00")),
    **_weekly(("sat",), ("09:00", "17:00")),
}
NIGHTS = _weekly(WEEKDAYS, ("18:00", "06:00"))  # past midnight
SIX_DAYS = _weekly(WEEKDAYS[:6], ("09:00", "21:00"))
# (category, opening hours, heartbeat interval)
KINDS: list[tuple[str, dict[str, Any], int]] = [
    ("smart_24h", ALWAYS, 90),
    ("business_circle_24h", ALWAYS, 120),
    ("standard", {"always_open": False, "weekly": OFFICE, "holidays_open": False}, 120),
    ("standard", {"always_open": False, "weekly": OFFICE, "holidays_open": True}, 300),
    ("standard", {"always_open": False, "weekly": SPLIT, "holidays_open": False}, 180),
    ("truck_driver", {"always_open": False, "weekly": NIGHTS, "holidays_open": True}, 120),
    ("standard", {"always_open": False, "weekly": SIX_DAYS, "holidays_open": False}, 300),
]
STATIONS = 63


@dataclass
class Station:
    station_id: str
    category: str
    hours: dict[str, Any]
    interval: int | None
    # registry timeline: (processed at, lifecycle) — "removed" for a tombstone
    registry: list[tuple[datetime, str]] = field(default_factory=list)
    beats: list[datetime] = field(default_factory=list)


# -- the schedule, from the documented rules ---------------------------------------------------
def _minutes(hhmm: str) -> int:
    hour, minute = hhmm.split(":")
    return int(hour) * 60 + int(minute)


def day_spans(day: date, hours: dict[str, Any]) -> list[list[str]]:
    """The spans starting on ``day``: its own weekly hours; on a public holiday none unless
    ``holidays_open``, then its own or the usual workday hours; on a make-up working day its own
    or the usual workday hours."""
    weekly = hours.get("weekly") or {}
    own = list(weekly.get(WEEKDAYS[day.weekday()]) or [])
    usual = next((list(weekly[d]) for d in WEEKDAYS[:5] if weekly.get(d)), [])
    kind = DAY_KINDS.get(day, "normal")
    if kind == "holiday":
        return (own or usual) if hours.get("holidays_open") else []
    if kind == "makeup_workday":
        return own or usual
    return own


Intervals = list[tuple[datetime, datetime]]


def normalise(intervals: Intervals) -> Intervals:
    merged: Intervals = []
    for start, end in sorted(i for i in intervals if i[1] > i[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def intersect(a: Intervals, b: Intervals) -> Intervals:
    out: Intervals = []
    i = j = 0
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if start < end:
            out.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def open_intervals(hours: dict[str, Any], start: datetime, end: datetime) -> Intervals:
    if hours.get("always_open"):
        return [(start, end)]
    found: Intervals = []
    day = start.astimezone(SH).date() - timedelta(days=1)
    while day <= end.astimezone(SH).date():
        midnight = datetime(day.year, day.month, day.day, tzinfo=SH)
        for lo, hi in day_spans(day, hours):
            a, b = _minutes(lo), _minutes(hi)
            close = b if b > a else b + 24 * 60
            found.append((midnight + timedelta(minutes=a), midnight + timedelta(minutes=close)))
        day += timedelta(days=1)
    return intersect(normalise(found), [(start, end)])


# -- the fleet ---------------------------------------------------------------------------------
def _device_windows(rng: random.Random, station: Station) -> Intervals:
    """When the station's device is powered: always, or around its opening hours."""
    on_from = station.registry[0][0] + timedelta(seconds=rng.randint(3, 20))
    if station.hours.get("always_open") or rng.random() < 0.5:
        return [(on_from, SIM_END)]
    spans = open_intervals(station.hours, on_from, SIM_END)
    margin = timedelta(minutes=rng.choice([-1, 0, 2, 5]) or 0)
    return normalise([(a - margin, b + timedelta(minutes=5)) for a, b in spans])


def _outages(rng: random.Random) -> Intervals:
    lengths = [100, 150, 600, 1800, 2 * 3600, 9 * 3600]
    out: Intervals = []
    for _ in range(rng.randint(0, 4)):
        start = WEEK_START + timedelta(seconds=rng.randint(0, 7 * 86400))
        out.append((start, start + timedelta(seconds=rng.choice(lengths) + rng.randint(0, 59))))
    return normalise(out)


def _avoid_ambiguity(beats: list[datetime], interval: int) -> list[datetime]:
    """A heartbeat processed less than a tick after its station crossed a threshold would be
    judged before the crossing was: keep gaps clear of (threshold, threshold + 1 s]."""
    fixed: list[datetime] = []
    for beat in beats:
        if fixed:
            gap = (beat - fixed[-1]).total_seconds()
            for threshold in (STALE_AFTER * interval, OFFLINE_AFTER * interval):
                if threshold < gap <= threshold + 1:
                    beat += timedelta(seconds=2)
            if beat <= fixed[-1]:
                continue
        fixed.append(beat)
    return fixed


def _heartbeats(rng: random.Random, station: Station, off: Intervals) -> list[datetime]:
    assert station.interval is not None
    step = station.interval
    beats: list[datetime] = []
    for start, end in _device_windows(rng, station):
        moment = start
        while moment < end:
            beats.append(moment + timedelta(seconds=rng.randint(-3, 3)))
            moment += timedelta(seconds=step)
    silent = normalise([*_outages(rng), *off])
    kept = [b for b in beats if not any(a <= b < z for a, z in silent)]
    for a, z in silent:  # now and then a lone beat in a long outage: no recovery yet
        if (z - a).total_seconds() > 1800 and rng.random() < 0.5:
            kept.append(a + (z - a) / 2)
    whole = sorted({b.replace(microsecond=0) for b in kept if b >= start_of(station)})
    return _avoid_ambiguity(whole, step)


def start_of(station: Station) -> datetime:
    return station.registry[0][0]


def simulate(seed: int = 20260920) -> list[Station]:
    rng = random.Random(seed)
    fleet: list[Station] = []
    for n in range(STATIONS):
        category, hours, interval = KINDS[n % len(KINDS)]
        station = Station(f"AV-{n:04d}", category, hours, interval)
        registered = REGISTERED + timedelta(seconds=7 * n) + REGISTRY_DELAY
        if n in (53, 54):  # registered in the middle of the week
            registered = WEEK_START + timedelta(days=2, hours=10, seconds=17 * n) + REGISTRY_DELAY
        station.registry.append((registered, "active"))
        off: Intervals = []
        if n % 7 == 3 and n < 45:  # a temporary closure, device off for some
            closed = WEEK_START + timedelta(seconds=rng.randint(86400, 4 * 86400)) + REGISTRY_DELAY
            reopened = closed + timedelta(seconds=rng.randint(4 * 3600, 2 * 86400))
            station.registry += [(closed, "temporarily_closed"), (reopened, "active")]
            if n % 2:
                off.append((closed, reopened + timedelta(seconds=rng.randint(0, 600))))
        if n in (45, 52):  # decommissioned; one device keeps talking
            at = WEEK_START + timedelta(days=3, hours=15, minutes=n) + REGISTRY_DELAY
            station.registry.append((at, "decommissioned"))
            if n == 45:
                off.append((at, SIM_END))
        if n == 50:  # removed from the registry
            at = WEEK_START + timedelta(days=4, hours=9, minutes=12) + REGISTRY_DELAY
            station.registry.append((at, "removed"))
            off.append((at, SIM_END))
        if n == 49:
            station.interval = None  # no device: never expected, never judged
        elif n == 55:
            pass  # a device that never says a word
        else:
            station.beats = _heartbeats(rng, station, off)
        fleet.append(station)
    return fleet


# -- driving the worker's ingest step ------------------------------------------------------------
def _registry_message(station: Station, at: datetime, lifecycle: str) -> bytes | None:
    if lifecycle == "removed":
        return None
    updated = (at - REGISTRY_DELAY).replace(microsecond=0)
    return dumps(
        profile(
            station.station_id,
            category=station.category,
            opening_hours=station.hours,
            heartbeat_interval_s=station.interval,
            lifecycle=lifecycle,
            updated_at=updated.isoformat(),
        )
    )


def inputs(fleet: list[Station]) -> list[tuple[datetime, str, str, bytes | None]]:
    """(processed at, topic, station id, value) in processing order."""
    found: list[tuple[datetime, str, str, bytes | None]] = []
    for station in fleet:
        for at, lifecycle in station.registry:
            found.append(
                (at, REGISTRY, station.station_id, _registry_message(station, at, lifecycle))
            )
        for seq, beat in enumerate(station.beats, 1):
            message = dumps(heartbeat(station.station_id, beat, seq))
            found.append((beat + LATENCY, HEARTBEAT, station.station_id, message))
    found.sort(key=lambda item: (item[0], item[2]))
    return found


def drive(fleet: list[Station], *, chunk_rows: int = 20_000) -> Iterator[Outcome]:
    """Process the week as the worker does, on one partition; yield the outcomes in chunks (the
    rows of several batches merged, as many batches would write them)."""
    config = IngestConfig(
        topic_prefix="",
        max_bytes=65536,
        max_skew=timedelta(seconds=300),
        liveness=LivenessConfig(
            stale_after=STALE_AFTER, offline_after=OFFLINE_AFTER, recovery_beats=RECOVERY_BEATS
        ),
    )
    table: dict[str, Any] = {}
    due = DueIndex()
    chunk = Outcome()

    def run(now: datetime, records: list[Record], ticks: list[Tick]) -> None:
        out = process_records(
            records, table, now=now, clocks={0: Clock(now, now)}, config=config, ticks=ticks
        )
        for station_id, write in out.state_writes.items():  # as apply_state_writes does
            if write.remove:
                table.pop(station_id, None)
                due.forget(station_id)
                continue
            if write.value is not None:
                table[station_id] = write.value
            due.schedule(station_id, 0, write.next_due, write.liveness)
        chunk.merge(out)

    pending = inputs(fleet)
    offset = 0
    index = 0
    while index < len(pending) or due.next_due(0) is not None:
        next_record = pending[index][0] if index < len(pending) else SIM_END
        next_due = due.next_due(0)
        tick_at = (
            datetime.fromtimestamp(next_due, SH) + TICK_DELAY if next_due is not None else None
        )
        if tick_at is not None and tick_at < next_record:
            if tick_at > SIM_END:
                break
            run(tick_at, [], [Tick(0, due.pop_due(0, tick_at, 20_000))])
        else:
            if index >= len(pending):
                break
            now = next_record
            records: list[Record] = []
            while index < len(pending) and pending[index][0] == now:
                _, topic, station_id, value = pending[index]
                records.append(Record(topic, 0, offset, station_id.encode(), value, None))
                index += 1
                offset += 1
            run(now, records, [])
        if len(chunk.batch) >= chunk_rows:
            yield chunk
            chunk = Outcome()
    yield chunk


# -- the independent recomputation ---------------------------------------------------------------
def online_intervals(
    watch: tuple[datetime, datetime], beats: list[datetime], interval: int
) -> Intervals:
    """When the station was ``online`` while watched: online from its first heartbeat; ``stale``
    once silent for more than STALE_AFTER intervals, ``offline`` for more than OFFLINE_AFTER
    (counted from when watching began while never heard); back online at the
    RECOVERY_BEATS-th consecutive heartbeat (each within STALE_AFTER intervals of the one
    before)."""
    start, end = watch
    stale = timedelta(seconds=STALE_AFTER * interval)
    offline = timedelta(seconds=OFFLINE_AFTER * interval)
    state, reference, previous, count = "unknown", start, None, 0
    since: datetime | None = None
    found: Intervals = []

    def become(new: str, at: datetime) -> None:
        nonlocal state, since, count
        if state == "online" and since is not None:
            found.append((since, at))
        since = at if new == "online" else None
        if new in ("stale", "offline"):
            count = 0
        state = new

    for beat in [b for b in beats if start <= b < end] + [None]:
        horizon = beat if beat is not None else end
        if state in ("online", "unknown") and horizon - reference > stale:
            become("stale", reference + stale)
        if state == "stale" and horizon - reference > offline:
            become("offline", reference + offline)
        if beat is None:
            break
        if state == "unknown":
            become("online", beat)
        elif state in ("stale", "offline"):
            count = count + 1 if previous is not None and beat - previous <= stale else 1
            if count >= RECOVERY_BEATS:
                become("online", beat)
        previous = reference = beat
    if state == "online" and since is not None:
        found.append((since, end))
    return found


def recompute(station: Station) -> dict[date, tuple[float, float]]:
    """Per local day: (seconds expected alive, seconds of those online)."""
    if station.interval is None:
        return {}
    active: Intervals = []
    watched_until = SIM_END
    timeline = [*station.registry, (SIM_END, "end")]
    for (at, lifecycle), (until, _) in itertools.pairwise(timeline):
        if lifecycle == "active":
            active.append((at, until))
        if lifecycle in ("decommissioned", "removed") and watched_until == SIM_END:
            watched_until = at
    expected = intersect(
        normalise(active), open_intervals(station.hours, start_of(station), SIM_END)
    )
    online = online_intervals((start_of(station), watched_until), station.beats, station.interval)
    both = intersect(expected, normalise(online))
    days: dict[date, tuple[float, float]] = {}
    for day in DAYS:
        midnight = datetime(day.year, day.month, day.day, tzinfo=SH)
        window = [(midnight, midnight + timedelta(days=1))]
        monitored = sum((b - a).total_seconds() for a, b in intersect(expected, window))
        up = sum((b - a).total_seconds() for a, b in intersect(both, window))
        if monitored > 0:
            days[day] = (monitored, up)
    return days
