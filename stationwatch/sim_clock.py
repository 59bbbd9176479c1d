"""The simulator's clock against the worker's: what a worker will make of the times a run
stamps on its messages. Pure: the moments and settings in, plain sentences out.

The simulated clock starts at ``start`` and runs ``speed`` times as fast as the real one, and
every time a message carries follows it. A worker judges those times by its own (real) clock:
a time more than ``STATIONWATCH_MAX_CLOCK_SKEW_S`` ahead is dead-lettered as from the future,
telemetry more than ``STATIONWATCH_MAX_MESSAGE_AGE_S`` old as from the past. So a run at
``speed`` above 1 starting now is accepted only for its first ``skew / (speed - 1)`` seconds;
starting it in the past (``--start``) buys the time it takes to catch the real clock up.
"""

from __future__ import annotations

import math
from datetime import datetime

from stationwatch.settings import Settings


def lead_s(start: datetime, real_now: datetime, speed: float, elapsed_s: float) -> float:
    """How far the simulated clock is ahead of the real one ``elapsed_s`` real seconds in."""
    return (start - real_now).total_seconds() + (speed - 1.0) * elapsed_s


def accepted_for_s(start: datetime, real_now: datetime, speed: float, skew_s: float) -> float:
    """Real seconds until the simulated clock is more than ``skew_s`` ahead (``inf``: never)."""
    lead = lead_s(start, real_now, speed, 0.0)
    if lead > skew_s:
        return 0.0
    if speed <= 1.0:
        return float("inf")
    return (skew_s - lead) / (speed - 1.0)


def clock_notes(
    start: datetime,
    real_now: datetime,
    speed: float,
    duration_s: float | None,
    settings: Settings,
) -> list[str]:
    """Warnings for the user when a worker with ``settings`` would dead-letter some of the
    run's messages for their times (none when it would take them all)."""
    skew, max_age = settings.max_clock_skew_s, settings.max_message_age_s
    notes: list[str] = []
    ahead_in = accepted_for_s(start, real_now, speed, skew)
    if ahead_in == 0.0:
        notes.append(
            f"the simulated clock starts {lead_s(start, real_now, speed, 0):.0f} s ahead of the "
            f"real one: a worker dead-letters every message as from the future "
            f"(STATIONWATCH_MAX_CLOCK_SKEW_S={skew:g})"
        )
    elif math.isfinite(ahead_in) and (duration_s is None or ahead_in < duration_s):
        notes.append(
            f"at --speed {speed:g} the simulated clock is more than "
            f"STATIONWATCH_MAX_CLOCK_SKEW_S={skew:g} s ahead of the real one after "
            f"{ahead_in:.0f} s: from then on a worker dead-letters the messages as from the future"
            " (start in the past with --start, or raise that setting for the trial)"
        )
    behind = -lead_s(start, real_now, speed, 0.0)
    if behind > max_age:
        notes.append(
            f"the simulated clock starts {behind:.0f} s behind the real one: a worker "
            f"dead-letters telemetry older than STATIONWATCH_MAX_MESSAGE_AGE_S={max_age:g} s"
        )
    return notes
