"""A temporary closure with an end (`closed_until`) ends by itself: the effective lifecycle,
the liveness decision that uses it, and the live views."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from streams.query import entry_from_state, is_open_now
from streams.record import NULL, encode_record, facts_of
from streams.state import effective_lifecycle
from streams.views import live_state
from tests.unit.streams.test_liveness import (
    MIN,
    OFFLINE,
    SH,
    STALE,
    T0,
    S,
    Station,
    online_at,
    sent,
)

UNTIL = T0 + timedelta(hours=3)


def record(lifecycle: str, closed_until: datetime | str | None = None) -> msgspec.Raw:
    """A registry record's parts that judging reads, as a state holds them (JSON)."""
    profile: dict[str, Any] = {"station_id": "SY-0001", "lifecycle": lifecycle}
    if closed_until is not None:
        profile["closed_until"] = (
            closed_until.isoformat() if isinstance(closed_until, datetime) else closed_until
        )
    return encode_record(profile)


@pytest.mark.parametrize(
    ("profile", "now", "expected"),
    [
        pytest.param(None, T0, "unknown", id="no-record"),
        pytest.param(NULL, T0, "unknown", id="null-record"),
        pytest.param(record("active"), T0, "active", id="active"),
        pytest.param(record("decommissioned"), T0, "decommissioned", id="decommissioned"),
        pytest.param(record("temporarily_closed"), T0, "temporarily_closed", id="no-end"),
        pytest.param(
            record("temporarily_closed", UNTIL), UNTIL - S, "temporarily_closed", id="before-end"
        ),
        pytest.param(record("temporarily_closed", UNTIL), UNTIL, "active", id="at-end"),
        pytest.param(record("temporarily_closed", UNTIL), UNTIL + S, "active", id="after-end"),
        pytest.param(
            record("temporarily_closed", "2026-11-30T02:00:00Z"),
            datetime(2026, 11, 30, 2, 0, tzinfo=UTC),
            "active",
            id="Z-suffix-other-zone",
        ),
        pytest.param(
            record("temporarily_closed", "2026-11-30T10:00:00+08:00"),
            datetime(2026, 11, 30, 1, 59, 59, tzinfo=UTC),
            "temporarily_closed",
            id="offset-compared-as-instants",
        ),
    ],
)
def test_effective_lifecycle(profile: msgspec.Raw | None, now: datetime, expected: str) -> None:
    assert effective_lifecycle(facts_of(profile), now) == expected


def test_closure_end_only_for_a_temporary_closure() -> None:
    assert facts_of(record("temporarily_closed", UNTIL)).closed_until == UNTIL
    assert facts_of(record("temporarily_closed")).closed_until is None
    assert facts_of(record("active", UNTIL)).closed_until is None
    assert facts_of(None).closed_until is None
    assert facts_of(NULL).closed_until is None


def test_a_closed_station_is_judged_again_when_its_closure_ends() -> None:
    station = online_at(T0)
    closing = T0 + MIN
    station.profile(closing, lifecycle="temporarily_closed", closed_until=UNTIL.isoformat())
    # silent from now on: closed, so no alert however long
    station.walk(closing, UNTIL - 30 * MIN, step=MIN)
    assert station.state.liveness == "offline"
    assert station.alerts == []
    # nothing else is due (the next idle look would be an hour away): the end of the closure is
    assert station.judge(UNTIL - 30 * MIN).next_due == UNTIL
    station.walk(UNTIL - 30 * MIN, UNTIL - S, step=MIN)
    at_end = station.judge(UNTIL)
    assert at_end.alerts == []  # expected again from now: a device gets its thresholds afresh
    station.walk(UNTIL, UNTIL + OFFLINE + S)
    assert sent(station.alerts) == [
        ("stale", "firing"),
        ("stale", "resolved"),
        ("offline", "firing"),
    ]
    assert station.alerts[0].starts_at == UNTIL + STALE
    assert station.alerts[2].starts_at == UNTIL + OFFLINE


def test_a_closure_without_end_stays_closed() -> None:
    station = online_at(T0)
    result = station.profile(T0 + MIN, lifecycle="temporarily_closed")
    station.walk(T0 + MIN, T0 + timedelta(hours=5), step=10 * MIN)
    assert station.alerts == []
    assert result.next_due > T0 + MIN


def test_closing_resolves_an_open_offline_alert() -> None:
    station = online_at(T0)
    station.judge(T0 + OFFLINE + S)
    assert station.firing() == {"offline"}
    result = station.profile(
        T0 + OFFLINE + 2 * S, lifecycle="temporarily_closed", closed_until=UNTIL.isoformat()
    )
    assert sent(result.alerts) == [("offline", "resolved")]
    assert station.firing() == set()


def test_live_views_show_the_lifecycle_in_force() -> None:
    station = Station(T0, lifecycle="temporarily_closed", closed_until=UNTIL.isoformat())
    stored = station.state.to_json()
    assert live_state(station.state, SH, UNTIL - S)["lifecycle"] == "temporarily_closed"
    assert live_state(station.state, SH, UNTIL)["lifecycle"] == "active"
    entry = entry_from_state("SY-0001", 0, stored)
    assert entry.lifecycle_at(UNTIL - S) == "temporarily_closed"
    assert entry.lifecycle_at(UNTIL) == "active"
    assert not is_open_now(entry, UNTIL - S, SH)
    assert is_open_now(entry, UNTIL + S, SH)


def test_the_end_of_a_closure_changes_the_state_even_of_a_station_without_device() -> None:
    station = Station(
        T0,
        lifecycle="temporarily_closed",
        closed_until=UNTIL.isoformat(),
        heartbeat_interval_s=None,
    )
    before = station.judge(UNTIL - S).state
    assert station.judge(UNTIL - S / 2).state == before  # nothing new: nothing to write
    after = station.judge(UNTIL).state
    assert after != before  # written to the table, so station_current and the API follow
    assert (before.lifecycle_in_force, after.lifecycle_in_force) == ("temporarily_closed", "active")
