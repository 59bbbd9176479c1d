"""Is a station expected alive, and since exactly when — decided purely (no Faust, no database).

A station is *expected alive* (the contract) while its lifecycle is ``active``, it has a
``heartbeat_interval_s`` and its schedule says open (weekly hours, public holidays, make-up
working days, ``always_open``, ``holidays_open``: :mod:`streams.schedule`).

:func:`judge_expected` is called by ``streams.liveness.evaluate`` with the time the station is
judged at, and reports every change of that verdict since the last judgement, each dated when
it happened:

- a schedule opening or closing at the schedule's own boundary, even when the station is judged
  later: every boundary passed since the last judgement is walked, with the registry record as
  it was then (its ``basis``, and the opening hours then in force: ``hours_before`` when the
  registry has changed them since);
- a registry change (lifecycle, device, opening hours) and the first sight of a station at the
  judge time it was processed.

The changes of one station are strictly increasing in time, so ``(station_id, time)`` names
one; two changes at one instant that cancel out are neither reported. The state keeps what the
next judgement needs (``scheduled``/``scheduled_since``, ``expected_since``,
``expected_changed_at`` and the registry ``basis`` of the verdict), so a replay from the
changelog, a restart or a rebalance reports nothing that was already reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from streams.record import NULL, absent
from streams.schedule import next_change, previous_change, scheduled_open, shared_hours
from streams.state import StationState, effective_lifecycle, evolve

# "always": the schedule of a station that never changes
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)
# Boundaries further back than this are not walked (a station is judged at least hourly while a
# worker runs; this only bounds the work after a very long outage).
WALK_LIMIT = timedelta(days=35)
_STEP = timedelta(days=7)  # next_change looks this far ahead at least
_TICK = timedelta(microseconds=1)  # keeps a station's changes strictly increasing


@dataclass(frozen=True)
class ExpectedChange:
    """The station became expected alive (``expected``) or stopped being so at ``time``.
    ``reason``: ``schedule``, ``lifecycle``, ``registry`` (device, opening hours, removal) or
    ``first_seen``."""

    time: datetime
    station_id: str
    expected: bool
    reason: str


def basis(state: StationState, now: datetime) -> dict[str, Any]:
    """What of the registry record, besides the opening hours, the verdict rests on at ``now``
    (JSON-ready, kept in the state): the lifecycle in force (a closure past its
    ``closed_until`` is over) and whether there is a device. A change of the hours shows as
    ``hours_before`` (kept by ``streams.state.apply_profile`` until the next judgement)."""
    return {
        "lifecycle": effective_lifecycle(state.facts, now),
        "device": state.heartbeat_interval_s is not None,
    }


def eligible(record: dict[str, Any]) -> bool:
    """Everything but the schedule: registered and active, with a device."""
    return record["lifecycle"] == "active" and bool(record["device"])


def schedule_flips(
    hours: dict[str, Any] | None, since: datetime, is_open: bool, until: datetime, zone: ZoneInfo
) -> list[tuple[datetime, bool]]:
    """The moments in ``(since, until]`` at which the schedule's verdict changed, starting from
    ``is_open``, with the verdict from each."""
    if not hours or hours.get("always_open"):
        return []
    cursor = max(since, until - WALK_LIMIT)
    flips: list[tuple[datetime, bool]] = []
    while cursor < until:
        boundary = next_change(hours, cursor, zone)
        if boundary is None:  # nothing within a week: look at the next one
            cursor += _STEP
            continue
        if boundary > until:
            break
        verdict = scheduled_open(hours, boundary, zone)
        if verdict != is_open:
            flips.append((boundary, verdict))
            is_open = verdict
        cursor = boundary
    return flips


class _Log:
    """Collects one judgement's changes: strictly after the station's last one, and a change
    undone at the same instant is no change."""

    def __init__(self, station_id: str, running: bool, last: datetime | None) -> None:
        self.station_id = station_id
        self.running = running
        self.last = last
        self.changes: list[ExpectedChange] = []

    def set(self, at: datetime, expected: bool, reason: str) -> None:
        if expected == self.running:
            return
        self.running = expected
        if self.changes and at <= self.changes[-1].time:
            self.changes.pop()  # back to what it was at this very instant: nothing happened
            return
        if self.last is not None and at <= self.last:
            at = self.last + _TICK
        self.changes.append(ExpectedChange(at, self.station_id, expected, reason))


def _ended(
    state: StationState, before: dict[str, Any], current: dict[str, Any], now: datetime
) -> datetime:
    """When a lifecycle change happened: a temporary closure that ended by itself at its
    ``closed_until`` (judged a moment later); any other change when it is judged."""
    end = state.facts.closed_until
    reopened = before["lifecycle"] == "temporarily_closed" and current["lifecycle"] == "active"
    if reopened and end is not None and end <= now:
        return end
    return now


def judge_expected(
    state: StationState, now: datetime, zone: ZoneInfo
) -> tuple[StationState, list[ExpectedChange]]:
    """The state with its expectation judged at ``now``, and the changes since the last time."""
    hours = state.facts.hours
    current = basis(state, now)
    is_open = bool(hours) and scheduled_open(hours, now, zone)  # type: ignore[arg-type]
    before: dict[str, Any] | None = state.expect_basis
    log = _Log(
        state.station_id,
        state.expected_since is not None and before is not None,
        state.expected_changed_at,
    )
    scheduled, scheduled_since = state.scheduled, state.scheduled_since
    if scheduled_since is None:
        # First sight: the schedule has said so since its last opening or closing time; the
        # station is watched from now.
        since = (previous_change(hours, now, zone) if hours else None) or LONG_AGO
        scheduled, scheduled_since = is_open, min(since, now)
        log.set(now, eligible(current) and is_open, "first_seen")
    else:
        if before is None:
            # Judged by a version that kept no basis: its verdict stands from when it began.
            if state.expected_since is not None:
                log.set(state.expected_since, True, "first_seen")
            before = current
        # the boundaries passed since the last judgement are those of the hours then in force
        new_hours = not absent(state.hours_before)
        walked = shared_hours(state.hours_before) if new_hours else hours
        for moment, verdict in schedule_flips(walked, scheduled_since, bool(scheduled), now, zone):
            scheduled, scheduled_since = verdict, moment
            log.set(moment, eligible(before) and verdict, "schedule")
        if is_open != scheduled:  # new opening hours, or a new holiday calendar
            reason = "registry" if new_hours else "schedule"
            scheduled, scheduled_since = is_open, now
            log.set(now, eligible(before) and is_open, reason)
        reason = "lifecycle" if before["lifecycle"] != current["lifecycle"] else "registry"
        log.set(_ended(state, before, current, now), eligible(current) and is_open, reason)
    expected_since = state.expected_since if log.running else None
    changed_at = state.expected_changed_at
    if log.changes:
        changed_at = log.changes[-1].time
        if log.running:
            expected_since = changed_at
    if (scheduled, scheduled_since, expected_since, changed_at, current) != (
        state.scheduled,
        state.scheduled_since,
        state.expected_since,
        state.expected_changed_at,
        state.expect_basis,
    ) or not absent(state.hours_before):
        state = evolve(
            state,
            scheduled=scheduled,
            scheduled_since=scheduled_since,
            expected_since=expected_since,
            expected_changed_at=changed_at,
            expect_basis=current,
            hours_before=NULL,
        )
    return state, log.changes


def removed(state: StationState, at: datetime) -> list[ExpectedChange]:
    """The station left the registry at ``at``: it is no longer expected, if it was."""
    if state.expected_since is None:
        return []
    last = state.expected_changed_at
    if last is not None and at <= last:
        at = last + _TICK
    return [ExpectedChange(at, state.station_id, False, "registry")]
