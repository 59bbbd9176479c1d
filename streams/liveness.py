"""Is a station alive, is it expected to be, and which alerts are firing — decided purely.

``evaluate(state, clock, config)`` is the one decision: from a station's state and the time it
is judged at, the new state, its liveness changes, the alert messages to emit, and when it next
needs a look. No Faust, no database, no wall clock: the caller passes ``clock``.

``clock.judge`` is the time the station is judged against: the wall clock while the worker is
caught up, the stream's progress (the newest record processed on the station's partition)
while it works through a backlog, so the pipeline's own outage never reads as the station's.
``clock.wall`` is only used to stamp ``detected_at``.

Rules:
- Monitored: registered, has a ``heartbeat_interval_s``, not decommissioned. Liveness follows
  heartbeats: ``online`` → ``stale`` after ``stale_after`` intervals of silence → ``offline``
  after ``offline_after``. Never heard: judged from when watching began, and ``unknown`` until a
  threshold passes. Back from stale/offline only after ``recovery_beats`` consecutive beats.
- Expected alive: monitored, lifecycle ``active``, scheduled open now; its changes are reported
  dated when they happened (``Evaluation.expected_changes``, :mod:`streams.expected`). Only
  expected stations fire ``stale``/``offline``; silence counts from the later of the last
  heartbeat and the moment the station became expected (a device switched on at opening time
  is not late).
- Flapping: more than ``flap_changes`` liveness changes inside ``flap_window`` → one
  ``flapping`` alert replaces stale/offline until the station has been steady for the window.
- ``closed_during_hours``: reported closed while scheduled open, for ``closed_grace``, from
  the first report of closed to the first of open (``open_state_since``).
- ``over_capacity``: occupants above capacity, from the reading that went over it to the first
  back within it (``occupancy_crossed_at``). Both are when the station came to its side
  (:func:`streams.state.run_after`), however many reports a batch folds before judging, in
  whatever order they come.
- Episodes: one ``firing`` and one ``resolved`` per episode, same ``alert_id`` (derived from the
  fingerprint and start, so a replay produces the same id). A new episode never starts before
  the previous one of its kind ended, so it never takes that one's id.
- ``stale``/``offline`` follow the hysteresis: a beat or two short of a recovery keeps the open
  episode going.
- Pending and keep-firing times per kind (Prometheus' ``for`` / ``keep_firing_for``): a condition
  fires only once it has held without a break for the kind's pending time (the episode starts
  when the condition began), and a firing episode resolves only once its condition has been clear
  for the kind's keep-firing time (it ends when the condition cleared; a condition back within
  that time continues the episode). ``closed_during_hours`` waits ``closed_grace``. So an
  occupancy hovering around capacity is one long episode, not a flood of short ones.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from schemas.alerts import SEVERITY, Alert
from streams.expected import ExpectedChange as ExpectedChange  # part of an Evaluation
from streams.expected import judge_expected
from streams.record import absent, listing
from streams.schedule import next_change, scheduled_open
from streams.state import Liveness, StationState, effective_lifecycle, evolve

_NAMESPACE = uuid.UUID("6f1f8d1e-5d55-4c1a-9a55-2f0e1b7c9a10")
_DEGRADED = ("stale", "offline")
_RANK = {"online": 0, "stale": 1, "offline": 2}
MAX_IDLE = timedelta(hours=1)  # look at every station at least this often


@dataclass(frozen=True)
class LivenessConfig:
    stale_after: float = 3.0
    offline_after: float = 10.0
    recovery_beats: int = 2
    flap_changes: int = 4
    flap_window: timedelta = timedelta(minutes=30)
    closed_grace: timedelta = timedelta(minutes=15)
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))
    # by alert kind; a kind not named fires at once and resolves at once
    pending: Mapping[str, timedelta] = field(default_factory=dict)
    keep_firing: Mapping[str, timedelta] = field(default_factory=dict)

    def pending_for(self, kind: str) -> timedelta:
        if kind == "closed_during_hours":
            return max(self.closed_grace, self.pending.get(kind, timedelta(0)))
        return self.pending.get(kind, timedelta(0))


class Clock(msgspec.Struct, frozen=True):
    judge: datetime
    wall: datetime


@dataclass(frozen=True)
class LivenessChange:
    time: datetime
    station_id: str
    from_liveness: str
    to_liveness: str


class Evaluation(msgspec.Struct, frozen=True):
    """One judgement's outcome (a struct: one per station judged)."""

    state: StationState
    changes: list[LivenessChange]
    alerts: list[Alert]
    next_due: datetime
    # changes of "expected alive", each dated when it happened (streams.expected)
    expected_changes: list[ExpectedChange] = msgspec.field(default_factory=list)


