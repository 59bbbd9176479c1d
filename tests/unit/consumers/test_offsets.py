"""The notifier commits an input offset only once every notice it causes is settled."""

from __future__ import annotations

from consumers.offsets import OffsetTracker

P0, P1 = ("groups", 0), ("groups", 1)


def test_a_partition_commits_up_to_its_oldest_unsettled_record() -> None:
    tracker: OffsetTracker[tuple[str, int]] = OffsetTracker()
    tracker.hold(P0, 0, "street-a")
    tracker.hold(P0, 1, "street-b")
    tracker.seen(P0, 2)  # needed nothing (e.g. a resolved alert nobody is told about)
    assert tracker.commits() == {P0: 0}
    tracker.committed({P0: 0})
    assert tracker.settle("street-b") == 1
    assert tracker.commits() == {}  # 0 is still held
    tracker.settle("street-a")
    assert tracker.commits() == {P0: 3}
    assert tracker.commits() == {P0: 3}  # not committed yet: asked again
    tracker.committed({P0: 3})
    assert tracker.commits() == {}  # nothing moved since


def test_a_notice_settles_only_what_its_group_had_taken_when_it_was_made() -> None:
    tracker: OffsetTracker[tuple[str, int]] = OffsetTracker()
    tracker.hold(P0, 5, "g")
    made_at = tracker.sequence
    tracker.hold(P0, 6, "g")  # arrived while the notice was being delivered
    assert tracker.settle("g", upto=made_at) == 1
    assert tracker.holds("g")
    assert tracker.commits() == {P0: 6}
    tracker.committed({P0: 6})
    tracker.settle("g")
    assert not tracker.holds("g")
    assert tracker.commits() == {P0: 7}


def test_partitions_are_independent_and_revoked_ones_forgotten() -> None:
    tracker: OffsetTracker[tuple[str, int]] = OffsetTracker()
    tracker.hold(P0, 0, "g")
    tracker.hold(P1, 10, "g")
    tracker.seen(P1, 11)
    assert tracker.commits() == {P0: 0, P1: 10}
    tracker.committed({P0: 0, P1: 10})
    tracker.forget([P1])
    assert tracker.tokens() == ["g"]
    tracker.settle("g")
    assert tracker.commits() == {P0: 1}
    assert tracker.position(P1) is None
