"""The live state of one station and how each input folds into it.

Pure: no Faust, no database. Every fold is idempotent and order-tolerant — a message delivered
twice, or an older message arriving after a newer one, leaves the state as the newest says —
because input is at-least-once and several producers race. (Since when a station has been
open or closed, over or within capacity, is what all the reports say but in one case, where
three times cannot tell: :func:`run_after`.)
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

import msgspec

from schemas import Heartbeat, Occupancy, StationProfile, StatusEvent
from streams.record import NULL, Facts, absent, encode_record, facts_of, record_of

Liveness = Literal["online", "stale", "offline", "unknown", "not_monitored"]
OpenState = Literal["open", "closed", "unknown"]

_TIME_FIELDS = (
    "liveness_since",
    "last_heartbeat_at",
    "open_state_since",
    "open_reported_at",
    "open_other_at",
    "occupancy_at",
    "occupancy_crossed_at",
    "occupancy_other_at",
    "profile_updated_at",
    "updated_at",
    "watch_since",
    "scheduled_since",
    "expected_since",
    "expected_changed_at",
    "flapping_since",
)


class StationState(msgspec.Struct, frozen=True, gc=False, omit_defaults=True):
    """What the worker knows of one station now. ``profile`` is the registry record, kept as
    its JSON (``null`` while the station is missing from the registry: :attr:`registered`);
    what judging reads of it is :attr:`facts`, what views show
    :func:`streams.record.listing` (:mod:`streams.record`).

    A msgspec struct: every heartbeat decodes one from the table, changes it once or twice
    (:func:`evolve`), compares it with what was loaded and encodes it again, each in C. Not
    tracked by the garbage collector: a state never refers back to itself. Fields at their
    defaults are left out of its JSON (``omit_defaults``; a reader takes the default for a
    missing one, as every version has): most are null for most stations, and the four kept
    for open and occupancy runs had taken a stored state from about 212 bytes to 262."""

    station_id: str
    profile: msgspec.Raw = NULL
    # what judging reads of ``profile``, kept beside it (None: stored by a version that did
    # not keep it, or no record; read from ``profile`` then): the ``facts`` property
    record_facts: Facts | None = None
    profile_updated_at: datetime | None = None
    liveness: Liveness = "unknown"
    liveness_since: datetime | None = None
    last_heartbeat_at: datetime | None = None
    last_seq: int | None = None
    device_id: str | None = None
    battery_pct: float | None = None
    on_mains: bool | None = None
    open_state: OpenState = "unknown"
    open_state_since: datetime | None = None
    open_reason: str | None = None
    # the newest open/closed report's time, which orders them (``open_state_since`` is when
    # the station came to its state, and a report repeating the state does not move it;
    # None: stored before this was kept, when ``open_state_since`` was the newest report's),
    # and the newest report of the other state (:func:`run_after`)
    open_reported_at: datetime | None = None
    open_other_at: datetime | None = None
    occupants: int | None = None
    reported_capacity: int | None = None
    occupancy_at: datetime | None = None
    # when the occupancy last crossed its capacity, either way: the first reading over it
    # after readings within it (or the other way round), or the registry record whose new
    # capacity moved the reading across; the first reading's time when none came before.
    # An over-capacity episode starts and ends at it, however many readings a batch folds
    # before it is judged (None: no reading, or stored before this was kept).
    occupancy_crossed_at: datetime | None = None
    occupancy_other_at: datetime | None = None  # the newest reading on the other side
    updated_at: datetime | None = None
    # the input partition the station's records arrive on (its producers' choice): the worker
    # owning that partition owns the station (None: stored before this was kept)
    partition: int | None = None
    # -- liveness bookkeeping (streams.liveness) -------------------------------------------
    watch_since: datetime | None = None  # judged from here while no heartbeat has come
    recovery_beats: int = 0  # consecutive heartbeats since the station went stale/offline
    flips: tuple[datetime, ...] = ()  # liveness changes inside the flapping window
    flapping_since: datetime | None = None
    scheduled: bool | None = None  # the schedule's verdict at the last evaluation
    scheduled_since: datetime | None = None
    expected_since: datetime | None = None  # when it last became expected alive
    # the lifecycle in force when last judged (effective_lifecycle): a closure that ends by
    # itself changes the state then, so the table, the API and station_current follow
    lifecycle_in_force: str | None = None
    # streams.expected: when the verdict last changed either way, and the registry record's
    # parts it rested on (lifecycle, device, opening hours' fingerprint) at the last judgement
    expected_changed_at: datetime | None = None
    expect_basis: dict[str, Any] | None = None
    # the opening hours in force when last judged (their JSON), while the registry has changed
    # them and the station has not been judged since (the boundaries passed meanwhile were
    # theirs)
    hours_before: msgspec.Raw = NULL
    # open alert episodes by kind: alert_id, starts_at, detected_at, … (JSON-ready)
    episodes: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)
    # the last resolved episode by kind: alert_id, ends_at (a new episode starts after it)
    resolved_episodes: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)
    # by kind, since when its condition has held without a break (ISO time): an alert fires
    # once it has held for the kind's pending time
    pending: dict[str, str] = msgspec.field(default_factory=dict)
    # by kind, since when a firing episode's condition has been clear (ISO time): it resolves
    # once clear for the kind's keep-firing time
    clearing: dict[str, str] = msgspec.field(default_factory=dict)

    # -- views ------------------------------------------------------------------------------
    @property
    def registered(self) -> bool:
        """Whether the station is in the registry (its state holds a record)."""
        return self.record_facts is not None or not absent(self.profile)

    @property
    def facts(self) -> Facts:
        """What judging reads of the registry record (:data:`NO_RECORD` without one)."""
        found = self.record_facts
        return found if found is not None else facts_of(self.profile)

    @property
    def lifecycle(self) -> str:
        return self.facts.lifecycle

    @property
    def heartbeat_interval_s(self) -> int | None:
        return self.facts.heartbeat_interval_s

    @property
    def capacity(self) -> int | None:
        if self.reported_capacity is not None:
            return self.reported_capacity
        return self.facts.capacity

    @property
    def record(self) -> dict[str, Any] | None:
        """The registry record as JSON-ready values (decoded anew on each access)."""
        return record_of(self.profile)

    # -- as JSON (what the API server gets; the table stores it compressed: state_codec) ----
    def to_json(self) -> dict[str, Any]:
        """The state as JSON-ready values, as the changelog held it before the compact form.
        Shallow: the nested dicts (profile, episodes) are never mutated, only replaced, so
        they are shared rather than copied."""
        data = {name: getattr(self, name) for name in _FIELDS}
        for name in _TIME_FIELDS:
            value = data[name]
            data[name] = value.isoformat() if value is not None else None
        data["flips"] = [flip.isoformat() for flip in self.flips]
        data["profile"] = record_of(self.profile)
        data["hours_before"] = record_of(self.hours_before)
        data["record_facts"] = msgspec.json.decode(msgspec.json.encode(self.record_facts))
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StationState:
        # the fields this version knows (a newer one's extra keys are left out); a missing
        # one takes its default
        values = {name: data[name] for name in _FIELDS if name in data}
        for name in _TIME_FIELDS:
            raw = values.get(name)
            values[name] = datetime.fromisoformat(raw) if raw else None
        values["flips"] = tuple(datetime.fromisoformat(f) for f in values.get("flips") or ())
        for name in ("profile", "hours_before"):
            values[name] = encode_record(values[name]) if values.get(name) is not None else NULL
        # read again from the record: what this version reads of it
        values["record_facts"] = None if absent(values["profile"]) else facts_of(values["profile"])
        return cls(**values)


_FIELDS: tuple[str, ...] = StationState.__struct_fields__
_replace = msgspec.structs.replace


def evolve(state: StationState, /, **changes: Any) -> StationState:
    """A copy of ``state`` with ``changes`` (``dataclasses.replace`` for the struct, in C); a
    misspelt field is refused (``TypeError``). Every station a batch touches is evolved
    several times on the hot path (fold, then judging)."""
    return _replace(state, **changes)


def effective_lifecycle(facts: Facts, now: datetime) -> str:
    """The lifecycle a registry record stands for at ``now`` (:class:`Facts`): a
    ``temporarily_closed`` station whose ``closed_until`` has come is ``active`` again;
    ``unknown`` without a record."""
    if facts.closed_until is not None and facts.closed_until <= now:
        return "active"
    return facts.lifecycle


def _newer(candidate: datetime, current: datetime | None) -> bool:
    return current is None or candidate > current


def apply_heartbeat(
    state: StationState, beat: Heartbeat, now: datetime, *, gap_limit_s: float | None = None
) -> StationState:
    """``gap_limit_s``: heartbeats further apart than this are not consecutive (recovery
    counting restarts).

    A heartbeat counts as heard when it was sent, but never later than when it was received
    (``now``): a device whose clock runs ahead (within the accepted skew) cannot keep its
    station online past the moment it fell silent. Kept in UTC, whatever offset the device
    sent: judging compares it with UTC times (its clock, its thresholds), and aware times of
    different zones are compared by asking each for its offset (a steady station's judgement
    took 8.2 µs against 6.1)."""
    sent_at = min(beat.sent_at, now).astimezone(UTC)
    if not _newer(sent_at, state.last_heartbeat_at):
        return state
    beats = state.recovery_beats
    if state.liveness in ("stale", "offline"):
        previous = state.last_heartbeat_at
        consecutive = (
            previous is not None
            and gap_limit_s is not None
            and (sent_at - previous).total_seconds() <= gap_limit_s
        )
        beats = beats + 1 if consecutive else 1
    return evolve(
        state,
        recovery_beats=beats,
        last_heartbeat_at=sent_at,
        last_seq=beat.seq,
        device_id=beat.device_id,
        battery_pct=beat.battery_pct,
        on_mains=beat.on_mains,
        updated_at=now,
    )


def over_capacity(occupants: int | None, capacity: int | None) -> bool:
    return occupants is not None and capacity is not None and occupants > capacity


def run_after(
    at: datetime,
    same_side: bool,
    newest: datetime | None,
    since: datetime | None,
    other: datetime | None,
) -> tuple[datetime, datetime | None]:
    """Where the run of reports on the newest one's side (closed or open; over or within
    capacity) begins, and the newest report on the other side, once a report at ``at`` (not
    ``newest``'s time) on the newest one's side (``same_side``) or the other is folded in.

    What the reports say, whatever order they come in: the run begins at the earliest report
    on the newest one's side after the newest on the other. These three times answer it but
    in one case: a report on the other side, older than the newest, coming late inside the
    run. The run then begins after it, at a report not kept: the newest is taken, the earliest
    one known to be later."""
    if newest is None or at > newest:  # the newest report
        if same_side and since is not None:
            return since, other
        return at, newest  # a side of its own: it begins the run
    if same_side:  # an older report on the run's side: the run may begin earlier
        if other is None or at > other:
            return (at if since is None else min(since, at)), other
        return (since or newest), other
    other = at if other is None else max(other, at)
    if since is not None and at > since:  # inside the run: it began after this report
        return newest, other
    return (since or newest), other


def _older(
    state: StationState,
    now: datetime,
    since: tuple[str, datetime],
    other: tuple[str, datetime | None],
) -> StationState:
    """A report older than the newest: only where its side's run began and the newest report
    on the other side (each a field's name and its new time, from :func:`run_after`) may
    change; ``updated_at`` only when the run's start moved."""
    (since_field, since_at), (other_field, other_at) = since, other
    began = getattr(state, since_field)
    if (since_at, other_at) == (began, getattr(state, other_field)):
        return state
    return evolve(
        state,
        **{since_field: since_at, other_field: other_at},
        updated_at=now if since_at != began else state.updated_at,
    )


def apply_occupancy(state: StationState, count: Occupancy, now: datetime) -> StationState:
    """The newest reading wins; ``occupancy_crossed_at`` is when the occupancy came to the side
    of the capacity it is on (over it, or within it: :func:`run_after`), which an older
    reading may move back."""
    newest = state.occupancy_at
    if newest is not None and count.observed_at == newest:
        return state  # a duplicate (or a tie: the first delivered stays)
    capacity = count.capacity if count.capacity is not None else state.facts.capacity
    side = over_capacity(count.occupants, capacity)
    crossed_at, other_at = run_after(
        count.observed_at,
        side == over_capacity(state.occupants, state.capacity),
        newest,
        state.occupancy_crossed_at or newest,
        state.occupancy_other_at,
    )
    if newest is not None and count.observed_at < newest:
        return _older(
            state, now, ("occupancy_crossed_at", crossed_at), ("occupancy_other_at", other_at)
        )
    return evolve(
        state,
        occupants=count.occupants,
        reported_capacity=count.capacity,
        occupancy_at=count.observed_at,
        occupancy_crossed_at=crossed_at,
        occupancy_other_at=other_at,
        updated_at=now,
    )


def apply_status(state: StationState, event: StatusEvent, now: datetime) -> StationState:
    """The newest report wins. ``open_state_since`` is when the station came to the state it
    is in (:func:`run_after`): a report repeating it does not move it, and an older one may
    move it back. So a ``closed_during_hours`` episode starts at the first report of closed
    and ends at the first of open, however many reports a batch folds before it is judged (a
    replay, a backlog cut batches anew)."""
    newest = state.open_reported_at or state.open_state_since
    if newest is not None and event.at == newest:
        return state  # a duplicate (or a tie: the first delivered stays)
    since, other_at = run_after(
        event.at,
        event.state == state.open_state,
        newest,
        state.open_state_since,
        state.open_other_at,
    )
    if newest is not None and event.at < newest:
        return _older(state, now, ("open_state_since", since), ("open_other_at", other_at))
    return evolve(
        state,
        open_state=event.state,
        open_state_since=since,
        open_reported_at=event.at,
        open_other_at=other_at,
        open_reason=event.reason,
        updated_at=now,
    )


def apply_profile(
    state: StationState,
    profile: StationProfile,
    now: datetime,
    *,
    as_json: dict[str, Any] | None = None,
) -> StationState:
    """A registry record replaces the previous one unless it is older (same time: newest wins).
    ``as_json``: the record as JSON-ready values, when the caller has made them already."""
    if state.profile_updated_at is not None and profile.updated_at < state.profile_updated_at:
        return state
    if as_json is None:
        as_json = profile.model_dump(mode="json")
    encoded = encode_record(as_json)
    # the same JSON, or the same record written otherwise (by an earlier version)
    if encoded == state.profile or (state.registered and record_of(state.profile) == as_json):
        return state
    previous, found = state.facts, facts_of(encoded)
    changes: dict[str, Any] = {
        "profile": encoded,
        "record_facts": found,
        "profile_updated_at": profile.updated_at,
        "updated_at": now,
    }
    if previous.hours is not None and absent(state.hours_before) and found.hours != previous.hours:
        changes["hours_before"] = previous.opening_hours
    occupants, read_at = state.occupants, state.occupancy_at
    if (
        state.reported_capacity is None  # else the reading's own capacity is the one in force
        and read_at is not None
        and over_capacity(occupants, previous.capacity) != over_capacity(occupants, found.capacity)
    ):
        # the new capacity moves the last reading across it: crossed when both held, and no
        # older reading, on either side of it, moves that
        crossed = max(read_at, profile.updated_at)
        changes.update(occupancy_crossed_at=crossed, occupancy_other_at=crossed)
    if profile.heartbeat_interval_s is None and state.liveness != "not_monitored":
        changes.update(liveness="not_monitored", liveness_since=now)
    elif profile.heartbeat_interval_s is not None and state.liveness == "not_monitored":
        changes.update(liveness="unknown", liveness_since=now)
    return evolve(state, **changes)


def new_state(station_id: str, now: datetime) -> StationState:
    return StationState(station_id=station_id, liveness_since=now, updated_at=now)