def alert_id(fingerprint: str, starts_at: datetime) -> str:
    """An episode's id: from its fingerprint and the instant it started, in UTC, whatever
    offset the start was worked out in (a heartbeat's, the schedule's, the clock's), so that
    a replay repeats it."""
    return str(uuid.uuid5(_NAMESPACE, f"{fingerprint}@{starts_at.astimezone(UTC).isoformat()}"))


def _level(age_s: float, interval: int, config: LivenessConfig) -> Liveness:
    if age_s > config.offline_after * interval:
        return "offline"
    if age_s > config.stale_after * interval:
        return "stale"
    return "online"


def _crossing(reference: datetime, level: str, interval: int, config: LivenessConfig) -> datetime:
    factor = config.offline_after if level == "offline" else config.stale_after
    return reference + timedelta(seconds=factor * interval)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def _summary(state: StationState, kind: str, interval: int | None, config: LivenessConfig) -> str:
    name = listing(state.profile).name or state.station_id
    who = f"{name} ({state.station_id})"
    if kind in _DEGRADED and interval:
        factor = config.offline_after if kind == "offline" else config.stale_after
        return f"{who} has sent no heartbeat for {_minutes(interval * factor)}"
    return {
        "flapping": f"{who} keeps going on and offline",
        "closed_during_hours": f"{who} reports closed during its opening hours",
        "over_capacity": f"{who} has {state.occupants} people for {state.capacity} seats",
    }.get(kind, f"{who}: {kind}")


def _labels(state: StationState) -> dict[str, str]:
    """The contract's labels, and the station's name (so a notice can say which station)."""
    shown = listing(state.profile)
    return {
        "district": shown.district or "",
        "street": shown.street or "",
        "category": shown.category or "",
        "name": shown.name or "",
    }


class _Episodes:
    """Collects alert messages while reconciling open episodes with what should fire."""

    def __init__(self, state: StationState, clock: Clock) -> None:
        self.state = state
        self.clock = clock
        self.open = dict(state.episodes)
        self.resolved = dict(state.resolved_episodes)
        self.messages: list[Alert] = []

    def fire(self, kind: str, starts_at: datetime, summary: str) -> None:
        if kind in self.open:
            return
        fingerprint = f"{self.state.station_id}:{kind}"
        ident = alert_id(fingerprint, starts_at)
        previous = self.resolved.get(kind)
        if previous is not None:
            # A condition that held before the last episode ended (a lifecycle or schedule
            # change ended it) starts a new episode now: never the old start, never its id.
            if starts_at < datetime.fromisoformat(previous["ends_at"]):
                starts_at = self.clock.judge
            ident = alert_id(fingerprint, starts_at)
            if ident == previous["alert_id"]:  # a zero-length episode at this very moment
                ident = str(uuid.uuid5(_NAMESPACE, f"{ident}+"))
        episode = {
            "alert_id": ident,
            "starts_at": starts_at.isoformat(),
            "detected_at": self.clock.wall.isoformat(),
            "summary": summary,
        }
        self.open[kind] = episode
        self.messages.append(self._message(kind, episode, "firing", None))

    def resolve(self, kind: str, ends_at: datetime) -> None:
        episode = self.open.pop(kind, None)
        if episode is None:
            return
        starts_at = datetime.fromisoformat(episode["starts_at"])
        ends_at = max(ends_at, starts_at)
        self.resolved[kind] = {"alert_id": episode["alert_id"], "ends_at": ends_at.isoformat()}
        self.messages.append(self._message(kind, episode, "resolved", ends_at))

    def _message(
        self, kind: str, episode: dict[str, Any], state: str, ends_at: datetime | None
    ) -> Alert:
        return Alert(
            alert_id=episode["alert_id"],
            fingerprint=f"{self.state.station_id}:{kind}",
            station_id=self.state.station_id,
            kind=kind,  # type: ignore[arg-type] # kinds come from this module
            state=state,  # type: ignore[arg-type]
            severity=SEVERITY[kind],
            starts_at=datetime.fromisoformat(episode["starts_at"]),
            ends_at=ends_at,
            detected_at=self.clock.wall,
            last_heartbeat_at=self.state.last_heartbeat_at,
            labels=_labels(self.state),
            summary=episode["summary"],
        )


