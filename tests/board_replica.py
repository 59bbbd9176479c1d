"""An API server's replica filled in-process, as the worker's feed fills it (`streams.server`
applies the same ``put``/``ready``/``status`` frames): for the live board's tests that need
many stations, or a given liveness, without waiting for a worker to judge them."""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from stationwatch.fleet import build_fleet
from stationwatch.settings import Settings
from streams.api import Replica
from streams.record import holding
from streams.state import StationState

HEALTHY = [True, {"status": "ok", "problems": [], "partitions": 1, "lag": 0}]


def fleet_states(
    n: int, *, seed: int = 1, offline_share: float = 0.05, now: datetime | None = None
) -> list[dict[str, Any]]:
    """The simulator's district (``n`` stations) as stored live states: most online, some
    stale or offline for a while, the ones without a device not monitored."""
    now = now or datetime.now(UTC)
    rng = random.Random(seed)
    states = []
    for profile in build_fleet(n, seed, now):
        if profile.heartbeat_interval_s is None:
            liveness = "not_monitored"
        else:
            draw = rng.random()
            liveness = (
                "offline"
                if draw < offline_share
                else "stale"
                if draw < 2 * offline_share
                else "online"
            )
        since = now - timedelta(minutes=rng.randint(1, 600))
        states.append(
            StationState(
                station_id=profile.station_id,
                **holding(profile.model_dump(mode="json")),
                liveness=liveness,  # type: ignore[arg-type]
                liveness_since=since,
                last_heartbeat_at=since,
                updated_at=now,
            ).to_json()
        )
    return states


def with_liveness(state: dict[str, Any], liveness: str, since: datetime) -> dict[str, Any]:
    return {**state, "liveness": liveness, "liveness_since": since.isoformat()}


def fill(replica: Replica, states: Iterable[dict[str, Any]], *, partition: int = 0) -> None:
    """Put the states and declare every partition held, as the feed's frames do."""
    for state in states:
        replica.index.put(state["station_id"], partition, state)
    replica.partitions = frozenset(range(replica.settings.partitions))
    replica.index.ready = True
    report(replica)


def report(replica: Replica) -> None:
    """A status report from the worker, as it sends each second."""
    replica.report(HEALTHY, {}, "", "")


def filled_replica(states: Iterable[dict[str, Any]], **settings: Any) -> Replica:
    replica = Replica(Settings(partitions=1, **settings))
    fill(replica, states)
    return replica
