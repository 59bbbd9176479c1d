"""After a rebalance, station_current is written again a part at a time, behind the stations
that changed (streams.owned.take_resync), once the backlog is worked off."""

from __future__ import annotations

from collections import deque
from typing import Any

from streams.owned import resync_allowed, take_resync


def test_changed_stations_keep_their_state_and_a_part_of_the_resync_follows() -> None:
    changed: dict[str, Any] = {"B": "state of B"}
    resync = deque(["A", "B", "C", "D"])
    assert take_resync(resync, changed, limit=2) == ["A", "B"]  # both written whole
    assert changed == {"B": "state of B", "A": None}
    assert list(resync) == ["C", "D"]
    assert take_resync(resync, changed, limit=2) == ["C", "D"]
    assert changed == {"B": "state of B", "A": None, "C": None, "D": None}
    assert not resync


def test_nothing_to_resync_adds_nothing() -> None:
    changed: dict[str, Any] = {"A": "state of A"}
    assert take_resync(deque(), changed, limit=5) == []
    assert changed == {"A": "state of A"}


def test_the_resync_waits_while_the_worker_works_off_a_backlog() -> None:
    starting = (False, {"status": "starting", "problems": ["starting"]})
    assert not resync_allowed(starting, backlog_limit=2000)  # no backlog measured yet
    assert not resync_allowed((False, {"lag": 2001}), backlog_limit=2000)
    assert resync_allowed((True, {"lag": 2000}), backlog_limit=2000)
    assert resync_allowed((False, {"lag": 0, "problems": ["database unavailable"]}), 2000)