def evaluate(state: StationState, clock: Clock, config: LivenessConfig) -> Evaluation:
    """Judge a station at ``clock``: who is expected alive, its liveness, flapping, the
    conditions that should alert, and the episodes that fire or resolve; when to look again.

    A steady station (:func:`judge_steady`: online, nothing pending) is judged the short
    way, to the same result."""
    steady = judge_steady(state, clock, config)
    return steady if steady is not None else evaluate_fully(state, clock, config)


def judge_steady(state: StationState, clock: Clock, config: LivenessConfig) -> Evaluation | None:
    """The judgement of a station nothing can change at ``clock``, or None when something
    may: it is online and heard within its stale threshold, flips and episodes and
    conditions waiting are none, its registry record, lifecycle and schedule are those of its
    last judgement (no opening or closing time has passed since the schedule's last change),
    and it is neither reported closed during its hours nor over capacity. Then
    :func:`evaluate_fully` changes nothing but says when to look again, and so does this,
    at a third of its cost (most judgements are of such stations: a heartbeat of one that
    is fine)."""
    if (
        state.liveness != "online"
        or state.episodes
        or state.pending
        or state.clearing
        or state.flips
        or state.flapping_since is not None
        or state.watch_since is None
        or state.scheduled_since is None
        or state.expect_basis is None
        or not absent(state.hours_before)
    ):
        return None
    heard = state.last_heartbeat_at
    found = state.facts
    interval = found.heartbeat_interval_s
    now = clock.judge
    if heard is None or interval is None or state.scheduled_since > now:
        return None
    lifecycle = effective_lifecycle(found, now)
    if lifecycle != state.lifecycle_in_force or lifecycle == "decommissioned":
        return None
    if state.expect_basis != {"lifecycle": lifecycle, "device": True}:
        return None
    due = [found.closed_until] if found.closed_until is not None else []
    hours = found.hours
    if not hours:
        is_open = False
    elif hours.get("always_open"):
        is_open = True
    else:
        boundary = next_change(hours, state.scheduled_since, config.zone)
        if boundary is None or boundary <= now:
            return None  # the schedule may have changed since: walked the long way
        is_open = scheduled_open(hours, now, config.zone)
        due.append(boundary)
    active = lifecycle == "active"
    expected = state.expected_since is not None
    if is_open is not state.scheduled or expected != (active and is_open):
        return None
    if (now - heard).total_seconds() > config.stale_after * interval:
        return None
    capacity = state.capacity
    if active and (
        (is_open and state.open_state == "closed")
        or (state.occupants is not None and capacity is not None and state.occupants > capacity)
    ):
        return None
    # silence counts from the last heartbeat (liveness) and, while expected, from the later of
    # it and when the station became expected (alerts)
    references = [heard]
    if state.expected_since is not None:
        references.append(max(heard, state.expected_since))
    due.extend(
        _crossing(reference, level, interval, config)
        for reference in references
        for level in ("stale", "offline")
    )
    upcoming = [moment for moment in due if moment > now]
    return Evaluation(state, [], [], min([*upcoming, now + MAX_IDLE]), [])


def evaluate_fully(state: StationState, clock: Clock, config: LivenessConfig) -> Evaluation:
    """:func:`evaluate`, every step of it."""
    now = clock.judge
    found = state.facts
    hours = found.hours
    lifecycle = effective_lifecycle(found, now)
    due: list[datetime] = [end] if (end := found.closed_until) is not None else []
    if lifecycle != state.lifecycle_in_force:
        state = evolve(state, lifecycle_in_force=lifecycle)
    # the schedule, and who is expected alive (dated exactly: streams.expected)
    state, expected_changes = judge_expected(state, now, config.zone)
    if hours:
        boundary = next_boundary(hours, state.scheduled_since, now, config.zone)
        if boundary is not None:
            due.append(boundary)
    state, changes = _judge_liveness(state, clock, lifecycle, config, due)
    state = _judge_flapping(state, now, config, due)
    episodes = _Episodes(state, clock)
    wanted = _conditions(state, now, lifecycle, config, due)
    state = _settle_episodes(state, episodes, wanted, now, config, due)
    upcoming = [moment for moment in due if moment > now]
    return Evaluation(
        state=state,
        changes=changes,
        alerts=episodes.messages,
        next_due=min([*upcoming, now + MAX_IDLE]),
        expected_changes=expected_changes,
    )


def next_boundary(
    hours: dict[str, Any], since: datetime | None, now: datetime, zone: ZoneInfo
) -> datetime | None:
    """The schedule's first opening or closing time after ``now``. The one after ``since``
    (the schedule's last change, judged up to ``now``) when that is later than ``now``: it
    was just asked for (cached), and no boundary lies between."""
    if since is not None and since <= now:
        boundary = next_change(hours, since, zone)
        if boundary is not None and boundary > now:
            return boundary
    return next_change(hours, now, zone)


