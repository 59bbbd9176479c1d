"""How long a station's liveness, as written to the database, stays true on its own.

The worker writes each station's liveness to ``station_current`` when it changes. A reader of
the database cannot tell a quiet worker from a stopped one, so every row carries ``fresh_until``:
the moment its liveness would change unless the worker writes the row again — an ``online``
station turns ``stale`` ``stale_after`` intervals after its last heartbeat, a ``stale`` one
``offline`` after ``offline_after`` — plus one heartbeat interval of grace, so a running worker
always writes first. Past it, the database says ``unknown``. Other states (``offline``,
``unknown``, ``not_monitored``) hold without input.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from streams.liveness import LivenessConfig
from streams.state import StationState


def fresh_until(state: StationState, config: LivenessConfig) -> datetime | None:
    """Until when ``state.liveness`` holds without a new write (None: it holds)."""
    interval = state.heartbeat_interval_s
    reference = state.last_heartbeat_at or state.watch_since
    if interval is None or reference is None or state.liveness not in ("online", "stale"):
        return None
    factor = config.stale_after if state.liveness == "online" else config.offline_after
    return reference + timedelta(seconds=(factor + 1) * interval)
