"""Until when a station's liveness, as written to the database, holds without the worker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from msgspec.structs import replace

from streams.freshness import fresh_until
from streams.liveness import LivenessConfig
from streams.record import holding
from streams.state import StationState
from tests.factories import profile

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
CONFIG = LivenessConfig(stale_after=3, offline_after=10)


def station(liveness: str, interval: int | None = 60, **fields: object) -> StationState:
    state = StationState(
        station_id="SY-0001",
        **holding(profile("SY-0001", heartbeat_interval_s=interval)),
        liveness=liveness,  # type: ignore[arg-type]
        last_heartbeat_at=T0,
    )
    return replace(state, **fields)


@pytest.mark.parametrize(
    ("liveness", "interval", "expected"),
    [
        # online: until it would turn stale (3 intervals), plus one interval of grace
        ("online", 60, T0 + timedelta(seconds=4 * 60)),
        # stale: until it would turn offline (10 intervals), plus one interval
        ("stale", 60, T0 + timedelta(seconds=11 * 60)),
        ("online", 1, T0 + timedelta(seconds=4)),
        # these hold without input
        ("offline", 60, None),
        ("unknown", 60, None),
        ("not_monitored", None, None),
        ("online", None, None),  # no device: nothing to expect
    ],
)
def test_fresh_until(liveness: str, interval: int | None, expected: datetime | None) -> None:
    assert fresh_until(station(liveness, interval), CONFIG) == expected


def test_a_station_never_heard_counts_from_when_watching_began() -> None:
    state = station("online", 60, last_heartbeat_at=None, watch_since=T0 + timedelta(hours=1))
    assert fresh_until(state, CONFIG) == T0 + timedelta(hours=1, minutes=4)


def test_without_any_reference_there_is_no_bound() -> None:
    assert fresh_until(station("online", 60, last_heartbeat_at=None), CONFIG) is None