def _judge_liveness(
    state: StationState, clock: Clock, lifecycle: str, config: LivenessConfig, due: list[datetime]
) -> tuple[StationState, list[LivenessChange]]:
    """Online, stale, offline, unknown or not monitored, by the last heartbeat (or the start
    of watching) against the interval; a degraded station is online again only after
    ``recovery_beats`` beats. Adds the next crossings to ``due``.

    Watching starts at the wall clock of the first judgement, not at the judging clock: that
    clock trails the wall while heartbeats wait to be processed, and a station cannot have
    been watched before the worker knew of it (a never-heard station would go stale early).
    Later only delays its first verdict, never raises a false one."""
    now = clock.judge
    registered = state.registered
    interval = state.heartbeat_interval_s
    monitored = registered and interval is not None and lifecycle != "decommissioned"
    changes: list[LivenessChange] = []
    current = state.liveness
    target: Liveness = current
    change_at = now
    if not monitored:
        target = "not_monitored" if registered else "unknown"
        state = evolve(state, watch_since=None)
    else:
        assert interval is not None  # monitored  # noqa: S101 - narrows the type
        if state.watch_since is None:
            state = evolve(state, watch_since=clock.wall)
        assert state.watch_since is not None  # noqa: S101
        reference = state.last_heartbeat_at or state.watch_since
        level = _level((now - reference).total_seconds(), interval, config)
        if level == "online":
            if current in _DEGRADED:
                if state.recovery_beats >= config.recovery_beats:
                    target, change_at = "online", reference
            elif state.last_heartbeat_at is not None:
                target, change_at = "online", reference
            else:
                target = "unknown"
        elif current not in _DEGRADED or _RANK[level] > _RANK[current]:
            target, change_at = level, _crossing(reference, level, interval, config)
        for nxt in ("stale", "offline"):
            moment = _crossing(reference, nxt, interval, config)
            if moment > now:
                due.append(moment)
    if target != current:
        change_at = min(change_at, now)
        changes.append(LivenessChange(change_at, state.station_id, current, target))
        flips = state.flips
        if {current, target} & set(_DEGRADED) and current != "not_monitored":
            flips = (*flips, change_at)
        state = evolve(
            state,
            liveness=target,
            liveness_since=change_at,
            recovery_beats=0 if target in _DEGRADED else state.recovery_beats,
            flips=flips,
        )
    return state, changes


def _judge_flapping(
    state: StationState, now: datetime, config: LivenessConfig, due: list[datetime]
) -> StationState:
    """Flapping: more than ``flap_changes`` liveness changes inside the flapping window."""
    window_start = now - config.flap_window
    flips = tuple(f for f in state.flips if f > window_start)
    flapping_since = state.flapping_since
    if flapping_since is None and len(flips) > config.flap_changes:
        flapping_since = now
    elif flapping_since is not None and (not flips or max(flips) <= window_start):
        flapping_since = None
    if flips:
        due.append(min(flips) + config.flap_window)
    if flips != state.flips or flapping_since != state.flapping_since:
        state = evolve(state, flips=flips, flapping_since=flapping_since)
    return state


def _conditions(
    state: StationState, now: datetime, lifecycle: str, config: LivenessConfig, due: list[datetime]
) -> dict[str, datetime]:
    """The conditions that should alert, by kind, each with the moment it began."""
    interval = state.heartbeat_interval_s
    expected = state.expected_since is not None
    flapping_since = state.flapping_since
    sched = bool(state.scheduled)
    wanted: dict[str, datetime] = {}
    if expected and interval is not None:
        assert state.watch_since is not None  # noqa: S101
        heard = state.last_heartbeat_at or state.watch_since
        since = max(heard, state.expected_since or now)
        silent_s = (now - since).total_seconds()
        if flapping_since is not None:
            wanted["flapping"] = flapping_since
        elif state.liveness in _DEGRADED:
            alert_level = _level(silent_s, interval, config)
            held = next((kind for kind in ("offline", "stale") if kind in state.episodes), None)
            if alert_level == "offline" and state.liveness == "offline":
                wanted["offline"] = _crossing(since, "offline", interval, config)
            elif held is not None:
                # Beats are back but too few to be a recovery: the open episode goes on.
                wanted[held] = datetime.fromisoformat(state.episodes[held]["starts_at"])
            elif alert_level != "online":
                wanted["stale"] = _crossing(since, "stale", interval, config)
        for nxt in ("stale", "offline"):
            moment = _crossing(since, nxt, interval, config)
            if moment > now:
                due.append(moment)
    if lifecycle == "active" and sched and state.open_state == "closed":
        wanted["closed_during_hours"] = max(
            state.open_state_since or now, state.scheduled_since or now
        )
    capacity = state.capacity
    if (
        lifecycle == "active"
        and state.occupants is not None
        and capacity is not None
        and state.occupants > capacity
    ):
        # since the reading that went over it (or the registry record that lowered it), not
        # the latest reading: a batch may fold several before it is judged
        wanted["over_capacity"] = state.occupancy_crossed_at or state.occupancy_at or now
    return wanted


def _settle_episodes(
    state: StationState,
    episodes: _Episodes,
    wanted: dict[str, datetime],
    now: datetime,
    config: LivenessConfig,
    due: list[datetime],
) -> StationState:
    """Fire what has been wanted for its pending time, resolve what has been clear for its
    keep-firing time; the state keeps the episodes and the conditions still waiting."""
    interval = state.heartbeat_interval_s
    # Pending: a condition fires once it has held without a break for its kind's time.
    pending: dict[str, str] = {}
    ready: dict[str, datetime] = {}
    for kind, began in wanted.items():
        held_since = state.pending.get(kind)
        began = min(began, datetime.fromisoformat(held_since)) if held_since else began
        pending[kind] = began.isoformat()
        fires_at = began + config.pending_for(kind)
        if kind in episodes.open or fires_at <= now:
            ready[kind] = began
        else:
            due.append(fires_at)
    # Keep firing: an episode whose condition cleared resolves once clear for its kind's time
    # (an offline episode still resolves its stale one at the moment it starts).
    clearing: dict[str, str] = {}
    for kind in list(episodes.open):
        if kind in wanted:
            continue
        keep = config.keep_firing.get(kind, timedelta(0))
        if keep > timedelta(0) and not (kind == "stale" and "offline" in ready):
            clear_since = state.clearing.get(kind)
            cleared = (
                datetime.fromisoformat(clear_since)
                if clear_since
                else _cleared_at(kind, state, now)
            )
            if now - cleared < keep:
                clearing[kind] = cleared.isoformat()
                due.append(cleared + keep)
                continue
            episodes.resolve(kind, min(cleared, now))
            continue
        ends_at = ready.get("offline", now) if kind == "stale" else _cleared_at(kind, state, now)
        if kind in _DEGRADED and state.liveness == "online" and state.liveness_since:
            ends_at = state.liveness_since
        episodes.resolve(kind, min(ends_at, now))
    for kind, starts_at in ready.items():
        episodes.fire(kind, min(starts_at, now), _summary(state, kind, interval, config))
    settled = (episodes.open, episodes.resolved, pending, clearing)
    if settled != (state.episodes, state.resolved_episodes, state.pending, state.clearing):
        state = evolve(
            state,
            episodes=episodes.open,
            resolved_episodes=episodes.resolved,
            pending=pending,
            clearing=clearing,
        )
    return state


def _cleared_at(kind: str, state: StationState, now: datetime) -> datetime:
    """When a condition stopped holding, dated by the input that ended it — the reading within
    capacity, the opening, the end of the opening hours — so a replay after a crash or a
    backlog dates an episode's end as a live run did. Otherwise (a lifecycle change, the
    station's liveness) the judging time.

    The first reading within capacity, not the latest: a batch folds every record of a
    part before judging, and where a restart cuts the batches (a replay, a backlog) decides
    how many readings came after it by then."""
    at: datetime | None = None
    capacity = state.capacity
    if kind == "over_capacity" and state.occupants is not None and capacity is not None:
        if state.occupants <= capacity and state.occupancy_at is not None:
            # the reading that came back within capacity, or the registry record that
            # raised it (stored before the crossing was kept: whichever came last)
            at = state.occupancy_crossed_at or max(
                state.occupancy_at, state.profile_updated_at or state.occupancy_at
            )
    elif kind == "closed_during_hours":
        if state.open_state == "open":
            at = state.open_state_since
        elif state.scheduled is False:
            at = state.scheduled_since
    return min(at, now) if at is not None else now


def resolve_all(state: StationState, clock: Clock) -> Evaluation:
    """The station left the registry: close every open episode."""
    episodes = _Episodes(state, clock)
    for kind in list(episodes.open):
        episodes.resolve(kind, clock.judge)
    closed = evolve(
        state, episodes={}, resolved_episodes=episodes.resolved, pending={}, clearing={}
    )
    return Evaluation(closed, [], episodes.messages, clock.judge + MAX_IDLE)
